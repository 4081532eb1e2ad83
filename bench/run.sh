#!/usr/bin/env bash
# run.sh - what `npm run bench` runs after building. One run, so the ratios compare like with like:
#   1. CLI cold start (bench/coldstart.sh): `ztctl --help`, `ztctl version` vs `kubectl version --client`;
#   2. the peers' harness (../shared/bench/run-peers.sh) with our tunnel added as path `ztctl`
#      (bench/ztctl-path.sh), next to stunnel, haproxy and the native nghttpx chain; and issue 15's paths:
#      the tunnel through a hub (ztctl-hub), the SOCKS5 proxy (ztctl-socks) next to microsocks and dante;
#   2b. the added round trip quiet and under a bounded CPU hog pinned one per core, direct, stunnel, haproxy
#      and our tunnel in one run (bench/loaded-rtt.sh) -> $OUT/loaded;
#   3. each agent's idle RSS after warm-up (bench/agent-rss.sh);
#   4. the ambient path (bench/ambient/run.ts, root): pod -> node agent -> HBONE -> node agent -> pod in
#      network namespaces, beside direct, stunnel, haproxy and our tunnel on the same namespaces;
#   5. the file app's throughput next to scp and a plain HBONE tunnel (bench/apps-file.sh) -> $OUT/apps-file.txt;
#   6. the ratio tables with every target marked met/missed (bench/ratios.js) -> $OUT/ratios.md.
#
#   npm run bench                             # full: 3 reps, ~25 min on 2 cores
#   REPS=1 TPUT_SECS=3 npm run bench          # quick
#
# Knobs (env, passed through to the harness): PATHS REPS TPUT_SECS LAT_N LAT_SIZE CONN_SECS CONN_THREADS
#   HOLD_N CRYPTO (0 here) OUT (bench/results/<stamp>) PEER_BENCH (../shared/bench) COLD_RUNS IDLE_SECS
#   ZTCTL_BENCH_LOG_LEVEL ZTCTL_BENCH_STANDIN; LOADED=0 skips step 2b, LOADED_PATHS LOADED_REPS LOAD_HOGS
#   size it; AMBIENT=0 skips step 4, AMBIENT_PATHS picks its paths;
#   APPS_BENCH=0 skips step 5, APPS_FILE_MB APPS_REPS size it.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$ROOT/../shared/bench}
export OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
export PATHS=${PATHS:-direct stunnel haproxy nghttpx-native ztctl ztctl-hub ztctl-socks microsocks dante}
export CRYPTO=${CRYPTO:-0}
export REPS=${REPS:-3}

fail() { echo "bench: $*" >&2; exit 1; }

# ---------- preflight ----------
[[ -f $PEER_BENCH/run-peers.sh ]] || fail "peer harness not found at $PEER_BENCH (set PEER_BENCH to the shared bench folder)"
PEER_BENCH=$(cd "$PEER_BENCH" && pwd)
command -v node >/dev/null || fail "node not found on PATH"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 22)) || fail "node $(node --version) is too old; the agent needs Node >= 22.13"

# The Debian packages of the peers and the harness (iperf3, socat, stunnel4, nghttp2-proxy, haproxy, gcc, ...) are
# in the one list, .ci/debian-packages.txt: installed here when root, named when missing otherwise.
bash "$ROOT/.ci/install-packages.sh" || fail "Debian packages are missing (named above); run as root to install them, or: sudo bash .ci/install-packages.sh"

mkdir -p "$OUT"
echo "bench: results -> $OUT" >&2

# ---------- 1. cold start ----------
bash "$ROOT/bench/coldstart.sh" >/dev/null || echo "bench: cold-start bench failed; continuing without it" >&2

# ---------- 2. the harness, our path included ----------
EXTRA_PATHS=$ROOT/bench/ztctl-path.sh bash "$PEER_BENCH/run-peers.sh" >"$OUT/harness.out" ||
  fail "the peer harness failed (log: $OUT/run.log)"

# ---------- 2b. round trip under load ----------
if [[ ${LOADED:-1} == 1 ]]; then
  PEER_BENCH=$PEER_BENCH bash "$ROOT/bench/loaded-rtt.sh" >/dev/null || echo "bench: the loaded round-trip bench failed (logs: $OUT/loaded/work)" >&2
fi

# ---------- 3. agent idle RSS ----------
if [[ " $PATHS " == *" ztctl "* ]]; then
  PEER_BENCH=$PEER_BENCH bash "$ROOT/bench/agent-rss.sh" >/dev/null || echo "bench: agent idle RSS failed (logs: $OUT/work/agent-rss)" >&2
fi

# ---------- 4. the ambient path ----------
if [[ ${AMBIENT:-1} == 1 ]]; then
  if ((EUID == 0)); then
    PEER_BENCH=$PEER_BENCH node --import tsx "$ROOT/bench/ambient/run.ts" "$OUT/ambient" || echo "bench: the ambient bench failed (logs: $OUT/ambient/work)" >&2
  else
    echo "bench: ambient path skipped: it needs root (network namespaces, iptables); run sudo npm run bench" >&2
  fi
fi

# ---------- 5. the file app next to scp and a plain tunnel carrying the same bytes ----------
if [[ ${APPS_BENCH:-1} == 1 ]]; then
  bash "$ROOT/bench/apps-file.sh" >"$OUT/apps-file.txt" || echo "bench: apps file bench failed (APPS_BENCH=0 skips it)" >&2
fi

# ---------- 6. ratios ----------
{
  node "$ROOT/bench/ratios.js" table "$OUT"
  [[ -s $OUT/loaded/raw.jsonl ]] && echo && node "$ROOT/bench/ratios.js" loaded "$OUT/loaded"
  [[ -s $OUT/ambient/raw.jsonl ]] && echo && node "$ROOT/bench/ratios.js" ambient "$OUT/ambient"
} | tee "$OUT/ratios.md"
echo "bench: full tables in $OUT/summary.md, ratios in $OUT/ratios.md" >&2
