# The local cluster's control plane, host processes on kubemr0: etcd (127.0.0.1:2379),
# kube-apiserver ($CP_IP:6443), kube-controller-manager and kube-scheduler.

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
}
