#!/usr/bin/env bash
# prepare.sh — what the Kubernetes tests need before they start, so no test pays for it: the Kubernetes
# binaries (build.sh: ~5.5 min cold, then cached in $ZTCTL_K8S_CACHE), the nodes' base images, and the
# project's image (npm run image's builder; skipped when up to date). `npm test` runs it after the build.
# Not root: nothing to do (the Kubernetes tests need root and say so).
set -euo pipefail
LOG_TAG=prepare
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[[ $(id -u) == 0 ]] || { log "not root: the Kubernetes tests will not run"; exit 0; }
"$HERE/build.sh" >/dev/null
"$HERE/base-images.sh" >/dev/null
mkdir -p "$HERE/../../../build"
flock "$HERE/../../../build/.image.lock" node "$HERE/../../../src/lib/kube/image/build.mjs" >/dev/null
