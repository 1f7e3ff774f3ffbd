#!/usr/bin/python3
"""The attack catalogue (issue 13) as tests: each case attacks the real waypoint binary on loopback
while a well-behaved HBONE client (real CONNECT tunnels, HTTP/1.1 requests to an HTTP fake pod)
runs on its own connection and must keep >= 99 % of its requests succeeding.

usage: attacks.py BUILD_DIR [GROUP ...]      (no group: all of them, in order)
groups: config regex gauges streams floods http admin resources tls

Each group starts its own waypoint(s) and fake pods on a random 127.x.y.0/24, so a group can be run
alone (and groups can run in parallel). Prints `ok   <case>` / `FAIL <case>: why` per case and
`N passed, M failed` at the end; exits 1 if any case failed.
Environment: WP_ATTACK_NO_NEW_FIELDS=1 leaves the issue-13 bootstrap fields out of the configs
(to run the rest against a binary that does not know them yet); WP_TEST_KEEP=1 keeps the temp dir;
WP_ATTACK_DEBUG=1 prints tracebacks.
"""
import os
import random
import re
import select
import signal
import socket
import ssl
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CANCEL, CONTINUATION, DATA, END_HEADERS, ENHANCE_YOUR_CALM, ERROR_NAMES, HEADERS,  # noqa: E402
                     PING, REFUSED_STREAM, SETTINGS, Env, FakePod, GoodClient, H1Tunnel, HeadEchoPod,
                     InnerH2c, RawH2, Waypoint, client_context, frame, get_request, handshake_accepted, http_req,
                     newf, pod_body, prom_value, render_config, run, virtual_service, wait_for)

DEBUG = bool(os.environ.get("WP_ATTACK_DEBUG"))


class CaseError(Exception):
    """A case cannot go on (its precondition failed); the message is the reason."""


class Case:
    def __init__(self, name):
        self.name = name
        self.fails = []

    def expect(self, cond, what):
        if not cond:
            self.fails.append(what)
        return bool(cond)

    def info(self, text):
        print("     " + text, flush=True)


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def case(self, name, fn, blocker=""):
        c = Case(name)
        t0 = time.monotonic()
        if blocker:
            c.fails.append(blocker)
        else:
            try:
                fn(c)
            except CaseError as e:
                c.fails.append(str(e))
            except Exception as e:  # noqa: BLE001 - a broken case is a failed case, the suite goes on
                c.fails.append(f"exception {e!r}")
                if DEBUG:
                    traceback.print_exc()
        dt = time.monotonic() - t0
        if c.fails:
            self.failed.append(name)
            print(f"FAIL {name}: " + "; ".join(c.fails) + f"  [{dt:.1f} s]", flush=True)
        else:
            self.passed += 1
            print(f"ok   {name}  [{dt:.1f} s]", flush=True)


# ---------------------------------------------------------------------------------------------
# A mesh: fake pods, waypoints, well-behaved clients.

WEB = ("web", 100, 80, 8080, "http", "web")      # HTTP fake pod web-1 (.1): the well-behaved client's
ECHO = ("echo", 101, 7000, 7000, "tcp", "echo")  # TCP echo fake pod echo-1 (.2)


class Mesh:
    def __init__(self, env, bootstrap="", services=(), pods=(), docs=""):
        self.env = env
        self.bootstrap = bootstrap
        self.services = [WEB, ECHO] + list(services)
        # (name, host, app, service account, kind, identity, behavior, delay_ms); kind: fake | py
        self.pod_specs = [("web-1", 1, "web", "web", "fake", "web", "http", 0),
                          ("echo-1", 2, "echo", "echo", "fake", "echo", "echo", 0)] + list(pods)
        self.docs = docs
        self.pods = {}
        self.waypoints = []
        self.goods = []
        self.wp = None
        self.good = None
        self.baseline = None  # the first waypoint's gauges once it was ready, before any client
        self.pods_stopped = False

    def vip(self, host, port):
        return f"{self.env.ip(host)}:{port}"

    @property
    def web(self):
        return self.vip(100, 80)

    @property
    def echo(self):
        return self.vip(101, 7000)

    def config(self, wp_host=250, bootstrap=None):
        pods = [(n, h, app, sa) for n, h, app, sa, *_ in self.pod_specs]
        return render_config(self.env, wp_host, self.bootstrap if bootstrap is None else bootstrap,
                             self.services, pods, self.docs)

    def start_pods(self):
        for name, host, app, sa, kind, ident, behavior, delay in self.pod_specs:
            if kind == "fake":
                self.pods[name] = FakePod(self.env, name, host, ident, behavior, delay)
            elif kind == "py":
                self.pods[name] = HeadEchoPod(self.env, (self.env.ip(host), 15008), ident)
        for name, p in self.pods.items():
            if isinstance(p, FakePod) and not p.wait_listening():
                return f"fake pod {name} did not start: {p.log()[-300:]}"
        return ""

    def start_waypoint(self, wp_host=250, bootstrap=None, args=(), wrapper=(), name=None):
        w = Waypoint(self.env, self.config(wp_host, bootstrap), wp_host, name or f"waypoint-{wp_host}", args, wrapper)
        self.waypoints.append(w)
        return w, w.start()

    def start_good(self, w):
        g = GoodClient(self.env, w.hbone, self.web).start()
        self.goods.append(g)
        if not wait_for(lambda: g.counts()[0] >= 3, 10):
            ok, failed, reasons = g.counts()
            return g, f"the well-behaved client gets nothing through before any attack ({ok} ok, {reasons[:2]})"
        return g, ""

    def start(self, args=(), wrapper=()):
        err = self.start_pods()
        if err:
            return err
        self.wp, err = self.start_waypoint(args=args, wrapper=wrapper)
        if err:
            return err
        self.baseline = self.gauges(self.wp)
        self.good, err = self.start_good(self.wp)
        return err

    # Gauges that kept-alive upstream connections to pods hold legitimately until the pods go, and
    # the one that only drops when its host is next looked at (as the C++ integration Mesh).
    POOLED = {"upstream_cx_active", "upstream_tunnels_active", "upstream_http_tunnels_idle"}
    LAZY = {"outlier_ejections_active"}

    @staticmethod
    def gauges(w):
        """Every gauge of waypoint w (the metrics page says which are gauges), from its /stats."""
        names = set(re.findall(r"^# TYPE waypoint_(\S+) gauge$", w.prom(), re.M))
        return {k: v for k, v in w.stats().items() if k in names}

    def gauges_off(self, skip):
        now = self.gauges(self.wp)
        return [f"{k} = {now.get(k)} (baseline {v})" for k, v in sorted(self.baseline.items())
                if k not in skip and now.get(k) != v]

    def check_gauges(self, c):
        """Once the group's clients are gone, every gauge of the first waypoint is back at its value
        after start-up: with the pods up (pooled upstream gauges excepted), then with the pods stopped."""
        missing = {"downstream_cx_active", "downstream_rq_active", "upstream_rq_active"} - set(self.baseline)
        c.expect(not missing, f"gauges not read at start-up: {sorted(missing)}")
        ok = wait_for(lambda: not self.gauges_off(self.POOLED | self.LAZY), 5, 0.05)
        c.expect(ok, "with the pods up: " + ", ".join(self.gauges_off(self.POOLED | self.LAZY)))
        self.stop_pods()
        ok = wait_for(lambda: not self.gauges_off(self.LAZY), 5, 0.05)
        c.expect(ok, "after the pods stopped: " + ", ".join(self.gauges_off(self.LAZY)))
        lazy = {k: v for k, v in self.gauges(self.wp).items() if k in self.LAZY}
        c.expect(all(v >= 0 for v in lazy.values()), f"negative: {lazy}")
        c.info(f"{len(self.baseline)} gauges back at their baseline")

    def stop_pods(self):
        if self.pods_stopped:
            return
        self.pods_stopped = True
        for p in self.pods.values():
            if isinstance(p, FakePod):
                p.kill()
            else:
                p.stop()

    def close(self, R=None):
        """Stops everything. Given the runner, first the end-of-group case: every gauge back at its
        baseline (skipped when the first waypoint is no longer running: the group stopped it)."""
        for g in self.goods:
            g.stop()
        if R is not None and self.baseline is not None and self.wp is not None and self.wp.alive():
            R.case("gauges: every gauge back at its baseline at the end of the group",
                   self.check_gauges)
        for w in self.waypoints:
            w.stop(timeout=5)
        self.stop_pods()


