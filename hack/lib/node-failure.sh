# Node failures on the local path (hack/cluster.sh node-stop NAME | node-start NAME).
#
# node-stop NAME: the node dies: its kubelet stops, every process of its pods is
# killed and its containerd stops. The Node turns NotReady after the controller
# manager's grace period (40s) and its pods are evicted like on a lost machine.
# node-start NAME: containerd and kubelet come back; the node turns Ready.

node_index() {
  local i
  for i in $(nodes); do [[ "$(node_name "$i")" == "$1" ]] && { echo "$i"; return 0; }; done
  die "no node $1 (nodes: $(for i in $(nodes); do node_name "$i"; done | tr '\n' ' '))"
}
local_node_stop() {
  local i; i=$(node_index "${1:?node name}"); node_dirs "$i"
  stop_proc "kubelet-$N" 5
  kill_cgroup_procs "$N"
  stop_proc "containerd-$N" 5
  local pid
  for pid in $(shim_pids "$N"); do kill -KILL "$pid" 2>/dev/null || true; done
  log "node $N stopped (kubelet, containerd and every pod process)"
}
local_node_start() {
  local i; i=$(node_index "${1:?node name}"); node_dirs "$i"
  IMAGE_TARS=()
  start_containerd "$i"
  wait_for 60 "containerd-$N" ctr -a "$SOCK" version
  start_kubelet_settled "$i"
  wait_node_ready
  log "node $N started"
}
