# shellcheck shell=bash
# Certificates for every identity (openssl; SANs and EKUs everywhere because Go rejects CN-only certs).

# cert NAME SUBJECT EKU [SAN] — key + cert signed by the testbed CA, skipped when present.
cert() {
  local name=$1 subj=$2 eku=$3 san=${4:-}
  [ -f "$PKI/$name.crt" ] && return 0
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$ext" "$PKI/$name.csr"
}

generate_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [ ! -f "$PKI/ca.crt" ]; then
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=netcheck-testbed-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$PKI/ca.crt" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:$HOST_IP,IP:$KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
  cert admin "/O=system:masters/CN=netcheck-testbed-admin" clientAuth
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  cert dns-sync "/O=system:masters/CN=netcheck-testbed-dns" clientAuth
  cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert scheduler "/CN=system:kube-scheduler" clientAuth
  cert kube-proxy "/CN=system:kube-proxy" clientAuth
  local node
  for node in "${NODES[@]}"; do
    cert "kubelet-$node" "/O=system:nodes/CN=system:node:$node" clientAuth
    cert "kubelet-$node-serving" "/CN=$node" serverAuth "IP:${NODE_IP[$node]},DNS:$node"
  done
  [ -f "$PKI/sa.key" ] || openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  [ -f "$PKI/sa.pub" ] || openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# kubeconfig FILE USER CERTNAME — one kubeconfig per identity.
write_kubeconfig() {
  local file=$1 user=$2 certname=$3
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: netcheck-testbed
  cluster: {server: "https://$HOST_IP:$APISERVER_PORT", certificate-authority: "$PKI/ca.crt"}
users:
- name: $user
  user: {client-certificate: "$PKI/$certname.crt", client-key: "$PKI/$certname.key"}
contexts:
- name: netcheck-testbed
  context: {cluster: netcheck-testbed, user: $user, namespace: default}
current-context: netcheck-testbed
KC
  chmod 600 "$file"
}

write_kubeconfigs() {
  write_kubeconfig "$KUBECONFIG_ADMIN" admin admin
  write_kubeconfig "$TB/controller-manager.kubeconfig" controller-manager controller-manager
  write_kubeconfig "$TB/scheduler.kubeconfig" scheduler scheduler
  write_kubeconfig "$TB/kube-proxy.kubeconfig" kube-proxy kube-proxy
  write_kubeconfig "$TB/dns-sync.kubeconfig" dns-sync dns-sync
  local node
  for node in "${NODES[@]}"; do
    write_kubeconfig "$TB/kubelet-$node.kubeconfig" "system:node:$node" "kubelet-$node"
  done
}