def tunnel(conn, authority, timeout=5.0):
    """A CONNECT tunnel answered 200 on conn, as an H1Tunnel; CaseError otherwise."""
    sid = conn.connect(authority)
    st = conn.streams[sid]
    conn.wait(lambda: st.status is not None or st.done, timeout)
    if st.status != 200:
        raise CaseError(f"CONNECT {authority} -> {st.status} (reset={st.reset} goaway={conn.goaway} "
                        f"closed={conn.closed} {conn.error or ''})")
    return H1Tunnel(conn, sid)


def hbone(m, w=None, **kw):
    w = w or m.wp
    try:
        c = RawH2(m.env, w.hbone, **kw)
    except (OSError, ssl.SSLError) as e:
        raise CaseError(f"HBONE connection to {w.hbone} failed: {e!r}")
    c.wait(lambda: c.settings_seen, 5)
    if not c.settings_seen:
        raise CaseError(f"no SETTINGS from the waypoint (closed={c.closed} {c.error or ''})")
    return c


def one_request(m, w=None, authority=None, path="/probe", timeout=5.0):
    """A fresh HBONE connection, one tunnel, one GET: the status, or 0."""
    try:
        c = hbone(m, w, timeout=timeout)
        t = tunnel(c, authority or m.web, timeout)
        t.send(get_request(path, headers=[("x-body-bytes", "8")]))
        r = t.next_response(timeout)
        c.close()
        return r.status if r else 0
    except (CaseError, OSError, ssl.SSLError):
        return 0


def expect_alive(c, m, w=None):
    w = w or m.wp
    c.expect(w.alive(), f"the waypoint died (exit {w.proc.poll()}): {w.log_tail(3)}")
    if w.alive():
        c.expect(w.ready(), "the waypoint is alive but /ready is not 200")


def goaway_text(g):
    return "none" if g is None else f"GOAWAY({ERROR_NAMES.get(g[1], g[1])}, last={g[0]})"


def stat_delta(c, w, name, before, at_least=1, timeout=3.0):
    """Expects waypoint.<name> to grow by at_least from before (polled)."""
    base = before or 0
    wait_for(lambda: (w.stat(name) or 0) - base >= at_least, timeout, 0.05)
    now = w.stat(name)
    c.info(f"{name}: {before} -> {now}")
    c.expect(now is not None, f"counter {name} missing from /stats")
    if now is not None:
        c.expect(now - base >= at_least, f"{name} grew by {now - base}, expected >= {at_least}")


# ---------------------------------------------------------------------------------------------
# config: waypoint validate / start-up on bad files (no running waypoint needed).

def g_config(R, env):
    m = Mesh(env)
    base = m.config()
    validate = [env.bin("waypoint"), "validate", "--config"]

    def write(name, text):
        path = f"{env.tmp}/{name}"
        with open(path, "w") as f:
            f.write(text)
        return path

    def file_line_col(c, path, out, what):
        hit = re.search(re.escape(path) + r":(\d+):(\d+):", out)
        c.expect(hit, f"{what}: no '{path}:LINE:COL:' in the output: {out.strip()[:200]!r}")
        if hit:
            c.info(f"message: {out.strip().splitlines()[0][:160]}")
        return hit

    def nested(c):
        deep = "(" * 20000 + "a" + ")" * 20000
        path = write("nested.yaml", base + virtual_service("web", "web", f"""  http:
  - match: [{{uri: {{regex: "{deep}"}}}}]
    route: [{{destination: {{host: web}}}}]
"""))
        rc, out = run(validate + [path], timeout=30)
        c.expect(rc == 1, f"validate exit status {rc} (expected 1; {'crashed, signal %d' % (rc - 128) if rc > 128 else out.strip()[-120:]!r})")
        file_line_col(c, path, out, "20,000 nested groups")
    R.case("config: a regex with 20,000 nested '(' -> validate exit 1, FILE:LINE:COL", nested)

    def duplicate(c):
        text = base + """---
apiVersion: v1
kind: Service
metadata:
  name: dup
  namespace: default
spec:
  clusterIP: %s
  clusterIP: %s
  ports: [{name: http, port: 80, appProtocol: http}]
  selector: {app: web}
""" % (env.ip(110), env.ip(111))
        path = write("duplicate.yaml", text)
        rc, out = run(validate + [path])
        c.expect(rc == 1, f"validate exit status {rc} (expected 1): {out.strip()[-160:]!r}")
        hit = file_line_col(c, path, out, "duplicate key")
        if hit:
            want = text.splitlines().index(f"  clusterIP: {env.ip(111)}") + 1
            c.expect(int(hit.group(1)) == want, f"the error points at line {hit.group(1)}, the duplicate key is on line {want}")
    R.case("config: a duplicate mapping key -> validate exit 1, FILE:LINE:COL", duplicate)

    def too_big(c):
        path = write("normal.yaml", base)
        rc, out = run(validate + [path, "--max-config-bytes", "200"])
        c.expect(rc == 1, f"validate --max-config-bytes 200: exit {rc} (expected 1): {out.strip()[-160:]!r}")
        c.expect(re.search(r"byte|size|large|limit", out, re.I), f"no clear error about the size: {out.strip()[:160]!r}")
        c.info(f"message: {out.strip()[:160]}")
        rc, out = run(validate + [path, "--max-config-bytes", str(1 << 20)])
        c.expect(rc == 0, f"the same file under a 1 MiB limit: validate exit {rc}: {out.strip()[-160:]!r}")
        # Running with the small limit: start-up fails (never serves).
        w = Waypoint(env, base, 250, "too-big", args=["--max-config-bytes", "200"])
        w.start(timeout=5)
        code = w.proc.wait(timeout=5) if wait_for(lambda: not w.alive(), 5) else None
        if code is None:
            w.stop(signal.SIGKILL)
        c.expect(code not in (None, 0), f"waypoint --max-config-bytes 200 did not fail at start-up (exit {code})")
    R.case("config: a file over --max-config-bytes -> rejected with a clear error, exit 1", too_big)


# ---------------------------------------------------------------------------------------------
# regex: route regexes on long inputs, catastrophic backtracking, a regex bomb on reload.

RX_VS = virtual_service("rx", "rx", """  http:
  - match: [{uri: {regex: "/x/(a|b)*"}}]
    headers: {response: {set: {x-route: r1}}}
    route: [{destination: {host: rx}}]
  - match: [{headers: {x-user: {regex: ".*"}}}]
    headers: {response: {set: {x-route: r2}}}
    route: [{destination: {host: rx}}]
  - match: [{uri: {regex: "/(a+)+$"}}]
    headers: {response: {set: {x-route: r3}}}
    route: [{destination: {host: rx}}]
  - headers: {response: {set: {x-route: r4}}}
    route: [{destination: {host: rx}}]
""")


