# Sourced by the per-connection counting scripts (instructions.sh, syscalls.sh), after common.sh:
# `sssonector-bench echo` and one proxy in front of it, each with one event loop.
#   start_echo                   # sets ECHO_PORT
#   start_proxy [WRAPPER...]     # sets PORT and PROXY_PID; WRAPPER runs the proxy (e.g. `counted host`)
# PROXY=haproxy selects HAProxy (mode tcp, nbthread 1) instead of SSSonector; STAGES=4 gives
# SSSonector the four stock stages (limits never reached); DATA_PATH picks its data path
# (default: auto, the epoll path for plain TCP). HOST_BIN overrides the host binary.

start_echo() {
  "$R/sssonector-bench" echo -listen 127.0.0.1:0 > "$D/echo.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$D/echo.log" && break; sleep 0.1; done
  ECHO_PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$D/echo.log")
}

start_proxy() {
  local stages='[]'
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
    command -v haproxy > /dev/null || apt-get install -y haproxy > /dev/null
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
    "$@" haproxy -db -f "$D/haproxy.cfg" > "$D/host.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=($!)
    for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  else
    "$@" "${HOST_BIN:-$R/sssonector}" run --threads 1 --log-level error --data-path "${DATA_PATH:-auto}" "$D/pipeline.json" > "$D/host.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=($!)
    for _ in $(seq 600); do grep -q "listening on" "$D/host.log" && break; sleep 0.1; done
    PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$D/host.log" | head -1)
  fi
  [ -n "$PORT" ] || { echo "the proxy did not start:" >&2; cat "$D/host.log" >&2; exit 1; }
}
