# lib.sh — what build.sh, up.sh, down.sh, sweep.sh, import.sh and run.sh share (sourced, not run).
# Adapted from /work/shared/k8s-real (its README lists the pitfalls handled here).
#   ZTCTL_K8S_CACHE       binaries + base images, built once (default /var/cache/ztctl-k8s)
#   ZTCTL_K8S_STATE_ROOT  one directory per cluster run below it (default /var/tmp/ztctl-k8s)
#   ZTCTL_K8S_LOCK        the machine-wide lock: one cluster at a time (default /run/ztctl-k8s.lock)
K8S_VERSION=v1.20.2                     # upstream version inside Debian 12's 1.20.5+really1.20.2
K8S_CACHE=${ZTCTL_K8S_CACHE:-/var/cache/ztctl-k8s}
K8S_BIN=$K8S_CACHE/bin
K8S_STATE_ROOT=${ZTCTL_K8S_STATE_ROOT:-/var/tmp/ztctl-k8s}
K8S_LOCK=${ZTCTL_K8S_LOCK:-/run/ztctl-k8s.lock}
K8S_ALL_BINS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
# routes the harness adds carry this protocol number, so a sweep finds orphans without a state dir
K8S_ROUTE_PROTO=211
# sysctls kubelet (first six) and kube-proxy (route_localnet) change while they run, and ip_forward, which
# nothing may change (forwarding is on for our bridges only): saved by up.sh, restored by down.sh
K8S_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet net.ipv4.ip_forward"

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_TAG:-k8s}" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }
need_root() { [[ $(id -u) == 0 ]] || die "run as root (network, cgroups, mounts)"; }

# need_cmds CMD:PACKAGE... : say which Debian packages are missing (.ci/env.sh installs them)
need_cmds() {
  local missing=() c
  for c in "$@"; do
    if [[ ${c%%:*} == /* ]]; then [[ -e ${c%%:*} ]] || missing+=("${c#*:}")
    else command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}"); fi
  done
  ((${#missing[@]} == 0)) || die "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]}; .ci/env.sh installs them)"
}

# proc_start PID: the process's start time (field 22 of /proc/PID/stat; its name may hold spaces)
proc_start() { local stat; read -r stat 2>/dev/null < "/proc/$1/stat" || return 0; stat=${stat##*) }; set -- $stat; echo "${20}"; }

# alive PID: running (a zombie waiting for its parent to reap it is not)
alive() { local stat; read -r stat 2>/dev/null < "/proc/$1/stat" || return 1; stat=${stat##*) }; [[ ${stat%% *} != [ZX] ]]; }

# stop_pids PIDFILE... : TERM every live PID at once, KILL what is left after 10 s, remove the files
stop_pids() {
  local f pid live=()
  for f in "$@"; do
    [[ -f $f ]] || continue
    pid=$(cat "$f"); rm -f "$f"
    alive "$pid" && kill -TERM "$pid" 2>/dev/null && live+=("$pid:$(basename "$f" .pid)")
  done
  ((${#live[@]})) || return 0
  local _ np left
  for _ in $(seq 100); do
    left=0; for np in "${live[@]}"; do alive "${np%%:*}" && left=1; done
    ((left)) || break; sleep 0.1
  done
  for np in "${live[@]}"; do
    if alive "${np%%:*}"; then log "${np#*:} (${np%%:*}) ignored TERM: KILL"; kill -KILL "${np%%:*}" 2>/dev/null; fi
  done
}

# kube_chains_cleanup: `kube-proxy --cleanup` (its rules and service chains), then what it leaves (KUBE-MARK-MASQ,
# KUBE-MARK-DROP, KUBE-PROXY-CANARY in mangle/filter/nat) in one iptables-restore per family: jumps to KUBE-*
# from other chains deleted, KUBE-* chains flushed, then deleted. Prints what is still there.
kube_chains_cleanup() {
  "$K8S_BIN/kube-proxy" --cleanup -v=0 >/dev/null 2>&1 || true
  local ipt
  for ipt in iptables ip6tables; do
    $ipt-save 2>/dev/null | awk '
      /^\*/ { table = substr($1, 2) }
      /^:KUBE-/ { chains[table] = chains[table] " " substr($1, 2) }
      /^-A / && $2 !~ /^KUBE-/ && / -j KUBE-/ { sub(/^-A/, "-D"); jumps[table] = jumps[table] $0 "\n" }
      END {
        for (t in chains) {
          printf "*%s\n%s", t, jumps[t]; n = split(chains[t], c, " ")
          for (i = 1; i <= n; i++) print "-F " c[i]
          for (i = 1; i <= n; i++) print "-X " c[i]
          print "COMMIT"
        }
      }' | $ipt-restore -w --noflush 2>/dev/null
    $ipt-save 2>/dev/null | grep -- 'KUBE-' | sed "s/^/$ipt: /"
  done
}
