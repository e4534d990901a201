# shellcheck shell=bash
# Whole-cluster lifecycle: bring up, wait for Ready, tear down. Used by up, down and status.

# shellcheck source=testbed/lib/net.sh
source "$TESTBED_DIR/lib/net.sh"
# shellcheck source=testbed/lib/pki.sh
source "$TESTBED_DIR/lib/pki.sh"
# shellcheck source=testbed/lib/images.sh
source "$TESTBED_DIR/lib/images.sh"
# shellcheck source=testbed/lib/control-plane.sh
source "$TESTBED_DIR/lib/control-plane.sh"
# shellcheck source=testbed/lib/node.sh
source "$TESTBED_DIR/lib/node.sh"
# shellcheck source=testbed/lib/loadbalancer.sh
source "$TESTBED_DIR/lib/loadbalancer.sh"
# shellcheck source=testbed/lib/dns.sh
source "$TESTBED_DIR/lib/dns.sh"

# Every daemon the testbed starts, in start order.
all_components() {
  local node
  echo etcd kube-apiserver kube-controller-manager kube-scheduler
  for node in "${NODES[@]}"; do echo "containerd-$node" "kubelet-$node" "kube-proxy-$node"; done
}

node_ready() {
  [ "$(kubectl_tb get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

node_registered() { kubectl_tb get node "$1"; }

# Pod CIDRs are static per node (CNI config); record them on the Node objects for tools that read them.
patch_pod_cidr() {
  local node=$1
  kubectl_tb patch node "$node" --type merge \
    -p "{\"spec\":{\"podCIDR\":\"${NODE_POD_CIDR[$node]}\",\"podCIDRs\":[\"${NODE_POD_CIDR[$node]}\"]}}" >/dev/null 2>&1 || true
}

cluster_healthy() {
  local c node
  for c in $(all_components); do running_pid "$c" >/dev/null || return 1; done
  for node in "${NODES[@]}"; do node_ready "$node" >/dev/null 2>&1 || return 1; done
  coredns_ready_count_is "$DNS_REPLICAS"
}

# The version the control plane runs (kube-apiserver's), empty when none is set up.
cluster_version() { component_version kube-apiserver 2>/dev/null; }

# bring_up VERSION PROXY_MODE

bring_up() {
  local version=$1 mode=$2
  mkdir -p "$TB" "$TB/pids" "$TB/logs"
  point_cluster "$version"
  echo "$mode" >"$TB/proxy-mode"
  install_blackholes
  verify_blackholes
  setup_bridge
  local node
  for node in "${NODES[@]}"; do setup_node_net "$node"; done
  route_services_via_first_node
  generate_pki
  write_kubeconfigs
  build_images
  save_host_sysctls
  start_control_plane || return 1
  for node in "${NODES[@]}"; do start_node "$node" || return 1; done
  for node in "${NODES[@]}"; do
    wait_for "$node to register" 60 "kubelet-$node" node_registered "$node" || return 1
    patch_pod_cidr "$node"
  done
  for node in "${NODES[@]}"; do
    wait_for "$node to be Ready" 60 "kubelet-$node" node_ready "$node" || return 1
  done
  start_coredns || return 1
  # Network safety again, now that every route is in place.
  verify_blackholes
  for node in "${NODES[@]}"; do verify_no_default_route "$node"; done
}

tear_down() {
  local node c
  local node_daemons=() containerds=()
  for node in "${NODES[@]}"; do
    node_daemons+=("kube-proxy-$node" "kubelet-$node")
    containerds+=("containerd-$node")
  done
  stop_daemons kube-scheduler kube-controller-manager "${node_daemons[@]}"
  for node in "${NODES[@]}"; do kill_node_containers "$node"; done
  kill_leftover_shims
  stop_daemons "${containerds[@]}"
  for node in "${NODES[@]}"; do kill_cgroup_leftovers "$node"; done
  stop_daemons kube-apiserver
  stop_daemons etcd
  for node in "${NODES[@]}"; do
    unmount_node_namespaces "$node"
    remove_node_cgroups "$node"
  done
  if mountpoint -q "$TB/ns" 2>/dev/null; then umount "$TB/ns"; fi
  teardown_net
  restore_host_sysctls
  # State of this cluster instance; pki and logs stay for the next start and for post-mortems.
  rm -rf "$TB/etcd" "$TB/pids" "$TB/ns" "$RUN_BIN" "$TB/proxy-mode"
  for node in "${NODES[@]}"; do rm -rf "${TB:?}/$node"; done
}
