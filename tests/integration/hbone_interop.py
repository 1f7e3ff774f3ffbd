#!/usr/bin/python3
"""HBONE interop from outside: python3-h2 and Python's ssl (OpenSSL) drive the real waypoint binary,
with none of the project's own HTTP/2 or TLS code on the client side. Checks the SPEC §3 wire
contract: TLS 1.3 + ALPN h2 + client certificate, the advertised HTTP/2 settings and connection
window, CONNECT tunnels carrying bytes both ways, and 400 for non-CONNECT or bad authorities; then
that every gauge is back at its value after start-up once the clients (and then the pod) are gone.

usage: hbone_interop.py BUILD_DIR
"""
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

BUILD = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def wait_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def admin_get(host, port, path):
    s = socket.create_connection((host, port), timeout=2)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()


POOLED = {"upstream_cx_active", "upstream_tunnels_active", "upstream_http_tunnels_idle"}  # held by kept-alive pod links


def gauges(net):
    """Every gauge of the waypoint (the metrics page's TYPE lines say which), from its admin /stats."""
    names = set(re.findall(r"^# TYPE waypoint_(\S+) gauge$", admin_get(f"{net}.250", 15020, "/stats/prometheus"), re.M))
    out = {}
    for line in admin_get(f"{net}.250", 15000, "/stats").splitlines():
        k, sep, v = line.partition(": ")
        if sep and k.startswith("waypoint.") and k[len("waypoint."):] in names:
            out[k[len("waypoint."):]] = int(v)
    return out


def gauges_off(net, baseline, skip, timeout=5.0):
    """The gauges not back at their baseline within timeout (those in skip left out)."""
    deadline = time.time() + timeout
    while True:
        now = gauges(net)
        off = [f"{k} = {now.get(k)} (baseline {v})" for k, v in sorted(baseline.items()) if k not in skip and now.get(k) != v]
        if not off or time.time() >= deadline:
            return off
        time.sleep(0.05)


class Client:
    """A minimal HBONE client: TLS 1.3, ALPN h2, client certificate; h2 with CONNECT allowed."""

    def __init__(self, addr, certs):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["h2"])
        ctx.load_cert_chain(f"{certs}/client.pem", f"{certs}/client.key")
        ctx.load_verify_locations(f"{certs}/root.pem")
        ctx.check_hostname = False  # HBONE has no SNI/hostname; identity is the SPIFFE URI SAN
        raw = socket.create_connection(addr, timeout=5)
        self.sock = ctx.wrap_socket(raw)
        self.alpn = self.sock.selected_alpn_protocol()
        self.version = self.sock.version()
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                        validate_inbound_headers=False, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.remote_settings = {}
        self.conn_window_updates = 0
        self.events = []

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until, timeout=5.0):
        deadline = time.time() + timeout
        while not until():
            if time.time() > deadline:
                return False
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return until()
            for ev in self.conn.receive_data(data):
                self.events.append(ev)
                if isinstance(ev, h2.events.RemoteSettingsChanged):
                    for k, v in ev.changed_settings.items():
                        self.remote_settings[int(k)] = v.new_value
                if isinstance(ev, h2.events.WindowUpdated) and ev.stream_id == 0:
                    self.conn_window_updates += ev.delta
                if isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.flush()
        return True

    def request(self, headers, end_stream=False):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return sid

    def status(self, sid):
        for ev in self.events:
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                return int(dict(ev.headers)[":status"])
        return None

    def data(self, sid):
        return b"".join(ev.data for ev in self.events if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid)

    def ended(self, sid):
        return any(isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid for ev in self.events)


