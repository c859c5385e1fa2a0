#!/usr/bin/env bash
# User-space instructions of the two-host mutual-TLS tunnel (plain -> TLS -> plain), both hosts
# counted together, per 16 KiB echo request and per tunnelled connection, next to the stunnel
# pair doing the same (README "Where the time goes", "The TLS tunnel"). Both run under
# `valgrind --tool=callgrind` with one event loop (stunnel: its own threads, summed), in front
# of `sssonector-bench echo`, on the certificates of `sssonector certs init`.
#   benchmarks/tunnel-instructions.sh                 # sssonector's two hosts
#   TUNNEL=stunnel benchmarks/tunnel-instructions.sh  # two stunnel4 processes
#   PROFILE=DIR ...                                   # keep the dumps for callgrind_annotate
# Figures are differences of a short and a long run (benchmarks/callgrind.sh). About 3 minutes.
source "$(dirname "$0")/common.sh"
source benchmarks/callgrind.sh  # common.sh moved to the repository root
set -e
command -v valgrind > /dev/null || apt-get install -y valgrind > /dev/null
strip_host
"$R/sssonector" certs init --out "$D/certs" --name localhost > /dev/null
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ECHO_PORT=$(free_port) SERVER_PORT=$(free_port) PORT=$(free_port)
"$R/sssonector-bench" echo -listen "127.0.0.1:$ECHO_PORT" -threads 1 > "$D/echo.log" 2>&1 &
PIDS+=($!)
listening "$ECHO_PORT"

if [ "${TUNNEL:-sssonector}" = stunnel ]; then
  source benchmarks/stunnel.sh
  stunnel_configs "$ECHO_PORT" "$SERVER_PORT" "$PORT"
  counted server stunnel4 "$D/stunnel-server.conf"
  counted client stunnel4 "$D/stunnel-client.conf"
else
  cat > "$D/server.json" <<JSON
{"version": 1, "name": "ts", "listen": {"address": "127.0.0.1:$SERVER_PORT",
  "tls": {"cert": "certs/server.pem", "key": "certs/server.key", "client_ca": "certs/ca.pem"}},
 "upstreams": [{"name": "e", "address": "127.0.0.1:$ECHO_PORT"}],
 "connection": {"max_connections": 100000, "idle_timeout": "5m"}}
JSON
  cat > "$D/client.json" <<JSON
{"version": 1, "name": "tc", "listen": {"address": "127.0.0.1:$PORT"},
 "upstreams": [{"name": "r", "address": "127.0.0.1:$SERVER_PORT",
   "tls": {"ca": "certs/ca.pem", "cert": "certs/client.pem", "key": "certs/client.key", "server_name": "localhost"}}],
 "connection": {"max_connections": 100000, "idle_timeout": "5m"}}
JSON
  counted server "$C/sssonector" run --threads 1 --log-level error "$D/server.json"
  counted client "$C/sssonector" run --threads 1 --log-level error "$D/client.json"
fi
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$SERVER_PORT") 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

echo "tunnel: ${TUNNEL:-sssonector} (both ends summed)"
PAYLOAD=16384
echo "per 16 KiB echo request (10 connections): $(per echo 10 3s 9s)"
PAYLOAD=64
echo "per connection (10 loops: connect, one 64-byte echo, close): $(per connect 10 4s 12s)"
