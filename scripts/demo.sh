#!/usr/bin/env bash
# The quick start: installs the Debian packages the build needs when missing, builds the host
# and the stock stages, and runs `sssonector demo` (local echo upstreams, pipelines/demo.json,
# five seconds of checked traffic, live figures).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift build
exec .build/debug/sssonector demo "$@"
