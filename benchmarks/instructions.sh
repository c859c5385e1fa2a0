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
source benchmarks/one-proxy.sh
set -e
command -v valgrind > /dev/null || apt-get install -y valgrind > /dev/null
strip_host

start_echo
# The stripped host (valgrind reads debug info for minutes otherwise), counted from its start.
HOST_BIN=$C/sssonector start_proxy callgrind host
COUNTED=$PROXY_PID

echo "proxy: ${PROXY:-sssonector}, stages: ${STAGES:-0}, data path: ${DATA_PATH:-auto}"
echo "per keep-alive request (10 connections, 64-byte echo): $(per echo 10 2s 6s)"
echo "per connection (10 loops: connect, one 64-byte echo, close): $(per connect 10 3s 9s)"
