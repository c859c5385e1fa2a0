#!/usr/bin/env bash
# The reverse tunnel next to the two-host tunnel and `ssh -R` (OpenSSH from Debian), in one run
# on loopback, same echo and sink upstreams, same loads (sssonector-bench):
#   bulk MB/s with 1 and 8 streams (to a sink), echo requests/s (20 connections, 64 B),
#   new connections/s (connect mode, 20 loops), time to first byte of a new connection
#   (connect mode, 1 loop: connect until the 64-byte echo is back, p50/p99),
#   p99 of 64-byte echoes while one bulk stream runs on the same path,
#   and the relay side's resident memory per idle connection (10,000 held open).
# Paths (client → ... → upstream):
#   reverse   client → relay host (pipeline + relay file) ⇐ connector host ← it dialed out
#   twohost   client → client host ═ mutual TLS ═> server host → upstream
#   ssh-R     client → sshd (the relay: -R port) ⇐ ssh client → upstream; aes128-gcm, no compression
# Usage: benchmarks/reverse-tunnel.sh   (installs openssh-server with apt-get when missing;
#        MEMORY=0 skips the memory table, DUR=5s lengthens each run)
[ -x /usr/sbin/sshd ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client > /dev/null; }
source "$(dirname "$0")/common.sh"
DUR=${DUR:-3s}
$R/sssonector certs init --out $D/certs --name localhost --connector db1.connector.example > /dev/null
$R/sssonector-bench echo -listen 127.0.0.1:19901 -threads 1 > $D/echo.log 2>&1 & PIDS+=($!)
$R/sssonector-bench echo -listen 127.0.0.1:19902 -mode sink -threads 1 > $D/sink.log 2>&1 & PIDS+=($!)

# --- reverse tunnel: relay host (ports 19911 echo, 19912 sink; connectors on 19910) ---
cat > $D/relay.json <<JSON
{"version":1,"name":"tunnels","relay":{"address":"127.0.0.1:19910",
 "tls":{"cert":"certs/server.pem","key":"certs/server.key","client_ca":"certs/ca.pem"},
 "services":{"echo":{"allow":["db1.connector.example"]},"sink":{"allow":["db1.connector.example"]}}}}
JSON
for s in echo:19911 sink:19912; do cat > $D/public-${s%%:*}.json <<JSON
{"version":1,"name":"public-${s%%:*}","listen":{"address":"127.0.0.1:${s#*:}"},
 "upstreams":[{"name":"t","reverse":{"service":"${s%%:*}"}}],"connection":{"max_connections":100000}}
JSON
done
for s in echo:19901 sink:19902; do cat > $D/connector-${s%%:*}.json <<JSON
{"version":1,"name":"connector-${s%%:*}","listen":{"reverse":{"relay":"127.0.0.1:19910","service":"${s%%:*}","connections":2,
 "tls":{"ca":"certs/ca.pem","cert":"certs/connector-db1.connector.example.pem","key":"certs/connector-db1.connector.example.key","server_name":"localhost"}}},
 "upstreams":[{"name":"u","address":"127.0.0.1:${s#*:}"}],"connection":{"max_connections":100000}}
JSON
done
$R/sssonector run --log-level error $D/relay.json $D/public-echo.json $D/public-sink.json > $D/relay.log 2>&1 & RELAY=$!; PIDS+=($RELAY)
listening 19910
$R/sssonector run --log-level error $D/connector-echo.json $D/connector-sink.json > $D/connector.log 2>&1 & PIDS+=($!)

# --- two-host tunnel: client host 19921 echo / 19922 sink → server host 19923 / 19924 ---
for s in echo:19901:19921:19923 sink:19902:19922:19924; do
  IFS=: read -r name up cport sport <<< "$s"
  cat > $D/server-$name.json <<JSON
{"version":1,"name":"server-$name","listen":{"address":"127.0.0.1:$sport","tls":{"cert":"certs/server.pem","key":"certs/server.key","client_ca":"certs/ca.pem"}},
 "upstreams":[{"name":"u","address":"127.0.0.1:$up"}],"connection":{"max_connections":100000}}
JSON
  cat > $D/client-$name.json <<JSON
{"version":1,"name":"client-$name","listen":{"address":"127.0.0.1:$cport"},
 "upstreams":[{"name":"r","address":"127.0.0.1:$sport","tls":{"ca":"certs/ca.pem","cert":"certs/client.pem","key":"certs/client.key","server_name":"localhost"}}],
 "connection":{"max_connections":100000,"pool":{"enabled":true,"min_idle":2}}}
JSON
done
$R/sssonector run --log-level error $D/server-echo.json $D/server-sink.json > $D/server.log 2>&1 & PIDS+=($!)
$R/sssonector run --log-level error $D/client-echo.json $D/client-sink.json > $D/client.log 2>&1 & TWOHOST=$!; PIDS+=($TWOHOST)

