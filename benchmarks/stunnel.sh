# Sourced by the tunnel benchmarks: the stunnel pair that stands for the two-host tunnel, on the
# certificates of `sssonector certs init` in $D/certs (installs stunnel4 when missing).
command -v stunnel4 > /dev/null || { apt-get update -qq && apt-get install -y -qq stunnel4 > /dev/null; }

# Writes $D/stunnel-server.conf (mutual TLS on SERVER, to the plain UPSTREAM) and
# $D/stunnel-client.conf (plain on CLIENT, to SERVER with the client certificate).
stunnel_configs() {  # upstream-port server-port client-port
  cat > "$D/stunnel-server.conf" <<CONF
foreground = yes
pid =
[srv]
accept = 127.0.0.1:$2
connect = 127.0.0.1:$1
cert = $D/certs/server.pem
key = $D/certs/server.key
CAfile = $D/certs/ca.pem
verifyChain = yes
CONF
  cat > "$D/stunnel-client.conf" <<CONF
foreground = yes
pid =
[cli]
client = yes
accept = 127.0.0.1:$3
connect = 127.0.0.1:$2
cert = $D/certs/client.pem
key = $D/certs/client.key
CAfile = $D/certs/ca.pem
verifyChain = yes
checkHost = localhost
CONF
}
