#!/usr/bin/env bash
# Builds the C example stage (allowlist) with a plain C compiler against the ABI header, into
# the SwiftPM bin folder next to `sssonector`, where the host finds plugins by short name.
# Usage: Plugins/examples/build-c-example.sh [debug|release] [output-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
config=${1:-debug}
out=${2:-$(cd "$root" && swift build -c "$config" --show-bin-path)}
mkdir -p "$out"
${CC:-cc} -std=c11 -shared -fPIC -O2 -Wall -Wextra -Werror -fvisibility=hidden \
    -I "$root/Sources/StageABI/include" \
    "$root/Plugins/examples/allowlist/allowlist.c" -o "$out/liballowlist.so.tmp.$$"
mv -f "$out/liballowlist.so.tmp.$$" "$out/liballowlist.so"
echo "$out/liballowlist.so"