# --- ssh -R: sshd on 19930 (root, key only), forwarded ports 19931 echo / 19932 sink ---
ssh-keygen -q -t ed25519 -N '' -f $D/host_key; ssh-keygen -q -t ed25519 -N '' -f $D/user_key
cat > $D/sshd_config <<CONF
Port 19930
ListenAddress 127.0.0.1
HostKey $D/host_key
AuthorizedKeysFile $D/user_key.pub
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
PidFile $D/sshd.pid
Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com
Compression no
StrictModes no
MaxSessions 100
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -f $D/sshd_config -E $D/sshd.log & PIDS+=($!)
listening 19930
ssh -N -p 19930 -i $D/user_key -c aes128-gcm@openssh.com -o Compression=no -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes -o LogLevel=ERROR \
    -R 127.0.0.1:19931:127.0.0.1:19901 -R 127.0.0.1:19932:127.0.0.1:19902 root@127.0.0.1 > $D/ssh.log 2>&1 & PIDS+=($!)
listening 19911; listening 19912; listening 19921; listening 19922; listening 19931; listening 19932
sleep 1

bench() { $R/sssonector-bench -target 127.0.0.1:$1 -duration $DUR -warmup 1s --json "${@:2}"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
printf "%-8s %9s %9s %9s %8s %9s %9s %11s %9s\n" path bulk1MB/s bulk8MB/s req/s conn/s ttfb_p50 ttfb_p99 p99_bulk_us errors
for path in reverse:19911:19912 twohost:19921:19922 ssh-R:19931:19932; do
  IFS=: read -r name echo sink <<< "$path"
  b1=$(bench $sink -mode bulk -connections 1 -payload 65536)
  b8=$(bench $sink -mode bulk -connections 8 -payload 65536)
  rq=$(bench $echo -connections 20 -payload 64)
  cn=$(bench $echo -mode connect -connections 20 -payload 64)
  tt=$(bench $echo -mode connect -connections 1 -payload 64)
  # Small requests with a bulk stream on the same path (head-of-line blocking shows here).
  $R/sssonector-bench -target 127.0.0.1:$sink -mode bulk -connections 1 -payload 65536 -duration 6s -warmup 0s > /dev/null 2>&1 & BULK=$!
  sleep 0.5
  hl=$(bench $echo -connections 1 -payload 64)
  wait $BULK 2>/dev/null
  errors=$(( $(echo "$b1" | field 'd["errors"]') + $(echo "$b8" | field 'd["errors"]') + $(echo "$rq" | field 'd["errors"]') \
    + $(echo "$cn" | field 'd["errors"]') + $(echo "$tt" | field 'd["errors"]') + $(echo "$hl" | field 'd["errors"]') ))
  printf "%-8s %9.1f %9.1f %9.0f %8.0f %9.0f %9.0f %11.0f %9d\n" $name \
    $(echo "$b1" | field 'd["megabytes_per_second"]') $(echo "$b8" | field 'd["megabytes_per_second"]') \
    $(echo "$rq" | field 'd["requests_per_second"]') $(echo "$cn" | field 'd["requests_per_second"]') \
    $(echo "$tt" | field 'd["latency_us"]["p50"]') $(echo "$tt" | field 'd["latency_us"]["p99"]') \
    $(echo "$hl" | field 'd["latency_us"]["p99"]') $errors
done

[ "${MEMORY:-1}" = 0 ] && exit 0
# Resident memory of the relay side per idle connection: 10,000 connections held open through
# each path (each echoes one byte first, so its stream or channel is fully set up). The two-host
# path holds 9,000: its client host needs two descriptors per connection and this machine's
# hard limit is 20,000.
rss() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
echo
printf "%-8s %-24s %6s %12s %12s %9s\n" path "relay-side process" conns rss_before rss_after KiB/conn
for path in reverse:19911:10000 twohost:19921:9000 ssh-R:19931:10000; do
  IFS=: read -r name port count <<< "$path"
  case $name in
    reverse) pid=$RELAY; what="relay host";;
    twohost) pid=$TWOHOST; what="client host (TLS out)";;
    ssh-R) pid=$(pgrep -f "sshd: root" | head -1); what="sshd session";;
  esac
  before=$(rss $pid)
  rm -f $D/ready
  python3 - $port $count $D/ready <<'PY' &
import socket, sys, time
port, count, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"x"); held.append(s)
    if i % 500 == 499:
        for h in held[-500:]: h.recv(1)
for h in held[len(held) // 500 * 500:]: h.recv(1)
open(ready, "w").close()
time.sleep(600)
PY
  HOLD=$!
  for _ in $(seq 1200); do [ -e $D/ready ] && break; sleep 0.1; done
  sleep 1
  after=$(rss $pid)
  kill $HOLD; wait $HOLD 2>/dev/null
  printf "%-8s %-24s %6d %9s KB %9s KB %9.2f\n" $name "$what" $count $before $after $(python3 -c "print(($after - $before) / $count)")
  sleep 3
done
