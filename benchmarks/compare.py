#!/usr/bin/env python3
"""Side-by-side comparison on loopback: direct, HAProxy (mode tcp), nginx stream, and SSSonector
with no stages and with the four stock stages. Same load, same machine, one run.

Loads (all from sssonector-bench, so every target sees the same client):
  echo      keep-alive request/response: requests/s and p50/p99 latency
  connect   a new connection per request: connections/s
  bulk1     one stream into a sink: MB/s
  bulk8     eight streams into a sink: MB/s
Also: proxy CPU time per request (echo) and per connection (connect) from /proc, and resident
memory per idle connection with 1000 idle connections held.

Each figure is the median of --reps runs. --pinning pinned puts the proxy on CPU 0 (one thread
or worker) and the load on CPU 1; unpinned leaves both to the scheduler. Every process started
is stopped at the end. Debian packages only: installs haproxy and nginx (with the stream module)
with apt-get when missing.

Usage: benchmarks/compare.py [--quick] [--reps 3] [--duration 5] [--pinning pinned|unpinned|both]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCS = []


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def ensure_packages():
    missing = [p for p, exe in (("haproxy", "haproxy"), ("nginx", "nginx")) if not shutil.which(exe) and not os.path.exists(f"/usr/sbin/{exe}")]
    stream_module = os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so")
    if not stream_module:
        missing.append("libnginx-mod-stream")
    if missing:
        print(f"installing {' '.join(missing)} ...", file=sys.stderr)
        sh("apt-get update -qq", stdout=subprocess.DEVNULL)
        sh(["apt-get", "install", "-y", "-qq"] + missing, stdout=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(cmd, cpu=None, wait_line=None, wait_port=None):
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    PROCS.append(p)
    line = ""
    if wait_line:
        line = p.stdout.readline()
        if wait_line not in line:
            raise RuntimeError(f"{cmd[0]} did not start: {line!r}")
    if wait_port:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", wait_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
    return p, line


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cpu_seconds(pid):
    """utime+stime of a process and its children threads, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pids):
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def proxy_pids(p):
    """The proxy's process and its children (nginx workers)."""
    out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    return [p.pid] + [int(x) for x in out]


