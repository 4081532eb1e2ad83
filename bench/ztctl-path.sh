# shellcheck shell=bash
# ztctl-path.sh - the project's own tunnel as a path of the peers' harness (../shared/bench/README.md,
# "Adding a path"). Sourced by run-peers.sh through EXTRA_PATHS, and by bench/agent-rss.sh.
#
#   client -> bench-client agent (inbound tunnels :7901/:7911) => HBONE (h2 CONNECT over mTLS)
#          => bench-server agent (:7908, outbound tunnels) -> target 127.0.0.1:7000 / :5201
#
# Both agents run `bin/run.js agent run --config snapshot.json`: a static ConfigSnapshot and identity
# files made by bench/fixture.js (no controller in the loop, so only the data plane is measured).
# Issue 15 adds four paths, in the same run:
#   ztctl-hub   : client -> bench-client agent => hub (bench-hub, splices ciphertext) => bench-server agent
#                 (--no-listen: reached through the hub only; the inner HBONE is end to end) -> target
#   ztctl-socks : client -> socks5-shim -> bench-client proxy listener (SOCKS5) => HBONE => bench-server exit -> target
#   microsocks  : client -> socks5-shim -> microsocks (Debian's; no TLS) -> target
#   dante       : client -> socks5-shim -> danted (Debian's dante-server; no TLS) -> target
# The same C shim (bench/tools/socks5-shim.c: TCP in, SOCKS5 CONNECT out) fronts the three SOCKS5 servers.
# Knobs (env): ZTCTL_BENCH_LOG_LEVEL (warn: the peers log no per-connection lines either),
#   ZTCTL_BENCH_NODE_ARGS (extra node options for both agents, e.g. "--cpu-prof --cpu-prof-dir=DIR"),
#   ZTCTL_BENCH_STANDIN=1 runs the shared prototypes instead of the agents, to check the plumbing only.
# Needs from the harness: spawn, wait_listen, WORK.

ZTCTL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# ztctl: the agents as shipped (native data path); ztctl-node: the same agents with --data-path node.
EXTRA_PATH_NAMES="ztctl ztctl-node ztctl-hub ztctl-socks microsocks dante"

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
# ztctl-hub: the client's inbound tunnels, the hub (agents' port, admin)
ZT_HUB_ECHO_LISTEN=7921
ZT_HUB_IPERF_LISTEN=7931
ZT_HUB_PORT=7929
ZT_HUB_ADMIN=7928
# ztctl-socks: the shims, the client's proxy listener; microsocks and dante: their ports and shims
ZT_SOCKS_ECHO=7951
ZT_SOCKS_IPERF=7961
ZT_SOCKS_LISTEN=7941
MICROSOCKS_PORT=7971
MICROSOCKS_ECHO=7972
MICROSOCKS_IPERF=7973
DANTE_PORT=7981
DANTE_ECHO=7982
DANTE_IPERF=7983
EXTRA_PORTS="$ZT_ECHO_LISTEN $ZT_IPERF_LISTEN $ZT_SERVER_HBONE $ZT_SERVER_ADMIN $ZT_SERVER_METRICS $ZT_SERVER_READY
  $ZT_CLIENT_HBONE $ZT_CLIENT_ADMIN $ZT_CLIENT_METRICS $ZT_CLIENT_READY
  $ZT_HUB_ECHO_LISTEN $ZT_HUB_IPERF_LISTEN $ZT_HUB_PORT $ZT_HUB_ADMIN $ZT_SOCKS_ECHO $ZT_SOCKS_IPERF $ZT_SOCKS_LISTEN
  $MICROSOCKS_PORT $MICROSOCKS_ECHO $MICROSOCKS_IPERF $DANTE_PORT $DANTE_ECHO $DANTE_IPERF"
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
    --route "127.0.0.1:$ZT_IPERF_LISTEN=tcp/iperf=127.0.0.1:5201" \
    --hub-route "127.0.0.1:$ZT_HUB_ECHO_LISTEN=tcp/echo=127.0.0.1:7000" \
    --hub-route "127.0.0.1:$ZT_HUB_IPERF_LISTEN=tcp/iperf=127.0.0.1:5201" \
    --socks-listen "127.0.0.1:$ZT_SOCKS_LISTEN" --socks-target 127.0.0.1/32 || {
    echo "ztctl-path: bench/fixture.js failed (is the project built? npm run build)" >&2
    return 1
  }
}

