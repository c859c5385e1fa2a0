#!/usr/bin/env bash
# The mutual-TLS tunnel (two sssonector hosts) next to stunnel (two stunnel4 processes) on
# loopback: same certificates (from `sssonector certs init`), same echo upstream, same loads
# (sssonector-bench: 20 echo connections with 16 KiB messages, and connection churn), and the
# client host once more with its warm pool on (its best setting for new connections).
# Usage: benchmarks/tunnel-vs-stunnel.sh   (installs stunnel4 with apt-get when missing)
set -u
cd "$(dirname "$0")/.."
scripts/build-release.sh > /dev/null
R=$(scripts/build-release.sh --show-bin-path)
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
rm -rf $D/certs; $R/sssonector certs init --out $D/certs --name localhost > /dev/null
$R/sssonector-bench echo -listen 127.0.0.1:19601 -threads 1 > /dev/null 2>&1 & E=$!
source benchmarks/stunnel.sh
stunnel_configs 19601 19611 19612
stunnel4 $D/stunnel-server.conf > /dev/null 2>&1 & S1=$!
stunnel4 $D/stunnel-client.conf > /dev/null 2>&1 & S2=$!
cat > $D/server.json <<JSON
{"version":1,"name":"ts","listen":{"address":"127.0.0.1:19621","tls":{"cert":"certs/server.pem","key":"certs/server.key","client_ca":"certs/ca.pem"}},
 "upstreams":[{"name":"e","address":"127.0.0.1:19601"}]}
JSON
cat > $D/client.json <<JSON
{"version":1,"name":"tc","listen":{"address":"127.0.0.1:19622"},
 "upstreams":[{"name":"r","address":"127.0.0.1:19621","tls":{"ca":"certs/ca.pem","cert":"certs/client.pem","key":"certs/client.key","server_name":"localhost"}}]}
JSON
# The same client host with its best setting for new connections: the warm pool (TLS
# connections to the server host opened and verified ahead of the clients).
sed -e 's/"name":"tc"/"name":"tp"/' -e 's/19622/19623/' \
    -e 's/"upstreams"/"connection":{"pool":{"enabled":true}},"upstreams"/' $D/client.json > $D/pooled.json
$R/sssonector run --log-level error $D/server.json > /dev/null 2>&1 & H1=$!
$R/sssonector run --log-level error $D/client.json > /dev/null 2>&1 & H2=$!
$R/sssonector run --log-level error $D/pooled.json > /dev/null 2>&1 & H3=$!
sleep 1.5
for rep in 1 2 3; do
  for name in stunnel:19612 sssonector:19622 sssonector+pool:19623; do
    port=${name#*:}
    e=$($R/sssonector-bench -target 127.0.0.1:$port -connections 20 -payload 16384 -duration 3s -warmup 1s --json)
    c=$($R/sssonector-bench -target 127.0.0.1:$port -mode connect -connections 20 -payload 64 -duration 3s -warmup 1s --json)
    echo "$rep ${name%%:*} $(echo $e | python3 -c 'import json,sys; d=json.load(sys.stdin); print("MB/s %.1f req/s %.0f p99us %.0f errors %d" % (d["megabytes_per_second"], d["requests_per_second"], d["latency_us"]["p99"], d["errors"]))') conn/s $(echo $c | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f errors %d" % (d["requests_per_second"], d["errors"]))')"
  done
done
kill $E $S1 $S2 $H1 $H2 $H3 2>/dev/null; wait 2>/dev/null
