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

kctl() { "$CL/bin/kubectl" --kubeconfig "$CL/kubeconfig" "$@"; }

# ---------------------------------------------------------------- processes
# start_proc NAME CMD...: runs CMD in its own session, logs to $KUBEMR_LOG_DIR/NAME.log,
# pid in $CL/pids/NAME.pid. Idempotent: a live NAME is left alone.
start_proc() {
  local name=$1; shift
  if proc_alive "$name"; then log "$name: already running (pid $(cat "$CL/pids/$name.pid"))"; return 0; fi
  mkdir -p "$CL/pids" "$KUBEMR_LOG_DIR"
  echo "=== $(date -Is) start: $*" >> "$KUBEMR_LOG_DIR/$name.log"
  setsid "$@" >> "$KUBEMR_LOG_DIR/$name.log" 2>&1 < /dev/null 3>&- &
  echo $! > "$CL/pids/$name.pid"
  log "$name: started (pid $!)"
}
proc_alive() {
  local f="$CL/pids/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}
stop_proc() {  # stop_proc NAME [timeout]
  local name=$1 t=${2:-20} f="$CL/pids/$1.pid" pid i
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < t * 5; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { log "$name: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; }
    log "$name: stopped"
  fi
  rm -f "$f"
}
wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local t=$1 what=$2 i; shift 2
  for ((i = 0; i < t * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "timed out after ${t}s waiting for $what (logs: $KUBEMR_LOG_DIR)"
}

# ---------------------------------------------------------------- host setup
check_host() {
  local missing=() c
  for c in containerd runc ctr iptables ip openssl setsid; do command -v "$c" >/dev/null || missing+=("$c"); done
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  if ((${#missing[@]})); then
    die "missing ${missing[*]}: apt-get install -y containerd runc containernetworking-plugins iptables debootstrap docker.io conntrack"
  fi
  [[ $(id -u) == 0 ]] || die "the local cluster needs root"
}

host_net_up() {
  if ! ip link show "$DUMMY_IF" >/dev/null 2>&1; then
    ip link add "$DUMMY_IF" type bridge
  fi
  ip link set "$DUMMY_IF" up
  ip addr replace "$CP_IP/24" dev "$DUMMY_IF"
  local i
  for i in $(nodes); do ip addr replace "$(node_ip "$i")/24" dev "$DUMMY_IF"; done
  # Unallocated service IPs and pod IPs go nowhere rather than out of the default route.
  ip route replace "$SVC_CIDR" dev "$DUMMY_IF"
  ip route replace blackhole "$POD_CIDR"
  mkdir -p "$CL"
  [[ -f "$CL/sysctl.saved" ]] || {
    echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)" > "$CL/sysctl.saved"
    echo "bridge_nf=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" >> "$CL/sysctl.saved"
  }
  echo 1 > /proc/sys/net/ipv4/ip_forward
  modprobe br_netfilter 2>/dev/null || true
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
  # Pods talk to pods, services and this host only.
  iptables -N KUBEMR-FORWARD 2>/dev/null || iptables -F KUBEMR-FORWARD
  iptables -A KUBEMR-FORWARD -s "$POD_CIDR" -d "$POD_CIDR" -j RETURN
  iptables -A KUBEMR-FORWARD -s "$POD_CIDR" -j DROP
  iptables -C FORWARD -j KUBEMR-FORWARD 2>/dev/null || iptables -I FORWARD 1 -j KUBEMR-FORWARD
}

host_net_down() {
  local l
  for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^kmr-br[0-9]+$' || true); do
    ip link del "$l" 2>/dev/null || true
  done
  ip route del blackhole "$POD_CIDR" 2>/dev/null || true
  ip link del "$DUMMY_IF" 2>/dev/null || true
  if iptables -C FORWARD -j KUBEMR-FORWARD 2>/dev/null; then iptables -D FORWARD -j KUBEMR-FORWARD; fi
  iptables -F KUBEMR-FORWARD 2>/dev/null && iptables -X KUBEMR-FORWARD 2>/dev/null || true
  if [[ -f "$CL/sysctl.saved" ]]; then
    local ipf bnf
    ipf=$(sed -n 's/^ip_forward=//p' "$CL/sysctl.saved"); bnf=$(sed -n 's/^bridge_nf=//p' "$CL/sysctl.saved")
    echo "$ipf" > /proc/sys/net/ipv4/ip_forward
    [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && echo "$bnf" > /proc/sys/net/bridge/bridge-nf-call-iptables
    rm -f "$CL/sysctl.saved"
  fi
}

# ---------------------------------------------------------------- PKI
mkcert() {  # mkcert NAME CN [O] [SANs]
  local name=$1 cn=$2 o=${3:-} sans=${4:-}
  [[ -f "$PKI/$name.crt" ]] && return 0
  local subj="/CN=$cn"; [[ -n "$o" ]] && subj="/O=$o$subj"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$sans" ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$sans"
    else echo "extendedKeyUsage=clientAuth"; fi
  } > "$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

kubeconfig() {  # kubeconfig FILE CERTNAME
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kubemr
  cluster:
    certificate-authority: $PKI/ca.crt
    server: https://$CP_IP:6443
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: kubemr
  context: {cluster: kubemr, user: $2}
current-context: kubemr
KC
}

make_pki() {
  mkdir -p "$PKI"
  if [[ ! -f "$PKI/ca.crt" ]]; then
    log "pki: generating CA and certificates in $PKI"
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=kubemr-ca" -days 3650 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  fi
  [[ -f "$PKI/sa.key" ]] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  mkcert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$CP_IP,IP:10.96.0.1,IP:127.0.0.1"
  mkcert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  mkcert admin kubernetes-admin system:masters
  mkcert controller-manager system:kube-controller-manager
  mkcert scheduler system:kube-scheduler
  mkcert kube-proxy system:kube-proxy
  mkcert coredns kubemr:coredns
  local i n
  for i in $(nodes); do
    n=$(node_name "$i")
    mkcert "node-$n" "system:node:$n" system:nodes
    mkcert "kubelet-$n" "$n" "" "DNS:$n,IP:$(node_ip "$i")"
  done
  kubeconfig "$CL/kubeconfig" admin
  kubeconfig "$CL/controller-manager.kubeconfig" controller-manager
  kubeconfig "$CL/scheduler.kubeconfig" scheduler
  kubeconfig "$CL/kube-proxy.kubeconfig" kube-proxy
  kubeconfig "$CL/coredns.kubeconfig" coredns
  for i in $(nodes); do n=$(node_name "$i"); kubeconfig "$CL/node-$n.kubeconfig" "node-$n"; done
}

# ---------------------------------------------------------------- control plane
start_control_plane() {
  local B="$CL/bin"
  mkdir -p "$STATE/etcd"
  start_proc etcd "$B/etcd" --name kubemr --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster kubemr=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
  wait_for 60 etcd curl -sf http://127.0.0.1:2381/health

  start_proc kube-apiserver "$B/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address "$CP_IP" --advertise-address "$CP_IP" --secure-port 6443 \
    --service-cluster-ip-range "$SVC_CIDR" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --allow-privileged=true --profiling=false --v=1
  wait_for 120 kube-apiserver kctl get --raw /readyz

  start_proc kube-controller-manager "$B/kube-controller-manager" \
    --kubeconfig "$CL/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CL/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CL/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10257 \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --controllers '*,bootstrapsigner,tokencleaner' --leader-elect=false \
    --allocate-node-cidrs=false --service-cluster-ip-range "$SVC_CIDR" --cluster-name kubemr \
    --node-monitor-grace-period 40s --v=1
  start_proc kube-scheduler "$B/kube-scheduler" \
    --kubeconfig "$CL/scheduler.kubeconfig" \
    --authentication-kubeconfig "$CL/scheduler.kubeconfig" \
    --authorization-kubeconfig "$CL/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --v=1

  # RBAC for CoreDNS (it watches services, endpointslices, namespaces, pods).
  kctl apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubemr:coredns}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kubemr:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubemr:coredns}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "kubemr:coredns"}
YAML

  start_proc kube-proxy "$B/kube-proxy" \
    --kubeconfig "$CL/kube-proxy.kubeconfig" --proxy-mode iptables \
    --cluster-cidr "$POD_CIDR" --hostname-override "$(node_name 1)" \
    --nodeport-addresses 172.30.0.0/24 --conntrack-max-per-core 0 \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 --v=1

  cat > "$CL/Corefile" <<CF
.:53 {
    bind $CP_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $CL/coredns.kubeconfig kubemr
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
}
CF
  start_proc coredns "$B/coredns" -conf "$CL/Corefile"
  # kube-dns: a selector-less Service whose endpoint is the CoreDNS on this host.
  kctl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: kubemr-cluster-sh}
addressType: IPv4
endpoints:
- addresses: ["$CP_IP"]
  conditions: {ready: true}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
YAML
}

# ---------------------------------------------------------------- nodes
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
  cat > "$ND/containerd.toml" <<TOML
version = 2
root = "$ND/containerd"
state = "$NR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$ND/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE_REF"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # this host lacks CAP_SYS_RESOURCE: never ask runc for an oom_score_adj below our own
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$NR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$ND/cni"
    max_conf_num = 1
TOML
  local br sub
  br=$(node_br "$i"); sub="10.244.$i"
  cat > "$ND/cni/10-kubemr.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "kubemr-$N",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$br",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$sub.0/24", "gateway": "$sub.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NR/ipam"
      }
    }
  ]
}
JSON
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
  cat > "$ND/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $IP
