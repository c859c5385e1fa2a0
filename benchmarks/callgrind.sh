# Sourced by the instruction-count scripts (after common.sh): the difference-of-two-runs count
# of one load through processes running under `valgrind --tool=callgrind`.
# Set before use: PORT (where the load goes), COUNTED (the pids under callgrind, each writing
# $D/cg-<name>.out.*; every one is summed), PAYLOAD (bytes per message, default 64).
# PROFILE=DIR keeps each long run's dumps there (<mode>-<name>.out) for callgrind_annotate.

# Instructions (summed over COUNTED) and completed messages of one load: "INSTRUCTIONS COUNT".
measure() {  # mode connections seconds
  local pid
  for pid in $COUNTED; do callgrind_control -z "$pid" > /dev/null 2>&1; done
  local n
  n=$("$R/sssonector-bench" load -target "127.0.0.1:$PORT" -mode "$1" -connections "$2" -duration "$3" -warmup 0 \
      -payload "${PAYLOAD:-64}" -threads 1 -json | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])')
  rm -f "$D"/cg-*.out.*
  for pid in $COUNTED; do callgrind_control -d "$pid" > /dev/null 2>&1; done
  local total=0 dump count
  for dump in "$D"/cg-*.out.*; do
    count=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dump")
    total=$((total + count))
    [ -z "${PROFILE:-}" ] || { mkdir -p "$PROFILE"; cp "$dump" "$PROFILE/$1-$(basename "${dump%%.out.*}").out"; }
  done
  echo "$total $n"
}

# Instructions per message: the difference of a short and a long run over the difference of
# their messages, so start-up and set-up cancel out.
per() {  # mode connections short long
  read -r i1 n1 <<< "$(measure "$1" "$2" "$3")"
  read -r i2 n2 <<< "$(measure "$1" "$2" "$4")"
  python3 -c "print(f'{($i2 - $i1) / ($n2 - $n1):,.0f} instructions ($n1 and $n2 messages)')"
}

# The host and the stock stage libraries without debug info, in $C: valgrind reads a binary's
# debug info at start, which takes minutes for the production host.
strip_host() {
  C=$D/stripped
  mkdir -p "$C"
  strip --strip-debug -o "$C/sssonector" "$R/sssonector"
  for lib in "$R"/lib{ratelimit,tracker,balancer,breaker}.so; do strip --strip-debug -o "$C/$(basename "$lib")" "$lib"; done
}

# Becomes (exec) a command under callgrind, dumps named after NAME: only ever run it in the
# background (`callgrind NAME cmd... &`), so $! is valgrind's pid. Names are written out in every
# dump (not numbered once for the whole run), so each dump reads on its own in callgrind_annotate.
callgrind() {  # name command...
  local name=$1
  shift
  exec valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$D/cg-$name.out" "$@"
}

# Starts `callgrind` on a command, named NAME; adds it to COUNTED and PIDS.
counted() {  # name command...
  local name=$1
  callgrind "$@" > "$D/$name.log" 2>&1 &
  COUNTED="${COUNTED:-} $!"
  PIDS+=($!)
}
