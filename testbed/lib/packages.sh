# shellcheck shell=bash
# shellcheck disable=SC2034  # consumed by the scripts that source this file
# Debian packages the testbed needs, installed only when missing.

# nftables: kube-proxy's nftables mode drives the kernel through the nft command.
RUNTIME_PACKAGES=(containerd runc containernetworking-plugins iptables nftables conntrack
  iproute2 util-linux openssl socat ethtool ebtables curl python3 kmod)
# Go itself is not a package: the machine's Go (1.26) builds Kubernetes, CoreDNS and etcd from modules.
BUILD_PACKAGES=(jq gcc libc6-dev make busybox-static python3
  # tests: dig for the smoke test, shellcheck for `make lint`
  bind9-dnsutils shellcheck)

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
