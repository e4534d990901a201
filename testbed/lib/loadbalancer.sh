# shellcheck shell=bash
# LoadBalancer Services: MetalLB in layer-2 mode, built from its Go module (go.universe.tf/metallb) and
# installed from the module's own metallb-native.yaml. Its address pool lies on the node network, which
# the host reaches through the bridge: a speaker answers ARP for a Service's address on its node's
# interface, and the host (the runner) sends that address's traffic to that node.

METALLB_DIR=$CACHE_ROOT/metallb-$METALLB_VERSION
METALLB_CONTROLLER_ARCHIVE=metallb-controller-$METALLB_VERSION-1.tar
METALLB_SPEAKER_ARCHIVE=metallb-speaker-$METALLB_VERSION-1.tar

metallb_module_dir() { go mod download -json "go.universe.tf/metallb@v$METALLB_VERSION" | jq -r .Dir; }

build_metallb() {
  [ -f "$METALLB_DIR/bin/.complete" ] && return 0
  local mod=$CACHE_ROOT/src/metallb-$METALLB_VERSION start=$SECONDS
  log "building MetalLB v$METALLB_VERSION (controller, speaker) from go.universe.tf/metallb"
  write_consumer_module "$mod" "go.universe.tf/metallb v$METALLB_VERSION"
  rm -rf "${METALLB_DIR:?}/bin" && mkdir -p "$METALLB_DIR/bin"
  (cd "$mod" && nice go build -trimpath -ldflags "-s -w" -o "$METALLB_DIR/bin/" \
    go.universe.tf/metallb/controller go.universe.tf/metallb/speaker)
  touch "$METALLB_DIR/bin/.complete"
  log "built MetalLB v$METALLB_VERSION in $((SECONDS - start)) s"
}

# Upstream's image names, so that its manifest runs unchanged; each holds the one static binary.
build_metallb_images() {
  mkdir -p "$IMAGES_DIR"
  local c
  for c in controller speaker; do
    local archive=$IMAGES_DIR/metallb-$c-$METALLB_VERSION-1.tar
    [ -f "$archive" ] && continue
    python3 "$TESTBED_DIR/lib/mkimage.py" --name "quay.io/metallb/$c:v$METALLB_VERSION" --out "$archive.tmp" \
      --file "$METALLB_DIR/bin/$c:/$c" --entrypoint "[\"/$c\"]"
    mv "$archive.tmp" "$archive"
  done
}

metallb_installed() { kubectl_tb get namespace metallb-system >/dev/null 2>&1; }

metallb_ready() {
  kubectl_tb -n metallb-system rollout status deployment/controller --timeout=1s >/dev/null 2>&1 &&
    kubectl_tb -n metallb-system rollout status daemonset/speaker --timeout=1s >/dev/null 2>&1
}

# The address MetalLB gave the probe Service (empty while none).
probe_address() {
  kubectl_tb -n kube-system get service testbed-lb-probe -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null
}

probe_answers() { curl -fsS --max-time 1 "http://$(probe_address):8181/ready" >/dev/null; }

# MetalLB works end to end: a LoadBalancer Service over CoreDNS's readiness port gets an address from
# the controller, and the host reaches it through a speaker's announcement. Removed afterwards.
metallb_announces() {
  kubectl_tb apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: testbed-lb-probe, namespace: kube-system}
spec:
  type: LoadBalancer
  selector: {k8s-app: kube-dns}
  ports: [{name: ready, port: 8181, targetPort: 8181, protocol: TCP}]
YAML
  local ok=0
  if wait_for "an address from MetalLB's controller" 60 "" probe_address_assigned &&
    wait_for "the host to reach $(probe_address) through a speaker" 60 "" probe_answers; then
    ok=1
  fi
  kubectl_tb -n kube-system delete service testbed-lb-probe --wait=false >/dev/null
  [ "$ok" = 1 ]
}

probe_address_assigned() { [ -n "$(probe_address)" ]; }

install_metallb() {
  build_metallb
  build_metallb_images
  local node c
  for node in "${NODES[@]}"; do
    for c in "$METALLB_CONTROLLER_ARCHIVE" "$METALLB_SPEAKER_ARCHIVE"; do import_image "$node" "$IMAGES_DIR/$c"; done
  done
  python3 "$TESTBED_DIR/lib/metallb-manifest.py" "$(metallb_module_dir)" |
    kubectl_tb apply --server-side --force-conflicts -f - >/dev/null
  kubectl_tb wait --for condition=established --timeout=60s crd/ipaddresspools.metallb.io crd/l2advertisements.metallb.io >/dev/null
  wait_for "MetalLB's controller and speakers" 120 "" metallb_ready || return 1
  kubectl_tb apply -f - >/dev/null <<YAML
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: testbed, namespace: metallb-system}
spec:
  addresses: [$LB_POOL]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: testbed, namespace: metallb-system}
spec:
  ipAddressPools: [testbed]
YAML
  metallb_announces
}

# The speaker pod the API places on NODE now.
speaker_pod_on() {
  kubectl_tb -n metallb-system get pods -l component=speaker --field-selector "spec.nodeName=$1" \
    -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{"|"}{.metadata.name}{"\n"}{end}' |
    awk -F'|' '$1 == "" && !found { print $2; found = 1 }'
}

# Freezes (pause) or thaws (resume) the speaker on each of NODES: a frozen speaker answers no ARP and
# no memberlist probe, as a hung one. Thawing accepts a speaker that kubelet restarted meanwhile (its
# liveness probe fails while frozen), and waits until every speaker is ready again. The host forgets
# the pool's neighbours either way, so that its next packet to an address asks again instead of going
# to the MAC it learnt.
freeze_speakers() {
  local op=$1 node pod id; shift
  for node in "$@"; do
    pod=$(speaker_pod_on "$node")
    [ -n "$pod" ] || die "no MetalLB speaker runs on $node (testbed/loadbalancer install first)"
    if [ "$op" = pause ]; then
      id=$(container_on "$node" "$pod" speaker RUNNING) || die "pod $pod on $node has no running speaker"
      ctr_node "$node" tasks pause "$id"
    elif id=$(container_on "$node" "$pod" speaker PAUSED); then
      ctr_node "$node" tasks resume "$id"
    else
      log "the speaker on $node is not frozen (kubelet restarted it, or it was never stopped)"
    fi
  done
  if [ "$op" = resume ]; then
    wait_for "MetalLB's speakers to be ready" 90 "" metallb_ready || die "MetalLB's speakers are not ready after thawing"
  fi
  ip neigh flush dev "$BRIDGE" to "$LB_POOL_PREFIX" >/dev/null 2>&1 || log "could not flush the host's neighbours in $LB_POOL_PREFIX"
}

uninstall_metallb() {
  python3 "$TESTBED_DIR/lib/metallb-manifest.py" "$(metallb_module_dir)" |
    kubectl_tb delete --ignore-not-found --wait=true -f - >/dev/null
}