def main():
    tmp = tempfile.mkdtemp(prefix="wp-interop-")
    procs = []
    try:
        net = f"127.{random.randint(16, 215)}.{random.randint(1, 250)}"
        certs = f"{tmp}/certs"
        subprocess.run([f"{BUILD}/tests/wp-certgen", "--out", certs, "--identity", "client=default/sleep",
                        "--identity", "pod=default/echo"], check=True, stdout=subprocess.DEVNULL)
        with open(f"{tmp}/waypoint.yaml", "w") as f:
            f.write(f"""apiVersion: waypoint.proxy/v1alpha1
kind: WaypointBootstrap
metadata: {{name: waypoint, namespace: default}}
spec:
  gateway: waypoint
  listeners: {{hbone: "{net}.250:15008", admin: "{net}.250:15000", metrics: "{net}.250:15020", health: "{net}.250:15021"}}
  tls: {{certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: certs/root.pem}}
  concurrency: 1
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: waypoint, namespace: default}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec:
  clusterIP: {net}.100
  ports: [{{name: tcp-echo, port: 7000, appProtocol: tcp}}]
  selector: {{app: echo}}
---
apiVersion: v1
kind: Pod
metadata: {{name: echo-1, namespace: default, labels: {{app: echo}}}}
spec: {{serviceAccountName: echo}}
status: {{podIP: {net}.1}}
""")
        procs.append(subprocess.Popen([f"{BUILD}/tests/wp-fakepod", "--addr", f"{net}.1:15008", "--cert",
                                       f"{certs}/pod.pem", "--key", f"{certs}/pod.key", "--root", f"{certs}/root.pem"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wp = subprocess.Popen([f"{BUILD}/waypoint", "--config", f"{tmp}/waypoint.yaml"],
                              stdout=open(f"{tmp}/waypoint.log", "w"), stderr=subprocess.STDOUT)
        procs.append(wp)
        if not (wait_port(f"{net}.1", 15008) and wait_port(f"{net}.250", 15000)):
            print(open(f"{tmp}/waypoint.log").read())
            check(False, "waypoint and fake pod start")
            return

        baseline = gauges(net)
        check({"downstream_cx_active", "tunnels_active"} <= set(baseline), f"gauges read at start-up ({len(baseline)})")
        c = Client((f"{net}.250", 15008), certs)
        check(c.version == "TLSv1.3", f"TLS version is TLS 1.3 ({c.version})")
        check(c.alpn == "h2", f"ALPN is h2 ({c.alpn})")
        c.pump(lambda: len(c.remote_settings) > 0 and c.conn_window_updates > 0)
        S = h2.settings.SettingCodes
        check(c.remote_settings.get(S.MAX_CONCURRENT_STREAMS) == 100, "SETTINGS_MAX_CONCURRENT_STREAMS = 100")
        check(c.remote_settings.get(S.INITIAL_WINDOW_SIZE) == 4 << 20, "SETTINGS_INITIAL_WINDOW_SIZE = 4 MiB")
        check(c.remote_settings.get(S.MAX_FRAME_SIZE) == 1 << 20, "SETTINGS_MAX_FRAME_SIZE = 1 MiB")
        check(c.remote_settings.get(S.ENABLE_PUSH, 0) == 0, "no server push")
        check(c.conn_window_updates + 65535 == 16 << 20, "connection window = 16 MiB")

        # A tunnel through the service VIP: bytes out, the same bytes back, END_STREAM both ways.
        sid = c.request([(":method", "CONNECT"), (":authority", f"{net}.100:7000"),
                         ("forwarded", 'for="192.0.2.7:1234"')])
        c.pump(lambda: c.status(sid) is not None)
        check(c.status(sid) == 200, f"CONNECT {net}.100:7000 -> 200 ({c.status(sid)})")
        payload = os.urandom(300_000)
        sent = 0
        while sent < len(payload):  # respect the server's flow-control window
            window = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
            if window == 0:
                c.pump(lambda: c.conn.local_flow_control_window(sid) > 0)
                continue
            chunk = payload[sent:sent + window]
            c.conn.send_data(sid, chunk)
            c.flush()
            sent += len(chunk)
        c.conn.end_stream(sid)
        c.flush()
        c.pump(lambda: c.ended(sid), timeout=10)
        check(c.data(sid) == payload, f"300000 random bytes echoed intact ({len(c.data(sid))} B back)")
        check(c.ended(sid), "END_STREAM came back after ours")

        # Not CONNECT -> 400.
        sid = c.request([(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", f"{net}.100:7000")],
                        end_stream=True)
        c.pump(lambda: c.status(sid) is not None)
        check(c.status(sid) == 400, f"GET -> 400 ({c.status(sid)})")
        for bad in ["echo.default.svc:7000", f"{net}.100", f"{net}.100:99999", f"[{net}.100]:7000"]:
            sid = c.request([(":method", "CONNECT"), (":authority", bad)])
            c.pump(lambda: c.status(sid) is not None)
            check(c.status(sid) == 400, f"CONNECT {bad} -> 400 ({c.status(sid)})")
        sid = c.request([(":method", "CONNECT"), (":authority", f"{net}.99:80")])
        c.pump(lambda: c.status(sid) is not None)
        check(c.status(sid) == 503, f"CONNECT to an address not served -> 503 ({c.status(sid)})")
        stats = admin_get(f"{net}.250", 15000, "/stats")
        check("waypoint.tunnels_rejected_bad_request: 5" in stats, "5 bad requests counted")
        c.sock.close()

        # A frame that is not HTTP/2 after the preface: GOAWAY, close, counted.
        bad = Client((f"{net}.250", 15008), certs)
        bad.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        bad.sock.settimeout(5)
        got = b""
        try:
            while True:
                chunk = bad.sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ssl.SSLError, OSError):
            pass
        # The server's GOAWAY frame header: type 0x7 on stream 0, within what came back before the close.
        check(b"\x07\x00\x00\x00\x00\x00" in got, "an HTTP/1 request inside HBONE: GOAWAY, then the connection closes")
        stats = admin_get(f"{net}.250", 15000, "/stats")
        check("waypoint.downstream_cx_protocol_error: 1" in stats, "protocol error counted")

        # The clients are gone: every gauge back at its value after start-up, the pooled upstream ones
        # once the pod is gone too (as the C++ integration tests check after each test).
        off = gauges_off(net, baseline, POOLED)
        check(not off, "gauges back at their baseline with the pod up" + (": " + ", ".join(off) if off else ""))
        procs[0].kill()
        procs[0].wait()
        off = gauges_off(net, baseline, set())
        check(not off, "every gauge back at its baseline once the pod is gone" + (": " + ", ".join(off) if off else ""))

        wp.send_signal(signal.SIGTERM)
        check(wp.wait(timeout=15) == 0, "SIGTERM: exit status 0")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


main()
print(f"{0 if failures else 1} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
