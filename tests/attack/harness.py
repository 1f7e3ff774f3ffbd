"""Support code for the attack suite (tests/attack/attacks.py): processes on loopback, the YAML
config, HTTP/2 frames by hand over TLS (and inside tunnels, for h2c), an HTTP/1.1 response parser,
a well-behaved HBONE client on python3-h2, and a small Python HBONE pod that echoes the request
heads it receives. Python 3 and Debian's python3-h2 / python3-hpack only; loopback addresses only.
"""
import atexit
import ctypes
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import hpack

# ---------------------------------------------------------------------------------------------
# Processes: every child is killed when this process ends, however it ends.

_children = []
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a killed test process leaves nothing behind


def spawn(argv, log_path, env=None):
    """Starts argv (from the main thread only: PDEATHSIG follows the spawning thread)."""
    log = open(log_path, "ab")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         preexec_fn=_die_with_parent, env=env)
    log.close()
    _children.append(p)
    return p


def kill_all():
    for p in _children:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(kill_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def wait_for(pred, timeout, interval=0.02):
    """Polls pred() until it is true or timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run(argv, timeout=30):
    """Runs a command to completion: (exit status, stdout+stderr text). Signals as 128+N."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as e:
        return -1, (e.stdout or b"").decode(errors="replace") + "\n(timed out)"
    rc = p.returncode if p.returncode >= 0 else 128 - p.returncode
    return rc, p.stdout.decode(errors="replace")


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


# ---------------------------------------------------------------------------------------------
# The test environment: a random loopback /24, a temp dir, certificates.

NEW_FIELDS = os.environ.get("WP_ATTACK_NO_NEW_FIELDS", "") == ""


def newf(text):
    """Bootstrap text that uses the fields of issue 13; left out with WP_ATTACK_NO_NEW_FIELDS=1
    (to see how a binary without them behaves)."""
    return text if NEW_FIELDS else ""


class Env:
    def __init__(self, build):
        self.build = build
        self.rnd = random.Random(os.getpid() ^ int(time.time() * 1e6))
        self.new_net()
        self.tmp = tempfile.mkdtemp(prefix="wp-attack-")
        self.certs = f"{self.tmp}/certs"
        atexit.register(self.cleanup)

    def new_net(self):
        """A fresh random loopback /24 (as the C++ harness: 127.[16..215].[1..250], clear of the
        demo's 127.0.x.x), so each group binds addresses nothing else uses."""
        self.net = f"127.{self.rnd.randint(16, 215)}.{self.rnd.randint(1, 250)}"

    def cleanup(self):
        if os.environ.get("WP_TEST_KEEP"):
            print(f"kept {self.tmp}")
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ip(self, host):
        return f"{self.net}.{host}"

    def bin(self, name):
        return f"{self.build}/{name}" if name == "waypoint" else f"{self.build}/tests/{name}"

    def make_certs(self):
        """root + waypoint + client and pod identities; plus the bad client certificates."""
        ids = ["client=default/client", "web=default/web", "echo=default/echo", "slow=default/slow",
               "other=default/other", "hdr=default/hdr", "die=default/die"]
        argv = [self.bin("wp-certgen"), "--out", self.certs]
        for i in ids:
            argv += ["--identity", i]
        rc, out = run(argv)
        if rc != 0:
            raise RuntimeError("wp-certgen failed: " + out)

    def make_bad_client_certs(self):
        """Client certificates the waypoint must refuse: {name: (cert, key)}."""
        out = {}
        # Another root.
        d = f"{self.tmp}/certs-other-root"
        rc, text = run([self.bin("wp-certgen"), "--out", d, "--identity", "client=default/client"])
        if rc == 0:
            out["another root"] = (f"{d}/client.pem", f"{d}/client.key")
        # The same root, another trust domain (the root is reused when root.pem and root.key exist).
        d = f"{self.tmp}/certs-other-td"
        os.makedirs(d, exist_ok=True)
        shutil.copy(f"{self.certs}/root.pem", d)
        shutil.copy(f"{self.certs}/root.key", d)
        rc, text = run([self.bin("wp-certgen"), "--out", d, "--trust-domain", "evil.example",
                        "--identity", "client=default/client"])
        if rc == 0:
            out["SPIFFE ID in another trust domain"] = (f"{d}/client.pem", f"{d}/client.key")
        # The same root, no SPIFFE URI SAN at all (a DNS name instead), with the openssl tool.
        d = f"{self.tmp}/certs-nospiffe"
        os.makedirs(d, exist_ok=True)
        ext = f"{d}/ext.cnf"
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=DNS:client.default.svc\n")
        steps = [
            ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{d}/client.key"],
            ["openssl", "req", "-new", "-key", f"{d}/client.key", "-subj", "/O=test/CN=client", "-out", f"{d}/client.csr"],
            ["openssl", "x509", "-req", "-in", f"{d}/client.csr", "-CA", f"{self.certs}/root.pem", "-CAkey",
             f"{self.certs}/root.key", "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{d}/client.pem"],
        ]
        if shutil.which("openssl") and all(run(s)[0] == 0 for s in steps):
            out["no SPIFFE URI SAN"] = (f"{d}/client.pem", f"{d}/client.key")
        return out


# ---------------------------------------------------------------------------------------------
# The config file.

def render_config(env, wp_host=250, bootstrap_extra="", services=(), pods=(), extra_docs=""):
    """services: (name, vip_host, port, target_port, app_protocol, app_label);
    pods: (name, host, app_label, service_account)."""
    ip = env.ip(wp_host)
    y = f"""apiVersion: waypoint.proxy/v1alpha1
kind: WaypointBootstrap
metadata: {{name: waypoint, namespace: default}}
spec:
  gateway: waypoint
  trustDomain: cluster.local
  listeners: {{hbone: "{ip}:15008", admin: "{ip}:15000", metrics: "{ip}:15020", health: "{ip}:15021"}}
  tls: {{certChain: {env.certs}/waypoint.pem, privateKey: {env.certs}/waypoint.key, rootCert: {env.certs}/root.pem}}
  concurrency: 1
  log: {{level: info, accessLog: "off"}}
{bootstrap_extra}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: waypoint, namespace: default}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]
"""
    for name, vip, port, target, proto, app in services:
        y += f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: {env.ip(vip)}
  ports: [{{name: {proto}-port, port: {port}, targetPort: {target}, appProtocol: {proto}}}]
  selector: {{app: {app}}}
"""
    for name, host, app, sa in pods:
        y += f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{app: {app}}}}}
spec: {{serviceAccountName: {sa}}}
status:
  podIP: {env.ip(host)}
  phase: Running
  conditions: [{{type: Ready, status: "True"}}]
"""
    return y + extra_docs


def virtual_service(name, host, http_yaml):
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{host}]
{http_yaml}"""


# ---------------------------------------------------------------------------------------------
# Plain HTTP/1.1 to the admin, metrics and health ports.

def http_req(addr, method="GET", path="/", headers=None, timeout=3.0):
    """(status, body) or (0, error text)."""
    try:
        s = socket.create_connection(addr, timeout=timeout)
    except OSError as e:
        return 0, f"connect: {e}"
    try:
        hdrs = {"Host": f"{addr[0]}:{addr[1]}"}  # a loopback literal: what a local operator's curl sends
        if headers:
            hdrs.update(headers)
        hdrs.setdefault("Connection", "close")
        if method == "POST":
            hdrs.setdefault("Content-Length", "0")
        req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
        s.sendall((req + "\r\n").encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        if not m:
            return 0, data.decode(errors="replace")
        return int(m.group(1)), data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
    except OSError as e:
        return 0, f"io: {e}"
    finally:
        s.close()


def parse_stats(text):
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(": ")
        if sep and k.startswith("waypoint."):
            try:
                out[k[len("waypoint."):]] = int(v)
            except ValueError:
                pass
    return out


def prom_value(text, series):
    """The value of one Prometheus series line (exact name{labels}), or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            try:
                return float(line.split()[-1])
            except ValueError:
                return None
    return None


