#!/usr/bin/env bash
# base-images.sh — the two images every node has, built once into $ZTCTL_K8S_CACHE/images (no registry):
#   pause.tar    ztctl.local/pause:dev    busybox-static running `sleep` (the pod sandbox image)
#   busybox.tar  ztctl.local/busybox:dev  busybox-static with its applet links, CMD sh (for tests)
# docker-archive tars (umoci builds the OCI layout, skopeo writes the archive) that `ctr images import`
# accepts. Prints the images dir. Rebuilt only when missing.
set -euo pipefail
LOG_TAG=images
. "$(dirname "$0")/lib.sh"
OUT=$K8S_CACHE/images
[[ -s $OUT/pause.tar && -s $OUT/busybox.tar ]] && { echo "$OUT"; exit 0; }
need_cmds umoci:umoci skopeo:skopeo busybox:busybox-static
bb=$(command -v busybox)
ldd "$bb" >/dev/null 2>&1 && die "$bb is dynamically linked: apt-get install busybox-static"
mkdir -p "$OUT"
exec 8>"$OUT/.lock"; flock 8
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# pack NAME REF CMD...
pack() {
  local name=$1 ref=$2; shift 2
  local oci=$tmp/$name-oci b=$tmp/$name r
  umoci init --layout "$oci" && umoci new --image "$oci:img"
  umoci unpack --image "$oci:img" "$b" >/dev/null
  r=$b/rootfs
  mkdir -p "$r"/{bin,etc,tmp,proc,sys,dev,var/run}
  cp "$bb" "$r/bin/busybox"
  [[ $name == busybox ]] && for a in $("$bb" --list); do [[ $a == busybox ]] || ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/:/bin/sh' > "$r/etc/passwd"; echo 'root:x:0:' > "$r/etc/group"
  umoci repack --image "$oci:img" "$b"
  local args=() c; for c in "$@"; do args+=(--config.cmd "$c"); done
  umoci config --image "$oci:img" --config.env PATH=/bin:/usr/bin:/sbin:/usr/sbin "${args[@]}"
  skopeo copy -q "oci:$oci:img" "docker-archive:$tmp/$name.tar:$ref"
  mv "$tmp/$name.tar" "$OUT/$name.tar"
}
[[ -s $OUT/pause.tar ]] || pack pause ztctl.local/pause:dev /bin/busybox sleep 2147483647
[[ -s $OUT/busybox.tar ]] || pack busybox ztctl.local/busybox:dev /bin/sh
log "built $(ls "$OUT")"
echo "$OUT"
