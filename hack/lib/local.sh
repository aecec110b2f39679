# The local path: a real control plane and N kubelets on this host.
#
# Addresses (all on interfaces this script creates and removes):
#   kubemr0 (bridge, no ports)172.30.0.1 control plane (apiserver :6443, CoreDNS :53)
#                       172.30.0.1<i> node i (kubelet :10250, healthz :10248)
#   kmr-br<i> (bridge)  10.244.<i>.0/24 pod subnet of node i, gateway .1
#   services            10.96.0.0/16 (kubernetes 10.96.0.1, kube-dns 10.96.0.10)
# Each node has its own containerd (own root, state, socket, CNI config and
# bridge) and its own kubelet (own root dir, cgroup root /kubemr-<node>).
# kube-proxy (iptables mode) runs once on the host and serves every bridge.
# Traffic stays on this machine: pods have no route out (KUBEMR-FORWARD drops
# anything from the pod range that is not for the pod range), containerd's
# registry client is pointed at a dead loopback proxy so a missing image fails
# fast, and CoreDNS answers only cluster names.
#
# This file holds the addresses, node names and up/down/status; each part has a file of its own:
#   proc.sh           start_proc, stop_proc, wait_for: the host processes
#   network.sh        kubemr0, routes, forwarding rules; each node's CNI config
#   pki.sh            CA, certificates, kubeconfigs
#   control-plane.sh  etcd, kube-apiserver, kube-controller-manager, kube-scheduler
#   addons.sh         kube-proxy, CoreDNS and the kube-dns Service
#   nodes.sh          each node's containerd and kubelet, and taking a node apart
#   node-failure.sh   node-stop / node-start
#   minio.sh          MinIO and its credentials (both paths)
# The configuration files they write are hack/templates/*.tmpl, filled in by render (render.sh).

KUBEMR_WORKERS="${KUBEMR_WORKERS:-3}"
CP_IP=172.30.0.1
POD_CIDR=10.244.0.0/16
SVC_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
DUMMY_IF=kubemr0
RUNDIR=/run/kubemr
STATE="$CL/state"
PKI="$CL/pki"

node_name() { if (( $1 == 1 )); then echo kubemr-worker; else echo "kubemr-worker$1"; fi; }
node_ip()   { echo "172.30.0.1$1"; }
node_br()   { echo "kmr-br$1"; }
nodes()     { local i; for ((i = 1; i <= KUBEMR_WORKERS; i++)); do echo "$i"; done; }

