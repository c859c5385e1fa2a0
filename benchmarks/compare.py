#!/usr/bin/env python3
"""Side-by-side comparison on loopback: direct, HAProxy (mode tcp), nginx stream, and SSSonector
with no stages and with the four stock stages. Same loads, same machine, one run.

SSSonector runs on each of its data paths (--data-paths: nio, the SwiftNIO channels, and epoll,
its own loops; sssonector-epoll in the tables).

Loads (the same client for every target):
  http      wrk, 50 keep-alive connections against a small HTTP upstream (nginx `return 200`):
            requests/s and p50/p99 latency
  connect   sssonector-bench -mode connect, 50 loops of connect, one 64-byte echo, close:
            connections/s
  bulk1     iperf3, one stream: MB/s received by the iperf3 server
  bulk8     iperf3 -P 8, eight streams: MB/s
Also: proxy CPU time (from /proc) per request (http) and per connection (connect), and resident
memory per idle connection with 1000 idle connections held (measured once, first, on the fresh
process).

Each figure is the median of --reps runs. --pinning pinned puts the proxy on CPU 0 (one thread
or worker) and the load and the upstreams on CPU 1; unpinned leaves both to the scheduler. Every
process started is stopped at the end. Debian packages only: installs haproxy, nginx (with the
stream module), wrk and iperf3 with apt-get when missing.

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


def run_load(cmd, timeout=120):
    """Runs a load generator; on failure (or if it runs past `timeout` seconds) the error
    carries what it printed."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {done.returncode}: {(done.stdout + done.stderr).strip()[-500:]}")
    return done.stdout


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def ensure_packages():
    missing = [p for p, exe in (("haproxy", "haproxy"), ("nginx", "nginx"), ("wrk", "wrk"), ("iperf3", "iperf3"))
               if not shutil.which(exe) and not os.path.exists(f"/usr/sbin/{exe}")]
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


LOGS = []  # files holding the stderr of SSSonector's hosts, shown when a run fails


def start(cmd, cpu=None, wait_line=None, wait_port=None, log=None):
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    # stdout is read only up to the line waited for; otherwise it goes nowhere (a pipe nobody
    # reads fills up and blocks the process: iperf3 -s prints a report per test). stderr goes
    # to `log` when given (a file, which never blocks the writer), else nowhere.
    errors = open(log, "w") if log else subprocess.DEVNULL
    if log:
        LOGS.append(log)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE if wait_line else subprocess.DEVNULL,
                         stderr=errors, text=True)
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


def show_logs():
    """Prints what SSSonector's hosts wrote (at --log-level error) to stderr."""
    for log in LOGS:
        text = open(log).read() if os.path.exists(log) else ""
        if text:
            print(f"--- {os.path.basename(log)}:\n{text[-3000:]}", file=sys.stderr)


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


