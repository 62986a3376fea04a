#!/usr/bin/env bash
# The unit project alone, without the lab: pure logic, config, the CLI's rendering, replay of the
# committed histories, and every runbook's control flow on Temporal's time-skipping test server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh
stamp=node_modules/.drctl-lock-sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node -p 'process.versions.node.split(".")[0]')"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
bash scripts/install-test-server.sh >/dev/null
# The unit tests that run real system tools (two sshd, sudo, an ext4 image on a loop device) need
# these Debian packages; lab/install.sh installs them too, with everything else.
missing=()
for p in openssh-server sudo e2fsprogs util-linux; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
npx vitest run --project unit "$@"
