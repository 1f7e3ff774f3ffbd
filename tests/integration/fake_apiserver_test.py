#!/usr/bin/python3
"""Proof that tests/support/fake_apiserver.py speaks the Kubernetes API the way real clients use it.

Independent clients: Debian's python3-kubernetes (22.6: client + watch), every kubectl found
(Debian kubernetes-client 1.20 and/or the kubectl on PATH), and http.client / raw TLS for the
wire framing. The fake runs as a subprocess (as the C++ tests run it) and is driven through its
/fake/ control API; one check also uses it in-process as a module.

Exit 0 when every check passes. Run: /usr/bin/python3 tests/integration/fake_apiserver_test.py
Env: WAYPOINT_KUBECTL=path[:path...] chooses the kubectl binaries (default: the Debian one
under /opt/kubernetes-client-1.20 or /usr/bin, plus `kubectl` on PATH).
"""

import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.normpath(os.path.join(HERE, "..", "support"))
SCRIPT = os.path.join(SUPPORT, "fake_apiserver.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
sys.path.insert(0, SUPPORT)
sys.dont_write_bytecode = True     # no __pycache__ in the source tree

try:
    import urllib3  # noqa: E402
    from kubernetes import client, watch  # noqa: E402
    from kubernetes.client.rest import ApiException  # noqa: E402
except ImportError as _e:   # ctest: SKIP_RETURN_CODE 77
    print("SKIP: python3-kubernetes is not installed (%s); apt-get install python3-kubernetes" % _e)
    sys.exit(77)

urllib3.disable_warnings()

NS = "shop"
TOKEN = "t0ken-abc"
T0 = time.monotonic()
CHECKS = []


def log(msg):
    print("[%5.2fs] %s" % (time.monotonic() - T0, msg), flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError("FAILED: " + what)
    CHECKS.append(what)
    log("ok   " + what)


def expect_api_exception(fn, status, what):
    try:
        fn()
    except ApiException as e:
        check(e.status == status, "%s -> ApiException %d (got %s: %s)" % (what, status, e.status, e.reason))
        return e
    raise AssertionError("FAILED: %s: no ApiException (wanted %d)" % (what, status))


# ---------------------------------------------------------------------------------------------
# set-up: certificates, the fake as a subprocess, helpers
# ---------------------------------------------------------------------------------------------

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, **kw)


def make_certs(d):
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = os.path.join(d, "server.key"), os.path.join(d, "server.csr"), os.path.join(d, "server.crt")
    ext = os.path.join(d, "server.ext")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=fake-apiserver-test-ca",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver"])
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext])
    return ca_crt, crt, key


class Fake:
    """The fake API server as a subprocess, plus its control API."""

    def __init__(self, tmp, ca, crt, key, extra=()):
        self.ca = ca
        self.token_file = os.path.join(tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.proc = subprocess.Popen([PYTHON, SCRIPT, "--cert", crt, "--key", key, "--port", "0",
                                      "--token-file", self.token_file, "--bookmark-interval", "0.3",
                                      "--exit-on-stdin-eof"] + list(extra),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sys.stderr)
        q = queue.Queue()
        threading.Thread(target=lambda: q.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = q.get(timeout=10).decode()
        except queue.Empty:
            raise AssertionError("fake did not print LISTENING within 10 s")
        check(line.startswith("LISTENING "), "script prints 'LISTENING <port>' first (%r)" % line.strip())
        self.port = int(line.split()[1])
        self.ctx = ssl.create_default_context(cafile=ca)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except Exception:
            self.proc.terminate()
            self.proc.wait(5)

    def http(self, method, path, body=None, token=TOKEN, headers=None, timeout=10):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, r, data

    def ctl(self, op, body=None, method="POST"):
        st, _, data = self.http(method, "/fake/" + op, body=body if body is not None else b"")
        if st != 200:
            raise AssertionError("control %s -> %d %s" % (op, st, data[:300]))
        return json.loads(data)

    def apply(self, objs):
        return self.ctl("apply", objs)["results"]

    def delete(self, refs):
        return self.ctl("delete", refs)["results"]

    def stats(self):
        return self.ctl("stats", method="GET")

    def wait_watches(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats()["watches_active_total"] >= n:
                return True
            time.sleep(0.02)
        raise AssertionError("no %d active watch(es) within %.1fs" % (n, timeout))

    def raw_list(self, path):
        st, _, data = self.http("GET", path)
        assert st == 200, (path, st, data[:200])
        return json.loads(data)


def pod(name, ip="10.0.0.1", labels=None, sa="shop-sa", image="app:1"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "shop"}},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Running", "podIP": ip}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                     "selector": {"app": name}}}


def slice_(name, svc, ips):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                           "targetRef": {"kind": "Pod", "namespace": NS, "name": "p-%d" % i}}
                          for i, ip in enumerate(ips)],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def vs(name, host):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]}}