def g_regex(R, env):
    m = Mesh(env, services=[("rx", 102, 80, 8080, "http", "web")], docs=RX_VS)
    err = m.start()
    rx = m.vip(102, 80)
    try:
        def long_path(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, rx)
            t.send(get_request("/x/abab", host="rx"))
            r = t.next_response()
            c.expect(r is not None and r.status == 200 and r.headers.get("x-route") == "r1",
                     f"/x/abab: {r and (r.status, r.headers.get('x-route'))} (expected 200 via r1)")
            path = "/x/" + "".join(random.choice("ab") for _ in range(12 * 1024))
            t0 = time.monotonic()
            t.send(get_request(path, host="rx"))
            r = t.next_response(10)
            c.info(f"12 KB path: {r and r.status} {r and r.headers.get('x-route')} in {time.monotonic() - t0:.3f} s")
            c.expect(r is not None and (r.status == 200 or 400 <= r.status < 500),
                     f"12 KB path: {'no answer' if r is None else r.status} (expected routed or 4xx)")
            conn.close()
            expect_alive(c, m)
            c.expect(one_request(m, authority=rx) == 200, "after the 12 KB path a new request fails")
            m.good.check(c)
        R.case("regex: /x/(a|b)* against a 12 KB path -> answered, alive", long_path, err)

        def long_header(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, rx)
            t0 = time.monotonic()
            t.send(get_request("/h", host="rx", headers=[("x-user", "u" * 60000)]))
            r = t.next_response(10)
            c.info(f"60 KB x-user: {r and r.status} {r and r.headers.get('x-route')} in {time.monotonic() - t0:.3f} s")
            c.expect(r is not None and (r.status == 200 or 400 <= r.status < 500),
                     f"60 KB header: {'no answer' if r is None else r.status} (expected routed or 4xx)")
            conn.close()
            expect_alive(c, m)
            c.expect(one_request(m, authority=rx) == 200, "after the 60 KB header a new request fails")
            m.good.check(c)
        R.case("regex: x-user '.*' against a 60 KB header -> answered, alive", long_header, err)

        def backtracking(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, rx)
            t.send(get_request("/warm", host="rx"))
            if not t.next_response():
                raise CaseError("no answer to a warm-up request")
            times = []
            for _ in range(3):
                t0 = time.monotonic()
                t.send(get_request("/" + "a" * 24 + "b", host="rx"))
                r = t.next_response(20)
                times.append(time.monotonic() - t0)
                if r is None:
                    break
                c.expect(r.status == 200 or 400 <= r.status < 500, f"(a+)+$: status {r.status}")
            c.info("(a+)+$ vs 24 a + b: " + ", ".join(f"{x * 1000:.1f} ms" for x in times))
            c.expect(len(times) == 3 and min(times) < 0.1, f"(a+)+$ took {min(times) * 1000:.0f} ms (limit 100 ms)")
            conn.close()
            expect_alive(c, m)
            m.good.check(c)
        R.case("regex: (a+)+$ against 24 'a' + 'b' -> answered within 100 ms", backtracking, err)

        def reload_bomb(c):
            m.good.reset()
            failed0 = prom_value(m.wp.prom(), 'waypoint_config_loads_total{result="failed"}')
            c.expect(failed0 is not None, "waypoint_config_loads_total{result=\"failed\"} missing on /stats/prometheus")
            deep = "(" * 20000 + "a" + ")" * 20000
            bad = m.config() + virtual_service("bomb", "web", f"""  http:
  - match: [{{uri: {{regex: "{deep}"}}}}]
    route: [{{destination: {{host: web}}}}]
""")
            with open(m.wp.config_path, "w") as f:
                f.write(bad)
            counted = wait_for(lambda: (prom_value(m.wp.prom(), 'waypoint_config_loads_total{result="failed"}') or 0)
                               > (failed0 or 0) or not m.wp.alive(), 8, 0.1)
            failed1 = prom_value(m.wp.prom(), 'waypoint_config_loads_total{result="failed"}')
            c.info(f"config_loads_total{{result=\"failed\"}}: {failed0} -> {failed1}")
            expect_alive(c, m)
            c.expect(counted and m.wp.alive() and failed1 is not None and failed1 > (failed0 or 0),
                     "the rejected reload was not counted")
            c.expect(one_request(m, authority=rx, path="/x/ab") == 200, "the config in force no longer serves")
            m.good.check(c)
        R.case("regex: 20,000 nested '(' written over the running config -> reload refused, counted, alive",
               reload_bomb, err)
    finally:
        m.close(R)


# ---------------------------------------------------------------------------------------------
# gauges: requests in flight when the client vanishes; a route timeout against a slow pod.

def g_gauges(R, env):
    slow_vs = virtual_service("slow", "slow", """  http:
  - route: [{destination: {host: slow}}]
    timeout: 1s
""")
    m = Mesh(env, services=[("slow", 103, 80, 8080, "http", "slow")],
             pods=[("slow-1", 3, "slow", "slow", "fake", "slow", "http", 4000)], docs=slow_vs)
    err = m.start()
    try:
        def gauges_zero(c, what):
            m.good.pause()
            ok = wait_for(lambda: m.wp.stat("downstream_rq_active") == 0 and m.wp.stat("upstream_rq_active") == 0, 5, 0.05)
            d, u = m.wp.stat("downstream_rq_active"), m.wp.stat("upstream_rq_active")
            c.info(f"{what}: downstream_rq_active {d}, upstream_rq_active {u}")
            c.expect(ok, f"{what}: gauges not back to 0 (downstream_rq_active {d}, upstream_rq_active {u})")
            m.good.resume()

        def vanish(c):
            m.good.reset()
            c1 = hbone(m)
            t = tunnel(c1, m.web)
            inner = InnerH2c(c1, t.sid)
            if not inner.wait(lambda: inner.settings_seen, 5):
                raise CaseError("no h2c SETTINGS inside the tunnel")
            for i in range(100):
                inner.request([(":method", "GET"), (":scheme", "http"), (":path", f"/slow/{i}"), (":authority", "web"),
                               ("x-delay-ms", "6000")], end_stream=True, flush=False)
            inner.flush()
            c2 = hbone(m)
            for i in range(50):
                t2 = tunnel(c2, m.web)
                t2.send(get_request(f"/slow-h1/{i}", headers=[("x-delay-ms", "6000")]))
            peak = [0, 0]

            def in_flight():
                inner.feed()
                c2.drain()
                d, u = m.wp.stat("downstream_rq_active") or 0, m.wp.stat("upstream_rq_active") or 0
                peak[0], peak[1] = max(peak[0], d), max(peak[1], u)
                return d >= 150 and u >= 150
            wait_for(in_flight, 5, 0.05)
            refused = sum(1 for s in inner.streams.values() if s.reset is not None)
            c.info(f"in flight before the disconnect: downstream_rq_active {peak[0]}, upstream_rq_active {peak[1]}"
                   f" (h2c streams reset: {refused})")
            c.expect(peak[0] >= 150 and peak[1] >= 150, "fewer than 150 requests got in flight")
            c1.abort()
            c2.abort()
            gauges_zero(c, "after the abrupt disconnect")
            m.good.check(c)
        R.case("gauges: 100 h2c streams + 50 HTTP/1.1 tunnels in flight, client vanishes -> rq_active back to 0",
               vanish, err)

        def timeout(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, m.vip(103, 80))
            t0 = time.monotonic()
            t.send(get_request("/slow", host="slow"))
            r = t.next_response(8)
            dt = time.monotonic() - t0
            c.info(f"answer: {r and r.status} {r and r.body[:40]!r} after {dt:.2f} s")
            c.expect(r is not None and r.status == 504, f"expected 504, got {r and r.status}")
            c.expect(0.8 <= dt <= 3.0, f"answered after {dt:.2f} s (route timeout 1 s)")
            conn.close()
            gauges_zero(c, "after the 504")
            m.good.check(c)
        R.case("gauges: route timeout 1s, pod CONNECT delayed 4 s -> 504, rq_active back to 0", timeout, err)
    finally:
        m.close(R)


# ---------------------------------------------------------------------------------------------
# streams: the stream limit, empty frames, rapid reset (attack and benign).