port: 10250
readOnlyPort: 0
healthzBindAddress: $IP
healthzPort: 10248
tlsCertFile: $PKI/kubelet-$N.crt
tlsPrivateKeyFile: $PKI/kubelet-$N.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
cgroupRoot: /kubemr-$N
cgroupsPerQOS: true
failCgroupV1: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: ""
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 8760h
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
serializeImagePulls: false
runtimeRequestTimeout: 10m
maxPods: 110
podPidsLimit: -1
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
nodeStatusUpdateFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
localStorageCapacityIsolation: true
# Not the shared /var/log/pods: each kubelet deletes log dirs of pods it does not know.
podLogsDir: $ND/pod-logs
YAML
  start_proc "kubelet-$N" "$CL/bin/kubelet" --config "$ND/kubelet.yaml" \
    --kubeconfig "$CL/node-$N.kubeconfig" --hostname-override "$N" --node-ip "$IP" \
    --root-dir "$ND/kubelet" --cert-dir "$ND/kubelet/pki" \
    --node-labels "kubemr.io/role=worker,kubemr.io/node-index=$i" --v=1
}

import_images_node() {  # import_images_node I TAR...
  local i=$1; shift; node_dirs "$i"
  local t ref
  for t in "$@"; do
    ref=$(basename "$t" .tar)
    ctr -a "$SOCK" -n k8s.io images import --snapshotter overlayfs --no-unpack=false "$t" >/dev/null \
      || die "import of $t into $N failed"
  done
}

