#!/usr/bin/env bash
# down.sh [STATE_DIR] — undo everything up.sh made for one cluster run (default $ZTK8S_STATE), in order:
# kube-proxy (then `kube-proxy --cleanup` and the chains it leaves), then every other process of the run at
# once (daemons, containers, shims); mounts below the state dir; bridges and routes; cgroup roots; the sysctls
# kubelet and kube-proxy changed; what kubelet left in /var/log/pods, /var/log/containers, /var/lib/kubelet;
# the etcd tmpfs dir; the state dir.
# Safe to run twice, on a half-made run, or on a run whose owner was killed.
#   ZTK8S_KEEP_LOGS=DIR  copy the run's logs to DIR first
set -uo pipefail
LOG_TAG=down
. "$(dirname "$0")/lib.sh"
S=${1:-${ZTK8S_STATE:?usage: down.sh STATE_DIR}}
S=${S%/}
[[ -d $S ]] || { log "nothing to do ($S absent)"; exit 0; }
[[ -f $S/id ]] || die "$S is not a cluster state dir (no id file)"
need_root
C=$S/created
if [[ -n ${ZTK8S_KEEP_LOGS:-} && -d $S/logs ]]; then mkdir -p "$ZTK8S_KEEP_LOGS" && cp -a "$S/logs/." "$ZTK8S_KEEP_LOGS/"; fi

stop_pids "$S/pids/kube-proxy.pid"
if [[ -f $C/kube-proxy ]]; then
  left=$(kube_chains_cleanup)
  [[ -z $left ]] && rm -f "$C/kube-proxy" || log "kube-proxy chains left: $left"
fi
# Then everything else of the run at once, SIGKILL: none of its state is kept, so nothing gains from a graceful
# stop, and on a busy machine a `ctr tasks kill` per container or a 10 s TERM grace each adds up to minutes.
# The run's processes: the recorded daemons, what runs in the nodes' cgroup trees (containers), what names the
# state dir (containerd's shims, runc, CNI plugins). One grep reads every command line; its pattern comes from
# a file (in grep's own argv it would match grep itself).
run_processes() {
  cat "$S"/pids/*.pid 2>/dev/null
  [[ -f $C/cgroups ]] && while read -r cg; do [[ -d $cg ]] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null; done < "$C/cgroups"
  grep -lsF -f <(printf '%s/\n' "$S") /proc/[0-9]*/cmdline | sed 's|^/proc/||; s|/cmdline$||'
}
for _ in 1 2 3 4 5; do                               # again for what was being spawned meanwhile
  pids=(); for p in $(run_processes | sort -un); do [[ $p != "$$" ]] && alive "$p" && pids+=("$p"); done
  ((${#pids[@]})) || break
  kill -KILL "${pids[@]}" 2>/dev/null; sleep 0.2
done
((${#pids[@]})) && log "processes of this run still alive: ${pids[*]}"
rm -f "$S"/pids/*.pid

# mounts below the state dir (pod netns, overlay rootfs, sandbox shm, kubelet volumes), deepest first
# (one umount for all of them, then one by one, lazily if need be, what that left: forks are slow on a busy machine)
mounts_below() { grep -F " $S/" /proc/self/mounts | awk '{print $2}' | sort -r; }
mapfile -t mounts < <(mounts_below)
((${#mounts[@]})) && umount "${mounts[@]}" 2>/dev/null
mounts_below | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not umount $m"; done
if [[ -f $C/routes ]]; then while read -r r; do ip route del $r proto $K8S_ROUTE_PROTO 2>/dev/null; done < "$C/routes"; fi
if [[ -f $C/bridges ]]; then while read -r br; do ip link del "$br" 2>/dev/null; done < "$C/bridges"; fi
if [[ -f $C/cgroups ]]; then
  mapfile -t cgroups < <(while read -r cg; do [[ -d $cg ]] && echo "$cg"; done < "$C/cgroups")
  ((${#cgroups[@]})) && find "${cgroups[@]}" -depth -type d -exec rmdir {} + 2>/dev/null
  while read -r cg; do [[ -d $cg ]] && log "cgroup $cg is still there"; done < "$C/cgroups"
fi
[[ -f $C/sysctl.saved ]] && sysctl -q -p "$C/sysctl.saved" >/dev/null
# kubelet's files outside the state dir: its pods' log dirs (by pod UID), their links, dirs it created
# (and those the harness listed just before calling us: kubelet may have removed a deleted pod's dir since)
for uid in $(for d in "$S"/n*/kubelet/root/pods/*/; do [[ -d $d ]] && basename "$d"; done; [[ -f $C/pod-uids ]] && cat "$C/pod-uids"); do
  [[ $uid =~ ^[0-9a-f-]+$ ]] && rm -rf /var/log/pods/*_"$uid"
done
if [[ -d /var/log/containers ]]; then find /var/log/containers -maxdepth 1 -xtype l -delete 2>/dev/null; fi
if [[ -f $C/dirs ]]; then
  while read -r d; do
    case $d in
      # kubelet 1.20 keeps its device-plugin socket there whatever --root-dir says
      /var/lib/kubelet) rm -rf /var/lib/kubelet/device-plugins; rmdir /var/lib/kubelet 2>/dev/null ;;
      *) rmdir "$d" 2>/dev/null ;;
    esac
  done < "$C/dirs"
fi
[[ -f $C/etcd-data ]] && rm -rf "$(cat "$C/etcd-data")"
if grep -qF " $S/" /proc/self/mounts; then die "mounts are left below $S: not removing it"; fi
rm -rf "$S"
log "down: $S"