def g_streams(R, env):
    m = Mesh(env, bootstrap=newf("  downstream: {maxConsecutiveEmptyFrames: 1, prematureResetTotalStreamCount: 500, "
                                 "prematureResetMinStreamLifetime: 1s}\n"))
    err = m.start()
    try:
        def limit(c):
            m.good.reset()
            before = m.wp.stat("tunnels_refused_over_limit")
            conn = hbone(m)
            conn.pump(0.1)  # our SETTINGS ACK is out; the server's limit is in force
            sids = [conn.connect(m.echo, flush=False) for _ in range(100)]
            conn.flush()
            conn.wait(lambda: all(conn.streams[s].status is not None or conn.streams[s].done for s in sids), 10)
            ok = sum(1 for s in sids if conn.streams[s].status == 200)
            c.expect(ok == 100, f"only {ok}/100 tunnels answered 200")
            extra = conn.connect(m.echo)
            st = conn.streams[extra]
            conn.wait(lambda: st.status is not None or st.done, 5)
            c.info(f"101st CONNECT: status {st.status}, RST_STREAM {ERROR_NAMES.get(st.reset, st.reset)}, "
                   f"{goaway_text(conn.goaway)}")
            c.expect(st.reset == REFUSED_STREAM, f"101st stream: reset={st.reset} status={st.status} (expected RST_STREAM(REFUSED_STREAM))")
            c.expect(conn.goaway is None and not conn.closed, f"the connection went: {goaway_text(conn.goaway)} closed={conn.closed}")
            for i, s in enumerate(sids):
                conn.data(s, b"ping-%d;" % i, flush=False)
            conn.flush()
            echoed = conn.wait(lambda: all(conn.streams[s].data.endswith(b"ping-%d;" % i) for i, s in enumerate(sids)), 5)
            c.expect(echoed, "the 100 tunnels did not all echo bytes after the refusal")
            conn.data(sids[0], b"", end_stream=True)
            conn.wait(lambda: conn.streams[sids[0]].done, 5)
            again = conn.connect(m.echo)
            conn.wait(lambda: conn.streams[again].status is not None or conn.streams[again].done, 5)
            c.expect(conn.streams[again].status == 200, f"a new tunnel once one ended: {conn.streams[again].status}")
            conn.close()
            stat_delta(c, m.wp, "tunnels_refused_over_limit", before)
            m.good.check(c)
        R.case("streams: 101st concurrent CONNECT -> RST_STREAM(REFUSED_STREAM), the other 100 keep working", limit, err)

        def empty(c):
            m.good.reset()
            before = m.wp.stat("downstream_cx_empty_frames_overflow")
            conn = hbone(m)
            t = tunnel(conn, m.echo)
            for i in range(10):  # one empty frame at a time, each followed by data: allowed
                conn.out += frame(DATA, 0, t.sid, b"") + frame(DATA, 0, t.sid, b"x")
            conn.flush()
            conn.wait(lambda: len(conn.streams[t.sid].data) >= 10, 5)
            c.expect(len(conn.streams[t.sid].data) == 10 and conn.goaway is None and not conn.closed,
                     f"single empty frames between data: echo {len(conn.streams[t.sid].data)}/10 B, "
                     f"{goaway_text(conn.goaway)}, closed={conn.closed}")
            conn.flush()
            conn.send(frame(DATA, 0, t.sid, b"") * 50)  # consecutive: over the limit at the 2nd
            conn.wait_closed(5)
            c.info(f"50 consecutive empty DATA frames: {goaway_text(conn.goaway)}, closed={conn.closed}")
            c.expect(conn.goaway is not None, "no GOAWAY")
            c.expect(conn.closed, "the connection stays open")
            if conn.goaway:
                c.expect(conn.goaway[1] == ENHANCE_YOUR_CALM, f"GOAWAY code {ERROR_NAMES.get(conn.goaway[1])}, expected ENHANCE_YOUR_CALM")
            conn.close()
            stat_delta(c, m.wp, "downstream_cx_empty_frames_overflow", before)
            m.good.check(c)
        R.case("streams: consecutive empty DATA frames on a tunnel -> GOAWAY, closed, counted", empty, err)

        def empty_h2c(c):
            m.good.reset()
            before = m.wp.stat("inner_h2c_empty_frames_overflow")
            conn = hbone(m)
            t = tunnel(conn, m.web)
            inner = InnerH2c(conn, t.sid)
            if not inner.wait(lambda: inner.settings_seen, 5):
                raise CaseError("no h2c SETTINGS inside the tunnel")
            isid = inner.request([(":method", "POST"), (":scheme", "http"), (":path", "/upload"), (":authority", "web")])
            inner.send(frame(DATA, 0, isid, b"") * 20)
            inner.wait(lambda: inner.goaway is not None and inner.tunnel_done, 5)
            c.info(f"inner: {goaway_text(inner.goaway)}; tunnel ended={conn.streams[t.sid].ended} "
                   f"reset={conn.streams[t.sid].reset}")
            c.expect(inner.goaway is not None, "no GOAWAY on the inner h2c connection")
            if inner.goaway:
                c.expect(inner.goaway[1] == ENHANCE_YOUR_CALM, f"inner GOAWAY code {ERROR_NAMES.get(inner.goaway[1])}")
            c.expect(inner.tunnel_done, "the tunnel stays open")
            c.expect(not conn.closed and conn.goaway is None, f"the HBONE connection went too: {goaway_text(conn.goaway)}")
            if not conn.closed:
                t2 = tunnel(conn, m.web)
                t2.send(get_request("/after", headers=[("x-body-bytes", "8")]))
                r = t2.next_response()
                c.expect(r is not None and r.status == 200, "a new tunnel on the same HBONE connection fails")
            conn.close()
            stat_delta(c, m.wp, "inner_h2c_empty_frames_overflow", before)
            m.good.check(c)
        R.case("streams: consecutive empty DATA frames inside h2c -> inner GOAWAY, tunnel closed, counted", empty_h2c, err)

        def rapid_reset(c):
            m.good.reset()
            before = m.wp.stat("downstream_cx_premature_reset")
            conn = hbone(m)
            n = 0
            at_goaway = None
            t0 = time.monotonic()
            while n < 6000 and not conn.closed and time.monotonic() - t0 < 20:
                for _ in range(50):
                    sid = conn.connect(m.echo, flush=False)
                    conn.rst(sid, CANCEL, flush=False)
                    n += 1
                conn.flush()
                conn.drain()
                if conn.goaway is not None and at_goaway is None:
                    at_goaway = n
                if conn.send_error:
                    break
            conn.wait_closed(3)
            c.info(f"HEADERS+RST_STREAM pairs sent: {n}; {goaway_text(conn.goaway)} after ~{at_goaway} streams; "
                   f"closed={conn.closed} in {time.monotonic() - t0:.2f} s")
            c.expect(conn.goaway is not None, f"no GOAWAY after {n} reset streams")
            if conn.goaway:
                c.expect(conn.goaway[1] == ENHANCE_YOUR_CALM, f"GOAWAY code {ERROR_NAMES.get(conn.goaway[1])}")
            c.expect(conn.closed, "the connection stays open")
            c.expect(at_goaway is None or 400 <= at_goaway <= 2000,
                     f"closed after ~{at_goaway} streams (the rule needs >= 500 closed streams)")
            conn.close()
            stat_delta(c, m.wp, "downstream_cx_premature_reset", before)
            expect_alive(c, m)
            m.good.check(c)
        R.case("streams: rapid reset (CONNECT + RST_STREAM(CANCEL), thousands) -> GOAWAY, counted", rapid_reset, err)

        def benign(c):
            m.good.reset()
            before = m.wp.stat("downstream_cx_premature_reset") or 0
            rq0 = m.wp.stat("downstream_rq_total") or 0
            conn = hbone(m)
            total, per, window = 1500, 5, 60
            body = pod_body(16)
            req = get_request("/benign", headers=[("x-body-bytes", "16")]) * per
            active, opened, done, bad = {}, 0, 0, []
            t0 = time.monotonic()
            while done < total and not conn.closed and conn.goaway is None and time.monotonic() - t0 < 40 and len(bad) < 5:
                while len(active) < window and opened < total:
                    sid = conn.connect(m.web, flush=False)
                    active[sid] = [H1Tunnel(conn, sid), False]
                    opened += 1
                conn.flush()
                conn.pump(0.05)
                conn.drain()
                for sid, (t, sent) in list(active.items()):
                    st = conn.streams[sid]
                    if st.reset is not None or (st.status is not None and st.status != 200):
                        bad.append(f"tunnel {sid}: status {st.status} reset {st.reset}")
                        del active[sid]
                        continue
                    if not sent and st.status == 200:
                        conn.data(sid, req, flush=False)
                        active[sid][1] = True
                        continue
                    t.feed()
                    if len(t.parser.responses) >= per:
                        if any(r.status != 200 or r.body != body for r in t.parser.responses[:per]):
                            bad.append(f"tunnel {sid}: {t.parser.responses[:per]}")
                        conn.rst(sid, CANCEL, flush=False)
                        del active[sid]
                        done += 1
                    elif st.ended:
                        bad.append(f"tunnel {sid} ended after {len(t.parser.responses)} responses")
                        del active[sid]
            conn.flush()
            conn.pump(0.2)
            dt = time.monotonic() - t0
            c.info(f"{done}/{total} tunnels x {per} exchanges, each then RST_STREAM(CANCEL), in {dt:.1f} s; "
                   f"{goaway_text(conn.goaway)}, closed={conn.closed}")
            c.expect(done == total and not bad, f"{done}/{total} tunnels completed; {bad[:2]}")
            rq = (m.wp.stat("downstream_rq_total") or 0) - rq0
            c.expect(rq >= total * per, f"the waypoint counted only {rq} requests (expected >= {total * per})")
            c.expect(conn.goaway is None and not conn.closed, f"the benign connection was closed: {goaway_text(conn.goaway)}")
            after = m.wp.stat("downstream_cx_premature_reset") or 0
            c.expect(after == before, f"downstream_cx_premature_reset {before} -> {after}")
            conn.close()
            m.good.check(c)
        R.case("streams: benign, 1,500 tunnels x 5 exchanges each ended by RST_STREAM(CANCEL) -> never closed", benign, err)
    finally:
        m.close(R)


# ---------------------------------------------------------------------------------------------
# floods: CONTINUATION, SETTINGS, PING; the HPACK bomb.

