#!/usr/bin/env bash
# System calls per proxied connection and per keep-alive request through one proxy (README
# "Where the time goes"): the kernel's side of the work, which instruction counts do not show.
# Counted by `perf stat` on the syscalls:sys_enter_* tracepoints of the proxy's process (every
# thread), one event loop, in front of `sssonector-bench echo`. Needs root (tracepoints).
#   benchmarks/syscalls.sh                    # SSSonector, default data path
#   PROXY=haproxy benchmarks/syscalls.sh      # HAProxy (mode tcp, nbthread 1)
#   STAGES=4 / DATA_PATH=nio ...              # as for instructions.sh
# A count is exact for the load it saw, but how many events one epoll_wait collects depends on
# timing: compare epoll_wait between runs loosely, the rest exactly. About 20 seconds.
source "$(dirname "$0")/common.sh"
source benchmarks/one-proxy.sh
set -e
CALLS="accept4 socket connect setsockopt getsockopt fcntl epoll_wait epoll_ctl recvfrom sendto
       read write readv writev recvmsg sendmsg splice shutdown close futex timerfd_settime"
EVENTS=task-clock,context-switches,$(printf 'syscalls:sys_enter_%s,' $CALLS)raw_syscalls:sys_enter

start_echo
start_proxy

# Counts one load (mode, 10 connections, 3 s) of PROXY_PID: "name per-message" lines, every
# call that happened at least once per hundred messages, then the total of every system call.
count() {
  local before
  before=$(cut -d' ' -f14,15 "/proc/$PROXY_PID/stat")
  perf stat -x, -o "$D/perf.csv" -e "$EVENTS" -p "$PROXY_PID" -- \
    "$R/sssonector-bench" load -target "127.0.0.1:$PORT" -mode "$1" -connections 10 -duration 3s \
      -warmup 0 -payload 64 -threads 1 -json > "$D/load.json"
  python3 - "$D/perf.csv" "$D/load.json" "$before" "$(cut -d' ' -f14,15 "/proc/$PROXY_PID/stat")" <<'PY'
import json, sys
# utime and stime (fields 14 and 15 of /proc/PID/stat, sampled at each clock tick): the
# kernel's share of the proxy's CPU.
(u0, s0), (u1, s1) = (map(int, sys.argv[i].split()) for i in (3, 4))
n = json.load(open(sys.argv[2]))["requests"]
rows = [line.split(",") for line in open(sys.argv[1]) if line[:1].isdigit()]
cpu = next(float(r[0]) for r in rows if r[2] == "task-clock")  # milliseconds
switches = next(int(r[0]) for r in rows if r[2] == "context-switches")
rows = [r for r in rows if "sys_enter" in r[2]]
counts = {r[2].split("sys_enter_")[-1].replace("raw_syscalls:sys_enter", "all system calls"): int(r[0]) for r in rows}
total = counts.pop("all system calls")
for name, c in sorted(counts.items(), key=lambda kv: -kv[1]):
    if c * 100 >= n: print(f"    {name:16} {c / n:6.2f}")
print(f"    {'(all calls)':16} {total / n:6.2f}   ({n} messages)")
kernel = (s1 - s0) / max(1, (u1 - u0) + (s1 - s0))
print(f"    CPU {cpu * 1000 / n:.2f} us per message ({kernel:.0%} in the kernel), {switches / n:.2f} context switches")
PY
}

echo "proxy: ${PROXY:-sssonector}, stages: ${STAGES:-0}, data path: ${DATA_PATH:-auto}"
echo "per connection (10 loops: connect, one 64-byte echo, close):"
count connect
echo "per keep-alive request (10 connections, 64-byte echo):"
count echo
