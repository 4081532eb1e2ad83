# shellcheck shell=bash
# ztctl-path.sh - the project's own tunnel as a path of the peers' harness (../shared/bench/README.md,
# "Adding a path"). Sourced by run-peers.sh through EXTRA_PATHS, and by bench/agent-rss.sh.
#
#   client -> bench-client agent (inbound tunnels :7901/:7911) => HBONE (h2 CONNECT over mTLS)
#          => bench-server agent (:7908, outbound tunnels) -> target 127.0.0.1:7000 / :5201
#
# Both agents run `bin/run.js agent run --config snapshot.json`: a static ConfigSnapshot and identity
# files made by bench/fixture.js (no controller in the loop, so only the data plane is measured).
# Knobs (env): ZTCTL_BENCH_LOG_LEVEL (warn: the peers log no per-connection lines either),
#   ZTCTL_BENCH_NODE_ARGS (extra node options for both agents, e.g. "--cpu-prof --cpu-prof-dir=DIR"),
#   ZTCTL_BENCH_STANDIN=1 runs the shared prototypes instead of the agents, to check the plumbing only.
# Needs from the harness: spawn, wait_listen, WORK.

ZTCTL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# ztctl: the agents as shipped (native data path); ztctl-node: the same agents with --data-path node.
EXTRA_PATH_NAMES="ztctl ztctl-node"

# One port per role; 79xx is unused by the harness's own paths.
ZT_ECHO_LISTEN=7901      # bench-client inbound tunnel for tcp/echo
ZT_IPERF_LISTEN=7911     # bench-client inbound tunnel for tcp/iperf
ZT_SERVER_HBONE=7908     # bench-server: HBONE, admin, metrics, readiness
ZT_SERVER_ADMIN=7905
ZT_SERVER_METRICS=7906
ZT_SERVER_READY=7907
ZT_CLIENT_HBONE=7918     # bench-client: same roles
ZT_CLIENT_ADMIN=7915
ZT_CLIENT_METRICS=7916
ZT_CLIENT_READY=7917
EXTRA_PORTS="$ZT_ECHO_LISTEN $ZT_IPERF_LISTEN $ZT_SERVER_HBONE $ZT_SERVER_ADMIN $ZT_SERVER_METRICS $ZT_SERVER_READY
  $ZT_CLIENT_HBONE $ZT_CLIENT_ADMIN $ZT_CLIENT_METRICS $ZT_CLIENT_READY"
ZT_READY_WAIT_TENTHS=300 # how long (0.1 s steps) an agent may take to write its ready file

ztctl_fixture_dir() { echo "$WORK/ztctl"; }

# CA, identities and snapshot: made once per run, reused by every rep.
ztctl_fixture() {
  local dir
  dir=$(ztctl_fixture_dir)
  [[ -s $dir/snapshot.json ]] && return 0
  node "$ZTCTL_ROOT/bench/fixture.js" --dir "$dir" \
    --client-hbone "127.0.0.1:$ZT_CLIENT_HBONE" --server-hbone "127.0.0.1:$ZT_SERVER_HBONE" \
    --route "127.0.0.1:$ZT_ECHO_LISTEN=tcp/echo=127.0.0.1:7000" \
    --route "127.0.0.1:$ZT_IPERF_LISTEN=tcp/iperf=127.0.0.1:5201" || {
    echo "ztctl-path: bench/fixture.js failed (is the project built? npm run build)" >&2
    return 1
  }
}

ztctl_agent() { # NAME HBONE ADMIN METRICS READINESS [DATA_PATH]
  local dir
  dir=$(ztctl_fixture_dir)
  rm -f "$dir/$1.ready"
  # shellcheck disable=SC2086 # ZTCTL_BENCH_NODE_ARGS is a list of node options, split on purpose
  spawn "$1" node ${ZTCTL_BENCH_NODE_ARGS:-} "$ZTCTL_ROOT/bin/run.js" agent run -i "$dir/$1.json" \
    --hbone "127.0.0.1:$2" --advertise "127.0.0.1:$2" \
    --admin "127.0.0.1:$3" --metrics "127.0.0.1:$4" --readiness "127.0.0.1:$5" \
    --config "$dir/snapshot.json" --ready-file "$dir/$1.ready" --drain-timeout 1s \
    --log-level "${ZTCTL_BENCH_LOG_LEVEL:-warn}" --data-path "${6:-auto}"
}

ztctl_wait_ready() { # NAME... : bounded wait for each agent's ready file
  local dir name i
  dir=$(ztctl_fixture_dir)
  for name in "$@"; do
    for ((i = 0; i < ZT_READY_WAIT_TENTHS; i++)); do
      [[ -e $dir/$name.ready ]] && break
      sleep 0.1
    done
    [[ -e $dir/$name.ready ]] || { echo "ztctl-path: agent $name never became ready (log: $WORK/$name.log)" >&2; return 1; }
  done
}

path_up_ztctl() {
  ECHO_PORT=$ZT_ECHO_LISTEN; IPERF_PORT=$ZT_IPERF_LISTEN
  if [[ ${ZTCTL_BENCH_STANDIN:-0} == 1 ]]; then
    spawn standin-in node "$BENCH/proto/hbone-in.js" "$ZT_SERVER_HBONE"
    wait_listen "$ZT_SERVER_HBONE" || return 1
    spawn standin-out node "$BENCH/proto/hbone-out.js" "127.0.0.1:$ZT_SERVER_HBONE" \
      "$ZT_ECHO_LISTEN=127.0.0.1:7000" "$ZT_IPERF_LISTEN=127.0.0.1:5201"
    PATH_NOTE="STAND-IN (shared proto/hbone-*.js, not ztctl): plumbing check only"
    wait_listen "$ZT_ECHO_LISTEN" "$ZT_IPERF_LISTEN"
    return
  fi
  ztctl_up native
}

path_up_ztctl-node() {
  ECHO_PORT=$ZT_ECHO_LISTEN; IPERF_PORT=$ZT_IPERF_LISTEN
  ztctl_up node
}

ztctl_up() { # DATA_PATH
  ztctl_fixture || return 1
  ztctl_agent bench-server "$ZT_SERVER_HBONE" "$ZT_SERVER_ADMIN" "$ZT_SERVER_METRICS" "$ZT_SERVER_READY" "$1"
  ztctl_agent bench-client "$ZT_CLIENT_HBONE" "$ZT_CLIENT_ADMIN" "$ZT_CLIENT_METRICS" "$ZT_CLIENT_READY" "$1"
  PATH_NOTE="ztctl agent bench-client (inbound, TCP -> HBONE h2 CONNECT over mTLS) -> ztctl agent bench-server (outbound, dials target); --data-path $1, static --config, log level ${ZTCTL_BENCH_LOG_LEVEL:-warn}"
  ztctl_wait_ready bench-server bench-client && wait_listen "$ZT_SERVER_HBONE" "$ZT_ECHO_LISTEN" "$ZT_IPERF_LISTEN"
}
