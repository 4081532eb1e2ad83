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
# Knobs (env): COLD_RUNS (30 per command) COLD_ROUNDS (3, hyperfine) COLD_WARMUP (3)
#   COLD_TOOL (auto|hyperfine|loop) OUT (bench/results/<stamp>).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COLD_RUNS=${COLD_RUNS:-30}
COLD_WARMUP=${COLD_WARMUP:-3}
COLD_TOOL=${COLD_TOOL:-auto}
COLD_ROUNDS=${COLD_ROUNDS:-3}
OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULT=$OUT/coldstart.json

if [[ ! -f $ROOT/oclif.manifest.json || ! -d $ROOT/dist/commands ]]; then
  echo "coldstart: $ROOT is not built; run \`npm run build\` first" >&2
  exit 1
fi

# `kubectl version --client` asks no server; `ztctl version` asks the current context's controller. An
# empty ZTCTL_HOME (no context) makes it the same client-only answer on every machine.
export ZTCTL_HOME=$OUT/coldstart-home
mkdir -p "$ZTCTL_HOME"

# name|command: names are what ratios.js looks up
COMMANDS=(
  "ztctl --help|node $ROOT/bin/run.js --help"
  "ztctl version|node $ROOT/bin/run.js version"
  "node -e 0|node -e 0"
)
if command -v kubectl >/dev/null; then
  COMMANDS+=("kubectl version --client|kubectl version --client")
else
  echo "coldstart: kubectl not installed (Debian: apt-get install kubernetes-client); the ratio will be missing" >&2
fi

# Fail early with the command's own error instead of timing a crash.
for entry in "${COMMANDS[@]}"; do
  cmd=${entry#*|}
  if ! timeout 30 $cmd >/dev/null 2>"$OUT/coldstart.err"; then
    echo "coldstart: \`$cmd\` failed:" >&2; cat "$OUT/coldstart.err" >&2
    exit 1
  fi
done

# The machine's load drifts within seconds, so the commands take turns: hyperfine in COLD_ROUNDS rounds
# (order reversed every other round), the loop round-robin, one run of each command at a time.
TIME_FILES=()
if [[ $COLD_TOOL != loop ]] && command -v hyperfine >/dev/null; then
  TOOL=hyperfine
  runs_per_round=$(((COLD_RUNS + COLD_ROUNDS - 1) / COLD_ROUNDS))
  for ((round = 1; round <= COLD_ROUNDS; round++)); do
    args=()
    for entry in "${COMMANDS[@]}"; do
      if ((round % 2)); then args+=(-n "${entry%%|*}" "${entry#*|}"); else args=(-n "${entry%%|*}" "${entry#*|}" "${args[@]}"); fi
    done
    file=$OUT/coldstart-times-r$round.json
    timeout 600 hyperfine -N --style basic --warmup "$COLD_WARMUP" --runs "$runs_per_round" \
      --export-json "$file" "${args[@]}" >>"$OUT/coldstart-hyperfine.txt" 2>&1 || {
      echo "coldstart: hyperfine failed, see $OUT/coldstart-hyperfine.txt" >&2; exit 1; }
    TIME_FILES+=("$file")
  done
else
  # Same JSON shape as hyperfine's export ({results:[{command, times:[seconds…]}]}).
  TOOL=loop
  time_once_us() { # CMD... -> wall time of one run in microseconds
    local t0 t1
    t0=$(date +%s%N)
    timeout 30 "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
  }
  # `timeout` and `date` add a fixed cost per run; time an empty command the same way and subtract it.
  overhead_us=$(for ((i = 0; i < COLD_RUNS; i++)); do time_once_us true; done | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
  for entry in "${COMMANDS[@]}"; do for ((i = 0; i < COLD_WARMUP; i++)); do time_once_us ${entry#*|} >/dev/null; done; done
  declare -A samples=()
  for ((i = 0; i < COLD_RUNS; i++)); do
    for entry in "${COMMANDS[@]}"; do
      us=$(time_once_us ${entry#*|})
      samples[${entry%%|*}]+="${samples[${entry%%|*}]:+,}$((us > overhead_us ? us - overhead_us : 0))e-6"
    done
  done
  file=$OUT/coldstart-times.json
  {
    printf '{"results":['
    sep=
    for entry in "${COMMANDS[@]}"; do
      printf '%s{"command":"%s","times":[%s]}' "$sep" "${entry%%|*}" "${samples[${entry%%|*}]}"
      sep=,
    done
    printf ']}\n'
  } >"$file"
  TIME_FILES+=("$file")
fi

node "$ROOT/bench/ratios.js" coldstart "$TOOL" "${TIME_FILES[@]}" >"$RESULT" || exit 1
node "$ROOT/bench/ratios.js" coldstart-table "$RESULT"
