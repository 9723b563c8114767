#!/usr/bin/env bash
# Prints the directory of a Node.js >= 22.19 binary. Uses the system node when it is new enough;
# otherwise installs the official Node 24 binary (the platform package from the npm registry) into
# a version-keyed cache outside the clone, once.
set -euo pipefail
NODE_VERSION=24.21.0
cache=${MCPWORKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpworks}

if command -v node >/dev/null 2>&1; then
  if node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)'; then
    dirname "$(command -v node)"
    exit 0
  fi
fi

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
  (cd "$dir" && npm install --no-save --no-package-lock --ignore-scripts --loglevel=error "$pkg@$NODE_VERSION" >&2)
fi
"$bin/node" --version >/dev/null
echo "$bin"
