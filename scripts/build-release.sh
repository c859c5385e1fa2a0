#!/usr/bin/env bash
# The production build: `swift build -c release` with dynamic exclusivity checks off in every
# module, SwiftNIO included. The checks cost about 10% of the instructions spent per proxied
# connection (swift_beginAccess and its thread-local access set, measured with callgrind);
# static checks stay on, and debug builds (and so the tests) keep the dynamic ones.
# Extra arguments go to swift build (for example --product sssonector, --show-bin-path).
set -euo pipefail
cd "$(dirname "$0")/.."
exec swift build -c release -Xswiftc -enforce-exclusivity=unchecked "$@"
