#!/usr/bin/env bash
# Runs test suites under a sanitizer, in a build folder of its own (.build-<sanitizer>), so the
# ordinary .build stays as it is. The end-to-end tests start the host binary of that build, so
# the host runs under the sanitizer too.
#
#   scripts/sanitizers.sh thread|address [SWIFT-TEST-FILTER]
#   (default filter: every suite)
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizer="${1:?usage: scripts/sanitizers.sh thread|address [filter]}"
filter="${2:-}"
scratch=".build-$sanitizer"
case "$sanitizer" in
    # Swift's runtime and NIO keep process-lifetime allocations; leaks are not what this checks.
    address) export ASAN_OPTIONS="detect_leaks=0" ;;
    # Report every race, and fail the process that has one.
    thread) export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" ;;
    *) echo "scripts/sanitizers.sh: unknown sanitizer '$sanitizer' (expected thread or address)" >&2; exit 2 ;;
esac
swift build --scratch-path "$scratch" --sanitize="$sanitizer" --build-tests 2>&1 | grep -E "error|Build complete" || true
args=(--scratch-path "$scratch" --sanitize="$sanitizer" --skip-build)
[ -n "$filter" ] && args+=(--filter "$filter")
swift test "${args[@]}"
