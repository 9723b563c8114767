#!/usr/bin/env bash
# Builds the pinned test control plane (kube-apiserver, kube-controller-manager, kubectl, etcd,
# helm) into a cache outside the clone, keyed by version. A second run finds it and does nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=1.35.4
ETCD_VERSION=3.6.8
HELM_VERSION=3.19.5
cache=${MCPWORKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpworks}
dir="$cache/controlplane/bin"
k8s_dir="$cache/controlplane/kubernetes-v$K8S_VERSION"
etcd_dir="$cache/controlplane/etcd-v$ETCD_VERSION"
helm_dir="$cache/controlplane/helm-v$HELM_VERSION"
mkdir -p "$dir" "$k8s_dir" "$etcd_dir" "$helm_dir"
# -buildvcs=false: the wrapper modules sit inside this git clone; stamping would need git.
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
minor=${K8S_VERSION#*.}; minor=${minor%%.*}
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

build() { # output dir, name, module dir, package, ldflags
  local out=$1 name=$2 mod=$3 pkg=$4 ldflags=$5
  if [ ! -x "$out/$name" ]; then
    echo "building $name ($pkg) into $out" >&2
    local start=$SECONDS
    (cd "$mod" && go build -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
    mv "$out/$name.tmp" "$out/$name"
    echo "built $name in $((SECONDS - start)) s" >&2
  fi
  ln -sfn "$out/$name" "$dir/$name"
}

build "$k8s_dir" kube-apiserver "$here/k8s" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build "$k8s_dir" kube-controller-manager "$here/k8s" k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build "$k8s_dir" kubectl "$here/k8s" k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
build "$etcd_dir" etcd "$here/etcd" go.etcd.io/etcd/server/v3 "-s -w"
if [ ! -x "$helm_dir/helm" ]; then
  echo "building helm v$HELM_VERSION into $helm_dir" >&2
  start=$SECONDS
  GOBIN="$helm_dir" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  echo "built helm in $((SECONDS - start)) s" >&2
fi
ln -sfn "$helm_dir/helm" "$dir/helm"
echo "$dir"