def prom_sum(text, names):
    """The sum over every series (any labels) of the metric names given, or None if none exists."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = re.split(r"[{ ]", line, 1)[0]
        if name in names:
            try:
                total += float(line.split()[-1])
                seen = True
            except ValueError:
                pass
    return total if seen else None


# ---------------------------------------------------------------------------------------------
# Processes under test.

class Waypoint:
    def __init__(self, env, config_text, host=250, name="waypoint", args=(), wrapper=()):
        self.env = env
        self.ip = env.ip(host)
        self.hbone = (self.ip, 15008)
        self.admin = (self.ip, 15000)
        self.metrics = (self.ip, 15020)
        self.health = (self.ip, 15021)
        self.config_path = f"{env.tmp}/{name}.yaml"
        self.log_path = f"{env.tmp}/{name}.log"
        self.args = list(args)
        self.wrapper = list(wrapper)
        self.proc = None
        with open(self.config_path, "w") as f:
            f.write(config_text)

    def start(self, timeout=15.0):
        """Returns "" once /ready answers 200, else why not (with the end of the log)."""
        self.proc = spawn(self.wrapper + [self.env.bin("waypoint"), "--config", self.config_path] + self.args,
                          self.log_path)
        ok = wait_for(lambda: self.proc.poll() is not None or http_req(self.admin, path="/ready", timeout=1)[0] == 200,
                      timeout, 0.02)
        if ok and self.proc.poll() is None:
            return ""
        why = f"exited with {self.proc.poll()}" if self.proc.poll() is not None else "not ready in time"
        return f"waypoint {why}: " + self.log_tail()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=6):
        return " | ".join(self.log().strip().splitlines()[-n:])

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ready(self):
        return http_req(self.admin, path="/ready", timeout=2)[0] == 200

    def stats(self):
        st, body = http_req(self.admin, path="/stats", timeout=3)
        return parse_stats(body) if st == 200 else {}

    def stat(self, name):
        """waypoint.<name> from the admin /stats, else from the metrics page (waypoint_<name>), else None."""
        v = self.stats().get(name)
        if v is not None:
            return v
        st, body = http_req(self.metrics, path="/stats/prometheus", timeout=3)
        if st == 200:
            x = prom_sum(body, (f"waypoint_{name}", f"waypoint_{name}_total"))
            if x is not None:
                return int(x)
        return None

    def prom(self):
        st, body = http_req(self.metrics, path="/stats/prometheus", timeout=3)
        return body if st == 200 else ""

    def rss_kb(self):
        return rss_kb(self.proc.pid)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if not self.alive():
            return self.proc.poll() if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class FakePod:
    """tests/wp-fakepod as a process."""

    def __init__(self, env, name, host, identity, behavior="http", delay_ms=0):
        self.env = env
        self.name = name
        self.addr = (env.ip(host), 15008)
        self.log_path = f"{env.tmp}/pod-{name}.log"
        argv = [env.bin("wp-fakepod"), "--addr", f"{self.addr[0]}:15008", "--cert", f"{env.certs}/{identity}.pem",
                "--key", f"{env.certs}/{identity}.key", "--root", f"{env.certs}/root.pem", "--behavior", behavior,
                "--name", name]
        if delay_ms:
            argv += ["--delay-ms", str(delay_ms)]
        self.proc = spawn(argv, self.log_path)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_listening(self, timeout=10.0):
        return wait_for(lambda: "listening on" in self.log() or self.proc.poll() is not None, timeout) and \
            self.proc.poll() is None

    def summary(self, timeout=5.0):
        """SIGTERM; then what it printed: {connections, tunnels, bytes, http} (None if missing)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        m = re.search(r"(\d+) connections, (\d+) tunnels, (\d+) bytes received(?:, (\d+) HTTP requests)?", self.log())
        if not m:
            return None
        return {"connections": int(m.group(1)), "tunnels": int(m.group(2)), "bytes": int(m.group(3)),
                "http": int(m.group(4)) if m.group(4) else 0}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# TLS to the waypoint.

