# The local cluster's certificates and kubeconfigs, in $PKI and $CL (kept across up and down):
# one CA, the service-account key pair, a certificate per component and per node.

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
  render kubeconfig.tmpl PKI CP_IP CERT="$2" > "$1"
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
