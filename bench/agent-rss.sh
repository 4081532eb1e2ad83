#!/usr/bin/env bash
# agent-rss.sh - idle RSS of each ztctl agent after warm-up, read from /proc of the agent PIDs.
#
#   OUT=DIR bash bench/agent-rss.sh     # appends one JSON line per rep to $OUT/agent-rss.jsonl
#
# The harness reports only the sum over a path's processes, so this starts the ztctl path once more
# (same path_up_ztctl, same fixture), warms it up exactly like the harness does (2,000 round trips,
# 1 s of new connections), waits IDLE_SECS with no traffic, then reads VmRSS per agent.
# Run it after run-peers.sh: it needs the compiled harness tools and ports 7000 + the ztctl ports free.
# Knobs (env): REPS (3), IDLE_SECS (5), PEER_BENCH (../shared/bench), BENCH_BIN, OUT.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${PEER_BENCH:-$ROOT/../shared/bench}
BENCH=$(cd "$BENCH" && pwd) || exit 1
BIN=${BENCH_BIN:-${TMPDIR:-/tmp}/peer-bench-bin}
CERTS=${BENCH_CERTS:-/tmp/bench-certs}
export BENCH_CERTS=$CERTS
REPS=${REPS:-3}
IDLE_SECS=${IDLE_SECS:-5}
OUT=${OUT:?set OUT to the results folder}
WORK=$OUT/work/agent-rss
mkdir -p "$WORK"
RESULT=$OUT/agent-rss.jsonl

# shellcheck source=/dev/null
source "$BENCH/lib/paths.sh" || exit 1
# shellcheck source=bench/ztctl-path.sh
source "$ROOT/bench/ztctl-path.sh" || exit 1

for tool in echo lat connrate; do
  [[ -x $BIN/$tool ]] || { echo "agent-rss: $BIN/$tool missing; run the harness first (it compiles its tools)" >&2; exit 1; }
done

ECHO_PID=
cleanup() {
  path_down
  [[ -n $ECHO_PID ]] && kill "$ECHO_PID" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN/echo" 7000 >>"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
wait_listen 7000 || exit 1

for ((rep = 1; rep <= REPS; rep++)); do
  path_up ztctl || { echo "agent-rss: the ztctl path did not start (logs in $WORK)" >&2; exit 1; }
  # the harness's warmup(), so "after warm-up" means the same thing here as in its memory baseline
  timeout 60 "$BIN/lat" 127.0.0.1 "$ECHO_PORT" 2000 64 100 >/dev/null 2>&1
  timeout 30 "$BIN/connrate" 127.0.0.1 "$ECHO_PORT" 2 1 64 >/dev/null 2>&1
  sleep "$IDLE_SECS"
  stat=$(node "$BENCH/lib/procstat.js" "${PATH_PIDS[@]}")
  node -e 'const [stat, names, rep, idle] = process.argv.slice(1); const s = JSON.parse(stat);
    const byName = Object.fromEntries(s.roots.map((pid, i) => [names.split(" ")[i], s.rss_root[pid]]));
    console.log(JSON.stringify({rep: Number(rep), idle_secs: Number(idle), rss_kib_by: byName, rss_kib_total: s.rss_kib}));' \
    "$stat" "${PATH_NAMES[*]}" "$rep" "$IDLE_SECS" >>"$RESULT"
  path_down
  sleep 1
done
tail -n "$REPS" "$RESULT"
