# Sourced by the benchmark scripts: a release build ($R: its binaries), a scratch folder ($D)
# removed at exit with every process listed in PIDS, and `listening PORT`.
set -u
cd "$(dirname "$0")/.."
scripts/build-release.sh > /dev/null
R=$(scripts/build-release.sh --show-bin-path)
D=$(mktemp -d)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
# Waits until something listens on 127.0.0.1:$1 (at most 10 s); fails loudly otherwise.
listening() {
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1" >&2; tail -n 20 $D/*.log >&2; exit 1
}
