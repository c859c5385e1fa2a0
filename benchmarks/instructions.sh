#!/usr/bin/env bash
# User-space instructions per keep-alive request and per proxied connection through one host
# (README "Where the time goes"): the production build, stripped of debug info, under
# `valgrind --tool=callgrind`, one event loop, in front of `sssonector-bench echo`.
#   benchmarks/instructions.sh            # no stages
#   STAGES=4 benchmarks/instructions.sh   # the four stock stages, limits never reached
#   PROXY=haproxy benchmarks/instructions.sh   # HAProxy (mode tcp, nbthread 1), counted the same way
#   DATA_PATH=nio benchmarks/instructions.sh   # SSSonector's SwiftNIO data path (default: auto, epoll)
# Each figure is a difference of two runs of the same load (a short and a long one) over the
# difference of their counts, so start-up and connection set-up cancel out; instruction counts
# are exact and repeatable, unlike seconds on a shared machine. PROFILE=DIR keeps each long run's
# callgrind dump there (echo-host.out, connect-host.out) for callgrind_annotate. About 2 minutes.
source "$(dirname "$0")/common.sh"
source benchmarks/callgrind.sh  # common.sh moved to the repository root
set -e
command -v valgrind > /dev/null || sudo apt-get install -y valgrind > /dev/null
strip_host

"$R/sssonector-bench" echo -listen 127.0.0.1:0 > "$D/echo.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$D/echo.log" && break; sleep 0.1; done
ECHO_PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$D/echo.log")

stages='[]'
if [ "${STAGES:-0}" = 4 ]; then
  stages='[{"name": "stats", "plugin": "tracker"},
    {"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 1000000000, "default_burst": 1000000000}},
    {"name": "breaker", "plugin": "breaker", "config": {"max_failures": 5, "reset_timeout": "10s"}},
    {"name": "lb", "plugin": "balancer", "config": {"strategy": "round_robin", "health_check": "1s"}}]'
fi
cat > "$D/pipeline.json" <<JSON
{"version": 1, "name": "cg", "listen": {"address": "127.0.0.1:0"},
 "upstreams": [{"name": "echo", "address": "127.0.0.1:$ECHO_PORT"}],
 "connection": {"max_connections": 100000, "idle_timeout": "5m"}, "stages": $stages}
JSON
if [ "${PROXY:-sssonector}" = haproxy ]; then
  command -v haproxy > /dev/null || sudo apt-get install -y haproxy > /dev/null
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$D/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 5000
defaults
    mode tcp
    timeout connect 5s
    timeout client 5m
    timeout server 5m
frontend f
    bind 127.0.0.1:$PORT
    default_backend b
backend b
    server s 127.0.0.1:$ECHO_PORT
CFG
  counted host haproxy -db -f "$D/haproxy.cfg"
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
else
  counted host "$C/sssonector" run --threads 1 --log-level error --data-path "${DATA_PATH:-auto}" "$D/pipeline.json"
  for _ in $(seq 600); do grep -q "listening on" "$D/host.log" && break; sleep 0.1; done
  PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$D/host.log" | head -1)
fi
[ -n "$PORT" ] || { echo "the proxy did not start:" >&2; cat "$D/host.log" >&2; exit 1; }

echo "proxy: ${PROXY:-sssonector}, stages: ${STAGES:-0}, data path: ${DATA_PATH:-auto}"
echo "per keep-alive request (10 connections, 64-byte echo): $(per echo 10 2s 6s)"
echo "per connection (10 loops: connect, one 64-byte echo, close): $(per connect 10 3s 9s)"
