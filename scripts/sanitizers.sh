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
# The sanitizer runtime is linked statically into each executable, and only the parts the
# executable itself uses are kept: the stage libraries the host loads at run time use a few
# more, which must be pulled in (and so exported) by name.
runtime_symbols=()
case "$sanitizer" in
    # Swift's runtime and NIO keep process-lifetime allocations; leaks are not what this checks.
    address) export ASAN_OPTIONS="detect_leaks=0" ;;
    # Report every race, and fail the process that has one.
    thread)
        export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
        runtime_symbols=(__tsan_external_write __tsan_ignore_thread_begin __tsan_ignore_thread_end) ;;
    *) echo "scripts/sanitizers.sh: unknown sanitizer '$sanitizer' (expected thread or address)" >&2; exit 2 ;;
esac
link=()
for symbol in "${runtime_symbols[@]}"; do link+=(-Xlinker "--undefined=$symbol" -Xlinker "--export-dynamic-symbol=$symbol"); done
mkdir -p "$scratch"
if ! swift build --scratch-path "$scratch" --sanitize="$sanitizer" "${link[@]}" --build-tests >"$scratch/build.log" 2>&1; then
    grep -E "error" "$scratch/build.log" | head -20
    exit 1
fi
args=(--scratch-path "$scratch" --sanitize="$sanitizer" "${link[@]}" --skip-build)
[ -n "$filter" ] && args+=(--filter "$filter")
swift test "${args[@]}"
