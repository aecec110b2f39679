# The local cluster's add-ons, host processes like the control plane: kube-proxy (iptables
# mode, serves every node's bridge) and CoreDNS on $CP_IP:53 behind the kube-dns Service.

start_addons() {
  local B="$CL/bin"
  # RBAC for CoreDNS (it watches services, endpointslices, namespaces, pods).
  render coredns-rbac.yaml.tmpl | kctl apply -f - >/dev/null

  start_proc kube-proxy "$B/kube-proxy" \
    --kubeconfig "$CL/kube-proxy.kubeconfig" --proxy-mode iptables \
    --cluster-cidr "$POD_CIDR" --hostname-override "$(node_name 1)" \
    --nodeport-addresses 172.30.0.0/24 --conntrack-max-per-core 0 \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 --v=1

  render Corefile.tmpl CP_IP CL > "$CL/Corefile"
  start_proc coredns "$B/coredns" -conf "$CL/Corefile"
  # kube-dns: a selector-less Service whose endpoint is the CoreDNS on this host.
  render kube-dns.yaml.tmpl DNS_IP CP_IP | kctl apply -f - >/dev/null
}
