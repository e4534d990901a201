# shellcheck shell=bash
# Fault injection: stop and start single components of a running testbed.

COMPONENT_USAGE="components: kube-proxy NODE | kubelet NODE | containerd NODE | kube-controller-manager | kube-scheduler | dns"

# component_daemons COMPONENT [NODE] — the PID-file names behind a component.
component_daemons() {
  local component=$1 node=${2:-}
  case "$component" in
    kube-proxy | kubelet | containerd)
      [ -n "$node" ] || die "$component needs a node (nodes: ${NODES[*]})"
      node_known "$node" || die "unknown node '$node' (nodes: ${NODES[*]})"
      echo "$component-$node"
      ;;
    kube-controller-manager | kube-scheduler) echo "$component" ;;
    dns) echo unbound ;;
    *) die "unknown component '$component'; $COMPONENT_USAGE" ;;
  esac
}
