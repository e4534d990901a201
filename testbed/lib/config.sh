# shellcheck shell=bash
# shellcheck disable=SC2034  # consumed by the scripts that source this file
# Testbed settings. Every name, path, address and range the testbed uses is defined here, once.
# Override with environment variables; the defaults match ../shared/testbed-notes.md.

K8S_VERSION=${NETCHECK_K8S_VERSION:-1.20.2}
# Debian bookworm source package that carries that upstream tree (vendored dependencies).
K8S_DEB_SOURCE=kubernetes
K8S_DEB_VERSION=${NETCHECK_K8S_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}
GO_ROOT=${NETCHECK_GO_ROOT:-/usr/lib/go-1.19}

CACHE_ROOT=${NETCHECK_TESTBED_CACHE:-/var/cache/netcheck-testbed}
CACHE_DIR=$CACHE_ROOT/k8s-$K8S_VERSION
BIN_DIR=$CACHE_DIR/bin
TB=${NETCHECK_TESTBED_STATE:-/var/lib/netcheck-testbed}

# Network layout. The host reaches everything through the bridge; node namespaces never get a default route.
BRIDGE=${NETCHECK_TB_BRIDGE:-tbbr0}
HOST_IP=10.250.0.1
NODE_NET=10.250.0.0/24
NODE_NET_BLACKHOLE=10.250.0.0/16
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

PAUSE_IMAGE=k8s.gcr.io/pause:3.4
AGNHOST_IMAGE=k8s.gcr.io/e2e-test-images/agnhost:2.21

KUBECONFIG_ADMIN=$TB/kubeconfig
PKI=$TB/pki

# Binaries the build produces (all land in $BIN_DIR).
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
