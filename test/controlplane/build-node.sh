#!/usr/bin/env bash
# Builds the pinned components of the test node (kubelet, kube-proxy, kube-scheduler, containerd,
# runc, the CNI plugins, CoreDNS) and its two images (the pod sandbox "pause" and the network
# probe of the node tests) into a cache outside the clone, keyed by version or by source hash.
# A second run finds everything and does nothing. Prints the node directory; timings on stderr.
# Needs the host packages of scripts/install-host-packages.sh (libseccomp-dev, buildah, gcc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# The Kubernetes version is the one the wrapper module pins.
K8S_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { sub(/^v/, "", $3); print $3 }' "$here/k8s/go.mod")
CONTAINERD_VERSION=2.2.9
RUNC_VERSION=1.4.4
CNI_PLUGINS_VERSION=1.9.1
COREDNS_VERSION=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" { sub(/^v/, "", $3); print $3 }' "$here/coredns/go.mod")
cache=${MCPWORKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpworks}
node="$cache/node"
k8s_dir="$cache/controlplane/kubernetes-v$K8S_VERSION"
containerd_dir="$node/containerd-v$CONTAINERD_VERSION"
runc_dir="$node/runc-v$RUNC_VERSION"
cni_dir="$node/cni-plugins-v$CNI_PLUGINS_VERSION"
coredns_dir="$node/coredns-v$COREDNS_VERSION"
mkdir -p "$node/bin" "$node/images" "$k8s_dir" "$containerd_dir" "$runc_dir" "$cni_dir" "$coredns_dir"
# -buildvcs=false: the wrapper modules sit inside this git clone; stamping would need git.
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
minor=${K8S_VERSION#*.}; minor=${minor%%.*}
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

timed() { # what, command...
  local what=$1 start=$SECONDS
  shift
  echo "building $what" >&2
  "$@"
  echo "built $what in $((SECONDS - start)) s" >&2
}

k8s_build() { # name, package
  local name=$1 pkg=$2
  if [ ! -x "$k8s_dir/$name" ]; then
    timed "$name $K8S_VERSION" bash -c 'cd "$1" && go build -ldflags "$2" -o "$3.tmp" "$4" && mv "$3.tmp" "$3"' \
      _ "$here/k8s" "$k8s_ldflags" "$k8s_dir/$name" "$pkg"
  fi
  ln -sfn "$k8s_dir/$name" "$node/bin/$name"
}

go_install() { # dir, first binary (marks it as built), package@version...; env from the caller
  local dir=$1 marker=$2
  shift 2
  if [ ! -x "$dir/$marker" ]; then
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    timed "$*" env GOBIN="$dir.tmp" go install "$@"
    cp -a "$dir.tmp/." "$dir/" && rm -rf "$dir.tmp"
  fi
}

k8s_build kubelet k8s.io/kubernetes/cmd/kubelet
k8s_build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
k8s_build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler

containerd_mod=github.com/containerd/containerd/v2
go_install "$containerd_dir" containerd -tags "no_btrfs no_devmapper" \
  -ldflags "-s -w -X $containerd_mod/version.Version=v$CONTAINERD_VERSION" \
  "$containerd_mod/cmd/containerd@v$CONTAINERD_VERSION" \
  "$containerd_mod/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
  "$containerd_mod/cmd/ctr@v$CONTAINERD_VERSION"
for b in containerd containerd-shim-runc-v2 ctr; do ln -sfn "$containerd_dir/$b" "$node/bin/$b"; done

# runc needs cgo for libseccomp (the seccomp profiles pods get).
CGO_ENABLED=1 go_install "$runc_dir" runc -tags seccomp \
  -ldflags "-s -w -X main.version=$RUNC_VERSION" "github.com/opencontainers/runc@v$RUNC_VERSION"
ln -sfn "$runc_dir/runc" "$node/bin/runc"

cni_mod=github.com/containernetworking/plugins/plugins
go_install "$cni_dir" bridge -ldflags "-s -w" \
  "$cni_mod/main/bridge@v$CNI_PLUGINS_VERSION" "$cni_mod/main/loopback@v$CNI_PLUGINS_VERSION" \
  "$cni_mod/ipam/host-local@v$CNI_PLUGINS_VERSION" "$cni_mod/meta/portmap@v$CNI_PLUGINS_VERSION"
ln -sfn "$cni_dir" "$node/cni"

if [ ! -x "$coredns_dir/coredns" ]; then
  timed "coredns $COREDNS_VERSION" bash -c 'cd "$1" && go build -ldflags "-s -w" -o "$2.tmp" . && mv "$2.tmp" "$2"' \
    _ "$here/coredns" "$coredns_dir/coredns"
fi
ln -sfn "$coredns_dir/coredns" "$node/bin/coredns"

# A scratch image holding one static binary; the tar is named by a hash of its source.
pack_image() { # image reference, binary, tar
  local ref=$1 bin=$2 out=$3 tmp ctr
  tmp=$(mktemp -d)
  local b=(buildah --root "$tmp/root" --runroot "$tmp/runroot" --storage-driver vfs)
  ctr=$("${b[@]}" from scratch)
  "${b[@]}" copy "$ctr" "$bin" "/$(basename "$bin")" >/dev/null
  "${b[@]}" config --entrypoint "[\"/$(basename "$bin")\"]" "$ctr"
  "${b[@]}" commit -q "$ctr" "$ref" >/dev/null
  "${b[@]}" push -q "$ref" "docker-archive:$out.tmp:$ref"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
}

image() { # name, source dir, build command (writes "$out/<name>")
  local name=$1 src=$2 hash out
  shift 2
  hash=$(cd "$src" && cat $(ls | sort) | sha256sum | cut -c1-12)
  local tar="$node/images/$name-$hash.tar" ref="localhost/mcpworks/$name:$hash"
  if [ ! -f "$tar" ]; then
    out=$(mktemp -d)
    timed "image $ref" bash -c "$1" _ "$src" "$out/$name"
    pack_image "$ref" "$out/$name" "$tar"
    rm -rf "$out"
  fi
  ln -sfn "$tar" "$node/images/$name.tar"
  echo "$ref" >"$node/images/$name.ref"
}

image pause "$here/pause" 'gcc -static -Os -s -Wall -Werror -o "$2" "$1/pause.c"'
image nettest "$repo/test/fixtures/nettest" 'cd "$1" && go build -ldflags "-s -w" -o "$2" .'
echo "$node"
