#!/usr/bin/env bash
# The demo: installs what is missing, builds (Release), then runs the waypoint with the bundled
# loopback config (config/demo-loopback.yaml), fake pods on 127.0.1.x, and sample traffic through
# it; prints a summary and stops everything by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
scripts/install-deps.sh
BUILD_DIR=build-release scripts/build.sh
bin="$top/build-release"
run="$bin/demo"
rm -rf "$run"
mkdir -p "$run"
cp config/demo-loopback.yaml "$run/waypoint.yaml"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

say "certificates (root CA + SPIFFE identities) in $run/certs"
"$bin/tests/wp-certgen" --out "$run/certs" \
  --identity productpage=default/bookinfo-productpage --identity details=default/bookinfo-details \
  --identity ratings=default/bookinfo-ratings --identity reviews=default/bookinfo-reviews \
  --identity echo=default/echo --identity sleep=default/sleep >/dev/null
ls "$run/certs"

say "waypoint validate"
"$bin/waypoint" validate --config "$run/waypoint.yaml"

say "fake pods (HBONE servers on 127.0.1.x:15008)"
pod() {  # name ip identity banner
  "$bin/tests/wp-fakepod" --addr "$2:15008" --cert "$run/certs/$3.pem" --key "$run/certs/$3.key" \
    --root "$run/certs/root.pem" --banner "$4" >"$run/pod-$1.log" 2>&1 &
  pids+=($!)
  echo "  $1 on $2:15008 presenting $3.pem"
}
pod productpage-v1 127.0.1.1 productpage "productpage-v1: "
pod details-v1 127.0.1.2 details "details-v1: "
pod ratings-v1 127.0.1.3 ratings "ratings-v1: "
pod reviews-v1 127.0.1.4 reviews "reviews-v1: "
pod reviews-v2 127.0.1.5 reviews "reviews-v2: "
pod reviews-v3 127.0.1.6 reviews "reviews-v3: "
pod echo-1 127.0.1.7 echo "echo-1: "
pod echo-2 127.0.1.8 echo "echo-2: "

say "waypoint --config $run/waypoint.yaml"
"$bin/waypoint" --config "$run/waypoint.yaml" >"$run/waypoint.log" 2>&1 &
wp_pid=$!
pids+=($wp_pid)
admin() {  # GET path from the admin listener, body only
  exec 3<>/dev/tcp/127.0.0.1/15000
  printf 'GET %s HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n' "$1" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}
for _ in $(seq 1 200); do
  if [ "$(admin /ready 2>/dev/null)" = "LIVE" ]; then break; fi
  sleep 0.05
done
head -n 3 "$run/waypoint.log"

client() {
  "$bin/tests/wp-hbone-client" --waypoint 127.0.0.1:15008 \
    --server-id spiffe://cluster.local/ns/default/sa/waypoint \
    --cert "$run/certs/sleep.pem" --key "$run/certs/sleep.key" --root "$run/certs/root.pem" "$@"
}

say "TCP echo through the echo service VIP 127.0.10.5:7000 (round robin over echo-1, echo-2)"
client --to 127.0.10.5:7000 --send "hello through the waypoint" --tunnels 4

say "16 MiB each way through one tunnel"
client --to 127.0.10.5:7000 --bytes 16777216

say "a pod IP directly (chain direct-tcp, cluster encap)"
client --to 127.0.1.4:9080 --send "straight to reviews-v1"

say "a destination this waypoint does not serve: 503"
client --to 127.0.99.99:80 --send "x" || true

say "access log: one JSON line per tunnel, with Envoy response flags (last 3)"
grep '^{' "$run/waypoint.log" | tail -n 3

say "waypoint counters (admin /stats)"
admin /stats | grep -E 'downstream_cx_total|tunnels_total|tunnels_rejected_not_served|upstream_cx_total|upstream_tunnels_total|tcp_bytes'

say "stopping (SIGTERM: GOAWAY, drain, exit 0)"
kill -TERM "$wp_pid"
wait "$wp_pid" && echo "waypoint exited with status 0"
tail -n 2 "$run/waypoint.log"
say "demo done; logs in $run"
