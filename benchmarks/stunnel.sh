# Sourced by the tunnel benchmarks: the stunnel pair that stands for the two-host tunnel, on the
# certificates of `sssonector certs init` in $D/certs (installs stunnel4 when missing).
command -v stunnel4 > /dev/null || { apt-get update -qq && apt-get install -y -qq stunnel4 > /dev/null; }

# Writes $D/FILE: one stunnel service on the pair's certificates, verifying the peer's chain;
# further arguments are extra lines of the service.
stunnel_service() {  # file service accept-port connect-port certificate-name [line...]
  local file=$1 service=$2 accept=$3 connect=$4 certificate=$5
  shift 5
  {
    printf '%s\n' "foreground = yes" "pid =" "[$service]" "accept = 127.0.0.1:$accept" \
      "connect = 127.0.0.1:$connect" "cert = $D/certs/$certificate.pem" "key = $D/certs/$certificate.key" \
      "CAfile = $D/certs/ca.pem" "verifyChain = yes"
    printf '%s\n' "$@"
  } > "$D/$file"
}

# Writes $D/stunnel-server.conf (mutual TLS on SERVER, to the plain UPSTREAM) and
# $D/stunnel-client.conf (plain on CLIENT, to SERVER with the client certificate).
stunnel_configs() {  # upstream-port server-port client-port
  stunnel_service stunnel-server.conf srv "$2" "$1" server
  stunnel_service stunnel-client.conf cli "$3" "$2" client "client = yes" "checkHost = localhost"
}