def g_floods(R, env):
    m = Mesh(env)
    err = m.start()
    try:
        def continuation(c):
            m.good.reset()
            conn = hbone(m)
            sid = conn.new_sid()
            block = conn.enc.encode([(":method", "CONNECT"), (":authority", m.echo)])
            conn.send(frame(HEADERS, 0, sid, block))
            piece = b"\x00\x03x-c\x01a"  # literal without indexing: x-c: a
            sent = 0
            while sent < 20000 and not conn.closed and conn.goaway is None and not conn.send_error:
                conn.send(frame(CONTINUATION, 0, sid, piece * 4) * 200)
                sent += 200
                conn.drain()
            conn.wait_closed(5)
            c.info(f"CONTINUATION frames sent: {sent}; {goaway_text(conn.goaway)}; closed={conn.closed}")
            c.expect(conn.goaway is not None, "no GOAWAY before the close")
            c.expect(conn.closed, "the connection stays open")
            conn.close()
            expect_alive(c, m)
            m.good.check(c)
        R.case("floods: CONTINUATION flood -> GOAWAY before the close", continuation, err)

        def control_flood(c, what, unit, limit):
            m.good.reset()
            conn = hbone(m, rcvbuf=16384)
            batch = unit * 2000
            sent, t0, why = 0, time.monotonic(), "limit"
            # Flood without reading (a peer that never reads the ACKs), until the waypoint stops
            # taking them (send blocks) or the connection goes.
            conn.sock.settimeout(2)
            while sent < limit and time.monotonic() - t0 < 8:
                try:
                    conn.sock.sendall(batch)
                except socket.timeout:
                    why = "send blocked"
                    break
                except (OSError, ssl.SSLError) as e:
                    why = f"send failed ({e.__class__.__name__})"
                    break
                sent += 2000
            # Now read everything: a GOAWAY must arrive before the close (or 2 s of silence).
            progress = [time.monotonic(), -1]

            def quiet_or_closed():
                n = sum(conn.counts.values())
                if n != progress[1]:
                    progress[:] = [time.monotonic(), n]
                return conn.closed or time.monotonic() - progress[0] > 2.0
            conn.wait(quiet_or_closed, 20)
            acks = conn.counts.get(SETTINGS if what == "SETTINGS" else PING, 0)
            c.info(f"{what} frames sent: {sent} ({why}) in {time.monotonic() - t0:.1f} s; frames back: "
                   f"{acks} {what}; {goaway_text(conn.goaway)}; closed={conn.closed} {conn.error or ''}")
            c.expect(conn.goaway is not None, "no GOAWAY" + ("" if conn.closed else " and the connection stays open"))
            c.expect(conn.closed, "the connection stays open")
            conn.close()
            # The same from a peer whose receive side is already full (2 MiB of echo it does not
            # read): the waypoint cannot write the ACKs, nor its GOAWAY, until the peer reads. Either
            # it applies back-pressure (stops reading: the connection survives, everything arrives
            # once the peer reads) or it gives up with a GOAWAY that must still reach the peer
            # before the close (a delayed close that flushes what is queued), never a bare close.
            conn = hbone(m, rcvbuf=16384)
            t = tunnel(conn, m.echo)
            blob = os.urandom(2 << 20)
            conn.data(t.sid, blob)
            time.sleep(0.3)
            conn.sock.settimeout(2)
            why = "sent"
            try:
                conn.sock.sendall(unit * 20000)
            except socket.timeout:
                why = "send blocked"
            except (OSError, ssl.SSLError) as e:
                why = f"send failed ({e.__class__.__name__})"
            progress[:] = [time.monotonic(), -1]
            st = conn.streams[t.sid]

            def done():
                quiet_or_closed()
                return conn.closed or (len(st.data) >= len(blob) and time.monotonic() - progress[0] > 1.0)
            conn.wait(done, 20)
            echoed = len(st.data)
            c.info(f"with the peer's receive side full: 20000 {what} ({why}); {echoed} B of echo back; "
                   f"{goaway_text(conn.goaway)}; closed={conn.closed}")
            c.expect(conn.goaway is not None or (not conn.closed and bytes(st.data) == blob),
                     "peer not reading: the connection was closed without a GOAWAY reaching the peer"
                     if conn.closed else f"peer not reading: no GOAWAY and only {echoed} B of the echo arrived")
            conn.close()
            expect_alive(c, m)
            m.good.check(c)

        R.case("floods: SETTINGS flood -> GOAWAY before the close",
               lambda c: control_flood(c, "SETTINGS", frame(SETTINGS, 0, 0, b""), 1_500_000), err)
        R.case("floods: PING flood -> GOAWAY before the close",
               lambda c: control_flood(c, "PING", frame(PING, 0, 0, b"12345678"), 800_000), err)

        def hpack_bomb(c):
            m.good.reset()
            rss0 = m.wp.rss_kb()
            peak = rss0
            outcomes = []
            value = b"v" * 4000
            n_refs = 12000
            conn = None
            for i in range(10):
                if conn is None or conn.closed or conn.goaway is not None:
                    if conn:
                        conn.close()
                    conn = hbone(m)
                    fresh = True
                sid = conn.new_sid()
                auth = m.echo.encode()
                block = b"\x02\x07CONNECT" + b"\x01" + bytes([len(auth)]) + auth
                if fresh:  # a literal with incremental indexing: x-bomb (4,000 bytes) into the dynamic table
                    block += b"\x40\x06x-bomb\x7f\xa1\x1e" + value
                    fresh = False
                block += b"\xbe" * n_refs  # ...referenced 12,000 times: 48 MB once decoded
                conn.send(frame(HEADERS, END_HEADERS, sid, block))
                st = conn.streams[sid]
                conn.wait(lambda: st.status is not None or st.done or conn.goaway is not None, 5)
                outcomes.append(st.status or (f"RST {ERROR_NAMES.get(st.reset)}" if st.reset is not None else None)
                                or goaway_text(conn.goaway))
                peak = max(peak, m.wp.rss_kb())
            if conn:
                conn.close()
            c.info(f"10 bombs of 48 MB each: {outcomes}; RSS {rss0} kB -> peak {peak} kB")
            c.expect(all(o != 200 and o is not None for o in outcomes), f"a bomb was not refused: {outcomes}")
            c.expect(peak - rss0 < 64 * 1024, f"RSS grew by {(peak - rss0) // 1024} MB")
            expect_alive(c, m)
            m.good.check(c)
        R.case("floods: HPACK bomb (4 KB literal referenced 12,000 times) -> 431/reset/GOAWAY, no memory blow-up",
               hpack_bomb, err)
    finally:
        m.close(R)


# ---------------------------------------------------------------------------------------------
# http: inside tunnels on HTTP chains.

