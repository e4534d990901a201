# shellcheck shell=bash
# Host and node networking: blackholes first, a bridge, one network namespace per node (no default route).

# Network safety: with these in place, nothing aimed at the pod, Service or node ranges can leave the
# machine through its default route; the more specific routes added later override them.
install_blackholes() {
  ip route replace blackhole "$POD_CIDR"
  ip route replace blackhole "$SVC_CIDR" metric 4096
  ip route replace blackhole "$NODE_NET_BLACKHOLE"
}

verify_blackholes() {
  local r routes
  routes=$(ip route show type blackhole)
  for r in "$POD_CIDR" "$SVC_CIDR" "$NODE_NET_BLACKHOLE"; do
    grep -Eq "^blackhole $r( |$)" <<<"$routes" || die "blackhole route for $r is missing; refusing to continue"
  done
}

verify_no_default_route() {
  local node=$1
  if [ -n "$(ip -n "tb-$node" route show default)" ]; then
    die "network namespace tb-$node has a default route; refusing to continue"
  fi
}

setup_bridge() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # A Docker-style FORWARD DROP policy would otherwise drop bridged node<->node frames (br_netfilter).
  iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT -m comment --comment netcheck-testbed 2>/dev/null ||
    iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT -m comment --comment netcheck-testbed
}

other_nodes() {
  local n
  for n in "${NODES[@]}"; do [ "$n" != "$1" ] && echo "$n"; done
}

setup_node_net() {
  local node=$1
  local ns="tb-$node" veth=${NODE_VETH[$node]} other
  [ -e "/run/netns/$ns" ] || ip netns add "$ns"
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "${NODE_IP[$node]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  # On-link Service route: lets the node itself (kubelet, hostNetwork pods) connect() to ClusterIPs so that
  # kube-proxy's OUTPUT DNAT can act. An unknown Service IP just fails ARP on the bridge.
  ip -n "$ns" route replace "$SVC_CIDR" dev eth0
  for other in $(other_nodes "$node"); do
    ip -n "$ns" route replace "${NODE_POD_CIDR[$other]}" via "${NODE_IP[$other]}"
  done
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0
  ip netns exec "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  ip route replace "${NODE_POD_CIDR[$node]}" via "${NODE_IP[$node]}"
  verify_no_default_route "$node"
}

# The host reaches ClusterIPs through the first node's kube-proxy (it DNATs and masquerades).
route_services_via_first_node() {
  ip route replace "$SVC_CIDR" via "${NODE_IP[${NODES[0]}]}" metric 100
}

teardown_net() {
  local node
  for node in "${NODES[@]}"; do
    ip route del "${NODE_POD_CIDR[$node]}" 2>/dev/null || true
    ip link del "${NODE_VETH[$node]}" 2>/dev/null || true
    ip netns del "tb-$node" 2>/dev/null || true
  done
  ip route del "$SVC_CIDR" via "${NODE_IP[${NODES[0]}]}" metric 100 2>/dev/null || true
  while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT -m comment --comment netcheck-testbed 2>/dev/null; do :; done
  ip link del "$BRIDGE" 2>/dev/null || true
  # Blackholes last: until here something might still have been sending.
  ip route del blackhole "$POD_CIDR" 2>/dev/null || true
  ip route del blackhole "$SVC_CIDR" metric 4096 2>/dev/null || true
  ip route del blackhole "$NODE_NET_BLACKHOLE" 2>/dev/null || true
}
