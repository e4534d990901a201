# shellcheck shell=bash
# Builds the cluster's Go components from their modules through the Go module proxy into the cache.
# One Go module cache and one Go build cache serve every version (both are content-addressed), so a
# second Kubernetes version rebuilds only what changed between the two.

export GOMODCACHE=$CACHE_ROOT/go/mod GOCACHE=$CACHE_ROOT/go/build GOPATH=$CACHE_ROOT/go/path
export GOPROXY=$GO_PROXY_URL GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

go_minor_version() { go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/'; }

# write_consumer_module DIR REQUIRE... — a throwaway module that requires the given module@versions.
write_consumer_module() {
  local dir=$1 r; shift
  rm -rf "$dir" && mkdir -p "$dir"
  {
    printf 'module netcheck.testbed/build\n\ngo %s.0\n\n' "$(go_minor_version)"
    for r in "$@"; do printf 'require %s\n' "$r"; done
  } >"$dir/go.mod"
}

# The module k8s.io/kubernetes points its staging modules (k8s.io/api, client-go, kubelet, …) at
# ./staging; a consumer pins each to the matching v0.MINOR.PATCH, the list read from that version's go.mod.
k8s_gomod() {
  local dir=$1 version=$2 staging m
  staging=$(curl -fsS "$GO_PROXY_URL/k8s.io/kubernetes/@v/v$version.mod" |
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p') ||
    die "could not read k8s.io/kubernetes v$version's go.mod from $GO_PROXY_URL (is v$version a release?)"
  [ -n "$staging" ] || die "k8s.io/kubernetes v$version's go.mod lists no staging modules"
  write_consumer_module "$dir" "k8s.io/kubernetes v$version"
  {
    echo "replace ("
    for m in $staging; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${version#1.}"; done
    echo ")"
  } >>"$dir/go.mod"
}

# ldflags that make `kubectl version` and the Node objects report the real version.
k8s_ldflags() {
  local version=$1 pkg flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$version")"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# build_k8s VERSION — kube-apiserver … kubectl and agnhost into k8s_cache_bin VERSION.
build_k8s() {
  local version=$1 out mod=$CACHE_ROOT/src/k8s-$1 pkgs=() b start=$SECONDS
  out=$(k8s_cache_bin "$version")
  [ -f "$out/.complete" ] && return 0
  k8s_gomod "$mod" "$version"
  for b in "${K8S_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  pkgs+=(k8s.io/kubernetes/test/images/agnhost)
  log "building Kubernetes v$version (${K8S_BINARIES[*]} agnhost) from Go modules (cold: about 20 minutes on 2 cores)"
  rm -rf "$out" && mkdir -p "$out"
  (cd "$mod" && nice go build -trimpath -ldflags "$(k8s_ldflags "$version")" -o "$out/" "${pkgs[@]}")
  [ "$("$out/kubectl" version --client -o json | jq -r .clientVersion.gitVersion)" = "v$version" ] ||
    die "kubectl v$version does not report its version"
  touch "$out/.complete"
  log "built Kubernetes v$version in $((SECONDS - start)) s"
}

# build_go_command NAME MODULE VERSION PACKAGE OUT LDFLAGS — one command from its own module.
build_go_command() {
  local name=$1 module=$2 version=$3 pkg=$4 out=$5 ldflags=$6 mod=$CACHE_ROOT/src/$1-$3 start=$SECONDS
  [ -x "$out" ] && return 0
  log "building $name v$version from $module"
  write_consumer_module "$mod" "$module v$version"
  mkdir -p "$(dirname "$out")"
  (cd "$mod" && nice go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  log "built $name v$version in $((SECONDS - start)) s"
}

build_etcd() {
  build_go_command etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_BIN" ""
}

build_coredns() {
  build_go_command coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns \
    "$COREDNS_BIN" "-X github.com/coredns/coredns/coremain.GitCommit=v$COREDNS_VERSION"
}

# The pause container is a small static C program that ships inside the Kubernetes module.
build_pause() {
  [ -x "$PAUSE_BIN" ] && return 0
  local src
  src=$(go mod download -json "k8s.io/kubernetes@v$DEFAULT_K8S_VERSION" | jq -r .Dir)/build/pause/linux/pause.c
  mkdir -p "$(dirname "$PAUSE_BIN")"
  gcc -Os -Wall -Werror -static -DVERSION=v3.10.2-testbed -o "$PAUSE_BIN.tmp" "$src"
  mv "$PAUSE_BIN.tmp" "$PAUSE_BIN"
}
