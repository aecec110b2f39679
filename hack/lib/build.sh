# Builds (or reuses from ~/.cache/kubemr/bin) every binary the local cluster
# needs, from the Go module proxy only. Sourced by hack/cluster.sh.
# Each binary lands as $KUBEMR_CACHE/bin/<name>-<version>; a build is skipped
# when that file exists.

_go_env() {
  export GOFLAGS="-buildvcs=false -mod=mod"
  export CGO_ENABLED=0
  # -p 2: this machine has 2 cores; more parallelism only costs memory.
  GO_BUILD_FLAGS=(-p "${KUBEMR_BUILD_JOBS:-$(nproc)}" -trimpath)
}

_have_all() {  # _have_all version name...
  local v=$1; shift
  local n
  for n in "$@"; do [[ -x "$KUBEMR_CACHE/bin/$n-$v" ]] || return 1; done
}

# Kubernetes: k8s.io/kubernetes' go.mod points its ~31 staging modules at
# ./staging/src/...; a wrapper module that replaces each one with its
# published v0.X.Y tag builds with plain `go build`.
build_kubernetes() {
  local v=$KUBE_VERSION
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  if _have_all "$v" "${bins[@]}"; then log "kubernetes $v: cached"; return 0; fi
  _go_env
  local d="$KUBEMR_CACHE/build-kubernetes-$v"
  mkdir -p "$d/out"
  local minor=${v#v1.}; minor=${minor%%.*}
  local staging_v="v0.${v#v1.}"
  log "kubernetes $v: resolving k8s.io/kubernetes@$v"
  local gomod
  gomod=$(cd "$d" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module kubemr.local/kubebuild"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v sv="$staging_v" '{print "\t" $1 " => " $1 " " sv}'
    echo ")"
  } > "$d/go.mod"
  cat > "$d/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "kubernetes $v: go mod tidy ($(grep -c '=> k8s.io' "$d/go.mod") staging modules replaced by $staging_v)"
  (cd "$d" && go mod tidy) || return 1
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="-s -w"
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  log "kubernetes $v: go build ${bins[*]} (one invocation, shared compile cache; the long part, ~25 min on 2 cores)"
  (cd "$d" && go build "${GO_BUILD_FLAGS[@]}" -tags "providerless" -ldflags "$ld" -o "$d/out/" \
      $(printf 'k8s.io/kubernetes/cmd/%s ' "${bins[@]}")) || return 1
  for p in "${bins[@]}"; do mv -f "$d/out/$p" "$KUBEMR_CACHE/bin/$p-$v"; done
  log "kubernetes $v: done"
}

# etcd 3.5: server/v3's go.mod also replaces its sibling modules with ../paths.
build_etcd() {
  local v=$ETCD_VERSION
  if _have_all "$v" etcd; then log "etcd $v: cached"; return 0; fi
  _go_env
  local d="$KUBEMR_CACHE/build-etcd-$v"
  mkdir -p "$d"
  local rest=${v#v3.}
  cat > "$d/go.mod" <<MOD
module kubemr.local/etcdbuild

go 1.23

require go.etcd.io/etcd/server/v3 $v

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $v
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $v
	go.etcd.io/etcd/client/v2 => go.etcd.io/etcd/client/v2 v2.30${rest}
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $v
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $v
	go.etcd.io/etcd/raft/v3 => go.etcd.io/etcd/raft/v3 $v
)
MOD
  cat > "$d/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  log "etcd $v: go mod tidy + go build"
  (cd "$d" && go mod tidy && go build "${GO_BUILD_FLAGS[@]}" -ldflags "-s -w" -o "$d/etcd" go.etcd.io/etcd/server/v3) || return 1
  mv -f "$d/etcd" "$KUBEMR_CACHE/bin/etcd-$v"
  log "etcd $v: done"
}

_go_install() {  # _go_install name module/pkg version [ldflags]
  local name=$1 pkg=$2 v=$3 ld=${4:-}
  if _have_all "$v" "$name"; then log "$name $v: cached"; return 0; fi
  _go_env
  local d="$KUBEMR_CACHE/build-$name-$v"
  mkdir -p "$d"
  log "$name $v: go install $pkg@$v"
  GOFLAGS=-buildvcs=false GOBIN="$d" go install "${GO_BUILD_FLAGS[@]}" -ldflags "-s -w $ld" "$pkg@$v" || return 1
  mv -f "$d/$(basename "$pkg")" "$KUBEMR_CACHE/bin/$name-$v"
  log "$name $v: done"
}

build_coredns() { _go_install coredns github.com/coredns/coredns "$COREDNS_VERSION"; }
build_helm() {
  _go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
}
build_minio() {
  local v=$MINIO_VERSION
  if _have_all "$v" minio; then log "minio $v: cached"; return 0; fi
  # Another process may be running the very same build: wait for it.
  while pgrep -f "go install github.com/minio/minio@$v" >/dev/null; do
    log "minio $v: waiting for a concurrent build"; sleep 20
    _have_all "$v" minio && { log "minio $v: cached"; return 0; }
  done
  _go_install minio github.com/minio/minio "$v"
}

_building() { echo "$*" > "$KUBEMR_CACHE/.building"; }

build_all() {
  mkdir -p "$KUBEMR_CACHE/bin"
  : > "$KUBEMR_CACHE/.building"
  # Heartbeat: a line a minute with what is compiling and the time so far.
  ( while sleep 60; do
      [[ -s "$KUBEMR_CACHE/.building" ]] && log "still building $(cat "$KUBEMR_CACHE/.building" 2>/dev/null)"
    done ) 3>&3 &
  local hb=$! rc=0
  { _building "etcd $ETCD_VERSION" && build_etcd \
    && _building "coredns $COREDNS_VERSION" && build_coredns \
    && _building "helm $HELM_VERSION" && build_helm \
    && _building "minio $MINIO_VERSION" && build_minio \
    && _building "kubernetes $KUBE_VERSION" && build_kubernetes; } || rc=$?
  kill "$hb" 2>/dev/null || true
  rm -f "$KUBEMR_CACHE/.building"
  return "$rc"
}

# Puts stable names (kubectl, etcd, ...) into $KUBEMR_CACHE/cluster/bin.
link_bins() {
  local b="$KUBEMR_CACHE/cluster/bin"
  mkdir -p "$b"
  local n
  for n in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    ln -sfn "$KUBEMR_CACHE/bin/$n-$KUBE_VERSION" "$b/$n"
  done
  ln -sfn "$KUBEMR_CACHE/bin/etcd-$ETCD_VERSION" "$b/etcd"
  ln -sfn "$KUBEMR_CACHE/bin/coredns-$COREDNS_VERSION" "$b/coredns"
  ln -sfn "$KUBEMR_CACHE/bin/helm-$HELM_VERSION" "$b/helm"
  ln -sfn "$KUBEMR_CACHE/bin/minio-$MINIO_VERSION" "$b/minio"
}