def g_http(R, env):
    http_bs = "  http: {requestHeadersTimeout: 2s, idleTimeout: 2s%s}\n"
    m = Mesh(env, bootstrap=newf(http_bs % ""),
             services=[("hdr", 104, 80, 8080, "http", "hdr"), ("die", 105, 80, 8080, "http", "die")],
             pods=[("hdr-1", 4, "hdr", "hdr", "py", "hdr", "", 0), ("die-1", 5, "die", "die", "fake", "die", "http", 0)])
    err = m.start()
    hdr = m.vip(104, 80)
    try:
        def slowloris(c):
            m.good.reset()
            ht0 = m.wp.stat("downstream_rq_header_timeout")
            it0 = m.wp.stat("downstream_http_idle_timeout")
            conn = hbone(m)
            a, b, k = tunnel(conn, m.web), tunnel(conn, m.web), tunnel(conn, m.web)
            t_ab = time.monotonic()
            k.send(get_request("/ka", headers=[("x-body-bytes", "8")]))
            r = k.next_response()
            c.expect(r is not None and r.status == 200, f"keep-alive tunnel: first request {r and r.status}")
            t_k = time.monotonic()
            dribble = get_request("/slow", headers=[("x-pad", "y" * 60)])
            ends, i, next_byte = {}, 0, time.monotonic()
            while len(ends) < 3 and time.monotonic() - t_ab < 6 and not conn.closed:
                if "a" not in ends and time.monotonic() >= next_byte and i < len(dribble):
                    a.send(dribble[i:i + 1])
                    i += 1
                    next_byte += 0.5
                conn.pump(0.05)
                for name, t in (("a", a), ("b", b), ("k", k)):
                    if name not in ends and t.done:
                        ends[name] = time.monotonic()
            a.feed()
            ra = a.parser.responses[0] if a.parser.responses else None
            da = ends.get("a", 0) - t_ab if "a" in ends else None
            db = ends.get("b", 0) - t_ab if "b" in ends else None
            dk = ends.get("k", 0) - t_k if "k" in ends else None
            fmt = lambda x: "still open" if x is None else f"{x:.2f} s"  # noqa: E731
            c.info(f"dribbled {i} bytes: {ra and ra.status}, closed after {fmt(da)}; silent tunnel closed after "
                   f"{fmt(db)}; keep-alive idle closed after {fmt(dk)}")
            c.expect(ra is not None and ra.status == 408, f"dribbled request: {ra and ra.status} (expected 408)")
            c.expect(da is not None and 1.5 <= da <= 3, f"dribbling tunnel closed after {fmt(da)} (timeout 2 s from its first byte)")
            c.expect(db is not None and 1.5 <= db <= 3, f"silent tunnel closed after {fmt(db)} (timeout 2 s)")
            c.expect(dk is not None and 1.5 <= dk <= 3, f"idle keep-alive tunnel closed after {fmt(dk)} (idleTimeout 2 s)")
            conn.close()
            stat_delta(c, m.wp, "downstream_rq_header_timeout", ht0)
            stat_delta(c, m.wp, "downstream_http_idle_timeout", it0)
            m.good.check(c)
        R.case("http: slowloris (1 byte / 0.5 s) -> 408 + close; silent tunnel and idle keep-alive closed after 2 s",
               slowloris, err)

        def h2c_connect(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, m.web)
            t.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            r = t.next_response()
            c.expect(r is not None and r.status == 501, f"HTTP/1.1 CONNECT: {r and r.status} (expected 501)")
            t2 = tunnel(conn, m.web)
            inner = InnerH2c(conn, t2.sid)
            if not inner.wait(lambda: inner.settings_seen, 5):
                raise CaseError("no h2c SETTINGS inside the tunnel")
            s1 = inner.request([(":method", "CONNECT"), (":authority", "example.com:443")])
            st = inner.streams[s1]
            inner.wait(lambda: st.status is not None or st.done or inner.goaway is not None, 5)
            c.info(f"h2c CONNECT: status {st.status} reset {ERROR_NAMES.get(st.reset, st.reset)} {goaway_text(inner.goaway)}")
            c.expect(st.status == 501, f"h2c CONNECT: status {st.status} reset {st.reset} (expected 501)")
            s2 = inner.request([(":method", "GET"), (":scheme", "http"), (":path", "/after"), (":authority", "web"),
                                ("x-body-bytes", "8")], end_stream=True)
            st2 = inner.streams[s2]
            inner.wait(lambda: st2.done, 5)
            c.expect(st2.status == 200, f"a GET on the same h2c session afterwards: {st2.status}")
            conn.close()
            m.good.check(c)
        R.case("http: CONNECT inside h2c -> 501 (as HTTP/1.1), the session goes on", h2c_connect, err)

        def underscores(c):
            m.good.reset()
            pod = m.pods["hdr-1"]

            def h1(w, headers, tag):
                conn = hbone(m, w)
                t = tunnel(conn, hdr)
                t.send(f"POST /{tag} HTTP/1.1\r\nHost: hdr\r\n".encode()
                       + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"Content-Length: 5\r\n\r\nhello")
                r = t.next_response()
                closed = conn.wait(lambda: t.done, 3) if r is not None and r.status == 400 else None
                conn.close()
                return r, closed

            def h2c(w, headers, tag):
                conn = hbone(m, w)
                t = tunnel(conn, hdr)
                inner = InnerH2c(conn, t.sid)
                if not inner.wait(lambda: inner.settings_seen, 5):
                    raise CaseError("no h2c SETTINGS inside the tunnel")
                s = inner.request([(":method", "POST"), (":scheme", "http"), (":path", f"/{tag}"), (":authority", "hdr")]
                                  + list(headers))
                inner.data(s, b"hello", end_stream=True)
                st = inner.streams[s]
                inner.wait(lambda: st.done or inner.goaway is not None, 5)
                conn.close()
                return st

            def seen(tag):
                return [h for h in pod.requests() if f"/{tag} ".encode() in h]

            for i, hname in enumerate(["Content_Length", "content_length", "Transfer_Encoding", "TRANSFER_ENCODING"]):
                value = "5" if "ength" in hname.lower() else "chunked"
                tag = f"u1-{i}"
                r, closed = h1(m.wp, [(hname, value)], tag)
                c.expect(r is not None and r.status == 400, f"HTTP/1.1 {hname}: {r and r.status} (expected 400)")
                c.expect(not seen(tag), f"HTTP/1.1 {hname}: forwarded to the pod")
            for i, hname in enumerate(["content_length", "transfer_encoding"]):
                tag = f"u2-{i}"
                st = h2c(m.wp, [(hname, "5" if "length" in hname else "chunked")], tag)
                c.expect(st.status == 400, f"h2c {hname}: status {st.status} reset {st.reset} (expected 400)")
                c.expect(not seen(tag), f"h2c {hname}: forwarded to the pod")
            r, _ = h1(m.wp, [("x_custom", "1")], "u3")
            fwd = seen("u3")
            c.expect(r is not None and r.status == 200 and fwd and b"x_custom" in fwd[0].lower(),
                     f"ALLOW (default): x_custom -> {r and r.status}, forwarded={bool(fwd and b'x_custom' in fwd[0].lower())}")
            st = h2c(m.wp, [("x_custom", "1")], "u3b")
            fwd = seen("u3b")
            c.expect(st.status == 200 and fwd and b"x_custom" in fwd[0].lower(), f"ALLOW h2c: x_custom -> {st.status}")
            for host, action in ((249, "REJECT_REQUEST"), (248, "DROP_HEADER")):
                w, e = m.start_waypoint(host, bootstrap=newf(http_bs % f", headersWithUnderscoresAction: {action}"))
                if e:
                    c.expect(False, f"{action}: {e}")
                    continue
                tag = f"u4-{action}"
                r, _ = h1(w, [("x_custom", "1")], tag)
                st = h2c(w, [("x_custom", "1")], tag + "-h2c")
                fwd, fwd2 = seen(tag), seen(tag + "-h2c")
                if action == "REJECT_REQUEST":
                    c.expect(r is not None and r.status == 400 and not fwd, f"REJECT_REQUEST HTTP/1.1: {r and r.status}, forwarded={bool(fwd)}")
                    c.expect(st.status == 400 and not fwd2, f"REJECT_REQUEST h2c: {st.status}, forwarded={bool(fwd2)}")
                else:
                    c.expect(r is not None and r.status == 200 and fwd and b"x_custom" not in fwd[0].lower(),
                             f"DROP_HEADER HTTP/1.1: {r and r.status}, forwarded with x_custom={bool(fwd and b'x_custom' in fwd[0].lower())}")
                    c.expect(st.status == 200 and fwd2 and b"x_custom" not in fwd2[0].lower(),
                             f"DROP_HEADER h2c: {st.status}, forwarded with x_custom={bool(fwd2 and b'x_custom' in fwd2[0].lower())}")
                    r, _ = h1(w, [("Content_Length", "5")], "u5")
                    c.expect(not any(b"content_length" in h.lower() for h in seen("u5")), "DROP_HEADER: Content_Length forwarded")
                w.stop(timeout=5)
            m.good.check(c)
        R.case("http: Content_Length / Transfer_Encoding -> 400 never forwarded; x_custom ALLOW / REJECT_REQUEST / DROP_HEADER",
               underscores, err)

        def authority(c):
            m.good.reset()
            conn = hbone(m)
            net = env.net
            bad = [f"{net}.100", "web.default.svc.cluster.local:80", "localhost:80", "[::1:80", "::1]:80", "::1:80",
                   "[::1]", f"[{net}.100]:80", f"{net}.100:0", f"{net}.100:65536", f"{net}.100:", ":80", "",
                   f"{net}.100:80:80", f"{net}.100:8a", f"{net}.1000:80", f"{net}.100 :80"]
            got = {}
            for a in bad:
                sid = conn.connect(a)
                st = conn.streams[sid]
                conn.wait(lambda: st.status is not None or st.done or conn.closed, 5)
                got[a] = st.status if st.status is not None else f"RST {st.reset}"
                if conn.closed:
                    break
            # An empty value or one with a space is already a malformed request to HTTP/2 itself
            # (RFC 9113 section 8.2.1): RST_STREAM(PROTOCOL_ERROR) is as good as a 400 there.
            malformed = {"", f"{net}.100 :80"}
            wrong = {a: s for a, s in got.items() if s != 400 and not (a in malformed and s == "RST 1")}
            c.info(f"{len(bad)} bad authorities: " + ("all 400" if not wrong and len(got) == len(bad) else f"not 400: {wrong}"))
            c.expect(not wrong and len(got) == len(bad), f"not answered 400: {wrong}" + (" (connection closed)" if conn.closed else ""))
            if not conn.closed:
                t = tunnel(conn, m.web)
                t.send(get_request("/ok", headers=[("x-body-bytes", "8")]))
                r = t.next_response()
                c.expect(r is not None and r.status == 200, "a good tunnel on the same connection afterwards fails")
            conn.close()
            m.good.check(c)
        R.case("http: bad :authority values (no port, names, bad brackets, port 0/65536...) -> 400", authority, err)

        def smuggling(c):
            m.good.reset()
            pod = m.pods["hdr-1"]
            second = b"GET /smuggled HTTP/1.1\r\nHost: hdr\r\n\r\n"
            cases = {
                "CL+TE": b"POST /s1 HTTP/1.1\r\nHost: hdr\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "duplicate CL": b"POST /s2 HTTP/1.1\r\nHost: hdr\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
                "obs-fold": b"GET /s3 HTTP/1.1\r\nHost: hdr\r\nX-Fold: a\r\n b\r\n\r\n",
                "bare CR": b"GET /s4 HTTP/1.1\r\nHost: hdr\r\nX-A: a\rb\r\n\r\n",
                "bare LF": b"GET /s5 HTTP/1.1\r\nHost: hdr\nX-A: b\r\n\r\n",
                "TE identity, chunked": b"POST /s6 HTTP/1.1\r\nHost: hdr\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
                "TE chunked, chunked": b"POST /s7 HTTP/1.1\r\nHost: hdr\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            }
            for what, payload in cases.items():
                conn = hbone(m)
                t = tunnel(conn, hdr)
                t.send(payload + second)
                r = t.next_response()
                closed = conn.wait(lambda: t.done, 3)
                t.feed()
                more = len(t.parser.responses) - 1
                c.expect(r is not None and r.status == 400, f"{what}: {r and r.status} (expected 400)")
                c.expect(closed, f"{what}: the tunnel stays open after the 400")
                c.expect(more <= 0, f"{what}: {more} more responses after the first")
                conn.close()
            smuggled = [h for h in pod.requests() if b"/smuggled" in h]
            reached = [h.split(b"\r\n")[0].decode(errors="replace") for h in pod.requests() if re.search(rb" /s\d ", h)]
            c.info(f"requests that reached the pod: {reached or 'none'}")
            c.expect(not smuggled, f"the pod saw {len(smuggled)} smuggled request(s)")
            m.good.check(c)
        R.case("http: HTTP/1.1 smuggling (CL+TE, duplicate CL, obs-fold, bare CR/LF, TE identity,chunked) -> 400 + close",
               smuggling, err)

        def half_close(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, m.echo)
            payload = os.urandom(200_000)
            conn.data(t.sid, payload, end_stream=True)
            st = conn.streams[t.sid]
            conn.wait(lambda: st.done, 8)
            c.expect(bytes(st.data) == payload, f"{len(st.data)}/{len(payload)} bytes echoed after our EOF")
            c.expect(st.ended and st.reset is None, f"ended={st.ended} reset={st.reset} (expected END_STREAM back)")
            conn.close()
            m.good.check(c)
        R.case("http: half-close on a TCP tunnel -> the echo comes back, then END_STREAM", half_close, err)

        def dying(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, m.vip(105, 80))
            t.send(get_request("/big", host="die", headers=[("x-body-bytes", "200000000")]))
            st = conn.streams[t.sid]
            conn.wait(lambda: len(st.data) >= 256 * 1024 or st.done, 5)
            got = len(st.data)
            m.pods["die-1"].kill()
            ended = conn.wait(lambda: st.done, 8)
            t.feed()
            complete = [r for r in t.parser.responses if len(r.body) == 200000000]
            c.info(f"{got} B before the pod died, {len(st.data)} B in all; tunnel ended={st.ended} "
                   f"reset={ERROR_NAMES.get(st.reset, st.reset)}")
            c.expect(ended, "the tunnel is still open 8 s after the pod died")
            c.expect(not complete, "a complete 200 MB response arrived?")
            c.expect(not conn.closed and conn.goaway is None, "the HBONE connection went with the tunnel")
            expect_alive(c, m)
            c.expect(one_request(m) == 200, "the waypoint no longer serves the live pod")
            r = one_request(m, authority=m.vip(105, 80), timeout=15)
            c.expect(r == 503, f"a request to the dead pod: {r} (expected 503)")
            conn.close()
            m.good.check(c)
        R.case("http: backend killed mid-response -> the tunnel ends, the waypoint stays healthy", dying, err)
    finally:
        m.close(R)


# ---------------------------------------------------------------------------------------------
# admin: connection limits and idle timeouts on the admin/metrics/health ports; CSRF; drain.

def idle_sockets(addr, n, timeout=1.0):
    out = []
    failures = 0
    for _ in range(n):
        try:
            # A SYN dropped while the accept queue is full is sent again after 1 s: a connect is
            # given 3 s, so that a busy machine does not count as a refused connection.
            s = socket.create_connection(addr, timeout=max(timeout, 3.0))
            s.settimeout(timeout)
            out.append(s)
            failures = 0
        except OSError:
            failures += 1
            if failures >= 3:
                break
    return out


def closed_sockets(socks, timeout):
    """Waits up to timeout; returns {sock: seconds until the peer closed it} for those it closed."""
    t0 = time.monotonic()
    closed = {}
    open_ = list(socks)
    while open_ and time.monotonic() - t0 < timeout:
        r, _, _ = select.select(open_, [], [], 0.05)
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed[s] = time.monotonic() - t0
                open_.remove(s)
    return closed


def g_admin(R, env):
    m = Mesh(env, bootstrap=newf("  adminListeners: {maxConnections: 32, idleTimeout: 2s}\n"))
    err = m.start()
    try:
        def limits(c):
            m.good.reset()
            before = m.wp.stat("admin_cx_overflow")
            t0 = time.monotonic()
            socks = idle_sockets(m.wp.metrics, 200)
            quick = closed_sockets(socks, 1.0)
            c.info(f"{len(socks)} idle connections to the metrics port: {len(quick)} closed within 1 s")
            c.expect(len(socks) == 200, f"only {len(socks)} connections could be opened")
            c.expect(len(quick) >= 200 - 32 - 4, f"only {len(quick)} closed at once (limit 32)")
            c.expect(one_request(m) == 200, "a new HBONE connection fails while the admin port is full")
            rest = closed_sockets([s for s in socks if s not in quick], 6)
            last = max(rest.values()) + 1.0 if rest else None
            left = len(socks) - len(quick) - len(rest)
            c.info(f"the other {len(socks) - len(quick)}: {len(rest)} closed for idleness, the last after "
                   f"{'-' if last is None else f'{last:.1f}'} s; {left} still open")
            c.expect(left == 0, f"{left} idle connections still open {time.monotonic() - t0:.1f} s later (idleTimeout 2 s)")
            for s in socks:
                s.close()
            st, body = http_req(m.wp.metrics, path="/stats/prometheus")
            c.expect(st == 200 and "waypoint_" in body, f"GET /stats/prometheus afterwards: {st}")
            stat_delta(c, m.wp, "admin_cx_overflow", before, at_least=150)
            m.good.check(c)
        R.case("admin: 200 idle connections to the metrics port -> over 32 closed at once, idle ones after 2 s, HBONE unaffected",
               limits, err)

        def csrf(c):
            m.good.reset()
            mark = len(m.wp.log())
            checks = [("POST", "/logging?level=debug", {"Origin": "http://evil.example"}),
                      ("POST", "/logging?level=debug", {"Host": "evil.example"}),
                      ("POST", "/drain_listeners", {"Origin": "https://evil.example"}),
                      ("POST", "/drain_listeners", {"Host": "evil.example:15000"})]
            for method, path, h in checks:
                st, body = http_req(m.wp.admin, method, path, headers=h)
                c.expect(st == 403, f"{method} {path} with {h}: {st} (expected 403)")
            time.sleep(0.2)
            c.expect("log level set to debug" not in m.wp.log()[mark:], "the log level was changed anyway")
            c.expect(m.wp.ready(), "readiness went away: the drain took effect anyway")
            c.expect(one_request(m) == 200, "new HBONE connections are no longer served: the drain took effect anyway")
            for host in ("localhost", "127.0.0.1:15000", f"{m.wp.ip}:15000"):
                st, body = http_req(m.wp.admin, "POST", "/logging?level=info", headers={"Host": host})
                c.expect(st == 200, f"POST /logging?level=info with Host: {host}: {st} (expected 200)")
            m.good.check(c)
        R.case("admin: POSTs with Origin or a non-loopback Host -> 403, no effect; loopback Host allowed", csrf, err)

        def drain(c):
            # Its own waypoint: whatever the attacks above did to the first one does not count here.
            w, e = m.start_waypoint(249, args=["--drain-time", "1s"])
            if e:
                raise CaseError(e)
            g, e = m.start_good(w)
            if e:
                raise CaseError(e)
            g.reset()
            conn = hbone(m, w)
            t = tunnel(conn, m.web)
            t.send(get_request("/pre", headers=[("x-body-bytes", "8")]))
            r = t.next_response()
            if not r or r.status != 200:
                raise CaseError(f"request before the drain: {r and r.status}")
            st, body = http_req(w.admin, "POST", "/drain_listeners", headers={"Host": "127.0.0.1:15000"})
            c.expect(st == 200, f"POST /drain_listeners: {st} {body.strip()[:60]!r}")
            time.sleep(1.0)
            c.expect(w.alive(), f"the process exited after /drain_listeners (exit {w.proc.poll()})")
            t.send(get_request("/old-tunnel", headers=[("x-body-bytes", "8")]))
            r = t.next_response()
            c.expect(r is not None and r.status == 200, f"request on an open tunnel after the drain: {r and r.status}"
                     + (f" ({goaway_text(conn.goaway)})" if conn.goaway else ""))
            try:
                t2 = tunnel(conn, m.web)
                t2.send(get_request("/new-tunnel", headers=[("x-body-bytes", "8")]))
                r = t2.next_response()
                c.expect(r is not None and r.status == 200, f"new tunnel on an existing connection: {r and r.status}")
            except CaseError as e:
                c.expect(False, f"new tunnel on an existing connection after the drain: {e}")
            served = handshake_accepted(env, w.hbone, None, None)
            c.expect(not served, "a new HBONE connection is still served after /drain_listeners")
            g.check(c, min_requests=10)
            conn.close()
            g.stop()
            rc = w.stop(signal.SIGTERM, timeout=10)
            c.expect(rc == 0, f"exit status after SIGTERM: {rc}")
        R.case("admin: POST /drain_listeners -> keeps running and serving open connections, no new ones; SIGTERM exits 0",
               drain, err)
    finally:
        m.close(R)


# ---------------------------------------------------------------------------------------------
# resources: file descriptors and memory.

def g_resources(R, env):
    m = Mesh(env)
    err = m.start(wrapper=["prlimit", "--nofile=256:256", "--"])
    try:
        def fds(c):
            m.good.reset()
            socks = idle_sockets(m.wp.metrics, 400, timeout=1.0)
            c.info(f"{len(socks)} idle connections to the metrics port of a waypoint with 256 file descriptors")
            results = []
            for _ in range(5):
                results.append(one_request(m, timeout=2))
                if results.count(0) >= 2:
                    break
            c.expect(results == [200] * 5, f"new HBONE connections while the metrics port is flooded: {results}")
            for s in socks:
                s.close()
            ok = wait_for(lambda: http_req(m.wp.metrics, path="/stats/prometheus")[0] == 200, 8, 0.2)
            c.expect(ok, "GET /stats/prometheus does not come back after the idle connections closed")
            expect_alive(c, m)
            m.good.check(c)
        R.case("resources: --nofile=256 and 400 idle metrics connections -> HBONE accepts keep working", fds, err)

        def memory(c):
            w, e = m.start_waypoint(249)
            if e:
                raise CaseError(e)
            g, e = m.start_good(w)
            if e:
                raise CaseError(e)
            wait_for(lambda: g.counts()[0] >= 50, 5)
            g.reset()
            rss0 = w.rss_kb()
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = client_context(env).wrap_bio(inc, out)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello = out.read()
            half = hello[:len(hello) // 2]
            socks = []
            t0 = time.monotonic()
            for i in range(2000):
                try:
                    s = socket.create_connection(w.hbone, timeout=3)
                    if i % 2:
                        s.sendall(half)
                    socks.append(s)
                except OSError:
                    pass
            time.sleep(0.5)
            peak = w.rss_kb()
            opened = time.monotonic() - t0
            for s in socks:
                s.close()
            limit = rss0 * 1.5 + 8 * 1024
            back = wait_for(lambda: w.rss_kb() <= limit, 8, 0.1)
            after = w.rss_kb()
            c.info(f"{len(socks)} connections ({len(socks) // 2} with half a ClientHello) in {opened:.1f} s: "
                   f"VmRSS {rss0} kB -> {peak} kB while open -> {after} kB after (limit {limit:.0f} kB)")
            c.expect(len(socks) >= 1900, f"only {len(socks)} connections opened")
            c.expect(back, f"VmRSS {after} kB > 1.5 x {rss0} kB + 8 MB, 8 s after the connections closed")
            c.expect(w.alive(), "the waypoint died")
            g.check(c)
        R.case("resources: 2,000 connections that never finish TLS, closed -> RSS back near the baseline", memory, err)
    finally:
        m.close(R)


# ---------------------------------------------------------------------------------------------
# tls: client certificates; the upstream's identity.

def g_tls(R, env):
    m = Mesh(env, services=[("idm", 106, 80, 8080, "http", "idm")],
             pods=[("idm-1", 6, "idm", "expected", "fake", "other", "http", 0)])
    err = m.start()
    try:
        def client_certs(c):
            m.good.reset()
            bad = env.make_bad_client_certs()
            c.expect(handshake_accepted(env, m.wp.hbone, None, None), "control: the good client certificate is refused")
            c.expect(not handshake_accepted(env, m.wp.hbone, "", ""), "no client certificate: served")
            for what in ("another root", "no SPIFFE URI SAN", "SPIFFE ID in another trust domain"):
                if what not in bad:
                    c.expect(False, f"could not make the '{what}' certificate")
                    continue
                c.expect(not handshake_accepted(env, m.wp.hbone, *bad[what]), f"{what}: served")
            s = m.wp.stats()
            c.info("handshake failures: " + ", ".join(f"{k[len('handshake_failed_'):]} {v}" for k, v in s.items()
                                                      if k.startswith("handshake_failed_") and v))
            m.good.check(c)
        R.case("tls: no client cert / another root / no SPIFFE URI / another trust domain -> handshake fails", client_certs, err)

        def upstream_identity(c):
            m.good.reset()
            conn = hbone(m)
            t = tunnel(conn, m.vip(106, 80))
            t.send(get_request("/idm", host="idm"))
            r = t.next_response(20)
            c.info(f"answer: {r and r.status} {r and r.body[:70]!r}")
            c.expect(r is not None and r.status == 503, f"expected 503, got {r and r.status}")
            conn.close()
            s = m.pods["idm-1"].summary()
            c.info(f"the pod saw: {s}")
            c.expect(s is not None and s["tunnels"] == 0 and s["http"] == 0, f"the pod received something: {s}")
            m.good.check(c)
        R.case("tls: upstream pod presents another service account -> 503, the pod receives nothing", upstream_identity, err)
    finally:
        m.close(R)


GROUPS = {"config": g_config, "regex": g_regex, "gauges": g_gauges, "streams": g_streams, "floods": g_floods,
          "http": g_http, "admin": g_admin, "resources": g_resources, "tls": g_tls}


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    build = os.path.abspath(sys.argv[1])
    groups = sys.argv[2:] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        print(f"unknown group(s) {unknown}; groups: {' '.join(GROUPS)}")
        return 2
    env = Env(build)
    env.make_certs()
    R = Runner()
    t0 = time.monotonic()
    for name in groups:
        g0 = time.monotonic()
        env.new_net()
        print(f"--- {name} (127 net {env.net}.0/24)", flush=True)
        try:
            GROUPS[name](R, env)
        except Exception as e:  # noqa: BLE001
            R.case(f"{name}: group set-up", lambda c: None, f"exception {e!r}")
            if DEBUG:
                traceback.print_exc()
        print(f"--- {name}: {time.monotonic() - g0:.1f} s", flush=True)
    print(f"{R.passed} passed, {len(R.failed)} failed  ({time.monotonic() - t0:.1f} s)")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
