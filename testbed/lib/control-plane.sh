# shellcheck shell=bash
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, all on the host.

start_etcd() {
  mkdir -p "$TB/etcd"
  start_daemon etcd etcd --name testbed --data-dir "$TB/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "testbed=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
    --quota-backend-bytes 1073741824 --snapshot-count 10000 --log-level warn --logger zap
}

start_apiserver() {
  start_daemon kube-apiserver "$BIN_DIR/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address "$HOST_IP" --advertise-address "$HOST_IP" --secure-port "$APISERVER_PORT" --insecure-port 0 \
    --service-cluster-ip-range "$SVC_CIDR" --service-node-port-range 30000-32767 \
    --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --event-ttl 1h --v 1
}

start_controller_manager() {
  local kc=$TB/controller-manager.kubeconfig
  start_daemon kube-controller-manager "$BIN_DIR/kube-controller-manager" --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --port 0 --leader-elect=false \
    --cluster-cidr "$POD_CIDR" --allocate-node-cidrs=false --service-cluster-ip-range "$SVC_CIDR" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --use-service-account-credentials=true --controllers '*,bootstrapsigner,tokencleaner' \
    --node-monitor-grace-period 20s --pod-eviction-timeout 30s --v 1
}

start_scheduler() {
  local kc=$TB/scheduler.kubeconfig
  start_daemon kube-scheduler "$BIN_DIR/kube-scheduler" --kubeconfig "$kc" --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" --bind-address 127.0.0.1 --port 0 --leader-elect=false --v 1
}

etcd_healthy() { [[ "$(curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health")" == *true* ]]; }

apiserver_ready() {
  [ "$(curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$HOST_IP:$APISERVER_PORT/readyz")" = ok ]
}

start_control_plane() {
  start_etcd
  wait_for "etcd" 30 etcd etcd_healthy || return 1
  start_apiserver
  wait_for "kube-apiserver /readyz" 60 kube-apiserver apiserver_ready || return 1
  start_controller_manager
  start_scheduler
}
