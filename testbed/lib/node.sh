# shellcheck shell=bash
# One worker node = a network namespace + a persistent mount and UTS namespace, running its own
# containerd, kubelet and kube-proxy.

CGROUP_SUBSYSTEMS=(cpu cpuacct cpuset memory devices freezer blkio pids systemd)

# The mount namespace gives each kubelet its own /var/log/pods (kubelet hard-codes the path and
# garbage-collects log dirs of pods it does not know, i.e. the other node's). containerd and kubelet must
# share it: kubelet mounts volumes there that containerd bind-mounts into containers.
setup_node_namespaces() {
  local node=$1
  local d=$TB/$node
  mkdir -p "$TB/ns" "$d/log/pods" "$d/log/containers" "$d/run" "$d/opt" "$d/cni-conf" "$d/cni-ipam" "$d/kubelet"
  if ! mountpoint -q "$TB/ns"; then
    mount --bind "$TB/ns" "$TB/ns"
    mount --make-private "$TB/ns"
  fi
  if ! mountpoint -q "$TB/ns/$node.mnt"; then
    touch "$TB/ns/$node.mnt"
    mkdir -p /var/log/pods /var/log/containers
    unshare --mount="$TB/ns/$node.mnt" --propagation slave true
    nsenter --mount="$TB/ns/$node.mnt" mount --bind "$d/log/pods" /var/log/pods
    nsenter --mount="$TB/ns/$node.mnt" mount --bind "$d/log/containers" /var/log/containers
  fi
  # hostNetwork pods inherit containerd's UTS namespace: give it the node's name.
  if ! mountpoint -q "$TB/ns/$node.uts"; then
    touch "$TB/ns/$node.uts"
    unshare --uts="$TB/ns/$node.uts" hostname "$node"
  fi
}

setup_node_cgroups() {
  local node=$1 s
  for s in "${CGROUP_SUBSYSTEMS[@]}"; do mkdir -p "/sys/fs/cgroup/$s/tb-$node"; done
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/tb-$node/cpuset.cpus"
  cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/tb-$node/cpuset.mems"
}

