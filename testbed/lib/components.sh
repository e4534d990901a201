# shellcheck shell=bash
# Fault injection: stop and start single components of a running testbed.

COMPONENT_USAGE="components: kube-proxy NODE | kubelet NODE | containerd NODE | kube-controller-manager | kube-scheduler | dns [NODE] | loadbalancer [NODE]"

# component_daemon COMPONENT [NODE] — the PID-file name behind a component (none for CoreDNS, which
# runs as pods).
component_daemon() {
  local component=$1 node=${2:-}
  case "$component" in
    kube-proxy | kubelet | containerd)
      [ -n "$node" ] || die "$component needs a node (nodes: ${NODES[*]})"
      node_known "$node" || die "unknown node '$node' (nodes: ${NODES[*]})"
      echo "$component-$node"
      ;;
    kube-controller-manager | kube-scheduler) echo "$component" ;;
    dns | loadbalancer)
      [ -z "$node" ] || node_known "$node" || die "unknown node '$node' (nodes: ${NODES[*]})"
      ;;
    *) die "unknown component '$component'; $COMPONENT_USAGE" ;;
  esac
}

# stop_component COMPONENT [NODE]. `dns` scales CoreDNS to zero (the Service loses its endpoints);
# `dns NODE` freezes the replica on NODE (it stops answering, silently). `loadbalancer [NODE]` freezes
# MetalLB's speaker on NODE (or on every node): its addresses stop being announced.
stop_component() {
  local component=$1 node=${2:-} d
  d=$(component_daemon "$@")
  case "$component" in
    dns)
      if [ -n "$node" ]; then freeze_coredns_on "$node" pause; else stop_coredns; fi
      ;;
    loadbalancer) if [ -n "$node" ]; then freeze_speakers pause "$node"; else freeze_speakers pause "${NODES[@]}"; fi ;;
    *) stop_daemon "$d" ;;
  esac
  log "stopped $component${node:+ on $node}"
}

start_component() {
  local component=$1 node=${2:-} d
  d=$(component_daemon "$@")
  case "$component" in
    kube-proxy) start_kube_proxy "$node" ;;
    kubelet) start_kubelet "$node" ;;
    containerd) start_containerd "$node" ;;
    kube-controller-manager) start_controller_manager ;;
    kube-scheduler) start_scheduler ;;
    dns)
      if [ -n "$node" ]; then freeze_coredns_on "$node" resume; else start_coredns; fi
      ;;
    loadbalancer) if [ -n "$node" ]; then freeze_speakers resume "$node"; else freeze_speakers resume "${NODES[@]}"; fi ;;
  esac
  if [ -n "$d" ]; then
    sleep 0.3
    running_pid "$d" >/dev/null || { show_log_tail "$d"; die "$d did not stay up"; }
  fi
  log "started $component${node:+ on $node}"
}
