#!/usr/bin/env bash
# coldstart.sh - how long a fresh `ztctl` process takes, next to `kubectl version --client`.
#
#   bash bench/coldstart.sh                # prints a table, writes $OUT/coldstart.json
#   COLD_RUNS=50 bash bench/coldstart.sh
#
# Every command runs in a new process: hyperfine (-N, no shell in between) when installed, else a
# bounded loop timed with `date +%s%N`. Warm-up runs first, so the page cache and Node's compile cache
# are warm: this is the start a user sees on the second invocation, which is the one that matters
# for interactive use. `node -e 0` is listed as the floor Node itself imposes.
# Knobs (env): COLD_RUNS (30) COLD_WARMUP (3) COLD_TOOL (auto|hyperfine|loop) OUT (bench/results/<stamp>).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COLD_RUNS=${COLD_RUNS:-30}
COLD_WARMUP=${COLD_WARMUP:-3}
COLD_TOOL=${COLD_TOOL:-auto}
OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RAW_TIMES=$OUT/coldstart-times.json
RESULT=$OUT/coldstart.json

if [[ ! -f $ROOT/oclif.manifest.json || ! -d $ROOT/dist/commands ]]; then
  echo "coldstart: $ROOT is not built; run \`npm run build\` first" >&2
  exit 1
fi

# name|command: names are what ratios.js looks up
COMMANDS=(
  "ztctl --help|node $ROOT/bin/run.js --help"
  "ztctl version|node $ROOT/bin/run.js version"
  "node -e 0|node -e 0"
)
if command -v kubectl >/dev/null; then
  COMMANDS+=("kubectl version --client|kubectl version --client")
else
  echo "coldstart: kubectl not installed (Debian: apt-get install kubectl); the ratio will be missing" >&2
fi

# Fail early with the command's own error instead of timing a crash.
for entry in "${COMMANDS[@]}"; do
  cmd=${entry#*|}
  if ! timeout 30 $cmd >/dev/null 2>"$OUT/coldstart.err"; then
    echo "coldstart: \`$cmd\` failed:" >&2; cat "$OUT/coldstart.err" >&2
    exit 1
  fi
done

if [[ $COLD_TOOL != loop ]] && command -v hyperfine >/dev/null; then
  TOOL=hyperfine
  args=()
  for entry in "${COMMANDS[@]}"; do args+=(-n "${entry%%|*}" "${entry#*|}"); done
  timeout 600 hyperfine -N --style basic --warmup "$COLD_WARMUP" --runs "$COLD_RUNS" \
    --export-json "$RAW_TIMES" "${args[@]}" >"$OUT/coldstart-hyperfine.txt" 2>&1 || {
    echo "coldstart: hyperfine failed, see $OUT/coldstart-hyperfine.txt" >&2; exit 1; }
else
  # Same JSON shape as hyperfine's export ({results:[{command, times:[seconds…]}]}).
  TOOL=loop
  # `timeout` and `date` add a fixed cost per run; time an empty command the same way and subtract it.
  loop_times() { # CMD... -> one sample in microseconds per line
    local i t0 t1
    for ((i = 0; i < COLD_WARMUP; i++)); do timeout 30 "$@" >/dev/null 2>&1; done
    for ((i = 0; i < COLD_RUNS; i++)); do
      t0=$(date +%s%N)
      timeout 30 "$@" >/dev/null 2>&1
      t1=$(date +%s%N)
      echo $(((t1 - t0) / 1000))
    done
  }
  overhead_us=$(loop_times true | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
  {
    printf '{"results":['
    sep=
    for entry in "${COMMANDS[@]}"; do
      name=${entry%%|*} cmd=${entry#*|}
      times=()
      for us in $(loop_times $cmd); do times+=("$((us > overhead_us ? us - overhead_us : 0))e-6"); done
      printf '%s{"command":"%s","times":[%s]}' "$sep" "$name" "$(IFS=,; echo "${times[*]}")"
      sep=,
    done
    printf ']}\n'
  } >"$RAW_TIMES"
fi

node "$ROOT/bench/ratios.js" coldstart "$RAW_TIMES" "$TOOL" >"$RESULT" || exit 1
node "$ROOT/bench/ratios.js" coldstart-table "$RESULT"