class Stream:
    """Runs a python-client watch stream in a thread; events land in a queue."""

    def __init__(self, func, *args, **kwargs):
        self.q = queue.Queue()
        self.w = watch.Watch()
        kwargs.setdefault("_request_timeout", 20)
        self.t = threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True)
        self.t.start()

    def _run(self, func, args, kwargs):
        try:
            for ev in self.w.stream(func, *args, **kwargs):
                self.q.put(("event", ev))
            self.q.put(("end", None))
        except BaseException as e:  # noqa: B902 - reported to the test thread
            self.q.put(("error", e))

    def get(self, timeout):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return ("timeout", None)

    def next_non_bookmark(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            kind, v = self.get(max(0.01, deadline - time.monotonic()))
            if kind != "event" or v["type"] != "BOOKMARK":
                return kind, v
            if time.monotonic() > deadline:
                return ("timeout", None)


def api_clients(fake, token=TOKEN):
    cfg = client.Configuration()
    cfg.host = "https://127.0.0.1:%d" % fake.port
    cfg.ssl_ca_cert = fake.ca
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    api = client.ApiClient(cfg)
    return client.CoreV1Api(api), client.DiscoveryV1Api(api), client.CustomObjectsApi(api)


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------

def check_discovery_and_auth(fake):
    st, r, data = fake.http("GET", "/api/v1/namespaces/%s/pods" % NS, token=None)
    body = json.loads(data)
    check(st == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401,
          "no token -> 401 Status{reason: Unauthorized}")
    v1_bad, _, _ = api_clients(fake, token="wrong")
    expect_api_exception(lambda: v1_bad.list_namespaced_pod(NS), 401, "python client, wrong token")
    check(fake.stats()["auth"]["last"]["valid"] is False, "/fake/stats reports the last Authorization as invalid")
    st, _, data = fake.http("GET", "/version")
    check(st == 200 and json.loads(data)["major"] == "1", "GET /version")
    api = fake.raw_list("/api")
    check(api["kind"] == "APIVersions" and api["versions"] == ["v1"], "GET /api -> APIVersions [v1]")
    groups = {g["name"]: g for g in fake.raw_list("/apis")["groups"]}
    check(set(groups) >= {"discovery.k8s.io", "networking.istio.io", "security.istio.io",
                          "gateway.networking.k8s.io"}, "GET /apis lists the four groups")
    check(groups["networking.istio.io"]["preferredVersion"]["version"] == "v1", "istio networking prefers v1")
    core = {r["name"]: r for r in fake.raw_list("/api/v1")["resources"]}
    check(core["pods"]["kind"] == "Pod" and core["pods"]["namespaced"] and "watch" in core["pods"]["verbs"],
          "GET /api/v1 -> APIResourceList with pods (namespaced, watch)")
    vsl = fake.raw_list("/apis/networking.istio.io/v1beta1")
    check([r["name"] for r in vsl["resources"]] == ["virtualservices", "destinationrules"],
          "GET /apis/networking.istio.io/v1beta1 -> virtualservices, destinationrules")
    st, _, data = fake.http("GET", "/apis/networking.istio.io/v2/namespaces/%s/virtualservices" % NS)
    check(st == 404 and json.loads(data)["reason"] == "NotFound", "unknown group version -> 404 NotFound Status")


def check_pagination(fake, v1):
    names = sorted("p-%d" % i for i in range(7))
    pages, rvs, seen, remaining = [], set(), [], []
    cont = None
    while True:
        kw = {"limit": 3}
        if cont:
            kw["_continue"] = cont
        lst = v1.list_namespaced_pod(NS, **kw)
        pages.append(len(lst.items))
        rvs.add(lst.metadata.resource_version)
        remaining.append(lst.metadata.remaining_item_count)
        seen.extend(p.metadata.name for p in lst.items)
        if len(pages) == 1:
            # changes after the first page must not show in the later pages (consistent snapshot)
            fake.apply([pod("p-0a", ip="10.0.9.9"), dict(pod("p-5", ip="10.0.5.55"))])
        cont = lst.metadata._continue
        if not cont:
            break
    check(pages == [3, 3, 1], "list limit=3 follows _continue: pages of %s" % pages)
    check(seen == names, "paginated list returns exactly the served pods, sorted by name")
    check(len(rvs) == 1, "all pages share one resourceVersion (%s)" % rvs)
    check(remaining == [4, 1, None], "remainingItemCount %s" % remaining)
    p5 = [p for p in v1.list_namespaced_pod(NS).items if p.metadata.name == "p-5"][0]
    check(p5.status.pod_ip == "10.0.5.55" and int(p5.metadata.resource_version) > int(list(rvs)[0]),
          "a fresh list sees the change made between pages")
    # continue token expires with 410 after compaction (etcd compaction)
    lst = v1.list_namespaced_pod(NS, limit=2)
    fake.ctl("compact")
    e = expect_api_exception(lambda: v1.list_namespaced_pod(NS, limit=2, _continue=lst.metadata._continue), 410,
                             "continue token after compaction")
    check(json.loads(e.body)["reason"] == "Expired", "... with Status reason Expired")
    # typed list items carry no kind/apiVersion; custom resource list items do
    raw = fake.raw_list("/api/v1/namespaces/%s/pods?limit=2" % NS)
    check(raw["kind"] == "PodList" and raw["apiVersion"] == "v1" and "kind" not in raw["items"][0]
          and "apiVersion" not in raw["items"][0], "PodList items have no kind/apiVersion")
    raw = fake.raw_list("/apis/networking.istio.io/v1/namespaces/%s/virtualservices" % NS)
    check(raw["kind"] == "VirtualServiceList" and raw["items"][0]["kind"] == "VirtualService"
          and raw["items"][0]["apiVersion"] == "networking.istio.io/v1", "VirtualServiceList items have kind/apiVersion")
    sel = v1.list_namespaced_pod(NS, label_selector="tier=web")
    check([p.metadata.name for p in sel.items] == ["p-1"], "labelSelector tier=web")
    sel = v1.list_namespaced_pod(NS, label_selector="app in (web),tier", field_selector="metadata.name!=p-2")
    check([p.metadata.name for p in sel.items] == ["p-1"], "set-based labelSelector + fieldSelector")
    one = v1.read_namespaced_pod("p-1", NS)
    check(one.metadata.name == "p-1" and one.kind == "Pod" and one.api_version == "v1",
          "GET one object (read_namespaced_pod) has kind/apiVersion")
    e = expect_api_exception(lambda: v1.read_namespaced_pod("nope", NS), 404, "GET a missing pod")
    check(json.loads(e.body)["message"] == 'pods "nope" not found', "... Status message 'pods \"nope\" not found'")
    allns = fake.raw_list("/api/v1/pods")
    check(len(allns["items"]) == 8 and all(i["metadata"]["namespace"] == NS for i in allns["items"]),
          "all-namespaces list /api/v1/pods")
    st, r, data = fake.http("GET", "/api/v1/watch/namespaces/%s/pods?timeoutSeconds=1&sendInitialEvents=true"
                                   "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan" % NS)
    evs = [json.loads(l) for l in data.splitlines() if l]
    initial_end = [e for e in evs if e["type"] == "BOOKMARK"
                   and e["object"]["metadata"].get("annotations", {}).get("k8s.io/initial-events-end") == "true"]
    check(st == 200 and [e["type"] for e in evs[:8]] == ["ADDED"] * 8 and len(initial_end) == 1
          and evs.index(initial_end[0]) == 8, "legacy /watch/ path + sendInitialEvents: 8 ADDED then the "
                                               "initial-events-end BOOKMARK")
    fake.delete({"kind": "Pod", "name": "p-0a", "namespace": NS})


def check_watch(fake, v1):
    lst = v1.list_namespaced_pod(NS)
    rv = lst.metadata.resource_version
    # one change before the watch opens (replayed from history), the rest while it is open
    r_add = fake.apply(pod("w-1", ip="10.1.0.1"))[0]
    s = Stream(v1.list_namespaced_pod, NS, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=3)
    fake.wait_watches(1)
    r_mod = fake.apply(pod("w-1", ip="10.1.0.2"))[0]
    r_del = fake.delete({"kind": "Pod", "name": "w-1", "namespace": NS})[0]
    got = []
    for _ in range(3):
        kind, ev = s.next_non_bookmark(5)
        assert kind == "event", (kind, ev)
        got.append(ev)
    check([e["type"] for e in got] == ["ADDED", "MODIFIED", "DELETED"], "watch from the list RV: ADDED, MODIFIED, DELETED")
    check(all(isinstance(e["object"], client.V1Pod) and e["object"].metadata.name == "w-1" for e in got),
          "events decode as V1Pod named w-1")
    ev_rvs = [int(e["object"].metadata.resource_version) for e in got]
    check(ev_rvs == [int(r_add["resourceVersion"]), int(r_mod["resourceVersion"]), int(r_del["resourceVersion"])]
          and ev_rvs == sorted(ev_rvs) and int(rv) < ev_rvs[0], "event RVs increase and match the writes %s" % ev_rvs)
    check(got[1]["object"].status.pod_ip == "10.1.0.2" and got[2]["object"].status.pod_ip == "10.1.0.2",
          "MODIFIED carries the new object; DELETED the last state")
    bms = []
    end = None
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        kind, ev = s.get(6)
        if kind == "event" and ev["type"] == "BOOKMARK":
            bms.append(ev)
            continue
        end = kind
        break
    check(bms and all(ev["raw_object"]["kind"] == "Pod" for ev in bms), "BOOKMARK events arrive (%d)" % len(bms))
    check(int(bms[-1]["raw_object"]["metadata"]["resourceVersion"]) >= ev_rvs[-1],
          "bookmark resourceVersion >= last event's")
    check(end == "end", "watch ends cleanly after timeoutSeconds (stream returned, no error)")

    # resourceVersion unset: synthetic ADDED for the current state, then changes
    s = Stream(v1.list_namespaced_pod, NS, timeout_seconds=1)
    names = set()
    while True:
        kind, ev = s.next_non_bookmark(5)
        if kind != "event":
            break
        assert ev["type"] == "ADDED", ev["type"]
        names.add(ev["object"].metadata.name)
    check(kind == "end" and names == {p.metadata.name for p in lst.items},
          "watch without resourceVersion starts with ADDED for every current pod")

    # 410 after compaction: as an ERROR event (python 22.6 raises ApiException 410 from it) ...
    fake.ctl("compact")
    old = rv
    s = Stream(v1.list_namespaced_pod, NS, resource_version=old, allow_watch_bookmarks=True, timeout_seconds=5)
    kind, e = s.get(5)
    check(kind == "error" and isinstance(e, ApiException) and e.status == 410 and "too old resource version" in e.reason,
          "watch from a compacted RV -> ERROR event code 410 -> ApiException 410 (%s)" % getattr(e, "reason", e))
    opened = fake.stats()["watches_opened"]["pods"]
    s = Stream(v1.list_namespaced_pod, NS, resource_version=old)   # no timeout: the client retries once
    kind, e = s.get(5)
    check(kind == "error" and e.status == 410 and fake.stats()["watches_opened"]["pods"] == opened + 2,
          "without timeout_seconds python retries the 410 once, then raises")
    # ... or as HTTP 410
    fake.ctl("config", {"expired_as_http": True})
    e = expect_api_exception(lambda: v1.list_namespaced_pod(NS, watch=True, resource_version=old,
                                                            _preload_content=False), 410,
                             "expired_as_http: watch from a compacted RV is an HTTP 410")
    check(json.loads(e.body)["reason"] == "Expired", "... with Status reason Expired")
    fake.ctl("config", {"expired_as_http": False})

    # a resourceVersion from the future: the server waits (3 s) then says 504 Timeout
    future = str(int(fake.stats()["resourceVersion"]) + 100)
    s = Stream(v1.list_namespaced_pod, NS, resource_version=future, timeout_seconds=10)
    kind, e = s.get(6)
    check(kind == "error" and e.status == 504, "watch from a future RV -> ERROR 504 'Too large resource version'")


def check_discovery_kinds(fake, v1, disc, custom):
    lst = disc.list_namespaced_endpoint_slice(NS)
    check([s.metadata.name for s in lst.items] == ["web-abc"] and lst.items[0].endpoints[0].addresses == ["10.0.0.1"]
          and lst.items[0].metadata.labels["kubernetes.io/service-name"] == "web",
          "DiscoveryV1Api list_namespaced_endpoint_slice")
    s = Stream(disc.list_namespaced_endpoint_slice, NS, resource_version=lst.metadata.resource_version,
               allow_watch_bookmarks=True, timeout_seconds=3)
    fake.apply(slice_("web-def", "web", ["10.0.0.7", "10.0.0.8"]))
    kind, ev = s.next_non_bookmark(5)
    check(kind == "event" and ev["type"] == "ADDED" and isinstance(ev["object"], client.V1EndpointSlice)
          and ev["object"].endpoints[1].addresses == ["10.0.0.8"], "EndpointSlice watch sees an ADDED V1EndpointSlice")
    s.w.stop()

    vsl = custom.list_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices")
    check([i["metadata"]["name"] for i in vsl["items"]] == ["reviews", "web"] and vsl["kind"] == "VirtualServiceList",
          "CustomObjectsApi list virtualservices (v1)")
    vb = custom.list_namespaced_custom_object("networking.istio.io", "v1beta1", NS, "virtualservices")
    check(vb["items"][0]["apiVersion"] == "networking.istio.io/v1beta1", "... served at v1beta1 with that apiVersion")
    s = Stream(custom.list_namespaced_custom_object, "networking.istio.io", "v1", NS, "virtualservices",
               resource_version=vsl["metadata"]["resourceVersion"], allow_watch_bookmarks=True, timeout_seconds=3)
    fake.apply(vs("web", "web.shop.svc.cluster.local.changed"))
    kind, ev = s.next_non_bookmark(5)
    check(kind == "event" and ev["type"] == "MODIFIED" and ev["object"]["spec"]["hosts"] == ["web.shop.svc.cluster.local.changed"]
          and ev["object"]["metadata"]["generation"] == 2, "custom object watch sees MODIFIED (generation 2)")
    s.w.stop()

    # faults
    fake.ctl("fault", {"plural": "pods", "status": 403})
    e = expect_api_exception(lambda: v1.list_namespaced_pod(NS), 403, "403 fault on pods")
    body = json.loads(e.body)
    check(body["reason"] == "Forbidden" and 'cannot list resource "pods"' in body["message"],
          "... Status Forbidden: %s" % body["message"])
    expect_api_exception(lambda: v1.list_namespaced_pod(NS, watch=True, _preload_content=False), 403,
                         "403 fault on pods (watch)")
    fake.ctl("fault", {"plural": "virtualservices", "status": 404})
    expect_api_exception(lambda: custom.list_namespaced_custom_object("networking.istio.io", "v1", NS,
                                                                     "virtualservices"), 404,
                         "404 fault (CRD not installed) on virtualservices")
    res = [r["name"] for r in fake.raw_list("/apis/networking.istio.io/v1")["resources"]]
    check(res == ["destinationrules"], "... and discovery no longer lists virtualservices")
    fake.ctl("fault", [{"plural": "pods", "status": 0}, {"plural": "virtualservices", "status": 0}])
    check(len(v1.list_namespaced_pod(NS).items) >= 7, "faults cleared")


def check_faults_on_wire(fake, v1):
    # dropped watch: no terminating chunk; the python stream raises instead of hanging
    s = Stream(v1.list_namespaced_pod, NS, resource_version=fake.stats()["resourceVersion"],
               allow_watch_bookmarks=True, timeout_seconds=10)
    fake.wait_watches(1)
    fake.ctl("drop")
    deadline = time.monotonic() + 5
    while True:
        kind, e = s.get(max(0.01, deadline - time.monotonic()))
        if kind != "event":
            break
    check(kind == "error", "dropped watch: python stream raises (%s: %s)" % (type(e).__name__, str(e)[:80]))

    # the same on the wire, with http.client: timeout -> terminating chunk; drop -> incomplete
    def raw_watch(params):
        c = http.client.HTTPSConnection("127.0.0.1", fake.port, context=fake.ctx, timeout=10)
        c.request("GET", "/api/v1/namespaces/%s/pods?watch=1&%s" % (NS, params),
                  headers={"Authorization": "Bearer " + TOKEN})
        return c, c.getresponse()

    c, r = raw_watch("resourceVersion=%s&timeoutSeconds=1" % fake.stats()["resourceVersion"])
    check(r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
          and r.getheader("Content-Type") == "application/json", "watch response: 200, chunked, application/json")
    data = r.read()
    check(data == b"", "timeoutSeconds=1 with no changes: clean end (terminating chunk), no events")
    c.close()
    c, r = raw_watch("resourceVersion=%s&timeoutSeconds=10" % fake.stats()["resourceVersion"])
    fake.wait_watches(1)
    fake.ctl("drop")
    try:
        r.read()
        clean = True
    except (http.client.IncompleteRead, ConnectionError, ssl.SSLError, OSError):
        clean = False
    check(not clean, "drop: the chunked stream is cut without a terminating chunk")
    c.close()

    # stall: nothing (not even bookmarks) until unstalled, then the queued events
    rv = fake.stats()["resourceVersion"]
    s = Stream(v1.list_namespaced_pod, NS, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=8)
    fake.wait_watches(1)
    fake.ctl("stall?on=1")
    fake.apply(pod("stall-1"))
    kind, _ = s.get(0.8)
    check(kind == "timeout", "stalled watch sends nothing (no event, no bookmark for 0.8 s)")
    fake.ctl("stall?on=0")
    kind, ev = s.next_non_bookmark(3)
    check(kind == "event" and ev["type"] == "ADDED" and ev["object"].metadata.name == "stall-1",
          "unstalled: the queued ADDED arrives")
    s.w.stop()
    fake.ctl("drop")

    # chunking modes: every client reassembles the events however they are split into chunks
    want = {p.metadata.name for p in v1.list_namespaced_pod(NS).items}
    for mode in ("event", "coalesce", "split:7", "go"):
        fake.ctl("config", {"chunking": mode})
        s = Stream(v1.list_namespaced_pod, NS, resource_version="0", timeout_seconds=1)
        names = set()
        while True:
            kind, ev = s.next_non_bookmark(5)
            if kind != "event":
                break
            names.add(ev["object"].metadata.name)
        check(kind == "end" and names == want, "chunking %-8s: python client reads all %d ADDED" % (mode, len(want)))

    # token rotation: the file is re-read on every request
    with open(fake.token_file, "w") as f:
        f.write("rotated-token\n")
    v1_new, _, _ = api_clients(fake, token="rotated-token")
    check(len(v1_new.list_namespaced_pod(NS).items) == len(want), "rotated token file: new token accepted")
    st, _, _ = fake.http("GET", "/api/v1/namespaces/%s/pods" % NS)
    check(st == 401, "rotated token file: old token -> 401")
    with open(fake.token_file, "w") as f:
        f.write(TOKEN)


def check_restart(fake, v1):
    before = {p.metadata.name: p.metadata.uid for p in v1.list_namespaced_pod(NS).items}
    rv_before = int(fake.stats()["resourceVersion"])
    s = Stream(v1.list_namespaced_pod, NS, resource_version=str(rv_before), timeout_seconds=10)
    fake.wait_watches(1)
    t_req = time.monotonic()
    resp = fake.ctl("restart?down_ms=700")
    check(resp["restarting"] is True, "POST /fake/restart answers before going down")
    refused = False
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and not refused:
        try:
            socket.create_connection(("127.0.0.1", fake.port), timeout=0.2).close()
            time.sleep(0.02)
        except ConnectionRefusedError:
            refused = True
        except OSError:        # e.g. reset: accepted into the backlog as the listener closed
            time.sleep(0.01)
    check(refused, "during the restart the port refuses connections")
    kind, e = s.get(3)
    check(kind == "error", "the open watch breaks on restart (%s)" % type(e).__name__)
    up = None
    while time.monotonic() < t_req + 5:
        try:
            socket.create_connection(("127.0.0.1", fake.port), timeout=0.2).close()
            up = time.monotonic() - t_req
            break
        except OSError:
            time.sleep(0.02)
    check(up is not None and up >= 0.6, "back on the same port after ~down_ms (%.2fs)" % (up or -1))
    after = v1.list_namespaced_pod(NS)
    check({p.metadata.name: p.metadata.uid for p in after.items} == before,
          "after the restart the list works and has the same objects (uids)")
    r = fake.apply(pod("after-restart"))[0]
    check(int(r["resourceVersion"]) > rv_before and int(after.metadata.resource_version) >= rv_before,
          "the resourceVersion counter continues")
    fake.delete({"kind": "Pod", "name": "after-restart", "namespace": NS})


# ---------------------------------------------------------------------------------------------
# kubectl
# ---------------------------------------------------------------------------------------------

def kubectls():
    cands = []
    env = os.environ.get("WAYPOINT_KUBECTL")
    if env:
        cands = env.split(os.pathsep)
    else:
        cands = ["/opt/kubernetes-client-1.20/usr/bin/kubectl", "/usr/share/kubernetes-client/kubectl"]
        which = shutil.which("kubectl")
        if which:
            cands.append(which)
    out, seen = [], set()
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            real = os.path.realpath(c)
            if real not in seen:
                seen.add(real)
                out.append(c)
    return out


def check_kubectl(fake, tmp, kubectl, v1):
    kc = os.path.join(tmp, "kubeconfig")
    with open(kc, "w") as f:
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
                "    server: https://127.0.0.1:%d\n    certificate-authority: %s\n"
                "users:\n- name: test\n  user:\n    token: %s\n"
                "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n    namespace: %s\n"
                "current-context: fake\n" % (fake.port, fake.ca, TOKEN, NS))
    cache = tempfile.mkdtemp(dir=tmp, prefix="kcache")
    env = dict(os.environ, HOME=tmp, KUBECONFIG=kc)
    base = [kubectl, "--kubeconfig", kc, "--cache-dir", cache, "--request-timeout", "10s"]

    def kctl(*args):
        return subprocess.run(base + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=30)

    ver = kctl("version", "--client").stdout.decode().strip().splitlines()
    m = re.search(r'v\d+\.\d+\.\d+', ver[0] if ver else "")
    tag = "%s %s" % (kubectl, m.group(0) if m else "?")
    r = kctl("get", "pods", "-o", "json")
    check(r.returncode == 0, "%s: get pods -o json (%s)" % (tag, r.stderr.decode().strip()[:200]))
    items = json.loads(r.stdout)["items"]
    raw = fake.raw_list("/api/v1/namespaces/%s/pods" % NS)["items"]
    for it in items:
        it.pop("kind", None)
        it.pop("apiVersion", None)
    # kubectl >= 1.21 hides metadata.managedFields unless --show-managed-fields
    strip = lambda objs: [dict(o, metadata={k: v for k, v in o["metadata"].items() if k != "managedFields"})
                          for o in objs]
    check(strip(items) == strip(raw), "kubectl get pods -o json equals the served objects (%d pods)" % len(raw))

    r = kctl("get", "virtualservices.networking.istio.io", "-o", "name")
    check(r.returncode == 0 and r.stdout.decode().split() ==
          ["virtualservice.networking.istio.io/reviews", "virtualservice.networking.istio.io/web"],
          "kubectl get virtualservices.networking.istio.io -o name (via discovery)")
    r = kctl("get", "endpointslices", "-o", "name")
    check(r.returncode == 0 and "endpointslice.discovery.k8s.io/web-abc" in r.stdout.decode().split(),
          "kubectl get endpointslices -o name")
    r = kctl("get", "vs")
    check(r.returncode == 0 and "reviews" in r.stdout.decode(), "kubectl get vs (short name, table output)")

    fake.ctl("fault", {"plural": "virtualservices", "status": 404})
    shutil.rmtree(cache, ignore_errors=True)
    r = kctl("get", "virtualservices.networking.istio.io", "-o", "name")
    check(r.returncode != 0 and "doesn't have a resource type" in r.stderr.decode(),
          "kubectl with virtualservices not installed: %s" % r.stderr.decode().strip()[:90])
    fake.ctl("fault", {"plural": "virtualservices", "status": 0})
    shutil.rmtree(cache, ignore_errors=True)

    # get -w: list, then watch from the list's resourceVersion; sees a pod added later
    p = subprocess.Popen(base + ["get", "pods", "-w", "-o", "name"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.decode().strip()) for l in iter(p.stdout.readline, b"")],
                     daemon=True).start()
    try:
        want = {"pod/" + x["metadata"]["name"] for x in raw}
        got = set()
        deadline = time.monotonic() + 10
        while got != want and time.monotonic() < deadline:
            try:
                got.add(lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                break
        check(got == want, "kubectl get pods -w lists the %d current pods first" % len(want))
        fake.wait_watches(1)
        name = "kubectl-watch-%d" % (abs(hash(kubectl)) % 1000)
        fake.apply(pod(name))
        seen = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line == "pod/" + name:
                seen = line
                break
        check(seen is not None, "kubectl get pods -w -o name sees the added pod (%s)" % seen)
    finally:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        p.wait(5)
    fake.delete({"kind": "Pod", "name": name, "namespace": NS})
    fake.ctl("drop")


# ---------------------------------------------------------------------------------------------
# in-process (module) use and LIST speed
# ---------------------------------------------------------------------------------------------

def check_module(ca, crt, key):
    import fake_apiserver as fa
    srv = fa.FakeApiServer(crt, key, token="inproc", bookmark_interval=0.2)
    srv.start()
    try:
        pods = []
        for s in range(1000):
            for i in range(10):
                pods.append({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "svc%04d-pod%d" % (s, i), "namespace": "bench",
                                          "labels": {"app": "svc%04d" % s}},
                             "spec": {"containers": [{"name": "app", "image": "app:1"}],
                                      "serviceAccountName": "sa%d" % s},
                             "status": {"phase": "Running", "podIP": "10.%d.%d.%d" % (s // 250, s % 250, i)}})
        t = time.monotonic()
        srv.apply(pods)
        t_apply = time.monotonic() - t

        class F:  # minimal stand-in for Fake, for api_clients()
            pass
        f = F()
        f.port, f.ca = srv.port, ca
        v1, _, _ = api_clients(f, token="inproc")
        ctx = ssl.create_default_context(cafile=ca)
        t = time.monotonic()
        c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
        total, cont, pages = 0, "", 0
        while True:
            c.request("GET", "/api/v1/namespaces/bench/pods?limit=500" + ("&continue=" + cont if cont else ""),
                      headers={"Authorization": "Bearer inproc"})
            body = json.loads(c.getresponse().read())
            total += len(body["items"])
            pages += 1
            cont = body["metadata"].get("continue")
            if not cont:
                break
        t_list = time.monotonic() - t
        c.request("GET", "/api/v1/namespaces/bench/pods", headers={"Authorization": "Bearer inproc",
                                                                   "Accept-Encoding": "gzip"})
        r = c.getresponse()
        r.read()
        c.close()
        check(total == 10000 and pages == 20, "module: 10,000 pods applied in %.2fs, listed in %d pages of 500 "
              "in %.2fs" % (t_apply, pages, t_list))
        check(t_list < 5.0, "module: paginated LIST of 10,000 pods is fast")
        check(r.getheader("Content-Encoding") == "gzip", "large LIST gzip-compressed when Accept-Encoding: gzip")
        rv = srv.stats()["resourceVersion"]
        s = Stream(v1.list_namespaced_pod, "bench", resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=5)
        deadline = time.monotonic() + 5
        while srv.stats()["watches_active_total"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        srv.restart(down_ms=100)
        kind, _ = s.get(3)
        check(kind == "error", "module: restart() breaks open watches")
        check(len(v1.list_namespaced_pod("bench", limit=1).items) == 1 and srv.stats()["resourceVersion"] == rv,
              "module: state survives restart()")
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------

def main():
    tmp = tempfile.mkdtemp(prefix="fake-apiserver-test-")
    fake = None
    try:
        ca, crt, key = make_certs(tmp)
        log("certificates in %s" % tmp)
        seed = os.path.join(tmp, "seed.yaml")
        with open(seed, "w") as f:     # --load: multi-document YAML
            f.write("\n---\n".join(json.dumps(o) for o in
                                   [pod("p-%d" % i, ip="10.0.0.%d" % (i + 1),
                                        labels={"app": "web", "tier": "web"} if i == 1 else None)
                                    for i in range(7)]))
        fake = Fake(tmp, ca, crt, key, extra=["--load", seed])
        check(fake.stats()["objects"]["pods"] == 7, "--load seeded 7 pods from YAML")
        fake.apply([service("web"), service("reviews"), slice_("web-abc", "web", ["10.0.0.1"]),
                    vs("web", "web.shop.svc.cluster.local"), vs("reviews", "reviews")])
        v1, disc, custom = api_clients(fake)

        check_discovery_and_auth(fake)
        check_pagination(fake, v1)
        check_watch(fake, v1)
        check_discovery_kinds(fake, v1, disc, custom)
        check_faults_on_wire(fake, v1)
        ks = kubectls()
        if not ks:
            log("SKIP kubectl checks: no kubectl found (install kubernetes-client or set WAYPOINT_KUBECTL)")
        for k in ks:
            check_kubectl(fake, tmp, k, v1)
        check_restart(fake, v1)
        st = fake.stats()
        check(st["lists"]["pods"] > 0 and st["watches_opened"]["pods"] > 0 and "log" in st,
              "/fake/stats counts lists and watches")
        check_module(ca, crt, key)
    except Exception:
        traceback.print_exc()
        log("FAIL after %d checks" % len(CHECKS))
        return 1
    finally:
        if fake is not None:
            fake.close()
        shutil.rmtree(tmp, ignore_errors=True)
    log("PASS: %d checks" % len(CHECKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
