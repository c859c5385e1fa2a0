#!/usr/bin/env bash
# The warm upstream pool, on and off, in one run: new-connection latency (connect until the
# echoed 64-byte message is back, sssonector-bench -mode connect) p50/p99 and connections/s,
# for a plain upstream and for a TLS one (a second sssonector host terminating mutual TLS: the
# two-host tunnel), on loopback and with a round trip added between the host and its upstream
# (sssonector-bench delay: user space, since tc netem is not available).
# Usage: benchmarks/warm-pool.sh [RTT ...]   (default: 0 20ms; 3 s runs after 2 s warm-up)
source "$(dirname "$0")/common.sh"
RTTS=("${@:-0 20ms}")
read -r -a RTTS <<< "${RTTS[*]}"
CONNS=${CONNS:-4}
$R/sssonector certs init --out $D/certs --name localhost > /dev/null
$R/sssonector-bench echo -listen 127.0.0.1:19701 -threads 1 > /dev/null 2>&1 & PIDS+=($!)
# The TLS server host (the tunnel's far end), in front of the echo upstream.
cat > $D/server.json <<JSON
{"version":1,"name":"server","listen":{"address":"127.0.0.1:19702","tls":{"cert":"certs/server.pem","key":"certs/server.key","client_ca":"certs/ca.pem"}},
 "upstreams":[{"name":"echo","address":"127.0.0.1:19701"}]}
JSON
$R/sssonector run --log-level error $D/server.json > $D/server.log 2>&1 & PIDS+=($!)
listening 19701; listening 19702
port=19710
printf "%-6s %-6s %-5s %10s %10s %10s %7s\n" rtt up pool p50_ms p99_ms conn/s errors
for rtt in "${RTTS[@]}"; do
  plain=19701; tls=19702
  if [ "$rtt" != 0 ]; then
    $R/sssonector-bench delay -listen 127.0.0.1:19703 -target 127.0.0.1:19701 -rtt $rtt > $D/delay-plain.log 2>&1 & PIDS+=($!)
    $R/sssonector-bench delay -listen 127.0.0.1:19704 -target 127.0.0.1:19702 -rtt $rtt > $D/delay-tls.log 2>&1 & PIDS+=($!)
    plain=19703; tls=19704
    listening 19703; listening 19704
  fi
  for up in plain tls; do
    for pool in off on; do
      port=$((port + 1))
      target=$([ $up = plain ] && echo $plain || echo $tls)
      tlsopt=$([ $up = tls ] && echo ',"tls":{"ca":"certs/ca.pem","cert":"certs/client.pem","key":"certs/client.key","server_name":"localhost"}' || echo '')
      enabled=$([ $pool = on ] && echo true || echo false)
      cat > $D/host-$port.json <<JSON
{"version":1,"name":"edge","listen":{"address":"127.0.0.1:$port"},
 "upstreams":[{"name":"u","address":"127.0.0.1:$target"$tlsopt}],
 "connection":{"pool":{"enabled":$enabled,"min_idle":2}}}
JSON
      $R/sssonector run --log-level ${HOST_LOG_LEVEL:-error} $D/host-$port.json > $D/host-$port.log 2>&1 & H=$!
      listening $port; sleep 1
      out=$($R/sssonector-bench -target 127.0.0.1:$port -mode connect -connections $CONNS -payload 64 -duration 3s -warmup 2s --json)
      kill $H; wait $H 2>/dev/null
      if echo "$out" | grep -q "\"errors\" *: *[1-9]"; then echo "errors; the host said:" >&2; grep -v "connection closed" $D/host-$port.log $D/delay-*.log >&2; echo "$out" >&2; fi
      echo "$out" | python3 -c "
import json, sys
d = json.load(sys.stdin)
l = d['latency_us']
print('%-6s %-6s %-5s %10.2f %10.2f %10.0f %7d' % ('$rtt', '$up', '$pool', l['p50'] / 1000, l['p99'] / 1000, d['requests_per_second'], d['errors']))"
    done
  done
done
