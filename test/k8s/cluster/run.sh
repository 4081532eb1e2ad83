#!/usr/bin/env bash
# run.sh [-n NODES] [CMD...] — a cluster by hand: take the machine-wide lock (queueing behind tests and
# other engineers), sweep stale runs, up.sh, run CMD (default: an interactive shell) with KUBECONFIG and
# ZTK8S_STATE set, then down.sh — also on Ctrl-C or a failure.
#   test/k8s/cluster/run.sh -n 2 bash -c 'kubectl get nodes -o wide'
set -uo pipefail
LOG_TAG=run
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
need_root
nodes=1
[[ ${1:-} == -n ]] && { nodes=$2; shift 2; }
(($#)) || set -- "${SHELL:-bash}"
exec 9>>"$K8S_LOCK"
if ! flock -n 9; then
  owner=$(cat "$K8S_LOCK.owner" 2>/dev/null); pid=${owner#pid=}; pid=${pid%% *}
  [[ -n $pid && -d /proc/$pid ]] || owner="a process that left no note"
  log "waiting for $K8S_LOCK (held by: $owner)"; flock 9
fi
echo "pid=$$ cmd=run.sh since=$(date -Is)" > "$K8S_LOCK.owner"
"$HERE/sweep.sh"
mkdir -p "$K8S_STATE_ROOT"
export ZTK8S_STATE=$K8S_STATE_ROOT/run-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
trap '"$HERE/down.sh" "$ZTK8S_STATE"' EXIT
trap 'exit 130' INT TERM
KUBECONFIG=$(ZTK8S_NODES=$nodes ZTK8S_OWNER_PID=$$ "$HERE/up.sh") || exit 1
export KUBECONFIG
"$@"
