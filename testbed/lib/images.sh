# shellcheck shell=bash
# The two images every node needs (pause, agnhost), built from cached binaries without Docker.

IMAGES_DIR=$CACHE_DIR/images
# Bump the suffix when the image's content changes, so that caches rebuild it.
AGNHOST_ARCHIVE=agnhost-2.tar

build_images() {
  mkdir -p "$IMAGES_DIR"
  if [ ! -f "$IMAGES_DIR/pause.tar" ]; then
    python3 "$TESTBED_DIR/lib/mkimage.py" --name "$PAUSE_IMAGE" --out "$IMAGES_DIR/pause.tar.tmp" \
      --file "$BIN_DIR/pause:/pause" --entrypoint '["/pause"]'
    mv "$IMAGES_DIR/pause.tar.tmp" "$IMAGES_DIR/pause.tar"
  fi
  if [ ! -f "$IMAGES_DIR/$AGNHOST_ARCHIVE" ]; then
    # busybox gives the smoke test's exec readiness probe a shell; agnhost does the networking.
    local applets=() a
    for a in sh test touch rm cat ls sleep nslookup; do applets+=(--symlink "bin/$a:busybox"); done
    python3 "$TESTBED_DIR/lib/mkimage.py" --name "$AGNHOST_IMAGE" --out "$IMAGES_DIR/$AGNHOST_ARCHIVE.tmp" \
      --file "$BIN_DIR/agnhost:/agnhost" --symlink "agnhost-2:agnhost" --file /bin/busybox:/bin/busybox \
      "${applets[@]}" --dir tmp:1777 --entrypoint '["/agnhost"]' --cmd '["pause"]'
    mv "$IMAGES_DIR/$AGNHOST_ARCHIVE.tmp" "$IMAGES_DIR/$AGNHOST_ARCHIVE"
  fi
}

ctr_node() {
  local node=$1; shift
  ctr --address "$TB/$node/run/containerd.sock" -n k8s.io "$@"
}

import_image() {
  local node=$1 archive=$2
  ctr_node "$node" images import --no-unpack=false "$archive" >/dev/null
}
