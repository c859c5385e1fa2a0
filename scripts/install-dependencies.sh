#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, when any is missing:
#   libltdl-dev  the plugin loader (GNU libltdl)
#   gcc libc6-dev  the C example stage, the ABI fixtures and the fuzz stage (`cc`)
#   openssl      real TLS peers (s_client, s_server) for the tunnel tests
#   libhiredis-dev  the Redis client of ratelimit's shared budget (hiredis)
#   redis-server    the real Redis the shared-budget tests start
#   chromium        with --tests only: the headless browser the status page's tests drive
# As root it runs apt-get; otherwise it prints the one command to run and exits 2, before
# anything is built.
set -euo pipefail
packages=(libltdl-dev gcc libc6-dev openssl libhiredis-dev redis-server)
[ "${1:-}" = "--tests" ] && packages+=(chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages; run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 2
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
