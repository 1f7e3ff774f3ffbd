#!/usr/bin/env python3
"""The Kubernetes API mode at namespace scale (issue: live namespace, bench part).

A namespace of SERVICES Services x PODS pods (Pods, one EndpointSlice per Service, a
DestinationRule with two subsets and a 90/10 VirtualService each) served by the tests' fake API
server (tests/support/fake_apiserver.py); the waypoint starts with a bootstrap-only file. Reports:
start to ready (/healthz/ready 200), RSS after sync, then for each of CHANGES endpoint changes (a
pod added to one Service's slice) the time from the change's apply to the snapshot in force on
every worker (waypoint_config_loads_total, then checked in /endpoints), the reloads' own CPU
(waypoint_config_load_cpu_seconds_total) and the process's CPU per change. Run: bench/kube_scale.py BUILD_DIR [SERVICES] [PODS] [fat]  (fat: pods as an API server returns a
Deployment's, ~3 KB of JSON each, instead of the fields the waypoint reads)
"""
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    pods = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    fat = len(sys.argv) > 4 and sys.argv[4] == "fat"  # realistic pods (see pod() below)
    changes = 10
    d = tempfile.mkdtemp(prefix="wp-kube-bench-")
    subprocess.run([os.path.join(build, "tests/wp-certgen"), "--out", d + "/certs"], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=fake", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", d + "/api.key", "-out", d + "/api.pem"], check=True, capture_output=True)
    with open(d + "/token", "w") as f:
        f.write("bench\n")
    objects = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "waypoint", "namespace": "default"},
                "spec": {"gatewayClassName": "istio-waypoint",
                         "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}}]

    def pod_ip(s, p):
        return f"127.{200 + s // 250}.{s % 250}.{p + 2}"

    def slice_of(s, n):
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"svc-{s}-x", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": f"svc-{s}"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": [pod_ip(s, p)], "conditions": {"ready": True},
                               "targetRef": {"kind": "Pod", "name": f"svc-{s}-{p}"}} for p in range(n)]}

    def pod(s, p):
        o = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"svc-{s}-{p}", "namespace": "default",
                          "labels": {"app": f"svc-{s}", "version": "v1" if p % 2 == 0 else "v2"}},
             "spec": {"serviceAccountName": f"svc-{s}"},
             "status": {"phase": "Running", "podIP": pod_ip(s, p),
                        "conditions": [{"type": "Ready", "status": "True"}]}}
        if fat:  # what an API server returns of a Deployment's pod (~3 KB of JSON), not the bare minimum
            o["metadata"].update({"generateName": f"svc-{s}-6d8f9c7b5d-", "uid": f"{s:08x}-0000-4000-8000-{p:012x}",
                                  "creationTimestamp": "2026-12-01T10:00:00Z",
                                  "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T09:59:00Z",
                                                  "prometheus.io/scrape": "true", "prometheus.io/port": "15020"},
                                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                       "name": f"svc-{s}-6d8f9c7b5d", "controller": True,
                                                       "blockOwnerDeletion": True, "uid": f"{s:08x}-rs"}]})
            o["spec"].update({
                "nodeName": f"node-{p % 7}", "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                "containers": [{"name": "app", "image": f"registry.example.com/team/svc-{s}:1.2.3",
                                "imagePullPolicy": "IfNotPresent",
                                "env": [{"name": f"SETTING_{i}", "value": "x" * 24} for i in range(12)],
                                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                                "resources": {"limits": {"cpu": "1", "memory": "512Mi"},
                                              "requests": {"cpu": "100m", "memory": "128Mi"}},
                                "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5}}],
                "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": 300}]})
            o["status"].update({"hostIP": f"192.0.2.{p % 7}", "podIPs": [{"ip": pod_ip(s, p)}],
                                "startTime": "2026-12-01T10:00:01Z", "qosClass": "Burstable",
                                "conditions": [{"type": t, "status": "True",
                                                "lastTransitionTime": "2026-12-01T10:00:05Z"}
                                               for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                                "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                                       "started": True,
                                                       "image": f"registry.example.com/team/svc-{s}:1.2.3",
                                                       "imageID": "registry.example.com/team/app@sha256:" + "a" * 64,
                                                       "containerID": "containerd://" + "b" * 64,
                                                       "state": {"running": {"startedAt": "2026-12-01T10:00:03Z"}}}]})
        return o

    for s in range(services):
        name = f"svc-{s}"
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                        "spec": {"clusterIP": f"127.{100 + s // 250}.{s % 250}.1",
                                 "ports": [{"name": "http", "port": 8080}], "selector": {"app": name}}})
        objects.extend(pod(s, p) for p in range(pods))
        objects.append(slice_of(s, pods))
        objects.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {"host": name, "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                           {"name": "v2", "labels": {"version": "v2"}}]}})
        objects.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {"hosts": [name], "http": [{"route": [
                            {"destination": {"host": name, "subset": "v1"}, "weight": 90},
                            {"destination": {"host": name, "subset": "v2"}, "weight": 10}],
                            "retries": {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx"},
                            "timeout": "5s"}]}})
    with open(d + "/namespace.json", "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, f)
    api = subprocess.Popen(["/usr/bin/python3", os.path.join(TOP, "tests/support/fake_apiserver.py"),
                            "--cert", d + "/api.pem", "--key", d + "/api.key", "--token-file", d + "/token",
                            "--port", "0", "--load", d + "/namespace.json", "--exit-on-stdin-eof"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(api.stdout.readline().split()[1])
    with open(d + "/kubeconfig", "w") as f:
        f.write(f"apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters: [{{name: b, cluster: {{server: "
                f"'https://127.0.0.1:{port}', certificate-authority: {d}/api.pem}}}}]\ncontexts: [{{name: b, "
                f"context: {{cluster: b, user: u, namespace: default}}}}]\nusers: [{{name: u, user: {{tokenFile: "
                f"{d}/token}}}}]\n")
    with open(d + "/waypoint.yaml", "w") as f:
        f.write("apiVersion: waypoint.proxy/v1alpha1\nkind: WaypointBootstrap\nmetadata: {name: waypoint, "
                "namespace: default}\nspec:\n  gateway: waypoint\n  listeners: {hbone: '127.0.90.1:15008', "
                "admin: '127.0.90.1:15000', metrics: '127.0.90.1:15020', health: '127.0.90.1:15021'}\n"
                "  tls: {certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: certs/root.pem}\n"
                f"  concurrency: 1\n  log: {{level: warn, accessLog: 'off'}}\n  kubernetes: {{kubeconfig: {d}/kubeconfig}}\n")
    ctx = ssl.create_default_context(cafile=d + "/api.pem")

    def control(what, body):
        req = urllib.request.Request(f"https://127.0.0.1:{port}/fake/{what}", data=json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer bench"}, method="POST")
        return json.load(urllib.request.urlopen(req, context=ctx))

    def get(path, port_=15000):
        try:
            with urllib.request.urlopen(f"http://127.0.90.1:{port_}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, b""
        except OSError:
            return 0, b""

    t0 = time.monotonic()
    # KUBE_SCALE_WRAP: a command the waypoint runs under (e.g. "valgrind --tool=massif"); the ready
    # wait then allows ten minutes instead of two.
    wrap = os.environ.get("KUBE_SCALE_WRAP", "").split()
    wp = subprocess.Popen(wrap + [os.path.join(build, "waypoint"), "--config", d + "/waypoint.yaml"],
                          stdout=subprocess.DEVNULL, stderr=open(d + "/waypoint.log", "w"))
    while get("/healthz/ready", 15021)[0] != 200:
        if wp.poll() is not None or time.monotonic() - t0 > (600 if wrap else 120):
            print(open(d + "/waypoint.log").read())
            sys.exit("the waypoint did not become ready")
        time.sleep(0.01)
    ready = time.monotonic() - t0
    ready_wall = time.time()
    # When the last LIST was applied (no watch event has come yet: the namespace is not changing).
    last_list = max((float(line.split()[-1]) for line in get("/stats/prometheus", 15020)[1].decode().splitlines()
                     if line.startswith("waypoint_kubernetes_last_sync_timestamp_seconds{")), default=0.0)
    time.sleep(2.5)  # past the process's 2-second malloc_trim tick
    rss = rss_kb(wp.pid)
    print(f"namespace: {services} services x {pods} pods ({len(objects)} objects)")
    print(f"start to ready (every kind listed, snapshot published): {ready * 1000:.0f} ms, "
          f"{(ready_wall - last_list) * 1000:.0f} ms after the last LIST was applied")
    print(f"RSS after sync (2.5 s after ready): {rss / 1024:.1f} MiB")
    print(f"peak RSS (VmHWM) over start and sync, before any admin page: {hwm_kb(wp.pid) / 1024:.1f} MiB")
    def metrics():
        out = {}
        for line in get("/stats/prometheus", 15020)[1].decode().splitlines():
            for name in ('waypoint_config_loads_total{result="ok"}', "waypoint_config_incremental_loads_total",
                         "waypoint_config_load_cpu_seconds_total"):
                if line.startswith(name + " "):
                    out[name] = float(line.split()[-1])
        return out

    def loads(m):
        return m.get('waypoint_config_loads_total{result="ok"}')

    seen = metrics()
    lat, cpu, reload_cpu, incremental = [], [], [], 0
    endpoints_bytes = 0
    added = {}  # pods added per Service
    perf = None
    if os.environ.get("KUBE_SCALE_PERF"):  # a cpu-clock profile of the waypoint over the changes
        perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(wp.pid), "-o", d + "/perf.data"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    for i in range(changes):
        s = (i * 97) % services
        added[s] = added.get(s, 0) + 1
        new = pod(s, pods + added[s] - 1)
        c0 = cpu_seconds(wp.pid)
        t = time.monotonic()
        # The new pod, and its Service's slice naming every pod of the Service (as the endpoints
        # controller writes it).
        control("apply", {"apiVersion": "v1", "kind": "List", "items": [new, slice_of(s, pods + added[s])]})
        want = pod_ip(s, pods + added[s] - 1).encode()
        # Polled cheaply (the small metrics page: a snapshot counts as loaded once every worker
        # runs it, i.e. from then on requests are routed by it), then checked once in /endpoints,
        # which is a large JSON document for 10,000 endpoints.
        while True:
            now = metrics()
            if loads(now) != loads(seen):
                arrived = time.monotonic()
                # The CPU of the change is read before /endpoints (a large page) is fetched; a
                # second reload of the same change (the pod, then its slice) is waited for.
                time.sleep(0.1)
                spent = cpu_seconds(wp.pid) - c0
                now = metrics()
                page = get("/endpoints")[1]
                endpoints_bytes = len(page)
                if want in page:
                    break
            if time.monotonic() - t > 30:
                sys.exit("the change never arrived")
            time.sleep(0.002)
        lat.append(arrived - t)
        cpu.append(spent)
        reload_cpu.append(now["waypoint_config_load_cpu_seconds_total"] - seen["waypoint_config_load_cpu_seconds_total"])
        incremental += int(now["waypoint_config_incremental_loads_total"] -
                           seen["waypoint_config_incremental_loads_total"])
        seen = now
        time.sleep(0.3)  # let the reload settle
    if perf is not None:
        perf.send_signal(2)
        perf.wait()
        report = subprocess.run(["perf", "report", "-i", d + "/perf.data", "--no-children", "--sort", "dso,sym",
                                 "--stdio", "-g", "none", "--percent-limit", "2"], capture_output=True, text=True)
        print("\n".join(l for l in report.stdout.splitlines() if l.strip() and not l.startswith("#"))[:3000])
    lat.sort()
    print(f"one endpoint change, apply to snapshot in force: median {lat[len(lat) // 2] * 1000:.0f} ms, "
          f"max {lat[-1] * 1000:.0f} ms ({changes} changes)")
    print(f"reload CPU per change (waypoint_config_load_cpu_seconds_total: decode + compile + publish job, "
          f"{incremental} of the reloads incremental): median {sorted(reload_cpu)[len(reload_cpu) // 2] * 1000:.2f} ms, "
          f"max {max(reload_cpu) * 1000:.2f} ms")
    print(f"waypoint process CPU per change (the reload, the watch events, and this bench's polling of "
          f"/stats/prometheus every 2 ms for 100 ms more): median {sorted(cpu)[len(cpu) // 2] * 1000:.1f} ms")
    print(f"peak RSS (VmHWM) over start, sync and the changes (each checked in /endpoints, "
          f"a {endpoints_bytes / 1e6:.1f} MB page): {hwm_kb(wp.pid) / 1024:.1f} MiB")
    wp.terminate()
    wp.wait()
    api.stdin.close()
    api.terminate()
    api.wait()


if __name__ == "__main__":
    main()
