# shellcheck shell=bash
# shellcheck disable=SC2034  # consumed by the scripts that source this file
# Debian packages the testbed needs, installed only when missing.

RUNTIME_PACKAGES=(etcd-server containerd runc containernetworking-plugins iptables conntrack unbound
  iproute2 util-linux openssl socat ethtool ebtables curl python3)
BUILD_PACKAGES=(golang-1.19-go golang-github-modern-go-reflect2-dev rsync jq dpkg-dev gcc make
  busybox-static python3
  # tests: dig for the smoke test, shellcheck for `make lint`
  bind9-dnsutils shellcheck)

SRC_LIST=/etc/apt/sources.list.d/netcheck-testbed-src.sources

missing_packages() {
  local p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || echo "$p"
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # policy-rc.d style: Debian's etcd/containerd/unbound services must not start; the testbed runs its own.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Source packages need a deb-src line for bookworm.
ensure_deb_src() {
  [ -f "$SRC_LIST" ] && return 0
  cat >"$SRC_LIST" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq
}
