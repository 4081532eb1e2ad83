#!/usr/bin/env bash
# loaded-rtt.sh - the added round trip quiet and under load, every path in one run (issue 14 §4).
#
#   bash bench/loaded-rtt.sh                 # -> $OUT/loaded/raw.jsonl, and the table on stdout
#   LOADED_PATHS="direct haproxy ztctl" LOADED_REPS=5 bash bench/loaded-rtt.sh
#
# Per rep (outer) and path (inner): the path comes up (the peers' harness, ../shared/bench, with our
# tunnel from bench/ztctl-path.sh), is warmed up, then LAT_N 64-byte round trips run twice on one
# connection: quiet (metric `lat`), then with the hog running (metric `lat_loaded`). The hog is the same
# for every path: LOAD_HOGS busy loops (default one per core), each pinned to one core with taskset,
# started 0.5 s before the round trips and killed after them (at most LOAD_MAX_SECS). Whatever core the
# scheduler puts a path's processes on, a pinned busy loop competes with them there.
# Knobs (env): LOADED_PATHS (direct stunnel haproxy ztctl) LOADED_REPS (3) LAT_N (20000) LAT_SIZE (64)
#   LOAD_HOGS (nproc) LOAD_MAX_SECS (120) OUT PEER_BENCH.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$ROOT/../shared/bench}
[[ -f $PEER_BENCH/lib/harness.sh ]] || { echo "loaded-rtt: peer harness not found at $PEER_BENCH" >&2; exit 1; }
command -v taskset >/dev/null || { echo "loaded-rtt: taskset missing (Debian: util-linux)" >&2; exit 1; }
RUN_OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
export OUT=$RUN_OUT/loaded PATHS=${LOADED_PATHS:-direct stunnel haproxy ztctl} REPS=${LOADED_REPS:-3}
LOAD_HOGS=${LOAD_HOGS:-$(nproc)}
LOAD_MAX_SECS=${LOAD_MAX_SECS:-120}
export EXTRA_PATHS=$ROOT/bench/ztctl-path.sh
# shellcheck source=/dev/null
source "$PEER_BENCH/lib/harness.sh" || exit 1

HOG_PIDS=()
hogs_start() {
  local cpu
  for ((cpu = 0; cpu < LOAD_HOGS; cpu++)); do
    taskset -c "$((cpu % $(nproc)))" timeout "$LOAD_MAX_SECS" bash -c 'while :; do :; done' &
    HOG_PIDS+=($!)
  done
  sleep 0.5
}
hogs_stop() {
  ((${#HOG_PIDS[@]} == 0)) && return 0
  kill "${HOG_PIDS[@]}" 2>/dev/null
  wait "${HOG_PIDS[@]}" 2>/dev/null
  HOG_PIDS=()
}
trap 'hogs_stop; cleanup' EXIT

# Over every thread of the path's processes: context switches (voluntary + not), i.e. wakeups, and
# nanoseconds on a CPU (schedstat: exact, where /proc's ticks are 10 ms); "-1 -1" when the path has no
# process of its own to read (direct). A thread per connection (stunnel) has exited by the second
# reading, so such a path's figures read near zero.
sched_counts() {
  local pid
  for pid in $(node "$BENCH/lib/procstat.js" --list "${PATH_PIDS[@]}"); do
    cat /proc/"$pid"/task/*/status 2>/dev/null | awk '/ctxt_switches/{s+=$2} END{printf "ctx %d\n", s}'
    cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "ns %.0f\n", s}'
  done | awk '$1=="ctx"{c+=$2; p++} $1=="ns"{n+=$2} END{if (p) printf "%.0f %.0f\n", c, n; else print "-1 -1"}'
}

round_trips() { # METRIC PATH REP : LAT_N round trips, with the path's CPU and context switches per round trip
  local j before after
  before=$(sched_counts)
  j=$(timeout "$LOAD_MAX_SECS" "$BIN/lat" 127.0.0.1 "$ECHO_PORT" "$LAT_N" "$LAT_SIZE" 1000 2>>"$WORK/lat.err") || j='{"error":true}'
  after=$(sched_counts)
  emit "$2" "$3" "$1" "$(node -e 'const j = JSON.parse(process.argv[1]); const [c0, n0, c1, n1, count] = process.argv.slice(2).map(Number);
    if (!j.error && n0 >= 0 && n1 >= 0) { j.proxy_cpu_us_per_rt = (n1 - n0) / 1e3 / count; j.ctxsw_per_rt = (c1 - c0) / count }
    console.log(JSON.stringify(j))' "$j" $before $after "$LAT_N")"
}

echo "params: LOAD_HOGS=$LOAD_HOGS (pinned one per core of $(nproc)) LOAD_MAX_SECS=$LOAD_MAX_SECS" >>"$OUT/machine.txt"
for ((rep = 1; rep <= REPS; rep++)); do
  for p in $PATHS; do
    log "loaded rep $rep/$REPS path $p"
    if ! path_up "$p"; then log "  $p failed to start"; path_down; continue; fi
    echo "$p: $PATH_NOTE" >>"$WORK/path-notes.txt"
    warmup
    echo "$p rep $rep quiet: $(uptime)" >>"$OUT/load.txt"
    round_trips lat "$p" "$rep"
    hogs_start
    echo "$p rep $rep loaded: $(uptime)" >>"$OUT/load.txt"
    round_trips lat_loaded "$p" "$rep"
    hogs_stop
    path_down
    sleep 1
  done
done

cp "$WORK/path-notes.txt" "$OUT/" 2>/dev/null
node "$ROOT/bench/ratios.js" loaded "$OUT"