class Loads:
    """The load generators, on CPU `load_cpu` when pinned."""

    def __init__(self, bench_binary, load_cpu):
        self.bench_binary = bench_binary
        self.load_cpu = load_cpu

    def _cmd(self, cmd):
        return ["taskset", "-c", str(self.load_cpu)] + cmd if self.load_cpu is not None else cmd

    def connect(self, port, seconds, warmup):
        """sssonector-bench connect mode: a new connection per 64-byte exchange."""
        cmd = [self.bench_binary, "-target", f"127.0.0.1:{port}", "-mode", "connect", "-connections", "50",
               "-payload", "64", "-duration", f"{seconds}s", "-warmup", f"{warmup}s", "--json"]
        if self.load_cpu is not None:
            cmd += ["-threads", "1"]
        out = run_load(self._cmd(cmd))
        return json.loads(out.strip().splitlines()[-1])["requests_per_second"]

    def http(self, port, seconds, warmup):
        """wrk keep-alive load: (requests/s, p50 us, p99 us, requests in all)."""
        threads = "1" if self.load_cpu is not None else "2"
        if warmup > 0:
            run_load(self._cmd(["wrk", "-t", threads, "-c", "50", "-d", f"{int(warmup)}s", f"http://127.0.0.1:{port}/"]))
        out = run_load(self._cmd(["wrk", "-t", threads, "-c", "50", "-d", f"{int(seconds)}s", "--latency",
                                  f"http://127.0.0.1:{port}/"]))
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
        if errors:
            raise RuntimeError(f"wrk saw errors through port {port}: {errors.group(0)}")
        rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        return rps, wrk_latency_us(out, "50%"), wrk_latency_us(out, "99%"), total

    def bulk(self, port, streams, seconds):
        """iperf3 client: MB/s the server received. The iperf3 server takes one test at a time
        and refuses ("the server is busy") while another connection is on it, such as the
        balancer's health check in the +4 rows: such a run is tried again, at most twice."""
        for attempt in range(3):
            out = run_load(self._cmd(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-P", str(streams), "-t", str(int(seconds)),
                                      "-O", "1", "-J"]))
            report = json.loads(out)
            if "sum_received" in report.get("end", {}):
                return report["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
            print(f"  iperf3 through port {port}: {report.get('error', 'no result')}; again", file=sys.stderr)
            time.sleep(1)
        raise RuntimeError(f"iperf3 through port {port} gave no result three times: {report.get('error')}")


def wrk_latency_us(out, percentile):
    m = re.search(rf"^\s*{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


UPSTREAMS = ("echo", "bulk", "http")


def start_upstreams(tmp, cpu, bench_bin):
    """The echo upstream (connect loads, idle connections), an iperf3 server (bulk) and an nginx
    HTTP server answering every request with a small 200 (wrk)."""
    _, line = start([bench_bin, "echo", "-listen", "127.0.0.1:0", "-threads", "1"], cpu=cpu, wait_line="listening on")
    echo = int(line.strip().rsplit(":", 1)[1])
    bulk = free_port()
    start(["iperf3", "-s", "-p", str(bulk)], cpu=cpu, wait_port=bulk)
    http = free_port()
    cfg = write(f"{tmp}/nginx-http.conf", f"""
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx-http.pid;
error_log {tmp}/nginx-http.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    server {{ listen 127.0.0.1:{http}; location / {{ return 200 "hello from the upstream\\n"; }} }}
}}
""")
    start(["nginx", "-c", cfg, "-p", tmp], cpu=cpu, wait_port=http)
    return {"echo": echo, "bulk": bulk, "http": http}


def start_targets(tmp, upstreams, pinned, release_bin, data_paths):
    """Starts each proxy once, with one listener per upstream; returns {name: ({load: port}, proc)}."""
    cpu = 0 if pinned else None
    threads = 1 if pinned else os.cpu_count()
    targets = {"direct": (dict(upstreams), None)}

    # HAProxy as shipped, and with its best setting for bulk: splice(2) between the sockets
    # once 4 KiB are pending (`option splice-auto`, off by default). Ratios use the better row.
    for name, options in (("haproxy", ""), ("haproxy-splice", "    option splice-auto\n")):
        ports = {u: free_port() for u in UPSTREAMS}
        sections = "".join(f"""
frontend f_{u}
    bind 127.0.0.1:{ports[u]}
    default_backend b_{u}
backend b_{u}
    server s 127.0.0.1:{upstreams[u]}
""" for u in UPSTREAMS)
        cfg = write(f"{tmp}/{name}.cfg", f"""
global
    nbthread {threads}
    maxconn 5000
defaults
    mode tcp
{options}    timeout connect 5s
    timeout client 5m
    timeout server 5m
{sections}""")
        p, _ = start(["haproxy", "-db", "-f", cfg], cpu=cpu, wait_port=ports["http"])
        targets[name] = (ports, p)

    ports = {u: free_port() for u in UPSTREAMS}
    servers = " ".join(f"server {{ listen 127.0.0.1:{ports[u]}; proxy_pass 127.0.0.1:{upstreams[u]}; proxy_timeout 5m; }}"
                       for u in UPSTREAMS)
    cfg = write(f"{tmp}/nginx-stream.conf", f"""
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process on;
worker_processes {threads};
pid {tmp}/nginx-stream.pid;
error_log {tmp}/nginx-stream.log error;
events {{ worker_connections 20000; }}
stream {{ {servers} }}
""")
    p, _ = start(["nginx", "-c", cfg, "-p", tmp], cpu=cpu, wait_port=ports["http"])
    targets["nginx"] = (ports, p)

    stages = """[
      {"name": "stats", "plugin": "tracker"},
      {"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 1000000000, "default_burst": 1000000000}},
      {"name": "breaker", "plugin": "breaker", "config": {"max_failures": 5, "reset_timeout": "10s"}},
      {"name": "lb", "plugin": "balancer", "config": {"strategy": "round_robin", "health_check": "1s"}}]"""
    variants = [(path, suffix, stage_list) for path in data_paths for suffix, stage_list in (("", "[]"), ("+4", stages))]
    for path, suffix, stage_list in variants:
        name = sssonector_name(path, suffix)
        files = []
        for u in UPSTREAMS:
            files.append(write(f"{tmp}/{name}-{u}.json", json.dumps({
                "version": 1, "name": f"bench-{u}", "listen": {"address": "127.0.0.1:0"},
                "upstreams": [{"name": u, "address": f"127.0.0.1:{upstreams[u]}"}],
                "connection": {"max_connections": 100000, "idle_timeout": "5m"},
                "stages": json.loads(stage_list)})))
        p, line = start([f"{release_bin}/sssonector", "run", "--threads", str(threads), "--log-level", "error",
                         "--data-path", path] + files,
                        cpu=cpu, wait_line="listening on", log=f"{tmp}/{name}.log")
        lines = [line] + [p.stdout.readline() for _ in UPSTREAMS[1:]]
        ports = {}
        for text in lines:  # "pipeline bench-http listening on 127.0.0.1:PORT"
            m = re.search(r"bench-(\w+).*:(\d+)\s*$", text)
            ports[m.group(1)] = int(m.group(2))
        targets[name] = (ports, p)
    return targets


def sssonector_name(path, suffix):
    """sssonector (the SwiftNIO path) or sssonector-epoll, with +4 for the four stock stages."""
    return "sssonector" + ("-epoll" if path == "epoll" else "") + suffix


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


def measure(targets, loads, args):
    """Each repetition runs each load against every target in turn, before the next load: this
    VM's speed moves by tens of percent within minutes, so the figures compared with each other
    are taken within seconds of each other, and the drift spreads over all targets instead of
    landing on whichever was measured at a bad moment. The order of the targets rotates with
    each repetition."""
    rows = {name: {k: [] for k in ("http_rps", "http_p50", "http_p99", "connect_cps", "bulk1", "bulk8", "cpu_req_us", "cpu_conn_us", "idle_kib")}
            for name in targets}
    for name, (ports, proc) in targets.items():
        pids = proxy_pids(proc) if proc else []
        if pids:
            # Once, first, on the fresh process: after the loads (or a first round of idle
            # connections) the allocator reuses freed memory and the growth reads near zero.
            rows[name]["idle_kib"].append(idle_memory(ports["echo"], pids))
    names = list(targets)
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for load in (measure_http, measure_connect, measure_bulk):
            for name in order:
                ports, proc = targets[name]
                print(f"  {load.__name__[8:]}: {name}, repetition {rep + 1} ...", file=sys.stderr)
                load(rows[name], ports, proxy_pids(proc) if proc else [], loads, args)
    return {name: {k: statistics.median(v) if v else None for k, v in r.items()} for name, r in rows.items()}


def proxy_cpu(pids):
    return sum(cpu_seconds(p) for p in pids)


def measure_http(rows, ports, pids, loads, args):
    """Keep-alive HTTP requests: rate, latency and the proxy's CPU per request."""
    c0 = proxy_cpu(pids)
    rps, p50, p99, requests = loads.http(ports["http"], args.duration, 0)
    c1 = proxy_cpu(pids)
    rows["http_rps"].append(rps)
    rows["http_p50"].append(p50)
    rows["http_p99"].append(p99)
    if pids and requests:
        rows["cpu_req_us"].append((c1 - c0) / requests * 1e6)


def measure_connect(rows, ports, pids, loads, args):
    """New connections: rate and the proxy's CPU per connection."""
    c0 = proxy_cpu(pids)
    cps = loads.connect(ports["echo"], args.duration, 0)
    c1 = proxy_cpu(pids)
    rows["connect_cps"].append(cps)
    if pids and cps > 0:
        rows["cpu_conn_us"].append((c1 - c0) / (cps * args.duration) * 1e6)


def measure_bulk(rows, ports, pids, loads, args):
    """Bulk transfer, one stream and eight."""
    rows["bulk1"].append(loads.bulk(ports["bulk"], 1, args.duration))
    rows["bulk8"].append(loads.bulk(ports["bulk"], 8, args.duration))


def table(results, title):
    cols = [("http_rps", "req/s", "{:.0f}"), ("http_p50", "p50 us", "{:.0f}"), ("http_p99", "p99 us", "{:.0f}"),
            ("connect_cps", "conn/s", "{:.0f}"), ("bulk1", "bulk1 MB/s", "{:.0f}"), ("bulk8", "bulk8 MB/s", "{:.0f}"),
            ("cpu_req_us", "CPU us/req", "{:.1f}"), ("cpu_conn_us", "CPU us/conn", "{:.1f}"), ("idle_kib", "KiB/idle", "{:.1f}")]
    lines = [f"### {title}", "", "| target | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(r[k]) if r[k] is not None else "-" for k, _, fmt in cols) + " |")
    direct = results.get("direct")
    # The better HAProxy figure of its two settings: higher for rates, lower for times and costs.
    lower_is_better = {"http_p50", "http_p99", "cpu_req_us", "cpu_conn_us", "idle_kib"}
    rows = [results[n] for n in ("haproxy", "haproxy-splice") if n in results]
    hap = {}
    for k, _, _ in cols:
        values = [r[k] for r in rows if r[k] is not None]
        hap[k] = (min(values) if k in lower_is_better else max(values)) if values else None
    lines += ["", "Ratios (SSSonector ÷ HAProxy's better setting, default or splice-auto; ÷ direct in brackets):", ""]
    names = [n for n in results if n.startswith("sssonector")]
    for name in names:
        r = results[name]
        parts = []
        for k, label, _ in cols:
            if r[k] is None or hap[k] in (None, 0):
                continue
            d = f" [{r[k] / direct[k]:.2f}]" if direct.get(k) else ""
            parts.append(f"{label} {r[k] / hap[k]:.2f}{d}")
        lines.append(f"- {name}: " + ", ".join(parts))
    for name in names:
        if name.endswith("+4") or f"{name}+4" not in results:
            continue
        stages, none = results[f"{name}+4"], results[name]
        lines.append(f"- {name}, four stock stages vs none: req/s {stages['http_rps'] / none['http_rps']:.3f}, "
                     f"conn/s {stages['connect_cps'] / none['connect_cps']:.3f}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--pinning", choices=["pinned", "unpinned", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="one repetition of 2 s each")
    ap.add_argument("--data-paths", default="nio,epoll", help="SSSonector's data paths to measure (nio, epoll)")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.duration, args.warmup = 1, 2, 1
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1000 idle connections per proxy and more
    ensure_packages()
    build = [f"{ROOT}/scripts/build-release.sh"]  # the production build (exclusivity checks off everywhere)
    sh(build, cwd=ROOT, stdout=subprocess.DEVNULL)
    release_bin = subprocess.run(build + ["--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    bench_bin = f"{release_bin}/sssonector-bench"
    out = []
    try:
        for pinned in ([True, False] if args.pinning == "both" else [args.pinning == "pinned"]):
            with tempfile.TemporaryDirectory() as tmp:
                upstreams = start_upstreams(tmp, 1 if pinned else None, bench_bin)
                targets = start_targets(tmp, upstreams, pinned, release_bin, args.data_paths.split(","))
                try:
                    results = measure(targets, Loads(bench_bin, 1 if pinned else None), args)
                except Exception:
                    show_logs()  # before the folder with the logs goes
                    raise
                title = ("pinned: proxy on CPU 0 (1 thread/worker), load and upstreams on CPU 1" if pinned
                         else "unpinned: proxies use every core, scheduler places everything")
                out.append(table(results, title))
                print(out[-1] + "\n", flush=True)
                for p in PROCS:
                    stop(p)
                PROCS.clear()
                LOGS.clear()
    finally:
        for p in PROCS:
            stop(p)
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs ({cpu.group(1) if cpu else 'unknown'}), "
          f"reps {args.reps}, {args.duration:g} s each after {args.warmup:g} s warmup")


if __name__ == "__main__":
    main()
