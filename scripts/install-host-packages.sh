#!/usr/bin/env bash
# Installs the Debian packages that the test node and the image builder need, only those missing:
# a second run does nothing (no `apt-get update` either). Run as root on Debian or Ubuntu.
#   buildah, debootstrap      build the project's images without a Docker engine
#   libseccomp-dev, pkg-config, gcc, libc6-dev   compile runc (cgo, seccomp) and the static pause
#   nftables, iptables, iproute2, conntrack      the node's bridge, packet guard and kube-proxy
#   runc, openssl             buildah's default runtime; the test PKI
set -euo pipefail
packages=(buildah debootstrap runc libseccomp-dev pkg-config gcc libc6-dev nftables iptables
  iproute2 conntrack openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-host-packages: missing ${missing[*]}, and this is not a Debian-like system" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-host-packages: missing ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "install-host-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
