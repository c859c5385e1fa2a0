#!/usr/bin/env bash
# The whole test run, what CI runs (.ci/run): installs what the build and the tests need from
# Debian when it is missing, then
#   1. the test suite (unit, plugin loading, end-to-end through real sockets and real .so files),
#      then the suites that start hosts once more on the other data path (SwiftNIO);
#   2. each libFuzzer target for a short, bounded time (scripts/fuzz.sh), on the kept corpus;
#   3. the chain, relay, stage, fault, warm-pool, reverse-tunnel, asynchronous-admission and
#      shared-rate-limit suites under ThreadSanitizer (scripts/sanitizers.sh).
# The shared-rate-limit tests start a real redis-server of their own (Debian's package, installed
# here), one per test, on a Unix socket in a fresh temporary folder (no TCP port), and stop it.
# The status page's tests drive Debian's headless Chromium (installed here too) over a pipe.
# SSSONECTOR_QUICK=1 runs step 1 only (what `swift test` alone would, with the packages checked).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh --tests

start=$(date +%s)
swift build --build-tests
swift test
echo "test suite: $(( $(date +%s) - start )) s"
[ "${SSSONECTOR_QUICK:-0}" = 1 ] && exit 0

# The suites that start hosts, again on the other data path: by default plain pipelines run on
# the epoll path (auto), so this pass puts every pipeline on SwiftNIO (docs/testing.md).
start=$(date +%s)
hosts="RelayEndToEndTests|AdminEndToEndTests|ReloadEndToEndTests|StockStagesEndToEndTests|FaultInjectionTests"
hosts+="|AsyncAdmissionTests|SharedRateLimitEndToEndTests|StatusPageBrowserTests|BenchCountsTests"
SSSONECTOR_TEST_DATA_PATH=nio swift test --skip-build --filter "$hosts"
echo "end-to-end suites on the SwiftNIO data path: $(( $(date +%s) - start )) s"

start=$(date +%s)
scripts/fuzz.sh "${SSSONECTOR_FUZZ_SECONDS:-60}"
echo "fuzzing: $(( $(date +%s) - start )) s"

start=$(date +%s)
scripts/sanitizers.sh thread "ConnectionChainTests|RelayEndToEndTests|StockStagesEndToEndTests|RateLimitTests|BreakerTests|BalancerTests|TrackerTests|FaultInjectionTests|RuntimeLifecycleTests|IdleQueueTests|WarmPoolEndToEndTests|PoolDemandTests|ReverseTunnelEndToEndTests|ReverseTunnelUnitTests|AsyncAdmissionTests|SharedBudgetTests|SharedRateLimitEndToEndTests|EpollDataPathTests"
echo "thread sanitizer: $(( $(date +%s) - start )) s"
