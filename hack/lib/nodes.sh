# The local cluster's nodes: node i has its own containerd (own root, state, socket and CNI
# config), its own kubelet (own root dir, pod-log dir, cgroup root /kubemr-<node>) and node IP
# 172.30.0.1<i>. Also what down and node-stop need to take a node apart.

node_dirs() {  # sets N, IP, ND (persistent dir), NR (run dir), SOCK
  N=$(node_name "$1"); IP=$(node_ip "$1"); ND="$STATE/nodes/$N"; NR="$RUNDIR/$N"
  SOCK="$NR/containerd.sock"
}

cgroup_controllers() {  # cgroup_controllers [all]: v1 hierarchies (+ the unified one with "all")
  local d
  for d in /sys/fs/cgroup/*/; do
    d=${d%/}
    [[ "$d" == */unified && "${1:-}" != all ]] && continue
    [[ -f "$d/cgroup.procs" ]] && echo "$d"
  done
}

start_containerd() {
  local i=$1; node_dirs "$i"
  mkdir -p "$ND/containerd" "$ND/cni" "$ND/opt" "$NR"
  render containerd.toml.tmpl ND NR SOCK PAUSE_IMAGE_REF RUNC="$(command -v runc)" > "$ND/containerd.toml"
  write_cni_config "$i"
  # A missing image must fail here, not be fetched from the internet: the registry
  # client of this containerd only knows a proxy on a dead loopback port.
  start_proc "containerd-$N" env HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
    containerd --config "$ND/containerd.toml"
}

start_kubelet() {
  local i=$1; node_dirs "$i"
  local c
  # Per-node cgroup root so the kubelets' pods never collide.
  for c in $(cgroup_controllers); do
    mkdir -p "$c/kubemr-$N"
    if [[ -f "$c/cpuset.cpus" ]]; then
      [[ -s "$c/kubemr-$N/cpuset.cpus" ]] && [[ -n "$(cat "$c/kubemr-$N/cpuset.cpus")" ]] || cat "$c/cpuset.cpus" > "$c/kubemr-$N/cpuset.cpus"
      [[ -n "$(cat "$c/kubemr-$N/cpuset.mems")" ]] || cat "$c/cpuset.mems" > "$c/kubemr-$N/cpuset.mems"
    fi
  done
  mkdir -p "$ND/kubelet"
  render kubelet.yaml.tmpl IP PKI N SOCK DNS_IP ND > "$ND/kubelet.yaml"
  start_proc "kubelet-$N" "$CL/bin/kubelet" --config "$ND/kubelet.yaml" \
    --kubeconfig "$CL/node-$N.kubeconfig" --hostname-override "$N" --node-ip "$IP" \
    --root-dir "$ND/kubelet" --cert-dir "$ND/kubelet/pki" \
    --node-labels "kubemr.io/role=worker,kubemr.io/node-index=$i" --v=1
}

start_kubelet_settled() {  # start_kubelet I, and again while it exits at once
  # A kubelet exits at start when containerd's CRI service does not serve yet, or when another
  # kubelet starting at the same moment took the device-plugin socket, whose path
  # (/var/lib/kubelet/device-plugins/kubelet.sock, not under --root-dir) every kubelet on this
  # host shares: so they are started one after another, each given time to bind it.
  local i=$1 try; node_dirs "$i"
  for try in 1 2 3 4 5 6; do
    start_kubelet "$i"
    sleep 3
    proc_alive "kubelet-$N" && return 0
    log "kubelet-$N exited at start (try $try of 6; log: $KUBEMR_LOG_DIR/kubelet-$N.log)"
  done
  die "kubelet-$N exits at every start (log: $KUBEMR_LOG_DIR/kubelet-$N.log)"
}

import_images_node() {  # import_images_node I TAR...
  local i=$1; shift; node_dirs "$i"
  local t
  for t in "$@"; do
    ctr -a "$SOCK" -n k8s.io images import --snapshotter overlayfs --no-unpack=false "$t" >/dev/null \
      || die "import of $t into $N failed"
  done
}

wait_node_ready() {  # the node of node_dirs
  wait_for 120 "node $N Ready" bash -c "'$CL/bin/kubectl' --kubeconfig '$CL/kubeconfig' get node $N -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}

kill_cgroup_procs() {  # kills every process in cgroup tree kubemr-<node>
  local n=$1 c pid
  for c in $(cgroup_controllers all); do
    [[ -d "$c/kubemr-$n" ]] || continue
    for pid in $(find "$c/kubemr-$n" -name cgroup.procs -exec cat {} + 2>/dev/null || true); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
}
rm_cgroups() {
  local n=$1 c
  for c in $(cgroup_controllers all); do
    [[ -d "$c/kubemr-$n" ]] || continue
    find "$c/kubemr-$n" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}
umount_under() {  # unmounts everything mounted below $1, deepest first
  local p=$1 m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v p="$p" '$2 == p || index($2, p "/") == 1 {print $2}' /proc/self/mounts | sort -r)
}
shim_pids() {  # containerd shims of node $1 (their -address is our socket)
  local sock="$RUNDIR/$1/containerd.sock" p
  for p in /proc/[0-9]*; do
    [[ -r "$p/cmdline" ]] || continue
    if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "-address $sock "; then echo "${p#/proc/}"; fi
  done
}