ztctl_agent() { # NAME HBONE ADMIN METRICS READINESS [DATA_PATH [SNAPSHOT [EXTRA ARGS...]]]
  local dir name=$1 hbone=$2 admin=$3 metrics=$4 readiness=$5 data_path=${6:-auto} snapshot=${7:-snapshot.json}
  shift 7 2>/dev/null || shift $#
  dir=$(ztctl_fixture_dir)
  rm -f "$dir/$name.ready"
  # shellcheck disable=SC2086 # ZTCTL_BENCH_NODE_ARGS is a list of node options, split on purpose
  spawn "$name" node ${ZTCTL_BENCH_NODE_ARGS:-} "$ZTCTL_ROOT/bin/run.js" agent run -i "$dir/$name.json" \
    --hbone "127.0.0.1:$hbone" --advertise "127.0.0.1:$hbone" \
    --admin "127.0.0.1:$admin" --metrics "127.0.0.1:$metrics" --readiness "127.0.0.1:$readiness" \
    --config "$dir/$snapshot" --ready-file "$dir/$name.ready" --drain-timeout 1s \
    --log-level "${ZTCTL_BENCH_LOG_LEVEL:-warn}" --data-path "$data_path" "$@"
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

path_up_ztctl-hub() {
  ECHO_PORT=$ZT_HUB_ECHO_LISTEN; IPERF_PORT=$ZT_HUB_IPERF_LISTEN
  ztctl_fixture || return 1
  local dir
  dir=$(ztctl_fixture_dir)
  rm -f "$dir/bench-hub.ready"
  spawn bench-hub node "$ZTCTL_ROOT/bin/run.js" hub run -i "$dir/bench-hub.json" --listen "127.0.0.1:$ZT_HUB_PORT" \
    --admin "127.0.0.1:$ZT_HUB_ADMIN" --config "$dir/snapshot-hub.json" --ready-file "$dir/bench-hub.ready" --drain-timeout 1s \
    --log-level "${ZTCTL_BENCH_LOG_LEVEL:-warn}"
  ztctl_wait_ready bench-hub || return 1
  # The server opens no port at all; both agents attach to the hub.
  rm -f "$dir/bench-server.ready"
  spawn bench-server node "$ZTCTL_ROOT/bin/run.js" agent run -i "$dir/bench-server.json" --no-listen --hub "127.0.0.1:$ZT_HUB_PORT" \
    --admin "unix:$dir/bench-server.sock" --config "$dir/snapshot-hub.json" --ready-file "$dir/bench-server.ready" --drain-timeout 1s \
    --log-level "${ZTCTL_BENCH_LOG_LEVEL:-warn}"
  ztctl_agent bench-client "$ZT_CLIENT_HBONE" "$ZT_CLIENT_ADMIN" "$ZT_CLIENT_METRICS" "$ZT_CLIENT_READY" native snapshot-hub.json --hub "127.0.0.1:$ZT_HUB_PORT"
  PATH_NOTE="ztctl agent bench-client (inbound) => hub bench-hub (outer mTLS h2, splices the inner stream in C) => ztctl agent bench-server (--no-listen; inner HBONE end to end between the agents) -> target"
  ztctl_wait_ready bench-server bench-client && wait_listen "$ZT_HUB_PORT" "$ZT_HUB_ECHO_LISTEN" "$ZT_HUB_IPERF_LISTEN" && ztctl_wait_attached
}

ztctl_wait_attached() { # bounded: until the hub holds standby streams of bench-server
  local i
  for ((i = 0; i < ZT_READY_WAIT_TENTHS; i++)); do
    curl -s --max-time 1 "http://127.0.0.1:$ZT_HUB_ADMIN/hub_status" | grep -q '"name": "bench-server"' && return 0
    sleep 0.1
  done
  echo "ztctl-path: bench-server never attached to the hub (log: $WORK/bench-server.log)" >&2
  return 1
}

socks_shims() { # ECHO_LPORT IPERF_LPORT PROXY_PORT: the same shim in front of every SOCKS5 server
  if [[ ! -x $WORK/socks5-shim ]]; then
    gcc -O2 -Wall -pthread -o "$WORK/socks5-shim" "$ZTCTL_ROOT/bench/tools/socks5-shim.c" || return 1
  fi
  spawn "shim-echo-$3" "$WORK/socks5-shim" "$1" "$3" 127.0.0.1:7000
  spawn "shim-iperf-$3" "$WORK/socks5-shim" "$2" "$3" 127.0.0.1:5201
  ECHO_PORT=$1; IPERF_PORT=$2
}

path_up_ztctl-socks() {
  ztctl_fixture || return 1
  ztctl_agent bench-server "$ZT_SERVER_HBONE" "$ZT_SERVER_ADMIN" "$ZT_SERVER_METRICS" "$ZT_SERVER_READY" native snapshot-socks.json
  ztctl_agent bench-client "$ZT_CLIENT_HBONE" "$ZT_CLIENT_ADMIN" "$ZT_CLIENT_METRICS" "$ZT_CLIENT_READY" native snapshot-socks.json
  ztctl_wait_ready bench-server bench-client && wait_listen "$ZT_SERVER_HBONE" "$ZT_SOCKS_LISTEN" || return 1
  socks_shims "$ZT_SOCKS_ECHO" "$ZT_SOCKS_IPERF" "$ZT_SOCKS_LISTEN" || return 1
  PATH_NOTE="socks5-shim -> ztctl bench-client proxy listener (SOCKS5) => HBONE (mTLS h2 CONNECT) => ztctl bench-server exit (127.0.0.1/32) -> target"
  wait_listen "$ZT_SOCKS_ECHO" "$ZT_SOCKS_IPERF"
}

path_up_microsocks() {
  command -v microsocks >/dev/null || { echo "ztctl-path: microsocks missing (apt-get install microsocks)" >&2; return 1; }
  spawn microsocks microsocks -i 127.0.0.1 -p "$MICROSOCKS_PORT"
  wait_listen "$MICROSOCKS_PORT" || return 1
  socks_shims "$MICROSOCKS_ECHO" "$MICROSOCKS_IPERF" "$MICROSOCKS_PORT" || return 1
  PATH_NOTE="socks5-shim -> microsocks $(dpkg-query -W -f '${Version}' microsocks 2>/dev/null) (SOCKS5, thread per client, no TLS) -> target"
  wait_listen "$MICROSOCKS_ECHO" "$MICROSOCKS_IPERF"
}

path_up_dante() {
  command -v danted >/dev/null || { echo "ztctl-path: danted missing (apt-get install dante-server)" >&2; return 1; }
  cat >"$WORK/danted.conf" <<EOF
logoutput: $WORK/danted-internal.log
internal: 127.0.0.1 port = $DANTE_PORT
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }
EOF
  spawn danted danted -f "$WORK/danted.conf" -p "$WORK/danted.pid"
  wait_listen "$DANTE_PORT" || return 1
  socks_shims "$DANTE_ECHO" "$DANTE_IPERF" "$DANTE_PORT" || return 1
  PATH_NOTE="socks5-shim -> danted $(dpkg-query -W -f '${Version}' dante-server 2>/dev/null) (Debian's dante-server, SOCKS5, no TLS) -> target"
  wait_listen "$DANTE_ECHO" "$DANTE_IPERF"
}
