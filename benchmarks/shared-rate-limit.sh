#!/usr/bin/env bash
# ratelimit with its budget in Redis (`shared`) against the same stage counting locally, in one
# run: new-connection latency (connect until the echoed 64-byte message is back,
# sssonector-bench -mode connect) p50/p99, connections/s, and Redis commands per admitted
# connection (INFO commandstats before and after). The limit is far above the load, so every
# connection is admitted and what is measured is the cost of asking. Redis is a real
# redis-server on loopback TCP; a row without the stage is the reference.
# Usage: benchmarks/shared-rate-limit.sh   (CONNS=4 concurrent loops; 3 s runs after 2 s warm-up)
source "$(dirname "$0")/common.sh"
CONNS=${CONNS:-4}
REDIS_PORT=19720
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --daemonize no > $D/redis.log 2>&1 & PIDS+=($!)
$R/sssonector-bench echo -listen 127.0.0.1:19721 -threads 1 > /dev/null 2>&1 & PIDS+=($!)
listening $REDIS_PORT; listening 19721
cli() { redis-cli -p $REDIS_PORT "$@"; }
script_calls() { cli INFO commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_eval(sha)?:/ {n += $3} END {print n + 0}'; }
port=19730
printf "%-7s %10s %10s %10s %10s %14s\n" stage p50_ms p99_ms conn/s errors redis_cmds/conn
for mode in none local redis; do
  port=$((port + 1))
  case $mode in
    none) stages='[]' ;;
    local) stages='[{"name":"limit","plugin":"ratelimit","config":{"default_rate":1e9,"default_burst":1e9}}]' ;;
    redis) stages='[{"name":"limit","plugin":"ratelimit","config":{"default_rate":1e9,"default_burst":1e9,"shared":{"redis":"127.0.0.1:'$REDIS_PORT'","timeout":"20ms"}}}]' ;;
  esac
  cat > $D/host-$mode.json <<JSON
{"version":1,"name":"edge","listen":{"address":"127.0.0.1:$port"},
 "upstreams":[{"name":"u","address":"127.0.0.1:19721"}], "stages": $stages}
JSON
  $R/sssonector run --log-level error --admin 127.0.0.1:$((port + 100)) $D/host-$mode.json > $D/host-$mode.log 2>&1 & H=$!
  listening $port; sleep 1
  before=$(script_calls)
  out=$($R/sssonector-bench -target 127.0.0.1:$port -mode connect -connections $CONNS -payload 64 -duration 3s -warmup 2s --json)
  after=$(script_calls)
  stats=$(curl -s 127.0.0.1:$((port + 100))/stats)
  kill $H; wait $H 2>/dev/null
  echo "$out" | python3 -c "
import json, sys
d = json.load(sys.stdin)
stats = json.loads('''$stats''')
stage = stats['pipelines']['edge']['stages'].get('limit', {})
admitted = stage.get('allowed', 0)
shared = stage.get('shared')
if shared and shared['fallbacks']: print('warning: %d admissions fell back (%s)' % (shared['fallbacks'], shared), file=sys.stderr)
per = '%.3f' % (($after - $before) / admitted) if admitted and '$mode' == 'redis' else '-'
l = d['latency_us']
print('%-7s %10.3f %10.3f %10.0f %10d %14s' % ('$mode', l['p50'] / 1000, l['p99'] / 1000, d['requests_per_second'], d['errors'], per))"
done
