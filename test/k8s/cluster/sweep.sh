#!/usr/bin/env bash
# sweep.sh — remove what earlier cluster runs left behind (their owner was killed, or the machine rebooted).
# Run it holding the machine-wide lock ($ZTCTL_K8S_LOCK): every harness cluster runs under that lock, so a
# state dir found then has no live owner (a run whose recorded owner is alive after all is left alone).
# down.sh for each state dir below $ZTCTL_K8S_STATE_ROOT, then what no state dir explains any more: zk*n*
# bridges, ztk8s-* cgroup roots, routes of protocol 211, KUBE-* chains.
set -uo pipefail
LOG_TAG=sweep
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
need_root
live=0
for s in "$K8S_STATE_ROOT"/*/; do
  [[ -f $s/id ]] || continue
  if read -r pid started < "$s/owner" 2>/dev/null && [[ $(proc_start "$pid") == "$started" ]]; then
    log "$s: its owner (pid $pid) is alive though it lost the lock: left alone, and no orphan sweep"; live=1; continue
  fi
  log "stale cluster state $s: down.sh"
  "$HERE/down.sh" "${s%/}" || log "down.sh $s failed"
done
((live)) && exit 0
for br in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^zk[a-z0-9]{6}n[0-9]$'); do
  log "orphan bridge $br"; ip link del "$br"
done
for cg in /sys/fs/cgroup/*/ztk8s-*; do
  [[ -d $cg ]] || continue
  pids=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)
  [[ -n $pids ]] && { log "killing processes left in $cg: $pids"; kill -KILL $pids 2>/dev/null; sleep 0.2; }
  find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || log "could not remove $cg"
done
ip route show proto $K8S_ROUTE_PROTO | while read -r r; do log "orphan route $r"; ip route del $r; done
if { iptables-save; ip6tables-save; } 2>/dev/null | grep -q -- 'KUBE-' && [[ -x $K8S_BIN/kube-proxy ]]; then
  log "KUBE-* chains without a cluster: cleaning them up"
  left=$(kube_chains_cleanup); [[ -z $left ]] || log "still there: $left"
fi
exit 0
