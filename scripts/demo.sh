#!/usr/bin/env bash
# The demo: installs what is missing, builds (Release), then runs the waypoint with the bundled
# loopback config (config/demo-loopback.yaml) in front of bookinfo-like fake pods on 127.0.1.x,
# sends traffic through it (the reviews 90/10 split, an authorization deny, a retried 503, TCP
# echo), shows proxy-config, metrics and explain, and stops everything by itself.
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
t_start=$(date +%s%N)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
pods=()
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
(cd "$run/certs" && echo *)

say "waypoint validate"
"$bin/waypoint" validate --config "$run/waypoint.yaml"

say "fake pods (HBONE servers on 127.0.1.x:15008; bookinfo's serve HTTP inside the tunnels)"
pod() {  # name ip identity [wp-fakepod options...]
  local name=$1 ip=$2 id=$3
  shift 3
  "$bin/tests/wp-fakepod" --addr "$ip:15008" --cert "$run/certs/$id.pem" --key "$run/certs/$id.key" \
    --root "$run/certs/root.pem" "$@" >"$run/pod-$name.log" 2>&1 &
  pids+=("$!")
  pods+=("$name")
  local sa=$id
  case $id in productpage | details | ratings | reviews) sa="bookinfo-$id" ;; esac
  local opts="$*"
  printf '  %-15s %s:15008  sa/%-21s %s\n' "$name" "$ip" "$sa" "${opts/ --name $name/}"
}
http_pod() { pod "$1" "$2" "$3" --behavior http --name "$1" "${@:4}"; }
http_pod productpage-v1 127.0.1.1 productpage
http_pod details-v1 127.0.1.2 details --fail-first 1 --fail-status 503
http_pod ratings-v1 127.0.1.3 ratings
http_pod reviews-v1 127.0.1.4 reviews
http_pod reviews-v2 127.0.1.5 reviews
http_pod reviews-v3 127.0.1.6 reviews
pod echo-1 127.0.1.7 echo --banner "echo-1: "
pod echo-2 127.0.1.8 echo --banner "echo-2: "
for name in "${pods[@]}"; do  # each prints "listening on" once its socket is bound
  for i in $(seq 1 100); do
    if grep -q 'listening on' "$run/pod-$name.log"; then break; fi
    if [ "$i" = 100 ]; then
      cat "$run/pod-$name.log"
      echo "fake pod $name did not start" >&2
      exit 1
    fi
    sleep 0.05
  done
done

if (exec 3<>/dev/tcp/127.0.0.1/15008) 2>/dev/null; then
  echo "127.0.0.1:15008 is already in use (another waypoint or demo running?)" >&2
  exit 1
fi
say "waypoint --config $run/waypoint.yaml (access log: JSON lines on stdout, in $run/waypoint.log)"
"$bin/waypoint" --config "$run/waypoint.yaml" >"$run/waypoint.log" 2>&1 &
wp_pid=$!
pids+=("$wp_pid")
get() {  # GET http://127.0.0.1:PORT/PATH, body only (bash /dev/tcp: no curl needed)
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}
for i in $(seq 1 200); do
  if [ "$(get 15000 /ready 2>/dev/null)" = "LIVE" ]; then break; fi
  if [ "$i" = 200 ] || ! kill -0 "$wp_pid" 2>/dev/null; then
    cat "$run/waypoint.log"
    echo "the waypoint did not become ready" >&2
    exit 1
  fi
  sleep 0.05
done
grep -v '^{' "$run/waypoint.log" || true

client() {  # identity [wp-hbone-client options...]: an HBONE client presenting certs/<identity>.pem
  local id=$1
  shift
  "$bin/tests/wp-hbone-client" --waypoint 127.0.0.1:15008 \
    --server-id spiffe://cluster.local/ns/default/sa/waypoint \
    --cert "$run/certs/$id.pem" --key "$run/certs/$id.key" --root "$run/certs/root.pem" "$@"
}
ok_or_say() { "$@" || echo "  (exit status $?)"; }

say "HTTP through the service VIPs, as sleep (spiffe://cluster.local/ns/default/sa/sleep)"
client sleep --to 127.0.10.1:9080 --http GET --path /productpage -H 'host: productpage:9080' --show-header x-pod
client sleep --to 127.0.10.4:9080 --http GET --path /reviews/1 -H 'host: reviews:9080' --count 3 --show-header x-pod

say "reviews: VirtualService 90 % v1 / 10 % v2, 200 requests in one keep-alive tunnel"
client sleep --to 127.0.10.4:9080 --http GET --path /reviews/1 -H 'host: reviews:9080' \
  --count 200 --show-header x-pod --quiet

