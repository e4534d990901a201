# shellcheck shell=bash
# Cluster DNS: unbound on the host bridge serving auth-zones that netcheck-testbed-dns (Rust, in this
# workspace) rewrites from Services, Endpoints and Pods. It is reachable as the Service kube-system/kube-dns.

DNS_SYNC_BIN=${NETCHECK_TESTBED_DNS_BIN:-$TESTBED_DIR/../target/release/netcheck-testbed-dns}

build_dns_sync() {
  [ -x "$DNS_SYNC_BIN" ] && [ -z "${NETCHECK_TESTBED_REBUILD_DNS:-}" ] && return 0
  log "building netcheck-testbed-dns"
  (cd "$TESTBED_DIR/.." && cargo build --quiet --release -p testbed-dns)
}

write_unbound_config() {
  local u=$TB/unbound
  mkdir -p "$u"
  cat >"$u/unbound.conf" <<CFG
server:
  username: ""
  chroot: ""
  directory: "$u"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  interface: $HOST_IP
  port: 53
  do-ip6: no
  access-control: 0.0.0.0/0 refuse
  access-control: 127.0.0.0/8 allow
  access-control: $NODE_NET_BLACKHOLE allow
  access-control: $POD_CIDR allow
  # never recurse and never talk to the internet: every name outside the cluster zones is NXDOMAIN
  do-not-query-localhost: yes
  outgoing-interface: 127.0.0.1
  module-config: "iterator"
  local-zone: "." static
  local-zone: "$CLUSTER_DOMAIN." transparent
  local-zone: "in-addr.arpa." transparent
  local-zone: "10.in-addr.arpa." nodefault
  num-threads: 1
auth-zone:
  name: "$CLUSTER_DOMAIN."
  zonefile: "$u/$CLUSTER_DOMAIN.zone"
  for-downstream: yes
  for-upstream: no
  fallback-enabled: no
auth-zone:
  name: "in-addr.arpa."
  zonefile: "$u/in-addr.arpa.zone"
  for-downstream: yes
  for-upstream: no
  fallback-enabled: no
remote-control:
  control-enable: yes
  control-interface: "$u/control.sock"
  control-use-cert: no
CFG
}

dns_sync_args() {
  echo --kubeconfig "$TB/dns-sync.kubeconfig" --zone-dir "$TB/unbound" --unbound-conf "$TB/unbound/unbound.conf" \
    --domain "$CLUSTER_DOMAIN" --ns-address "$HOST_IP"
}

unbound_ready() { unbound-control -c "$TB/unbound/unbound.conf" status; }

start_dns_server() {
  write_unbound_config
  # seed the zones before unbound loads them
  # shellcheck disable=SC2046
  "$DNS_SYNC_BIN" $(dns_sync_args) --once >>"$TB/logs/dns-sync.log" 2>&1
  start_daemon unbound unbound -d -c "$TB/unbound/unbound.conf"
  wait_for "unbound" 20 unbound unbound_ready || return 1
  # shellcheck disable=SC2046
  start_daemon dns-sync "$DNS_SYNC_BIN" $(dns_sync_args)
}

stop_dns_server() {
  stop_daemon dns-sync
  stop_daemon unbound
}

apply_kube_dns_service() {
  kubectl_tb apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: KubeDNS}
spec:
  clusterIP: $DNS_SVC_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
# No selector: the DNS server is unbound on the host bridge, not a pod.
apiVersion: v1
kind: Endpoints
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
subsets:
- addresses: [{ip: $HOST_IP}]
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
YAML
}