class Bench:
    def __init__(self, binary, load_cpu):
        self.binary = binary
        self.load_cpu = load_cpu

    def run(self, target_port, mode, connections, payload, seconds, warmup):
        cmd = [self.binary, "-target", f"127.0.0.1:{target_port}", "-mode", mode, "-connections", str(connections),
               "-payload", str(payload), "-duration", f"{seconds}s", "-warmup", f"{warmup}s", "--json"]
        if self.load_cpu is not None:
            cmd = ["taskset", "-c", str(self.load_cpu)] + cmd + ["-threads", "1"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def start_targets(tmp, echo_port, sink_port, pinned, release_bin):
    """Starts every proxy twice (echo and sink upstreams); returns {name: (echo_port, sink_port, [procs])}."""
    cpu = 0 if pinned else None
    threads = 1 if pinned else os.cpu_count()
    targets = {"direct": (echo_port, sink_port, [])}

    # HAProxy
    ports = []
    procs = []
    for upstream in (echo_port, sink_port):
        port = free_port()
        cfg = write(f"{tmp}/haproxy-{upstream}.cfg", f"""
global
    nbthread {threads}
    maxconn 5000
defaults
    mode tcp
    timeout connect 5s
    timeout client 5m
    timeout server 5m
frontend f
    bind 127.0.0.1:{port}
    default_backend b
backend b
    server s 127.0.0.1:{upstream}
""")
        p, _ = start(["haproxy", "-db", "-f", cfg], cpu=cpu, wait_port=port)
        ports.append(port)
        procs.append(p)
    targets["haproxy"] = (ports[0], ports[1], procs)

    # nginx stream
    ports, procs = [], []
    for upstream in (echo_port, sink_port):
        port = free_port()
        cfg = write(f"{tmp}/nginx-{upstream}.conf", f"""
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process on;
worker_processes {threads};
pid {tmp}/nginx-{upstream}.pid;
error_log {tmp}/nginx-{upstream}.log error;
events {{ worker_connections 20000; }}
stream {{ server {{ listen 127.0.0.1:{port}; proxy_pass 127.0.0.1:{upstream}; proxy_timeout 5m; }} }}
""")
        p, _ = start(["nginx", "-c", cfg, "-p", tmp], cpu=cpu, wait_port=port)
        ports.append(port)
        procs.append(p)
    targets["nginx"] = (ports[0], ports[1], procs)

    stages = """[
      {"name": "stats", "plugin": "tracker"},
      {"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 1000000000, "default_burst": 1000000000}},
      {"name": "breaker", "plugin": "breaker", "config": {"max_failures": 5, "reset_timeout": "10s"}},
      {"name": "lb", "plugin": "balancer", "config": {"strategy": "round_robin", "health_check": "1s"}}]"""
    for name, stage_list in (("sssonector", "[]"), ("sssonector+4", stages)):
        ports, procs = [], []
        for upstream in (echo_port, sink_port):
            cfg = write(f"{tmp}/{name}-{upstream}.json", json.dumps({
                "version": 1, "name": "bench", "listen": {"address": "127.0.0.1:0"},
                "upstreams": [{"name": "u", "address": f"127.0.0.1:{upstream}"}],
                "connection": {"max_connections": 100000, "idle_timeout": "5m"},
                "stages": json.loads(stage_list)}))
            p, line = start([f"{release_bin}/sssonector", "run", "--threads", str(threads), "--log-level", "error", cfg],
                            cpu=cpu, wait_line="listening on")
            ports.append(int(line.strip().rsplit(":", 1)[1]))
            procs.append(p)
        targets[name] = (ports[0], ports[1], procs)
    return targets


def idle_memory(port, pids, count=1000):
    before = rss_kib(pids)
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"x")
        s.recv(1)
        socks.append(s)
    time.sleep(0.5)
    after = rss_kib(pids)
    for s in socks:
        s.close()
    return (after - before) / count


def measure(targets, bench, args):
    results = {}
    for name, (echo_port, sink_port, procs) in targets.items():
        print(f"  measuring {name} ...", file=sys.stderr)
        rows = {k: [] for k in ("echo_rps", "echo_p50", "echo_p99", "connect_cps", "bulk1", "bulk8", "cpu_req_us", "cpu_conn_us", "idle_kib")}
        echo_pids = proxy_pids(procs[0]) if procs else []
        for _ in range(args.reps):
            c0 = sum(cpu_seconds(p) for p in echo_pids)
            r = bench.run(echo_port, "echo", 50, 512, args.duration, args.warmup)
            c1 = sum(cpu_seconds(p) for p in echo_pids)
            rows["echo_rps"].append(r["requests_per_second"])
            rows["echo_p50"].append(r["latency_us"]["p50"])
            rows["echo_p99"].append(r["latency_us"]["p99"])
            # CPU over the whole run (warmup included) per request of the whole run.
            total_requests = r["requests_per_second"] * (args.duration + args.warmup)
            if echo_pids and total_requests > 0:
                rows["cpu_req_us"].append((c1 - c0) / total_requests * 1e6)
            c0 = sum(cpu_seconds(p) for p in echo_pids)
            r = bench.run(echo_port, "connect", 50, 64, args.duration, args.warmup)
            c1 = sum(cpu_seconds(p) for p in echo_pids)
            rows["connect_cps"].append(r["requests_per_second"])
            if echo_pids and r["requests_per_second"] > 0:
                rows["cpu_conn_us"].append((c1 - c0) / (r["requests_per_second"] * (args.duration + args.warmup)) * 1e6)
            rows["bulk1"].append(bench.run(sink_port, "bulk", 1, 65536, args.duration, args.warmup)["megabytes_per_second"])
            rows["bulk8"].append(bench.run(sink_port, "bulk", 8, 65536, args.duration, args.warmup)["megabytes_per_second"])
            if echo_pids:
                rows["idle_kib"].append(idle_memory(echo_port, echo_pids))
        results[name] = {k: statistics.median(v) if v else None for k, v in rows.items()}
    return results