say "AuthorizationPolicy ratings-viewer: ALLOW only bookinfo-reviews on ratings"
echo "-- as sleep:"
client sleep --to 127.0.10.3:9080 --http GET --path /ratings/1 -H 'host: ratings:9080'
echo "-- as reviews (spiffe://cluster.local/ns/default/sa/bookinfo-reviews):"
client reviews --to 127.0.10.3:9080 --http GET --path /ratings/1 -H 'host: ratings:9080' --show-header x-pod

say "retry: details-v1 answers its first request 503 (--fail-first 1); the default policy retries"
client productpage --to 127.0.10.2:9080 --http GET --path /details/1 -H 'host: details:9080' --count 2 \
  --show-header x-pod
echo "-- the first request's access-log line (one line per request; both tries in it):"
for i in $(seq 1 40); do
  grep -m 1 '"path":"/details/1".*"attempts":2' "$run/waypoint.log" && break
  if [ "$i" = 40 ]; then echo "(no such line in $run/waypoint.log)"; fi
  sleep 0.05
done

say "TCP: echo service VIP 127.0.10.5:7000 (round robin over echo-1, echo-2), then 16 MiB each way"
client sleep --to 127.0.10.5:7000 --send "hello through the waypoint" --tunnels 2
client sleep --to 127.0.10.5:7000 --bytes 16777216

say "a pod IP directly (chain direct-tcp, cluster encap), and a destination not served (503)"
client sleep --to 127.0.1.7:7000 --send "straight to echo-1"
ok_or_say client sleep --to 127.0.99.99:80 --send "x"

say "waypoint proxy-config listener --admin 127.0.0.1:15000 (direct-* chains shown for one pod IP)"
"$bin/waypoint" proxy-config listener --admin 127.0.0.1:15000 |
  awk '!/direct-/ || /ip=127\.0\.1\.1 / { print; next } { n++ } END { print "... and " n " more direct-http/direct-tcp chains, 3 per pod IP" }'
for what in clusters routes endpoints; do
  say "waypoint proxy-config $what --admin 127.0.0.1:15000"
  "$bin/waypoint" proxy-config "$what" --admin 127.0.0.1:15000
done

say "Prometheus on 127.0.0.1:15020/stats/prometheus: istio_requests_total (labels shortened)"
get 15020 /stats/prometheus >"$run/metrics.txt"
awk '/^istio_requests_total\{/ {
       out = ""
       n = split("source_principal destination_workload response_code response_flags", want, " ")
       for (i = 1; i <= n; i++)
         if (match($0, want[i] "=\"[^\"]*\"")) out = out (out == "" ? "" : ",") substr($0, RSTART, RLENGTH)
       print "istio_requests_total{" out ",...} " $NF
     }
     /^waypoint_upstream_rq_retry_total / { retry = $0 }
     END { print retry }' "$run/metrics.txt" | sort

say "waypoint explain: reviews -> ratings (allowed, exit 0), sleep -> ratings (denied, exit 2)"
rc=0
"$bin/waypoint" explain --config "$run/waypoint.yaml" --from spiffe://cluster.local/ns/default/sa/bookinfo-reviews \
  --to 127.0.10.3:9080 --path /ratings/1 || rc=$?
echo "exit status $rc"
echo
rc=0
"$bin/waypoint" explain --config "$run/waypoint.yaml" --from spiffe://cluster.local/ns/default/sa/sleep \
  --to 127.0.10.3:9080 --path /ratings/1 || rc=$?
echo "exit status $rc"

say "stopping (SIGTERM: GOAWAY, drain, exit 0)"
kill -TERM "$wp_pid"
wait "$wp_pid" && echo "waypoint exited with status 0"
grep -v '^{' "$run/waypoint.log" | tail -n 2