# ---------------------------------------------------------------- up / down / status
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
  local i
  for i in $(nodes); do start_containerd "$i"; done
  for i in $(nodes); do node_dirs "$i"; wait_for 60 "containerd-$N" ctr -a "$SOCK" version; done
  log "importing images into every node's containerd: ${IMAGE_TARS[*]##*/}"
  local pids=()
  for i in $(nodes); do import_images_node "$i" "${IMAGE_TARS[@]}" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || die "image import failed"; done
  for i in $(nodes); do start_kubelet "$i"; done
  for i in $(nodes); do
    node_dirs "$i"
    wait_node_ready
    kctl label node "$N" node-role.kubernetes.io/worker= --overwrite >/dev/null
  done
  deploy_minio
  kctl get nodes -o wide >&2
  log "cluster up. export KUBECONFIG=$CL/kubeconfig   (or: eval \"\$(hack/cluster.sh env)\")"
}

deploy_minio() {
  local cred="$KUBEMR_CACHE/minio-credentials.env"
  if [[ ! -f "$cred" ]]; then
    printf 'accessKey=kubemr\nsecretKey=%s\n' "$(openssl rand -hex 16)" > "$cred"
    chmod 600 "$cred"
  fi
  local ak sk
  ak=$(sed -n 's/^accessKey=//p' "$cred"); sk=$(sed -n 's/^secretKey=//p' "$cred")
  log "minio: deploying kubemr-system/minio ($MINIO_IMAGE_REF)"
  apply_minio_manifests "$ak" "$sk"
  wait_for 180 "minio ready" bash -c "'$CL/bin/kubectl' --kubeconfig '$CL/kubeconfig' -n kubemr-system rollout status deploy/minio --timeout=5s"
  local ip; ip=$(kctl -n kubemr-system get svc minio -o jsonpath='{.spec.clusterIP}')
  if [[ "$(cat "$CL/mode" 2>/dev/null)" == local ]]; then
    wait_for 60 "minio reachable from the host at $ip:9000" curl -sf "http://$ip:9000/minio/health/ready"
    log "minio: http://minio.kubemr-system:9000 in pods, http://$ip:9000 from the host"
  else
    log "minio: http://minio.kubemr-system:9000 in pods (kubectl -n kubemr-system port-forward svc/minio 9000 for the host)"
  fi
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

# ---------------------------------------------------------------- node failures
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
  # containerd answers before its CRI service is ready, and a kubelet started then exits.
  local try
  for try in 1 2 3 4 5 6; do
    start_kubelet "$i"
    sleep 5
    proc_alive "kubelet-$N" && break
  done
  wait_node_ready
  log "node $N started"
}
wait_node_ready() {  # the node of node_dirs
  wait_for 120 "node $N Ready" bash -c "'$CL/bin/kubectl' --kubeconfig '$CL/kubeconfig' get node $N -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}
