#!/usr/bin/env bash
# down.sh [STATE_DIR] — undo everything up.sh made for one cluster run (default $ZTK8S_STATE), in order:
# kube-proxy (then `kube-proxy --cleanup`: its KUBE-* chains on the host), kubelets, container tasks through
# containerd, containerd, control plane, etcd; then any process still in the run's cgroups or naming its state
# dir; mounts below the state dir; bridges and routes; cgroup roots; the sysctls kubelet and kube-proxy changed;
# what kubelet left in /var/log/pods, /var/log/containers, /var/lib/kubelet; the etcd tmpfs dir; the state dir.
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
stop_pids "$S"/pids/n*-kubelet.pid
# container processes outlive their shims' clients: kill and delete them through containerd while it is up
for sockdir in "$S"/n*/containerd; do
  sock=$sockdir/containerd.sock
  [[ -S $sock ]] || continue
  ctr_() { timeout 10 ctr --address "$sock" -n k8s.io "$@"; }
  tasks=$(ctr_ tasks ls -q 2>/dev/null)
  for t in $tasks; do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  [[ -n $tasks ]] && sleep 0.5
  for t in $tasks; do ctr_ tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1; done
done
stop_pids "$S"/pids/n*-containerd.pid
stop_pids "$S/pids/kube-scheduler.pid" "$S/pids/kube-controller-manager.pid" "$S/pids/kube-apiserver.pid"
stop_pids "$S/pids/etcd.pid"

# what is left of this run: processes in its cgroups (containers) or naming its state dir (shims, ...)
stray=()
if [[ -f $C/cgroups ]]; then
  while read -r cg; do [[ -d $cg ]] && stray+=($(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)); done < "$C/cgroups"
fi
for p in /proc/[0-9]*; do
  [[ ${p#/proc/} == "$$" ]] && continue
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$S/" && stray+=("${p#/proc/}")
done
if ((${#stray[@]})); then
  log "killing ${#stray[@]} stray process(es) of this run: ${stray[*]}"
  kill -KILL "${stray[@]}" 2>/dev/null; sleep 0.2
fi

# mounts below the state dir (pod netns, overlay rootfs, sandbox shm, kubelet volumes), deepest first
grep -F " $S/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not umount $m"
done
if [[ -f $C/routes ]]; then while read -r r; do ip route del $r proto $K8S_ROUTE_PROTO 2>/dev/null; done < "$C/routes"; fi
if [[ -f $C/bridges ]]; then while read -r br; do ip link del "$br" 2>/dev/null; done < "$C/bridges"; fi
if [[ -f $C/cgroups ]]; then
  while read -r cg; do [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null; done < "$C/cgroups"
  while read -r cg; do [[ -d $cg ]] && log "cgroup $cg is still there"; done < "$C/cgroups"
fi
if [[ -f $C/sysctl.saved ]]; then while IFS='=' read -r k v; do sysctl -qw "$k=$v" 2>/dev/null; done < "$C/sysctl.saved"; fi
# kubelet's files outside the state dir: its pods' log dirs (by pod UID), their links, dirs it created
for uid_dir in "$S"/n*/kubelet/root/pods/*/; do
  [[ -d $uid_dir ]] || continue
  uid=$(basename "$uid_dir")
  rm -rf /var/log/pods/*_"$uid"
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