# ---- The second act: the namespace from the Kubernetes API, no control plane (SPEC §7) ----------
say "the Kubernetes API mode: a (fake) API server on 127.0.0.1, the waypoint's file holds the bootstrap only"
# The API server's own certificate (for 127.0.0.1) and a token; a kubeconfig as kubectl reads it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=fake-apiserver \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$run/apiserver.key" -out "$run/apiserver.pem" 2>/dev/null
echo "demo-token" >"$run/apiserver-token"
cat >"$run/kubeconfig" <<EOF2
apiVersion: v1
kind: Config
current-context: demo
clusters: [{name: demo, cluster: {server: "https://127.0.0.1:16443", certificate-authority: $run/apiserver.pem}}]
contexts: [{name: demo, context: {cluster: demo, user: waypoint, namespace: default}}]
users: [{name: waypoint, user: {tokenFile: $run/apiserver-token}}]
EOF2
# The namespace: the Gateway, Service reviews (VIP 127.0.20.4) and one ready pod, reviews-v1.
cat >"$run/namespace.yaml" <<'EOF2'
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: default}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {clusterIP: 127.0.20.4, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 127.0.1.4, phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-x1, namespace: default, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints: [{addresses: [127.0.1.4], conditions: {ready: true}, targetRef: {kind: Pod, name: reviews-v1}}]
EOF2
/usr/bin/python3 tests/support/fake_apiserver.py --cert "$run/apiserver.pem" --key "$run/apiserver.key" \
  --token-file "$run/apiserver-token" --port 16443 --load "$run/namespace.yaml" --exit-on-stdin-eof \
  < <(sleep 600) >"$run/apiserver.log" 2>&1 &
pids+=("$!")
for i in $(seq 1 100); do
  if grep -q LISTENING "$run/apiserver.log"; then break; fi
  sleep 0.05
done
cat >"$run/control.py" <<'EOF2'
# POST /fake/<what> with stdin as the body: the fake API server's control API.
import json, ssl, sys, urllib.request
what, run = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=run + "/apiserver.pem")
req = urllib.request.Request("https://127.0.0.1:16443/fake/" + what, data=sys.stdin.buffer.read(),
                             headers={"Authorization": "Bearer demo-token"}, method="POST")
answer = json.load(urllib.request.urlopen(req, context=ctx))
print(", ".join(r["kind"] + " " + r["name"] + " " + r["result"] for r in answer.get("results", [])))
EOF2
control() { /usr/bin/python3 "$run/control.py" "$1" "$run"; }
sed "s|kubeconfig: kubeconfig|kubeconfig: $run/kubeconfig|" config/demo-kubernetes.yaml >"$run/waypoint-kube.yaml"
say "waypoint validate --kubernetes --kubeconfig $run/kubeconfig (what the live namespace would serve)"
"$bin/waypoint" validate --kubernetes --config "$run/waypoint-kube.yaml" | sed -n '1,/^pods/p'
"$bin/waypoint" --config "$run/waypoint-kube.yaml" >"$run/waypoint-kube.log" 2>&1 &
wp_pid=$!
pids+=("$wp_pid")
for i in $(seq 1 200); do
  if [ "$(get 15021 /healthz/ready 2>/dev/null)" = "ready" ]; then break; fi
  if [ "$i" = 200 ]; then cat "$run/waypoint-kube.log"; echo "not ready" >&2; exit 1; fi
  sleep 0.05
done
grep 'kubernetes' "$run/waypoint-kube.log" | sed 's/^\[[^]]*\] //' | head -n 4
echo "-- 20 requests to reviews (one endpoint: reviews-v1):"
client sleep --to 127.0.20.4:9080 --http GET --path /reviews/1 -H 'host: reviews:9080' --count 20 \
  --show-header x-pod --quiet
say "scale-up: reviews-v2 becomes ready (a new Pod and its endpoint in the EndpointSlice, as a rollout writes them)"
control apply <<'EOF2'
{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reviews-v2", "namespace": "default",
  "labels": {"app": "reviews", "version": "v2"}}, "spec": {"serviceAccountName": "bookinfo-reviews"},
  "status": {"podIP": "127.0.1.5", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
 {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "reviews-x1",
  "namespace": "default", "labels": {"kubernetes.io/service-name": "reviews"}}, "addressType": "IPv4",
  "ports": [{"name": "http", "port": 9080}],
  "endpoints": [{"addresses": ["127.0.1.4"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "reviews-v1"}},
                {"addresses": ["127.0.1.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "reviews-v2"}}]}]}
EOF2
for i in $(seq 1 100); do  # the watch event, 50 ms of batching, the compile
  get 15000 /config_dump | grep -q '127.0.1.5:9080' && break
  sleep 0.02
done
echo "-- 20 requests to reviews (round robin over both now):"
client sleep --to 127.0.20.4:9080 --http GET --path /reviews/1 -H 'host: reviews:9080' --count 20 \
  --show-header x-pod --quiet
get 15020 /stats/prometheus | grep -E '^waypoint_kubernetes_events_total\{kind="(Pod|EndpointSlice)",type="(ADDED|MODIFIED)"\}'
kill -TERM "$wp_pid"
wait "$wp_pid" && echo "waypoint (Kubernetes API mode) exited with status 0"

say "stopping the fake pods and the API server"
for p in "${pids[@]}"; do
  if [ "$p" != "$wp_pid" ]; then kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; fi
done
pids=()
for name in "${pods[@]}"; do
  printf '  %-15s %s\n' "$name" "$(sed -n 's/^wp-fakepod [^ ]*: //p' "$run/pod-$name.log")"
done
ms=$((($(date +%s%N) - t_start) / 1000000))
say "demo done in $((ms / 1000)).$((ms % 1000 / 100)) s (after the build); logs in $run"
