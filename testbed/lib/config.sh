# shellcheck shell=bash
# shellcheck disable=SC2034  # consumed by the scripts that source this file
# Testbed settings. Every name, path, address and range the testbed uses is defined here, once.
# Override with environment variables; the defaults match ../shared/testbed-notes.md.

# The default cluster version, and the version the upgrade test starts from (the newest of the minor
# before). Both are built from the module k8s.io/kubernetes through the Go module proxy.
DEFAULT_K8S_VERSION=${NETCHECK_K8S_VERSION:-1.36.3}
UPGRADE_FROM_VERSION=${NETCHECK_K8S_UPGRADE_FROM:-1.35.4}
# The versions kubeadm v1.36 ships with; both build from their own Go modules.
COREDNS_VERSION=1.14.2
ETCD_VERSION=3.6.8
# The LoadBalancer implementation (testbed/loadbalancer): MetalLB, layer 2. v0.15.2, not the newest
# (v0.16.2): v0.16.2 needs github.com/metallb/frr-k8s v0.0.27, which the Go proxy refuses to serve, and
# its speaker does not compile against v0.0.25, the newest served (frrk8s.go: undefined
# AsPathPrependPrefixes). v0.15.2's own go.mod asks for v0.0.20, which is served.
METALLB_VERSION=0.15.2
GO_PROXY_URL=${NETCHECK_GO_PROXY:-https://proxy.golang.org}

CACHE_ROOT=${NETCHECK_TESTBED_CACHE:-/var/cache/netcheck-testbed}
TB=${NETCHECK_TESTBED_STATE:-/var/lib/netcheck-testbed}
# Binaries of one Kubernetes version, as testbed/build leaves them.
k8s_cache_bin() { echo "$CACHE_ROOT/k8s-$1/bin"; }
ETCD_BIN=$CACHE_ROOT/etcd-$ETCD_VERSION/bin/etcd
COREDNS_BIN=$CACHE_ROOT/coredns-$COREDNS_VERSION/bin/coredns
PAUSE_BIN=$CACHE_ROOT/pause/bin/pause
IMAGES_DIR=$CACHE_ROOT/images
# What the running cluster runs: one symlink per component (and per node for kubelet and kube-proxy)
# into the cache. `up` points them at one version; `upgrade` swaps them one component at a time.
RUN_BIN=$TB/bin

# Network layout. The host reaches everything through the bridge; node namespaces never get a default route.
BRIDGE=${NETCHECK_TB_BRIDGE:-tbbr0}
HOST_IP=10.250.0.1
NODE_NET=10.250.0.0/24
NODE_NET_BLACKHOLE=10.250.0.0/16
# MetalLB's addresses: on the node network, so that the host's ARP for them reaches the speakers.
LB_POOL=10.250.0.200-10.250.0.219
LB_POOL_PREFIX=10.250.0.192/26
POD_CIDR=10.244.0.0/16
SVC_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-2379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-2380}
APISERVER_PORT=6443

NODES=(node-a node-b)
declare -A NODE_IP=([node-a]=10.250.0.11 [node-b]=10.250.0.12)
declare -A NODE_POD_CIDR=([node-a]=10.244.1.0/24 [node-b]=10.244.2.0/24)
declare -A NODE_POD_GW=([node-a]=10.244.1.1 [node-b]=10.244.2.1)
declare -A NODE_VETH=([node-a]=tb-a [node-b]=tb-b)

PAUSE_IMAGE=registry.k8s.io/pause:3.10.2
AGNHOST_IMAGE=registry.k8s.io/e2e-test-images/agnhost:2.63
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:v$COREDNS_VERSION

KUBECONFIG_ADMIN=$TB/kubeconfig
PKI=$TB/pki

# Binaries the Kubernetes build produces (all land in the version's cache bin directory).
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