write_containerd_config() {
  local node=$1
  local d=$TB/$node
  cat >"$d/containerd.toml" <<CFG
version = 2
root = "$d/containerd"
state = "$d/run/state"
oom_score = 0
[grpc]
  address = "$d/run/containerd.sock"
[ttrpc]
  address = "$d/run/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  # root may lack CAP_SYS_RESOURCE: runc then cannot lower oom_score_adj as kubelet asks for sandboxes
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$d/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni-conf"
    max_conf_num = 1
CFG
  cat >"$d/cni-conf/10-testbed.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "testbed-$node",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$d/cni-ipam",
        "ranges": [[{"subnet": "${NODE_POD_CIDR[$node]}", "gateway": "${NODE_POD_GW[$node]}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
}

write_kubelet_config() {
  local node=$1
  local d=$TB/$node
  # Pods with dnsPolicy Default (CoreDNS itself) get this file; CoreDNS never forwards, so it is inert.
  echo "nameserver $DNS_SVC_IP" >"$TB/node-resolv.conf"
  cat >"$d/kubelet.yaml" <<CFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_IP[$node]}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-$node-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-$node-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$d/run/containerd.sock
# containerd 1.6 lacks the RuntimeConfig call: kubelet falls back to this driver
cgroupDriver: cgroupfs
# this machine has cgroup v1, which kubelet v1.35 and newer refuse unless told otherwise
failCgroupV1: false
cgroupRoot: /tb-$node
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
clusterDNS: [$DNS_SVC_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $TB/node-resolv.conf
failSwapOn: false
serializeImagePulls: false
# both nodes share one machine's disk and memory: keep eviction and image GC out of the way
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 3s
syncFrequency: 30s
fileCheckFrequency: 20s
podPidsLimit: -1
maxPods: 110
CFG
}

# The kube-proxy mode of this cluster: iptables (default) or nftables, chosen at `up` and kept in $TB.
proxy_mode() { cat "$TB/proxy-mode" 2>/dev/null || echo iptables; }

write_kube_proxy_config() {
  local node=$1
  local d=$TB/$node
  cat >"$d/kube-proxy.yaml" <<CFG
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $TB/kube-proxy.kubeconfig}
hostnameOverride: $node
bindAddress: ${NODE_IP[$node]}
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
mode: $(proxy_mode)
clusterCIDR: $POD_CIDR
iptables: {masqueradeAll: false, syncPeriod: 30s, minSyncPeriod: 0s}
nftables: {masqueradeAll: false, syncPeriod: 30s, minSyncPeriod: 0s}
# nf_conntrack_max is read-only outside the initial network namespace
conntrack: {maxPerCore: 0, min: 0}
CFG
}

start_containerd() {
  local node=$1
  start_daemon "containerd-$node" nsenter --mount="$TB/ns/$node.mnt" --uts="$TB/ns/$node.uts" \
    --net="/run/netns/tb-$node" -- containerd --config "$TB/$node/containerd.toml"
}

containerd_ready() { ctr --address "$TB/$1/run/containerd.sock" version; }

start_kubelet() {
  local node=$1
  start_daemon "kubelet-$node" nsenter --mount="$TB/ns/$node.mnt" --uts="$TB/ns/$node.uts" \
    --net="/run/netns/tb-$node" -- "$RUN_BIN/kubelet-$node" --config "$TB/$node/kubelet.yaml" \
    --kubeconfig "$TB/kubelet-$node.kubeconfig" --root-dir "$TB/$node/kubelet" \
    --hostname-override "$node" --node-ip "${NODE_IP[$node]}" --v 1
}

start_kube_proxy() {
  local node=$1
  write_kube_proxy_config "$node"
  start_daemon "kube-proxy-$node" nsenter --mount="$TB/ns/$node.mnt" --uts="$TB/ns/$node.uts" \
    --net="/run/netns/tb-$node" -- "$RUN_BIN/kube-proxy-$node" --config "$TB/$node/kube-proxy.yaml" --v 1
}

# kube-proxy on NODE has programmed the Services it knows (its /healthz answers 200 only after a sync).
kube_proxy_synced() { curl -fsS -o /dev/null "http://${NODE_IP[$1]}:10256/healthz"; }

# Removes every rule kube-proxy programmed in NODE's namespace, in both modes.
flush_kube_proxy_rules() {
  in_node "$1" "$RUN_BIN/kube-proxy-$1" --cleanup >/dev/null 2>&1 || true
}

start_node() {
  local node=$1
  setup_node_namespaces "$node"
  setup_node_cgroups "$node"
  write_containerd_config "$node"
  write_kubelet_config "$node"
  start_containerd "$node"
  wait_for "containerd on $node" 30 "containerd-$node" containerd_ready "$node" || return 1
  local archive
  for archive in $(node_image_archives); do import_image "$node" "$archive"; done
  start_kubelet "$node"
  start_kube_proxy "$node"
}

# kubelet rewrites host-global sysctls (they are not namespaced): remember the originals once.
save_host_sysctls() {
  [ -f "$TB/host-sysctls" ] && return 0
  sysctl vm.overcommit_memory kernel.panic kernel.panic_on_oops | sed 's/ = /=/' >"$TB/host-sysctls"
}

restore_host_sysctls() {
  [ -f "$TB/host-sysctls" ] || return 0
  local kv
  while read -r kv; do sysctl -qw "$kv" || true; done <"$TB/host-sysctls"
  rm -f "$TB/host-sysctls"
}

# Kills every task of the node's containerd through its API; containerd 1.6 writes no shim.pid, and a
# shim outlives a killed containerd.
kill_node_containers() {
  local node=$1 id
  [ -S "$TB/$node/run/containerd.sock" ] || return 0
  running_pid "containerd-$node" >/dev/null || return 0
  for id in $(ctr_node "$node" tasks ls -q 2>/dev/null); do
    ctr_node "$node" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for id in $(ctr_node "$node" tasks ls -q 2>/dev/null); do
    ctr_node "$node" tasks rm -f "$id" >/dev/null 2>&1 || true
  done
}

# Fallback for shims left by an interrupted run: only those bound to our own socket paths.
kill_leftover_shims() {
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2.*-address $TB/node-" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

kill_cgroup_leftovers() {
  local node=$1 s procs pid
  for s in "${CGROUP_SUBSYSTEMS[@]}"; do
    [ -d "/sys/fs/cgroup/$s/tb-$node" ] || continue
    procs=$(find "/sys/fs/cgroup/$s/tb-$node" -name cgroup.procs -exec cat {} + 2>/dev/null)
    for pid in $procs; do kill -KILL "$pid" 2>/dev/null || true; done
  done
}

remove_node_cgroups() {
  local node=$1 s
  # kubelet also creates the node's cgroup in the cgroup v2 (unified) hierarchy when it is mounted
  for s in "${CGROUP_SUBSYSTEMS[@]}" unified; do
    [ -d "/sys/fs/cgroup/$s/tb-$node" ] || continue
    find "/sys/fs/cgroup/$s/tb-$node" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

unmount_node_namespaces() {
  local node=$1 m
  # containers' rootfs and volume mounts live inside the node's mount namespace and die with it
  for m in "$TB/ns/$node.mnt" "$TB/ns/$node.uts"; do
    mountpoint -q "$m" && umount "$m"
    rm -f "$m"
  done
  # mounts kubelet made that propagated to the host (shared subtrees)
  { grep -o " $TB/$node/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
