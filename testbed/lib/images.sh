# shellcheck shell=bash
# The images every node needs (pause, agnhost, CoreDNS), built from cached binaries without Docker.

# Bump a suffix when that image's content changes, so that caches rebuild it.
PAUSE_ARCHIVE=pause-3.10.2.tar
AGNHOST_ARCHIVE=agnhost-2.63-1.tar
COREDNS_ARCHIVE=coredns-$COREDNS_VERSION-2.tar

build_images() {
  mkdir -p "$IMAGES_DIR"
  if [ ! -f "$IMAGES_DIR/$PAUSE_ARCHIVE" ]; then
    python3 "$TESTBED_DIR/lib/mkimage.py" --name "$PAUSE_IMAGE" --out "$IMAGES_DIR/$PAUSE_ARCHIVE.tmp" \
      --file "$PAUSE_BIN:/pause" --entrypoint '["/pause"]'
    mv "$IMAGES_DIR/$PAUSE_ARCHIVE.tmp" "$IMAGES_DIR/$PAUSE_ARCHIVE"
  fi
  if [ ! -f "$IMAGES_DIR/$AGNHOST_ARCHIVE" ]; then
    # busybox gives the smoke test's exec readiness probe a shell; agnhost does the networking.
    local applets=() a
    for a in sh test touch rm cat ls sleep nslookup; do applets+=(--symlink "bin/$a:busybox"); done
    python3 "$TESTBED_DIR/lib/mkimage.py" --name "$AGNHOST_IMAGE" --out "$IMAGES_DIR/$AGNHOST_ARCHIVE.tmp" \
      --file "$(k8s_cache_bin "$DEFAULT_K8S_VERSION")/agnhost:/agnhost" --symlink "agnhost-2:agnhost" \
      --file /bin/busybox:/bin/busybox "${applets[@]}" --dir tmp:1777 --entrypoint '["/agnhost"]' --cmd '["pause"]'
    mv "$IMAGES_DIR/$AGNHOST_ARCHIVE.tmp" "$IMAGES_DIR/$AGNHOST_ARCHIVE"
  fi
  if [ ! -f "$IMAGES_DIR/$COREDNS_ARCHIVE" ]; then
    # As upstream's image: the static binary alone, run as a non-root user, with the file capability
    # that lets it bind port 53 (the Deployment keeps NET_BIND_SERVICE in the bounding set).
    python3 "$TESTBED_DIR/lib/mkimage.py" --name "$COREDNS_IMAGE" --out "$IMAGES_DIR/$COREDNS_ARCHIVE.tmp" \
      --file "$COREDNS_BIN:/coredns" --net-bind /coredns --user 65532:65532 --entrypoint '["/coredns"]'
    mv "$IMAGES_DIR/$COREDNS_ARCHIVE.tmp" "$IMAGES_DIR/$COREDNS_ARCHIVE"
  fi
}

node_image_archives() { echo "$IMAGES_DIR/$PAUSE_ARCHIVE" "$IMAGES_DIR/$AGNHOST_ARCHIVE" "$IMAGES_DIR/$COREDNS_ARCHIVE"; }

ctr_node() {
  local node=$1; shift
  ctr --address "$TB/$node/run/containerd.sock" -n k8s.io "$@"
}

# The container NAME of POD on NODE whose task is in STATE (RUNNING or PAUSED). containerd keeps the
# containers of earlier pods and restarts until kubelet collects them, so the first one listed may be
# long dead.
container_on() {
  local node=$1 pod=$2 name=$3 state=$4 id
  for id in $(ctr_node "$node" containers ls -q \
    "labels.\"io.kubernetes.container.name\"==$name,labels.\"io.kubernetes.pod.name\"==$pod" 2>/dev/null); do
    if ctr_node "$node" tasks ls 2>/dev/null | awk -v id="$id" -v st="$state" '$1 == id && $3 == st { f = 1 } END { exit !f }'; then
      echo "$id"
      return 0
    fi
  done
  return 1
}

import_image() {
  local node=$1 archive=$2
  ctr_node "$node" images import --no-unpack=false "$archive" >/dev/null
}