def table(results, title):
    cols = [("echo_rps", "req/s", "{:.0f}"), ("echo_p50", "p50 us", "{:.0f}"), ("echo_p99", "p99 us", "{:.0f}"),
            ("connect_cps", "conn/s", "{:.0f}"), ("bulk1", "bulk1 MB/s", "{:.0f}"), ("bulk8", "bulk8 MB/s", "{:.0f}"),
            ("cpu_req_us", "CPU us/req", "{:.1f}"), ("cpu_conn_us", "CPU us/conn", "{:.1f}"), ("idle_kib", "KiB/idle", "{:.1f}")]
    lines = [f"### {title}", "", "| target | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(r[k]) if r[k] is not None else "-" for k, _, fmt in cols) + " |")
    hap, direct = results.get("haproxy"), results.get("direct")
    lines += ["", "Ratios (SSSonector ÷ HAProxy; ÷ direct in brackets):", ""]
    for name in ("sssonector", "sssonector+4"):
        r = results[name]
        parts = []
        for k, label, _ in cols:
            if r[k] is None or hap[k] in (None, 0):
                continue
            d = f" [{r[k] / direct[k]:.2f}]" if direct.get(k) else ""
            parts.append(f"{label} {r[k] / hap[k]:.2f}{d}")
        lines.append(f"- {name}: " + ", ".join(parts))
    stages, none = results["sssonector+4"], results["sssonector"]
    lines.append(f"- four stock stages vs none: req/s {stages['echo_rps'] / none['echo_rps']:.3f}, "
                 f"conn/s {stages['connect_cps'] / none['connect_cps']:.3f}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--pinning", choices=["pinned", "unpinned", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="one repetition of 2 s each")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.duration, args.warmup = 1, 2, 1
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1000 idle connections per proxy and more
    ensure_packages()
    sh(["swift", "build", "-c", "release"], cwd=ROOT, stdout=subprocess.DEVNULL)
    release_bin = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout.strip()
    bench_bin = f"{release_bin}/sssonector-bench"
    out = []
    try:
        for pinned in ([True, False] if args.pinning == "both" else [args.pinning == "pinned"]):
            with tempfile.TemporaryDirectory() as tmp:
                upstream_cpu = 1 if pinned else None
                _, line = start([bench_bin, "echo", "-listen", "127.0.0.1:0", "-threads", "1"], cpu=upstream_cpu, wait_line="listening on")
                echo_port = int(line.strip().rsplit(":", 1)[1])
                _, line = start([bench_bin, "echo", "-listen", "127.0.0.1:0", "-mode", "sink", "-threads", "1"], cpu=upstream_cpu, wait_line="listening on")
                sink_port = int(line.strip().rsplit(":", 1)[1])
                targets = start_targets(tmp, echo_port, sink_port, pinned, release_bin)
                results = measure(targets, Bench(bench_bin, 1 if pinned else None), args)
                title = ("pinned: proxy on CPU 0 (1 thread/worker), load and upstream on CPU 1" if pinned
                         else "unpinned: proxies use every core, scheduler places everything")
                out.append(table(results, title))
                print(out[-1], flush=True)
                for p in PROCS:
                    stop(p)
                PROCS.clear()
    finally:
        for p in PROCS:
            stop(p)
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs ({cpu.group(1) if cpu else 'unknown'}), "
          f"reps {args.reps}, {args.duration:g} s each after {args.warmup:g} s warmup")


if __name__ == "__main__":
    main()
