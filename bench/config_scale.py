#!/usr/bin/env python3
"""The file mode at namespace scale (issue: config at namespace scale).

bench's own generator (runner.big_config: SERVICES Services x PODS pods, a DestinationRule with two
subsets and a 90/10 VirtualService each). Reports: `waypoint validate` wall time and peak RSS; start
to ready (/healthz/ready 200) and peak RSS (VmHWM) while loading; steady RSS above an idle waypoint
(same bootstrap, no Services) per endpoint; then one changed VirtualService weight, written and
replaced (the file watcher reloads): time until it is in force, the CPU it cost, and the peak RSS
over the reload.  Run: bench/config_scale.py BUILD_DIR [SERVICES] [PODS]
"""
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "bench"))
import runner  # noqa: E402


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(addr, path):
    try:
        return runner.http_get(addr, path, timeout=10)
    except OSError:
        return 0, ""


def start(build, path):
    t0 = time.monotonic()
    wp = subprocess.Popen([os.path.join(build, "waypoint"), "--config", path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    health = (runner.WP_ADMIN[0], 25021)
    while get(health, "/healthz/ready")[0] != 200:
        if wp.poll() is not None or time.monotonic() - t0 > 300:
            sys.exit("the waypoint did not become ready")
        time.sleep(0.005)
    return wp, time.monotonic() - t0


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    pods = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    d = tempfile.mkdtemp(prefix="wp-config-bench-")
    subprocess.run([os.path.join(build, "tests/wp-certgen"), "--out", d + "/certs"], check=True, capture_output=True)
    text = runner.big_config(d, services, pods)
    path = d + "/waypoint.yaml"
    with open(path, "w") as f:
        f.write(text)
    print(f"namespace: {services} services x {pods} pods, {len(text) / 1e6:.1f} MB of YAML")

    t = time.monotonic()
    v = subprocess.run(["/usr/bin/time", "-f", "%M", os.path.join(build, "waypoint"), "validate", "--config", path],
                       capture_output=True, text=True)
    wall = time.monotonic() - t
    print(f"validate: {wall * 1000:.0f} ms, peak RSS {int(v.stderr.split()[-1]) / 1024:.1f} MiB")

    with open(d + "/idle.yaml", "w") as f:
        f.write(runner.big_config(d, 0, 0))
    idle, _ = start(build, d + "/idle.yaml")
    time.sleep(3)  # the trim after loading
    idle_rss = status(idle.pid, "VmRSS")
    idle.terminate()
    idle.wait()

    wp, ready = start(build, path)
    print(f"start to ready: {ready * 1000:.0f} ms, peak RSS while loading {status(wp.pid, 'VmHWM') / 1024:.1f} MiB")
    time.sleep(3)
    rss = status(wp.pid, "VmRSS")
    endpoints = services * pods
    print(f"steady RSS {rss / 1024:.1f} MiB (idle {idle_rss / 1024:.1f} MiB): "
          f"{(rss - idle_rss) * 1024 / max(endpoints, 1):.0f} bytes per endpoint above idle")

    metrics = (runner.WP_ADMIN[0], 25020)

    def loads():  # the small metrics page, polled cheaply (/config_dump is megabytes here)
        for line in get(metrics, "/stats/prometheus")[1].splitlines():
            if line.startswith('waypoint_config_loads_total{result="ok"}'):
                return line.split()[-1]
        return None

    before = loads()
    with open(path + ".new", "w") as f:
        f.write(text.replace("weight: 90}", "weight: 80}", 1).replace("weight: 10}", "weight: 20}", 1))
    c0 = cpu_seconds(wp.pid)
    t = time.monotonic()
    os.replace(path + ".new", path)  # as an editor or the kubelet does; the file watcher reloads
    while loads() == before:
        if time.monotonic() - t > 60:
            sys.exit("the reload never arrived")
        time.sleep(0.005)
    took = time.monotonic() - t
    time.sleep(0.05)
    spent = cpu_seconds(wp.pid) - c0
    dump = get(runner.WP_ADMIN, "/clusters")[1]
    assert '"weight":80' in get(runner.WP_ADMIN, "/routes")[1], "the new weight is not served"
    print(f"one changed weight (file replaced; watcher debounce included): in force after {took * 1000:.0f} ms, "
          f"{spent * 1000:.0f} ms CPU, peak RSS over start and reload {status(wp.pid, 'VmHWM') / 1024:.1f} MiB "
          f"({len(dump)} bytes of /clusters)")
    wp.terminate()
    wp.wait()


if __name__ == "__main__":
    main()