check_host() {
  local missing=() c
  for c in containerd runc ctr iptables ip openssl setsid; do command -v "$c" >/dev/null || missing+=("$c"); done
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  if ((${#missing[@]})); then
    die "missing ${missing[*]}: apt-get install -y containerd runc containernetworking-plugins iptables debootstrap docker.io conntrack"
  fi
  [[ $(id -u) == 0 ]] || die "the local cluster needs root"
}

local_build() {
  check_host
  mkdir -p "$KUBEMR_CACHE/bin" "$KUBEMR_LOG_DIR"
  local deboot=""
  if [[ ! -f "$IMG_CACHE/base-python-$(base_key).tar" && ! -f "$(base_rootfs).done" ]]; then
    prepare_base_rootfs & deboot=$!     # network-bound: overlaps the compiles
  fi
  log "building binaries (cache: $KUBEMR_CACHE/bin; go output: $KUBEMR_LOG_DIR/build.log)"
  build_all >> "$KUBEMR_LOG_DIR/build.log" 2>&1 || die "binary build failed: see $KUBEMR_LOG_DIR/build.log"
  if [[ -n "$deboot" ]]; then wait "$deboot" || true; fi   # image_base retries/dies on failure
  link_bins
  build_images
}

local_up() {
  check_host
  mkdir -p "$CL" "$KUBEMR_LOG_DIR" "$STATE" "$RUNDIR"
  echo local > "$CL/mode"
  local_build
  log "host network: $DUMMY_IF, node IPs, forwarding rules"
  host_net_up
  make_pki
  start_control_plane
  start_addons
  local i
  for i in $(nodes); do start_containerd "$i"; done
  for i in $(nodes); do node_dirs "$i"; wait_for 60 "containerd-$N" ctr -a "$SOCK" version; done
  log "importing images into every node's containerd: ${IMAGE_TARS[*]##*/}"
  local pids=()
  for i in $(nodes); do import_images_node "$i" "${IMAGE_TARS[@]}" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || die "image import failed"; done
  for i in $(nodes); do start_kubelet_settled "$i"; done
  for i in $(nodes); do
    node_dirs "$i"
    wait_node_ready
    kctl label node "$N" node-role.kubernetes.io/worker= --overwrite >/dev/null
  done
  deploy_minio
  kctl get nodes -o wide >&2
  log "cluster up. export KUBECONFIG=$CL/kubeconfig   (or: eval \"\$(hack/cluster.sh env)\")"
}

local_down() {
  # Best effort: every step runs even when an earlier one found nothing to do.
  set +e +o pipefail
  mkdir -p "$CL"
  log "stopping kubelets"
  local i n pid
  for i in $(nodes); do stop_proc "kubelet-$(node_name "$i")"; done
  for i in $(nodes); do
    node_dirs "$i"
    kill_cgroup_procs "$N"
  done
  sleep 1
  for i in $(nodes); do
    node_dirs "$i"
    stop_proc "containerd-$N"
    for pid in $(shim_pids "$N"); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for n in coredns kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_proc "$n"; done
  # Anything else started by an earlier run whose pid file survived.
  if [[ -d "$CL/pids" ]]; then for n in "$CL"/pids/*.pid; do [[ -f "$n" ]] && stop_proc "$(basename "$n" .pid)"; done; fi
  log "cleaning iptables (kube-proxy --cleanup), mounts, cgroups, interfaces"
  [[ -x "$CL/bin/kube-proxy" ]] && "$CL/bin/kube-proxy" --cleanup >>"$KUBEMR_LOG_DIR/kube-proxy.log" 2>&1 || true
  log "unmounting, removing cgroups"
  for i in $(nodes); do
    node_dirs "$i"
    umount_under "$NR"
    umount_under "$ND"
    rm_cgroups "$N"
  done
  # kubelet canary chains and anything kube-proxy --cleanup left
  local t ch ipt
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      for ch in $("$ipt" -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
        "$ipt" -t "$t" -S 2>/dev/null | grep -E "^-A [A-Z]+ .*-j $ch( |\$)" | sed 's/^-A/-D/' | while read -r rule; do
          eval "$ipt" -t "$t" "$rule" 2>/dev/null || true
        done
      done
      for ch in $("$ipt" -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do "$ipt" -t "$t" -F "$ch" 2>/dev/null || true; done
      for ch in $("$ipt" -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do "$ipt" -t "$t" -X "$ch" 2>/dev/null || true; done
    done
  done
  host_net_down
  log "removing node state"
  rm -rf "$STATE" "$RUNDIR" "$CL/pids"
  rm -f "$CL/mode"
  log "cluster down (caches kept in $KUBEMR_CACHE)"
}

local_status() {
  local n f any=0
  echo "mode: local   kubeconfig: $CL/kubeconfig   logs: $KUBEMR_LOG_DIR"
  for f in "$CL"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    n=$(basename "$f" .pid); any=1
    if proc_alive "$n"; then printf '  %-32s running  pid %s\n' "$n" "$(cat "$f")"
    else printf '  %-32s DEAD     (log: %s/%s.log)\n' "$n" "$KUBEMR_LOG_DIR" "$n"; fi
  done
  if (( ! any )); then echo "  no component running"; return 0; fi
  if [[ -x "$CL/bin/kubectl" ]] && kctl get --raw /readyz >/dev/null 2>&1; then
    kctl get nodes -o wide
    kctl -n kubemr-system get pods,svc -o wide 2>/dev/null || true
  else
    echo "  apiserver not reachable"
  fi
}
