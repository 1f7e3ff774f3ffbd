#!/usr/bin/env bash
# Installs the Debian 12 packages waypoint needs to build, test and run its demo. Idempotent: does
# nothing when everything is present. Run as root. Extra packages may be named as arguments
# (bench/run adds its peers: haproxy, nghttp2-proxy).
set -euo pipefail

# python3-kubernetes, python3-yaml (and kubectl, below): independent Kubernetes clients, which prove
# the tests' fake API server honest; openssl: the demo's and the bench's API server certificate.
packages=(
  build-essential cmake pkg-config
  libuv1-dev libnghttp2-dev libssl-dev libspdlog-dev libyaml-cpp-dev libre2-dev nlohmann-json3-dev node-llhttp catch2
  python3 python3-h2 procps
  python3-kubernetes python3-yaml openssl
  "$@"
)
# kubectl: Debian's kubernetes-client, unless a kubectl is there already (another package may own
# /usr/bin/kubectl, and the two cannot both be installed).
if ! command -v kubectl >/dev/null 2>&1; then
  packages+=(kubernetes-client)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
