#!/bin/sh
# The stage passes the host's ABI checks (create and destroy with an empty config included),
# and the pipeline that uses it validates (the stage created with that config).
set -e
cd "$(dirname "$0")"
SSSONECTOR="${SSSONECTOR:-__SSSONECTOR__}"
"$SSSONECTOR" plugin check ./lib__NAME__.so
"$SSSONECTOR" validate pipeline.json
echo "__NAME__: tests passed"
