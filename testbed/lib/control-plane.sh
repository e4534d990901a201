# shellcheck shell=bash
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, all on the host.

# point_component NAME VERSION — NAME (a PID-file name: kube-apiserver, kubelet-node-a, …) runs VERSION's
# binary from now on. The symlink is what `upgrade` swaps.
point_component() {
  local name=$1 version=$2 binary=${1%-node-*}
  [ -x "$(k8s_cache_bin "$version")/$binary" ] || die "Kubernetes v$version is not built (testbed/build $version)"
  mkdir -p "$RUN_BIN"
  ln -sfn "$(k8s_cache_bin "$version")/$binary" "$RUN_BIN/$name"
}

# component_version NAME — the version NAME's symlink points at.
component_version() { readlink "$RUN_BIN/$1" | sed -n 's#.*/k8s-\([0-9.]*\)/bin/.*#\1#p'; }

# point_cluster VERSION — every Kubernetes component (and kubectl) at VERSION.
point_cluster() {
  local version=$1 c node
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do point_component "$c" "$version"; done
  for node in "${NODES[@]}"; do
    point_component "kubelet-$node" "$version"
    point_component "kube-proxy-$node" "$version"
  done
}

start_etcd() {
  mkdir -p "$TB/etcd"
  start_daemon etcd "$ETCD_BIN" --name testbed --data-dir "$TB/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "testbed=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes 1073741824 --snapshot-count 10000 --log-level warn
}

# Pod Security Admission as on a hardened cluster: baseline enforced, restricted warned and audited
# everywhere but kube-system.
write_admission_config() {
  cat >"$TB/admission.yaml" <<CFG
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: latest
      audit: restricted
      audit-version: latest
      warn: restricted
      warn-version: latest
    exemptions:
      usernames: []
      runtimeClasses: []
      namespaces: [kube-system]
CFG
}

start_apiserver() {
  write_admission_config
  start_daemon kube-apiserver "$RUN_BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address "$HOST_IP" --advertise-address "$HOST_IP" --secure-port "$APISERVER_PORT" \
    --service-cluster-ip-range "$SVC_CIDR" --service-node-port-range 30000-32767 \
    --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction,PodSecurity \
    --admission-control-config-file "$TB/admission.yaml" \
    --allow-privileged=true --profiling=false --event-ttl 1h --v 1
}

start_controller_manager() {
  local kc=$TB/controller-manager.kubeconfig
  start_daemon kube-controller-manager "$RUN_BIN/kube-controller-manager" --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --cluster-cidr "$POD_CIDR" --allocate-node-cidrs=false --service-cluster-ip-range "$SVC_CIDR" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --use-service-account-credentials=true --controllers '*,bootstrapsigner,tokencleaner' \
    --node-monitor-grace-period 20s --v 1
}

start_scheduler() {
  local kc=$TB/scheduler.kubeconfig
  start_daemon kube-scheduler "$RUN_BIN/kube-scheduler" --kubeconfig "$kc" --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" --bind-address 127.0.0.1 --leader-elect=false --v 1
}

etcd_healthy() { [[ "$(curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health")" == *true* ]]; }

apiserver_ready() {
  [ "$(curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$HOST_IP:$APISERVER_PORT/readyz")" = ok ]
}

# /healthz of the controller-manager and scheduler (their secure ports; anonymous access is allowed there).
controller_manager_healthy() { [ "$(curl -fsSk https://127.0.0.1:10257/healthz)" = ok ]; }
scheduler_healthy() { [ "$(curl -fsSk https://127.0.0.1:10259/healthz)" = ok ]; }

start_control_plane() {
  start_etcd
  wait_for "etcd" 30 etcd etcd_healthy || return 1
  start_apiserver
  wait_for "kube-apiserver /readyz" 60 kube-apiserver apiserver_ready || return 1
  start_controller_manager
  start_scheduler
}
