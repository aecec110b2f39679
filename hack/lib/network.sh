# The local cluster's network: the host side (kubemr0 with the control-plane and node IPs,
# routes, forwarding and the KUBEMR-FORWARD chain) and each node's CNI configuration (a bridge
# kmr-br<i> with pod subnet 10.244.<i>.0/24, host-local IPAM).

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

write_cni_config() {  # write_cni_config I: node I's CNI config, which its containerd reads
  local i=$1; node_dirs "$i"
  render cni.conflist.tmpl N NR BRIDGE="$(node_br "$i")" SUBNET="10.244.$i" > "$ND/cni/10-kubemr.conflist"
}
