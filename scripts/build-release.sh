#!/usr/bin/env bash
# The production build: `swift build -c release` with dynamic exclusivity checks off in every
# module, SwiftNIO included. The checks cost about 10% of the instructions spent per proxied
# connection (swift_beginAccess and its thread-local access set, measured with callgrind);
# static checks stay on, and debug builds (and so the tests) keep the dynamic ones.
#
# It builds the products that ship (the host, the benchmarks, the stage libraries), one by one:
# the fuzz target reaches into the host's internals (`@testable`), which a release build does
# not allow, and a plain `swift build -c release` would build it too.
# Extra arguments go to swift build (for example --show-bin-path).
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-c release -Xswiftc -enforce-exclusivity=unchecked)
if [ $# -gt 0 ]; then exec swift build "${flags[@]}" "$@"; fi
for product in sssonector sssonector-bench stage-hook-bench ratelimit tracker balancer breaker bytecap scriptstage; do
  swift build "${flags[@]}" --product "$product"
done
