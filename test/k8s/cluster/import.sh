#!/usr/bin/env bash
# import.sh STATE_DIR TAR... — import image archives (docker-archive or OCI) into every node's containerd
# (namespace k8s.io, where kubelet looks). Pods then use them with imagePullPolicy Never or IfNotPresent.
set -euo pipefail
LOG_TAG=import
. "$(dirname "$0")/lib.sh"
S=${1:?usage: import.sh STATE_DIR TAR...}; shift
(($#)) || die "usage: import.sh STATE_DIR TAR..."
socks=("$S"/n*/containerd/containerd.sock)
[[ -S ${socks[0]} ]] || die "$S has no node (start the cluster with ZTK8S_NODES=1 or 2)"
for tar in "$@"; do
  [[ -s $tar ]] || die "$tar: no such image archive"
  for sock in "${socks[@]}"; do
    ctr --address "$sock" -n k8s.io images import "$tar" >/dev/null &
  done
  wait
done
