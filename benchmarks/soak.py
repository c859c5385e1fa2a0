#!/usr/bin/env python3
"""Soak: connection churn through the four stock stages for a long time (default ten minutes),
with the host's resident memory and open descriptors sampled, and every exchange checked.

The load is sssonector-bench -mode connect (50 loops of connect, one 64-byte echo, close) in
rounds of --round seconds, against `sssonector run` with tracker, ratelimit (a budget far above
the load), breaker and balancer in front of two echo upstreams. After each round it samples the
host's VmRSS and /proc/PID/fd, and prints one line; at the end the series, and whether memory and
descriptors stayed flat (last quarter against the first quarter). Not part of CI.

Usage: benchmarks/soak.py [--minutes 10] [--round 30] [--binaries .build/release]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def start(cmd, line):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        text = p.stdout.readline()
        if line in text:
            return p, text
    p.kill()
    sys.exit(f"{cmd[0]} did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--round", type=int, default=30)
    ap.add_argument("--binaries", default=None, help="folder with sssonector and sssonector-bench")
    args = ap.parse_args()
    bins = args.binaries or next(d for d in (f"{ROOT}/.build/release", f"{ROOT}/.build/debug")
                                 if os.path.exists(f"{d}/sssonector"))
    procs = []
    try:
        ports = []
        for _ in range(2):
            p, text = start([f"{bins}/sssonector-bench", "echo", "-listen", "127.0.0.1:0"], "listening on")
            procs.append(p)
            ports.append(int(text.strip().rsplit(":", 1)[1]))
        tmp = tempfile.mkdtemp()
        pipeline = {
            "version": 1, "name": "soak", "listen": {"address": "127.0.0.1:0"},
            "upstreams": [{"name": f"e{i}", "address": f"127.0.0.1:{port}"} for i, port in enumerate(ports)],
            "connection": {"max_connections": 10000},
            "stages": [
                {"name": "stats", "plugin": "tracker"},
                {"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 1e9, "default_burst": 1e9}},
                {"name": "breaker", "plugin": "breaker"},
                {"name": "lb", "plugin": "balancer", "config": {"health_check": "1s"}},
            ],
        }
        path = f"{tmp}/soak.json"
        with open(path, "w") as f:
            json.dump(pipeline, f)
        host, text = start([f"{bins}/sssonector", "run", "--log-level", "warning", path], "listening on")
        procs.append(host)
        port = int(text.strip().rsplit(":", 1)[1])
        series = []
        rss, fds = sample(host.pid)
        print(f"t=0s rss={rss}KiB fds={fds}")
        series.append((0, rss, fds, 0, 0))
        began = time.time()
        total_msgs = total_errors = 0
        while time.time() - began < args.minutes * 60:
            out = subprocess.run([f"{bins}/sssonector-bench", "-target", f"127.0.0.1:{port}", "-mode", "connect",
                                  "-connections", "50", "-duration", f"{args.round}s", "-warmup", "0s", "--json"],
                                 capture_output=True, text=True, timeout=args.round + 60).stdout
            result = json.loads(out)
            msgs = int(result.get("requests", 0))
            errors = sum(result.get("errors", {}).values()) if isinstance(result.get("errors"), dict) else int(result.get("errors", 0))
            total_msgs += msgs
            total_errors += errors
            rss, fds = sample(host.pid)
            t = int(time.time() - began)
            series.append((t, rss, fds, msgs, errors))
            print(f"t={t}s rss={rss}KiB fds={fds} connections={msgs} errors={errors}", flush=True)
        quarter = max(1, len(series) // 4)
        first = sorted(s[1] for s in series[1:quarter + 1])
        last = sorted(s[1] for s in series[-quarter:])
        print(f"connections checked: {total_msgs}, errors: {total_errors}")
        print(f"rss median first quarter {first[len(first) // 2]} KiB, last quarter {last[len(last) // 2]} KiB; "
              f"fds first {series[1][2]}, last {series[-1][2]}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
