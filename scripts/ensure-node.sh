#!/usr/bin/env bash
# Prints the directory of the pinned Node.js binary (NODE_VERSION in sandbox-image/runtimes.env):
# the official build the images are based on, installed once (the platform package from the npm
# registry) into a version-keyed cache outside the clone. Every make target runs on it, and the
# executor's own node doubles as the sandbox's node runtime, so tests and `make run` sandbox the
# same Node as the image. A system node is never used, even of the same version: distribution
# builds link other libraries. Needs npm (any version) on PATH only for the first install.
set -euo pipefail
pins="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/sandbox-image/runtimes.env"
NODE_VERSION=$(sed -n 's/^NODE_VERSION=\([0-9][0-9.]*\)$/\1/p' "$pins")
if [ -z "$NODE_VERSION" ]; then
  echo "ensure-node: no NODE_VERSION=<x.y.z> line in $pins" >&2
  exit 1
fi
cache=${MCPWORKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpworks}

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "ensure-node: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
pkg="node-linux-$arch"
dir="$cache/node-v$NODE_VERSION"
bin="$dir/node_modules/$pkg/bin"
if [ ! -x "$bin/node" ]; then
  echo "ensure-node: installing Node $NODE_VERSION ($pkg) into $dir" >&2
  mkdir -p "$dir"
  # A package.json of its own plus --prefix: without them npm installs into the nearest parent
  # directory that has a package.json or node_modules (a home directory, another project),
  # replacing what is there. --prefer-offline lets a populated npm cache answer without a download.
  [ -f "$dir/package.json" ] ||
    printf '{ "name": "mcpworks-node-cache", "private": true }\n' >"$dir/package.json"
  npm install --prefix "$dir" --no-save --no-package-lock --ignore-scripts --prefer-offline \
    --no-audit --no-fund --loglevel=error "$pkg@$NODE_VERSION" >&2
fi
if [ "$("$bin/node" -p process.versions.node)" != "$NODE_VERSION" ]; then
  echo "ensure-node: $bin/node is not Node $NODE_VERSION" >&2
  exit 1
fi
echo "$bin"
