#!/usr/bin/env bash
# agent-rss.sh - idle RSS of each ztctl agent after warm-up, read from /proc of the agent PIDs.
#
#   OUT=DIR bash bench/agent-rss.sh     # appends one JSON line per rep to $OUT/agent-rss.jsonl
#
# The harness reports only the sum over a path's processes, so this starts the ztctl path once more
# (same path_up_ztctl, same fixture), warms it up exactly like the harness does (2,000 round trips,
# 1 s of new connections), waits IDLE_SECS with no traffic and reads VmRSS, RssAnon and RssFile per agent,
# then reads them again at TRIM_SECS, after the agents' idle trim.
# Run it after run-peers.sh: it needs the compiled harness tools and ports 7000 + the ztctl ports free.
# Knobs (env): REPS (3), IDLE_SECS (5), TRIM_SECS (20), PEER_BENCH (../shared/bench), BENCH_BIN, OUT.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${PEER_BENCH:-$ROOT/../shared/bench}
BENCH=$(cd "$BENCH" && pwd) || exit 1
BIN=${BENCH_BIN:-${TMPDIR:-/tmp}/peer-bench-bin}
CERTS=${BENCH_CERTS:-/tmp/bench-certs}
export BENCH_CERTS=$CERTS
REPS=${REPS:-3}
IDLE_SECS=${IDLE_SECS:-5}
# The agents trim themselves after 10 s without a connection (src/lib/proxy/daemon/idle-trim.ts): read again after that.
TRIM_SECS=${TRIM_SECS:-20}
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

read_rss() { # {"NAME": {"rss": KiB, "anon": KiB, "file": KiB}, ...} for each agent of the path, from /proc
  local i pid out=''
  for i in "${!PATH_PIDS[@]}"; do
    pid=${PATH_PIDS[$i]}
    out+="\"${PATH_NAMES[$i]}\": {$(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "\"rss\": %d, \"anon\": %d, \"file\": %d", r, a, f}' "/proc/$pid/status")},"
  done
  echo "{${out%,}}"
}

for ((rep = 1; rep <= REPS; rep++)); do
  path_up ztctl || { echo "agent-rss: the ztctl path did not start (logs in $WORK)" >&2; exit 1; }
  # the harness's warmup(), so "after warm-up" means the same thing here as in its memory baseline
  timeout 60 "$BIN/lat" 127.0.0.1 "$ECHO_PORT" 2000 64 100 >/dev/null 2>&1
  timeout 30 "$BIN/connrate" 127.0.0.1 "$ECHO_PORT" 2 1 64 >/dev/null 2>&1
  sleep "$IDLE_SECS"
  warm=$(read_rss)
  sleep "$((TRIM_SECS - IDLE_SECS))"
  trimmed=$(read_rss)
  node -e 'const [warm, trimmed, rep, idle, trim] = process.argv.slice(1); const w = JSON.parse(warm), t = JSON.parse(trimmed);
    const pick = (m, k) => Object.fromEntries(Object.entries(m).map(([n, v]) => [n, v[k]]));
    console.log(JSON.stringify({rep: Number(rep), idle_secs: Number(idle), rss_kib_by: pick(w, "rss"), anon_kib_by: pick(w, "anon"), file_kib_by: pick(w, "file"),
      trimmed_secs: Number(trim), trimmed_rss_kib_by: pick(t, "rss"), trimmed_anon_kib_by: pick(t, "anon"), trimmed_file_kib_by: pick(t, "file")}));' \
    "$warm" "$trimmed" "$rep" "$IDLE_SECS" "$TRIM_SECS" >>"$RESULT"
  path_down
  sleep 1
done
tail -n "$REPS" "$RESULT"
