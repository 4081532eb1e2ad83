#!/usr/bin/env bash
# build.sh — build real Kubernetes 1.20.2 server binaries once, from Debian 12's `kubernetes` source package
# (it ships its whole vendor/ tree: nothing but Debian's apt is needed), into $ZTCTL_K8S_CACHE/bin.
#   ZTCTL_K8S_CACHE    cache dir (default /var/cache/ztctl-k8s); prints $ZTCTL_K8S_CACHE/bin on stdout
#   K8S_BINS           cmd/ binaries wanted (default: apiserver, controller-manager, scheduler, kubelet, kube-proxy)
#   K8S_KEEP_WORK=1    keep the unpacked source + Go build cache (~1.9 GB): adding a binary is then ~1 min
#   GOFLAGS_EXTRA      extra `go build` flags (e.g. "-p 1" for less memory: one link takes ~1.4 GB)
# Idempotent: returns at once when every wanted binary is there with a compatible stamp. Builds are
# serialised by a lock in the cache dir. Cold: ~5.5 min on 2 cores (docs/kubernetes.md).
set -euo pipefail
LOG_TAG=build
. "$(dirname "$0")/lib.sh"
K8S_BINS=${K8S_BINS:-$K8S_ALL_BINS}
WORK=$K8S_CACHE/work
STAMP=$K8S_BIN/.stamp
STAMP_KEY="k8s=$K8S_VERSION reflect2=1.0.2"     # the recipe's stamp format, so its cache is reused

missing_bins() {
  local b out=()
  if [[ -f $STAMP ]] && grep -q "$STAMP_KEY" "$STAMP"; then
    for b in $K8S_BINS; do [[ -x $K8S_BIN/$b ]] || out+=("$b"); done
  else
    out=($K8S_BINS)
  fi
  echo "${out[*]}"
}
[[ -z $(missing_bins) ]] && { echo "$K8S_BIN"; exit 0; }

need_root
mkdir -p "$K8S_BIN"
exec 8>"$K8S_CACHE/.build.lock"
flock 8                                        # another build.sh may be half-way: wait for it
todo=$(missing_bins)
[[ -z $todo ]] && { echo "$K8S_BIN"; exit 0; }
need_cmds go:golang-go dpkg-source:dpkg-dev /usr/share/gocode/src/github.com/modern-go/reflect2/go_above_118.go:golang-github-modern-go-reflect2-dev
log "building $todo into $K8S_BIN (cold: ~5.5 min, ~1.4 GB per link)"

# ---- source: apt-get source (deb-src enabled for Debian's deb822 sources if it is not) -------------
SRC=$WORK/gopath/src/k8s.io/kubernetes
mkdir -p "$WORK"
if [[ ! -f $SRC/cmd/kube-apiserver/apiserver.go ]]; then
  cd "$WORK"
  if ! ls kubernetes_*.dsc >/dev/null 2>&1 && ! apt-get source --download-only kubernetes >/dev/null 2>&1; then
    f=/etc/apt/sources.list.d/debian.sources
    if [[ -f $f ]] && ! grep -q deb-src "$f"; then
      log "enabling deb-src in $f"; sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"; apt-get update -qq >&2
    fi
    apt-get source --download-only kubernetes >&2
  fi
  rm -rf src && dpkg-source -x kubernetes_*.dsc src >&2      # applies Debian's patches
  mkdir -p "$(dirname "$SRC")" && rm -rf "$SRC" && mv src "$SRC"
fi
export GOPATH=$WORK/gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOCACHE=$WORK/go-build
cd "$SRC"                                      # GOPATH mode, as k8s 1.20's hack/ scripts build

# ---- Go >= 1.18: vendored reflect2 v1.0.1 copies Go <= 1.17 map internals; kube-apiserver then dies with
# SIGSEGV (aeshashbody <- mapiternext <- json-iterator) on the first custom resource through the watch
# cache. Debian's 1.0.2 is the fix k8s itself took in 1.23.
R=vendor/github.com/modern-go/reflect2
if [[ ! -f $R/go_above_118.go ]]; then
  log "replacing vendored reflect2 v1.0.1 with Debian's $(dpkg-query -W -f '${Version}' golang-github-modern-go-reflect2-dev)"
  rm -f "$R"/*.go "$R"/*.s && cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$R"/
fi

# ---- pkg/generated/openapi (kube-apiserver only), with the vendored openapi-gen over the package set of
# upstream's Makefile.generated_files (every dir tagged +k8s:openapi-gen=, minus code-generator/sample-apiserver)
PKG=k8s.io/kubernetes
OPENAPI_OUT=pkg/generated/openapi/zz_generated.openapi.go
if [[ " $todo " == *" kube-apiserver "* && ! -s $OPENAPI_OUT ]]; then
  log "openapi-gen"
  go build -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  dirs=$(find -H . \( -path ./_\* -o -path ./.\* -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
         | xargs grep --color=never -l '^// *+k8s:' | xargs grep --color=never -l '+k8s:openapi-gen=' \
         | sed 's|^\./staging/src|vendor|; s|^\./||' | xargs -n1 dirname | LC_ALL=C sort -u \
         | grep -v -e '^vendor/k8s.io/code-generator' -e '^vendor/k8s.io/sample-apiserver' \
         | sed "s|^|$PKG/|" | paste -sd, -)
  "$WORK/openapi-gen" --logtostderr -v 1 -i "$dirs" -p "$PKG/pkg/generated/openapi" -O zz_generated.openapi \
      -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$WORK/openapi-violations.report" 2>"$WORK/openapi-gen.log"
  [[ -s $OPENAPI_OUT ]] || die "openapi-gen produced nothing, see $WORK/openapi-gen.log"
fi

# ---- go build, with the version ldflags hack/lib/version.sh would set -------------------------------
ldf="-s -w"
for p in $PKG/vendor/k8s.io/component-base/version $PKG/vendor/k8s.io/client-go/pkg/version; do
  ldf+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=archive"
  ldf+=" -X $p.gitCommit=debian-1.20.5+really1.20.2 -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done
pkgs=(); for b in $todo; do pkgs+=("./cmd/$b"); done
t0=$SECONDS
# shellcheck disable=SC2086
go build ${GOFLAGS_EXTRA:-} -trimpath -ldflags "$ldf" -o "$K8S_BIN/" "${pkgs[@]}"
have=$(for b in $K8S_ALL_BINS $K8S_BINS; do [[ -x $K8S_BIN/$b ]] && echo "$b"; done | awk '!seen[$0]++' | paste -sd' ' -)
echo "$STAMP_KEY go=$(go env GOVERSION) bins=$have" > "$STAMP"
log "go build took $((SECONDS - t0)) s: $("$K8S_BIN/kube-apiserver" --version 2>/dev/null || echo '?')"
if [[ ${K8S_KEEP_WORK:-0} != 1 ]]; then log "removing $WORK (K8S_KEEP_WORK=1 keeps it)"; rm -rf "$WORK"; fi
echo "$K8S_BIN"
