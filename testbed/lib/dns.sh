# shellcheck shell=bash
# Cluster DNS: CoreDNS as kubeadm and kind deploy it (a Deployment in kube-system behind the Service
# kube-dns), with one change: names outside the cluster's zones are answered NXDOMAIN here instead of
# forwarded, so that no query ever leaves the machine.

DNS_REPLICAS=${#NODES[@]}

apply_coredns() {
  kubectl_tb apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # kubeadm's Corefile split in two server blocks: the cluster's zones (kubeadm's plugins, in its
  # order), and everything else, where kubeadm forwards to the node's resolver and this answers NXDOMAIN.
  Corefile: |
    $CLUSTER_DOMAIN:53 in-addr.arpa:53 ip6.arpa:53 {
        errors
        health {
           lameduck 5s
        }
        ready
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
           pods insecure
           ttl 30
        }
        prometheus :9153
        cache 30
        loop
        reload
        loadbalance
    }
    .:53 {
        errors
        template ANY ANY {
           rcode NXDOMAIN
        }
        cache 30
        loop
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: $DNS_REPLICAS
  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      priorityClassName: system-cluster-critical
      serviceAccountName: coredns
      dnsPolicy: Default
      tolerations:
      - {key: CriticalAddonsOnly, operator: Exists}
      - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector: {matchExpressions: [{key: k8s-app, operator: In, values: [kube-dns]}]}
              topologyKey: kubernetes.io/hostname
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        resources:
          limits: {memory: 170Mi}
          requests: {cpu: 100m, memory: 70Mi}
        volumeMounts: [{name: config-volume, mountPath: /etc/coredns, readOnly: true}]
        ports:
        - {containerPort: 53, name: dns, protocol: UDP}
        - {containerPort: 53, name: dns-tcp, protocol: TCP}
        - {containerPort: 9153, name: metrics, protocol: TCP}
        livenessProbe:
          httpGet: {path: /health, port: 8080, scheme: HTTP}
          initialDelaySeconds: 60
          timeoutSeconds: 5
          successThreshold: 1
          failureThreshold: 5
        readinessProbe:
          httpGet: {path: /ready, port: 8181, scheme: HTTP}
          periodSeconds: 2
          timeoutSeconds: 1
          failureThreshold: 3
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
          readOnlyRootFilesystem: true
      volumes:
      - name: config-volume
        configMap:
          name: coredns
          items: [{key: Corefile, path: Corefile}]
---
# As AKS ships it: a drain never takes the cluster's DNS down.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: coredns, namespace: kube-system}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/cluster-service: "true", kubernetes.io/name: CoreDNS}
  annotations: {prometheus.io/port: "9153", prometheus.io/scrape: "true"}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $DNS_SVC_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
  - {name: metrics, port: 9153, protocol: TCP, targetPort: 9153}
YAML
}

coredns_ready_replicas() {
  kubectl_tb -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}' 2>/dev/null
}

coredns_ready_count_is() { [ "$(coredns_ready_replicas)" = "$1" ]; }

coredns_gone() { [ -z "$(kubectl_tb -n kube-system get pods -l k8s-app=kube-dns -o name 2>/dev/null)" ]; }

# The cluster DNS answers a Service name through its ClusterIP, asked from the host (which reaches
# ClusterIPs through the first node's kube-proxy).
cluster_dns_answers() {
  [ "$(dig +short +time=1 +tries=1 "@$DNS_SVC_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN" A)" = "$KUBERNETES_SVC_IP" ]
}

start_coredns() {
  apply_coredns
  kubectl_tb -n kube-system scale deployment coredns --replicas "$DNS_REPLICAS" >/dev/null
  wait_for "CoreDNS: $DNS_REPLICAS replicas Ready" 90 "" coredns_ready_count_is "$DNS_REPLICAS" || {
    kubectl_tb -n kube-system get pods -l k8s-app=kube-dns -o wide >&2 || true
    return 1
  }
  wait_for "the cluster DNS to answer at $DNS_SVC_IP" 30 "" cluster_dns_answers
}

stop_coredns() {
  kubectl_tb -n kube-system scale deployment coredns --replicas 0 >/dev/null
  wait_for "CoreDNS pods to be gone" 60 "" coredns_gone
}

# The CoreDNS pod the API places on NODE now (a replaced pod, still terminating, is not it).
coredns_pod_on() {
  kubectl_tb -n kube-system get pods -l k8s-app=kube-dns --field-selector "spec.nodeName=$1" \
    -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{"|"}{.metadata.name}{"\n"}{end}' |
    awk -F'|' '$1 == "" { print $2; exit }'
}


# Freezes (or thaws) the CoreDNS replica on one node: it stops answering without a refusal, as a hung
# server does, until its readiness probe takes it out of the Service.
freeze_coredns_on() {
  local node=$1 op=$2 pod id state=RUNNING
  [ "$op" = resume ] && state=PAUSED
  pod=$(coredns_pod_on "$node")
  [ -n "$pod" ] || die "no CoreDNS replica runs on $node (kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide)"
  id=$(container_on "$node" "$pod" coredns "$state") ||
    die "pod $pod on $node has no CoreDNS container in state $state"
  ctr_node "$node" tasks "$op" "$id"
}
