#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/) with the fuzzer and address sanitizers and runs each for
# a given time, growing the corpus kept in Fuzz/corpus/<target>. A crash is written to
# Fuzz/crashes/<target>/ and makes this script fail; copy it into the corpus once fixed, so the
# tests replay it for ever (FuzzCorpusTests).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; targets: pipeline abi)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pipeline abi)

scratch=.build-fuzz
mkdir -p "$scratch"
# One instrumented executable serves every target (SSS_FUZZ_TARGET picks one). The coverage
# flags are explicit: swiftc drops its default coverage when -sanitize=fuzzer is combined with
# -sanitize=address, and libFuzzer would then fuzz blind.
if ! swift build --scratch-path "$scratch" --product sssonector-fuzz \
    --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table -Xswiftc -DFUZZING \
    >"$scratch/build.log" 2>&1; then
    grep -E "error" "$scratch/build.log" | head -20
    exit 1
fi
bin="$(swift build --scratch-path "$scratch" --show-bin-path)"
cc -std=c11 -shared -fPIC -O1 -Wall -Wextra -Werror -fvisibility=hidden -I Sources/StageABI/include \
    Fuzz/fuzz_stage.c -o "$bin/libfuzzstage.so"
export SSS_FUZZ_STAGE="$bin/libfuzzstage.so"
# The Swift runtime's leak checks at exit report the process-lifetime plugin state: off.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1"

status=0
for target in "${targets[@]}"; do
    mkdir -p "Fuzz/corpus/$target" "Fuzz/crashes/$target"
    echo "fuzz $target: ${seconds}s"
    if ! SSS_FUZZ_TARGET="$target" "$bin/sssonector-fuzz" "Fuzz/corpus/$target" -max_total_time="$seconds" -max_len=16384 -timeout=10 \
        -rss_limit_mb=4096 -artifact_prefix="Fuzz/crashes/$target/" -print_final_stats=1 2>"$scratch/fuzz-$target.log"; then
        status=1
        tail -40 "$scratch/fuzz-$target.log"
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus|DONE|ERROR" "$scratch/fuzz-$target.log" || true
    # Keep the corpus minimal: only the inputs that add coverage (libFuzzer never deletes).
    minimized="$scratch/minimized-$target"
    rm -rf "$minimized" && mkdir -p "$minimized"
    if SSS_FUZZ_TARGET="$target" "$bin/sssonector-fuzz" -merge=1 "$minimized" "Fuzz/corpus/$target" 2>"$scratch/merge-$target.log"; then
        rm -rf "Fuzz/corpus/$target" && mv "$minimized" "Fuzz/corpus/$target"
    fi
done
exit $status