def client_context(env, cert=None, key=None, alpn=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if alpn:
        ctx.set_alpn_protocols(["h2"])
    if cert is None:
        cert, key = f"{env.certs}/client.pem", f"{env.certs}/client.key"
    if cert:
        ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(f"{env.certs}/root.pem")
    ctx.check_hostname = False  # HBONE: identity is the SPIFFE URI SAN, no hostname
    return ctx


def tls_connect(env, addr, cert=None, key=None, rcvbuf=None, timeout=5.0):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(timeout)
    raw.connect(addr)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client_context(env, cert, key).wrap_socket(raw)


def handshake_accepted(env, addr, cert, key):
    """True when the waypoint really serves this client: TLS completes AND its HTTP/2 SETTINGS
    arrive (in TLS 1.3 the server judges the client certificate after the client's Finished)."""
    try:
        s = tls_connect(env, addr, cert, key, timeout=3)
    except (ssl.SSLError, OSError):
        return False
    try:
        s.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
        s.settimeout(3)
        buf = b""
        while len(buf) < 9:
            chunk = s.recv(4096)
            if not chunk:
                return False
            buf += chunk
        return buf[3] == SETTINGS
    except (ssl.SSLError, OSError):
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# HTTP/2 frames by hand.

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 7, 8, 9, 11
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
               8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
               12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def settings_frame(values=None, ack=False):
    payload = b"".join(struct.pack(">HI", k, v) for k, v in (values or {}).items())
    return frame(SETTINGS, ACK if ack else 0, 0, payload)


def window_update(sid, n):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", n))


def rst_frame(sid, code):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def ping_frame(data=b"\0" * 8, ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


class FrameParser:
    def __init__(self):
        self.buf = bytearray()
        self.pos = 0

    def feed(self, data):
        self.buf += data
        out = []
        buf, pos = self.buf, self.pos
        while len(buf) - pos >= 9:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if len(buf) - pos < 9 + length:
                break
            ftype, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            out.append((ftype, flags, sid, bytes(buf[pos + 9:pos + 9 + length])))
            pos += 9 + length
        if pos > 65536:
            del buf[:pos]
            pos = 0
        self.pos = pos
        return out


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.headers = None  # the first header block (response head), a list of (name, value)
        self.trailers = None
        self.status = None
        self.data = bytearray()
        self.ended = False  # END_STREAM received
        self.reset = None  # RST_STREAM code received
        self.opened = time.monotonic()

    @property
    def done(self):
        return self.ended or self.reset is not None


class H2Peer:
    """The client side of an HTTP/2 connection, frame by frame; subclasses move the bytes."""

    def __init__(self, window=16 << 20):
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.streams = {}
        self.next_sid = 1
        self.goaway = None  # (last stream id, error code, debug data)
        self.frames_before_goaway = 0
        self.remote_settings = {}
        self.settings_seen = False
        self.counts = {}
        self.hblock = None  # (sid, bytearray) while a header block is incomplete
        self.decode_error = None
        self.out = bytearray()
        self.parser = FrameParser()
        self.out += PREFACE + settings_frame({4: window, 2: 0}) + window_update(0, window - 65535)

    # -- receiving
    def handle(self, data):
        for ftype, flags, sid, payload in self.parser.feed(data):
            self.counts[ftype] = self.counts.get(ftype, 0) + 1
            if ftype in (HEADERS, CONTINUATION):
                if ftype == HEADERS:
                    p = payload
                    if flags & PADDED:
                        p = p[1:len(p) - p[0]]
                    if flags & PRIORITY_FLAG:
                        p = p[5:]
                    self.hblock = (sid, bytearray(p), flags & END_STREAM)
                elif self.hblock:
                    self.hblock[1].extend(payload)
                if flags & END_HEADERS and self.hblock:
                    hsid, block, es = self.hblock
                    self.hblock = None
                    try:
                        hdrs = self.dec.decode(bytes(block))
                    except Exception as e:  # noqa: BLE001 - a decode failure is a finding, not a crash
                        self.decode_error = repr(e)
                        hdrs = []
                    st = self.streams.setdefault(hsid, Stream(hsid))
                    if st.headers is None or (st.status is not None and st.status < 200):
                        st.headers = hdrs
                        for k, v in hdrs:
                            if k == ":status":
                                st.status = int(v)
                    else:
                        st.trailers = hdrs
                    if es:
                        st.ended = True
            elif ftype == DATA:
                p = payload
                if flags & PADDED:
                    p = p[1:len(p) - p[0]]
                st = self.streams.setdefault(sid, Stream(sid))
                st.data += p
                if flags & END_STREAM:
                    st.ended = True
                if payload:
                    self.out += window_update(0, len(payload))
                    if not st.ended:
                        self.out += window_update(sid, len(payload))
            elif ftype == RST_STREAM:
                st = self.streams.setdefault(sid, Stream(sid))
                st.reset = struct.unpack(">I", payload[:4])[0] if len(payload) >= 4 else -1
            elif ftype == SETTINGS:
                if not flags & ACK:
                    for i in range(0, len(payload) - 5, 6):
                        k, v = struct.unpack(">HI", payload[i:i + 6])
                        self.remote_settings[k] = v
                    self.settings_seen = True
                    self.out += settings_frame(ack=True)
            elif ftype == PING:
                if not flags & ACK:
                    self.out += ping_frame(payload, ack=True)
            elif ftype == GOAWAY:
                last, code = struct.unpack(">II", payload[:8]) if len(payload) >= 8 else (0, -1)
                if self.goaway is None:
                    self.frames_before_goaway = sum(self.counts.values()) - 1
                self.goaway = (last & 0x7FFFFFFF, code, payload[8:])
        self.flush()

    # -- sending
    def flush(self):
        raise NotImplementedError

    def send(self, data):
        self.out += data
        self.flush()

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        self.streams[sid] = Stream(sid)
        return sid

    def headers_frames(self, sid, block, end_stream=False, max_frame=16384):
        first, rest = block[:max_frame], block[max_frame:]
        flags = (END_STREAM if end_stream else 0) | (0 if rest else END_HEADERS)
        out = frame(HEADERS, flags, sid, first)
        while rest:
            chunk, rest = rest[:max_frame], rest[max_frame:]
            out += frame(CONTINUATION, 0 if rest else END_HEADERS, sid, chunk)
        return out

    def request(self, headers, end_stream=False, flush=True):
        """HEADERS with hpack-encoded headers (a list of (name, value)); returns the stream id."""
        sid = self.new_sid()
        self.out += self.headers_frames(sid, self.enc.encode(headers), end_stream)
        if flush:
            self.flush()
        return sid

    def connect(self, authority, extra=(), flush=True):
        return self.request([(":method", "CONNECT"), (":authority", authority)] + list(extra), flush=flush)

    def data(self, sid, payload, end_stream=False, flush=True, max_frame=16384):
        if not payload:
            self.out += frame(DATA, END_STREAM if end_stream else 0, sid, b"")
        for i in range(0, len(payload), max_frame):
            last = i + max_frame >= len(payload)
            self.out += frame(DATA, END_STREAM if (end_stream and last) else 0, sid, payload[i:i + max_frame])
        if flush:
            self.flush()

    def rst(self, sid, code=CANCEL, flush=True):
        self.out += rst_frame(sid, code)
        if flush:
            self.flush()


class RawH2(H2Peer):
    """HBONE by hand: TLS 1.3 + ALPN h2 + our client certificate, frames written and read here."""

    def __init__(self, env, addr, cert=None, key=None, rcvbuf=None, window=16 << 20, timeout=5.0):
        self.sock = tls_connect(env, addr, cert, key, rcvbuf=rcvbuf, timeout=timeout)
        self.eof = False
        self.error = None  # the socket error that ended it, if any
        self.send_error = None
        self.eof_at = None
        super().__init__(window)
        self.flush()

    def flush(self):
        if self.out and self.send_error is None and not self.eof:
            data, self.out = bytes(self.out), bytearray()
            try:
                self.sock.settimeout(10)
                self.sock.sendall(data)
            except (OSError, ssl.SSLError) as e:
                self.send_error = repr(e)

    @property
    def closed(self):
        return self.eof or self.error is not None

    def pump(self, timeout=0.05):
        """Reads what arrives within timeout (at least one read); False once the connection is gone."""
        if self.closed:
            return False
        try:
            self.sock.settimeout(max(0.0, timeout))
            data = self.sock.recv(1 << 20)
        except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
            return True
        except (OSError, ssl.SSLError) as e:
            self.error = repr(e)
            self.eof_at = time.monotonic()
            return False
        if not data:
            self.eof = True
            self.eof_at = time.monotonic()
            return False
        self.handle(data)
        return True

    def drain(self):
        """Reads everything already available without waiting."""
        while not self.closed:
            try:
                self.sock.settimeout(0.0)
                data = self.sock.recv(1 << 20)
            except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
                return
            except (OSError, ssl.SSLError) as e:
                self.error = repr(e)
                self.eof_at = time.monotonic()
                return
            if not data:
                self.eof = True
                self.eof_at = time.monotonic()
                return
            self.handle(data)

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return bool(pred())
            self.pump(min(left, 0.2))
        return True

    def wait_closed(self, timeout=5.0):
        return self.wait(lambda: self.closed, timeout)

    def status(self, sid):
        return self.streams[sid].status if sid in self.streams else None

    def abort(self):
        """Gone at once: TCP RST, no GOAWAY."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.eof = True


class InnerH2c(H2Peer):
    """An h2c client inside one CONNECT tunnel of a RawH2 connection."""

    def __init__(self, outer, sid, window=1 << 20):
        self.outer = outer
        self.sid = sid
        self.offset = 0
        super().__init__(window)
        self.flush()

    def flush(self):
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            self.outer.data(self.sid, data)

    def feed(self):
        st = self.outer.streams[self.sid]
        if len(st.data) > self.offset:
            chunk = bytes(st.data[self.offset:])
            self.offset = len(st.data)
            self.handle(chunk)

    @property
    def tunnel_done(self):
        return self.outer.streams[self.sid].done or self.outer.closed

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            self.feed()
            if pred():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self.outer.closed:
                return bool(pred())
            self.outer.pump(min(left, 0.1))


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 inside tunnels.

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lowercase name -> last value
        self.body = body

    def __repr__(self):
        return f"<{self.status} {len(self.body)} B>"


class H1Parser:
    """Incremental HTTP/1.1 response parser (Content-Length, chunked, or until EOF)."""

    def __init__(self):
        self.buf = bytearray()
        self.responses = []
        self.error = None
        self.until_eof = None  # (status, headers) of a response delimited by the close

    def feed(self, data):
        self.buf += data
        while self.error is None and self.until_eof is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            m = re.match(r"HTTP/1\.[01] (\d{3})", head[0])
            if not m:
                self.error = f"bad status line {head[0][:60]!r}"
                return
            status = int(m.group(1))
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            rest = self.buf[end + 4:]
            if 100 <= status < 200 or status in (204, 304):
                body, used = b"", 0
            elif "chunked" in hdrs.get("transfer-encoding", "").lower():
                body, used = self._chunked(rest)
                if body is None:
                    return
            elif "content-length" in hdrs:
                n = int(hdrs["content-length"])
                if len(rest) < n:
                    return
                body, used = bytes(rest[:n]), n
            else:
                self.until_eof = (status, hdrs)
                del self.buf[:end + 4]
                return
            del self.buf[:end + 4 + used]
            if status >= 200:
                self.responses.append(Response(status, hdrs, body))

    @staticmethod
    def _chunked(b):
        pos, body = 0, bytearray()
        while True:
            nl = b.find(b"\r\n", pos)
            if nl < 0:
                return None, 0
            size = int(bytes(b[pos:nl]).split(b";")[0] or b"0", 16)
            pos = nl + 2
            if size == 0:
                tl = b.find(b"\r\n\r\n", pos - 2)
                if tl < 0:
                    return None, 0
                return bytes(body), tl + 4
            if len(b) < pos + size + 2:
                return None, 0
            body += b[pos:pos + size]
            pos += size + 2

    def eof(self):
        if self.until_eof is not None:
            status, hdrs = self.until_eof
            self.responses.append(Response(status, hdrs, bytes(self.buf)))
            self.until_eof = None
            self.buf.clear()


class H1Tunnel:
    """HTTP/1.1 over one tunnel of a RawH2 connection."""

    def __init__(self, conn, sid):
        self.conn = conn
        self.sid = sid
        self.offset = 0
        self.parser = H1Parser()
        self.taken = 0

    def feed(self):
        st = self.conn.streams[self.sid]
        if len(st.data) > self.offset:
            self.parser.feed(bytes(st.data[self.offset:]))
            self.offset = len(st.data)
        if st.done:
            self.parser.eof()

    def send(self, data, end_stream=False):
        self.conn.data(self.sid, data, end_stream)

    def next_response(self, timeout=5.0):
        """The next complete response, or None (timeout, reset, close)."""
        def have():
            self.feed()
            return len(self.parser.responses) > self.taken or self.conn.streams[self.sid].done
        self.conn.wait(have, timeout)
        self.feed()
        if len(self.parser.responses) > self.taken:
            self.taken += 1
            return self.parser.responses[self.taken - 1]
        return None

    @property
    def done(self):
        return self.conn.streams[self.sid].done or self.conn.closed


def get_request(path="/", host="web", headers=(), body=b""):
    h = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if body:
        h = h.replace("GET ", "POST ", 1) + f"Content-Length: {len(body)}\r\n"
    return h.encode() + b"\r\n" + body


def pod_body(n):
    """What an HTTP fake pod sends for x-body-bytes: n (pod_body_byte in tests/support/fake_pod.h)."""
    return bytes(ord("a") + i % 26 for i in range(n))


# ---------------------------------------------------------------------------------------------
# The well-behaved client: python3-h2, real CONNECT tunnels, HTTP/1.1 requests, measured.

class GoodClient:
    """Runs in its own thread on its own HBONE connection: opens a tunnel to `authority` (an HTTP
    fake pod's service), does `per_tunnel` keep-alive requests (x-body-bytes: 64, body checked), ends
    the tunnel, repeats. Every request is counted ok or failed (a failed connect or tunnel counts one)."""

    BODY = 64

    def __init__(self, env, addr, authority, per_tunnel=8, gap=0.004):
        self.env, self.addr, self.authority = env, addr, authority
        self.per_tunnel, self.gap = per_tunnel, gap
        self.lock = threading.Lock()
        self.ok = self.failed = 0
        self.reasons = []
        self.stop_ev = threading.Event()
        self.pause_ev = threading.Event()
        self.idle_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, name="good-client", daemon=True)
        self.conn = self.sock = None
        self.expected = pod_body(self.BODY)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(timeout=10)

    def reset(self):
        with self.lock:
            self.ok = self.failed = 0
            self.reasons = []

    def counts(self):
        with self.lock:
            return self.ok, self.failed, list(self.reasons)

    def pause(self, timeout=10.0):
        """Stops issuing requests; returns once none is in flight."""
        self.idle_ev.clear()
        self.pause_ev.set()
        return self.idle_ev.wait(timeout)

    def resume(self):
        self.pause_ev.clear()

    def check(self, c, min_requests=20, timeout=15.0, ratio=0.99):
        """Case expectation: at least min_requests since reset() (waits for them) and >= ratio ok."""
        self.resume()
        wait_for(lambda: sum(self.counts()[:2]) >= min_requests, timeout, 0.02)
        ok, failed, reasons = self.counts()
        total = ok + failed
        good = total >= min_requests and ok >= ratio * total
        c.info(f"well-behaved client: {ok}/{total} requests ok" + (f" (first failures: {reasons[:3]})" if failed else ""))
        c.expect(good, f"well-behaved client {ok}/{total} ok (needs >= {min_requests} and >= {ratio:.0%})"
                 + (f", e.g. {reasons[0]}" if reasons else ""))

    # -- the thread
    def _fail(self, why, n=1):
        with self.lock:
            self.failed += n
            if len(self.reasons) < 10:
                self.reasons.append(why)

    def _connect(self):
        self.sock = tls_connect(self.env, self.addr, timeout=5)
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                        validate_inbound_headers=False, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(16 << 20)
        self.st = {}
        self._flush()

    def _close(self):
        try:
            if self.sock:
                self.sock.close()
        except OSError:
            pass
        self.conn = self.sock = None

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.settimeout(5)
            self.sock.sendall(data)

    def _pump(self, until, timeout):
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(min(left, 0.2))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not data:
                raise ConnectionError("HBONE connection closed by the waypoint")
            for ev in self.conn.receive_data(data):
                sid = getattr(ev, "stream_id", None)
                s = self.st.setdefault(sid, {"status": None, "parser": H1Parser(), "ended": False, "reset": None})
                if isinstance(ev, h2.events.ResponseReceived):
                    s["status"] = int(dict(ev.headers).get(":status", 0))
                elif isinstance(ev, h2.events.DataReceived):
                    s["parser"].feed(ev.data)
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    s["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    s["reset"] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise ConnectionError(f"GOAWAY {ev.error_code}")
            self._flush()
        return True

    def _tunnel(self):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", self.authority)])
        self._flush()
        s = self.st.setdefault(sid, {"status": None, "parser": H1Parser(), "ended": False, "reset": None})
        if not self._pump(lambda: s["status"] is not None or s["reset"] is not None, 5):
            self._fail("CONNECT: no answer in 5 s")
            raise ConnectionError("CONNECT timeout")
        if s["status"] != 200:
            self._fail(f"CONNECT -> {s['status']} reset={s['reset']}")
            return
        for i in range(self.per_tunnel):
            if self.stop_ev.is_set() or self.pause_ev.is_set():
                break
            req = (f"GET /good/{i} HTTP/1.1\r\nHost: web\r\nx-body-bytes: {self.BODY}\r\n\r\n").encode()
            self.conn.send_data(sid, req)
            self._flush()
            want = i + 1
            p = s["parser"]
            self._pump(lambda: len(p.responses) >= want or s["ended"] or s["reset"] is not None, 5)
            if len(p.responses) < want:
                self._fail(f"request {i}: no response (ended={s['ended']} reset={s['reset']})")
                break
            r = p.responses[want - 1]
            if r.status != 200 or r.body != self.expected:
                self._fail(f"request {i}: {r.status}, {len(r.body)} B")
                break
            with self.lock:
                self.ok += 1
            if self.gap:
                time.sleep(self.gap)
        if not (s["ended"] or s["reset"] is not None):
            try:
                self.conn.end_stream(sid)
                self._flush()
                if not self._pump(lambda: s["ended"] or s["reset"] is not None, 1.0):
                    self.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    self._flush()
            except h2.exceptions.StreamClosedError:
                pass
        self.st.pop(sid, None)

    def _run(self):
        while not self.stop_ev.is_set():
            if self.pause_ev.is_set():
                self.idle_ev.set()
                time.sleep(0.01)
                continue
            try:
                if self.conn is None:
                    self._connect()
                self._tunnel()
            except (OSError, ssl.SSLError, ConnectionError, h2.exceptions.ProtocolError) as e:
                if not str(e).startswith("CONNECT timeout"):
                    self._fail(f"connection: {e!r}")
                self._close()
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - keep measuring whatever happens
                self._fail(f"client error: {e!r}")
                self._close()
                time.sleep(0.05)
        self._close()


# ---------------------------------------------------------------------------------------------
# A Python HBONE pod that answers every HTTP/1.1 request with the request head it received.

class HeadEchoPod:
    """HBONE server (TLS 1.3, ALPN h2, the waypoint's certificate required) on addr; inside each
    tunnel HTTP/1.1: each request is answered 200 with the request head (as received) as the body.
    Records every head, so tests see exactly what the waypoint forwarded."""

    def __init__(self, env, addr, identity):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["h2"])
        ctx.load_cert_chain(f"{env.certs}/{identity}.pem", f"{env.certs}/{identity}.key")
        ctx.load_verify_locations(f"{env.certs}/root.pem")
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(addr)
        self.lsock.listen(128)
        self.lsock.settimeout(0.1)
        self.lock = threading.Lock()
        self.heads = []
        self.tunnels = 0
        self.connections = 0
        self.stop_ev = threading.Event()
        threading.Thread(target=self._accept, name="head-echo-pod", daemon=True).start()
        atexit.register(self.stop)

    def stop(self):
        self.stop_ev.set()

    def requests(self):
        with self.lock:
            return list(self.heads)

    def _accept(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()
        self.lsock.close()

    def _serve(self, raw):
        try:
            raw.settimeout(5)
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        cfg = h2.config.H2Configuration(client_side=False, validate_outbound_headers=False,
                                        validate_inbound_headers=False, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config=cfg)
        conn.initiate_connection()
        bufs = {}
        try:
            s.sendall(conn.data_to_send())
            while not self.stop_ev.is_set():
                s.settimeout(0.2)
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        with self.lock:
                            self.tunnels += 1
                        conn.send_headers(ev.stream_id, [(":status", "200")])
                        bufs[ev.stream_id] = bytearray()
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        b = bufs.setdefault(ev.stream_id, bytearray())
                        b += ev.data
                        self._requests(conn, ev.stream_id, b)
                    elif isinstance(ev, h2.events.StreamEnded):
                        try:
                            conn.end_stream(ev.stream_id)
                        except h2.exceptions.H2Error:
                            pass
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        raise ConnectionError("GOAWAY")
                out = conn.data_to_send()
                if out:
                    s.sendall(out)
        except (OSError, ssl.SSLError, ConnectionError, h2.exceptions.H2Error):
            pass
        finally:
            s.close()

    def _requests(self, conn, sid, b):
        while True:
            end = b.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(b[:end + 4])
            lower = head.lower()
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
            body_len = int(m.group(1)) if m else 0
            if re.search(rb"\r\ntransfer-encoding:[^\r]*chunked", lower):
                body, used = H1Parser._chunked(b[end + 4:])
                if body is None:
                    return
                body_len = used
            if len(b) < end + 4 + body_len:
                return
            del b[:end + 4 + body_len]
            with self.lock:
                self.heads.append(head)
            resp = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % len(head) + head
            try:
                conn.send_data(sid, resp)
            except h2.exceptions.H2Error:
                return
