#!/usr/bin/env bash
# kubemr's test cluster: one entry point for a real multi-node Kubernetes.
#
#   hack/cluster.sh up        build (or reuse) everything and start the cluster
#   hack/cluster.sh down      stop it; leaves no process, mount, iptables rule or interface
#   hack/cluster.sh status    what runs
#   hack/cluster.sh env       `eval "$(hack/cluster.sh env)"` exports KUBECONFIG and PATH
#   hack/cluster.sh kubeconfig   prints the kubeconfig path
#   hack/cluster.sh logs [N]  tail of every component log
#   hack/cluster.sh build     only build binaries and images (no cluster)
#   hack/cluster.sh node-stop NAME | node-start NAME   simulate a node failure (local path)
#   hack/cluster.sh restart-apiserver   stop kube-apiserver and start it again (local path)
#
# Two paths (docs/cluster.md):
#   local  (default where kind cannot run): builds Kubernetes, etcd, CoreDNS, MinIO and helm from
#          the Go module proxy, and runs a control plane plus 3 kubelets, each with its own
#          containerd, CNI bridge and pod subnet, on this host.
#   kind   (KUBEMR_CLUSTER=kind, or automatically when `kind` and a working docker exist):
#          kind create cluster --config kind-config.yaml, docker build, kind load docker-image.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HACK/.." && pwd)"
KUBEMR_CACHE="${KUBEMR_CACHE:-$HOME/.cache/kubemr}"
CL="$KUBEMR_CACHE/cluster"                       # state of the running local cluster
KUBEMR_LOG_DIR="${KUBEMR_LOG_DIR:-$CL/logs}"     # every component logs here
export KUBEMR_CACHE KUBEMR_LOG_DIR
# Source tree the kubemr image is built from (pyproject.toml + kubemr/ + operator/).
KUBEMR_SRC="${KUBEMR_SRC:-$REPO_ROOT}"

_T0=$(date +%s)
exec 3>&2   # progress lines go to the original stderr even while go/pip output goes to a log
log() {
  local line; line=$(printf '[cluster %4ss] %s' "$(( $(date +%s) - _T0 ))" "$*")
  echo "$line" >&3
  if [[ -d "$KUBEMR_LOG_DIR" ]]; then echo "$(date +%T) $line" >> "$KUBEMR_LOG_DIR/cluster.log"; fi
}
die() { log "ERROR: $*"; exit 1; }
kctl() { "$CL/bin/kubectl" --kubeconfig "$CL/kubeconfig" "$@"; }

source "$HACK/lib/versions.sh"
source "$HACK/lib/build.sh"
source "$HACK/lib/images.sh"
source "$HACK/lib/render.sh"
source "$HACK/lib/proc.sh"
source "$HACK/lib/local.sh"
source "$HACK/lib/network.sh"
source "$HACK/lib/pki.sh"
source "$HACK/lib/control-plane.sh"
source "$HACK/lib/addons.sh"
source "$HACK/lib/nodes.sh"
source "$HACK/lib/node-failure.sh"
source "$HACK/lib/minio.sh"
source "$HACK/lib/kind.sh"

cluster_mode() {
  if [[ -n "${KUBEMR_CLUSTER:-}" ]]; then echo "$KUBEMR_CLUSTER"; return; fi
  if [[ -f "$CL/mode" ]]; then cat "$CL/mode"; return; fi
  if command -v kind >/dev/null 2>&1 && docker info >/dev/null 2>&1 && [[ "${KUBEMR_CLUSTER:-}" != local ]]; then
    echo kind
  else
    echo local
  fi
}

main() {
  local cmd="${1:-status}"; shift || true
  local mode; mode=$(cluster_mode)
  case "$mode" in local|kind) ;; *) die "KUBEMR_CLUSTER must be local or kind, not $mode";; esac
  case "$cmd" in
    up)         "${mode}_up" "$@" ;;
    down)       "${mode}_down" "$@" ;;
    status)     "${mode}_status" "$@" ;;
    build)      "${mode}_build" "$@" ;;
    images)     mkdir -p "$KUBEMR_LOG_DIR"; build_images ;;
    kubeconfig) echo "$CL/kubeconfig" ;;
    env)
      echo "export KUBECONFIG=$CL/kubeconfig"
      echo "export KUBEMR_LOG_DIR=$KUBEMR_LOG_DIR"
      [[ -d "$CL/bin" ]] && echo "export PATH=$CL/bin:\$PATH"
      ;;
    logs)       tail_logs "${1:-40}" ;;
    node-stop)  [[ $mode == local ]] || die "node-stop: local path only (kind: docker stop <node>)"; local_node_stop "$@" ;;
    node-start) [[ $mode == local ]] || die "node-start: local path only (kind: docker start <node>)"; local_node_start "$@" ;;
    restart-apiserver)
      [[ $mode == local ]] || die "restart-apiserver: local path only"
      stop_proc kube-apiserver; start_control_plane ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
}

tail_logs() {
  local n=$1 f
  [[ -d "$KUBEMR_LOG_DIR" ]] || { echo "no logs in $KUBEMR_LOG_DIR"; return 0; }
  for f in "$KUBEMR_LOG_DIR"/*.log; do
    [[ -f "$f" ]] || continue
    echo "===== $f (last $n lines)"
    tail -n "$n" "$f"
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
