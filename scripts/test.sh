#!/usr/bin/env bash
# The test command: set-up, static checks, the workflow bundle, then every test against the real
# lab (vitest's global setup starts the lab if it is not already up, and stops what it started).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh # Node.js 24 first on PATH, for the set-up and every step below
bash scripts/setup.sh
echo "[test] typecheck + lint + workflow bundle" >&2
npx tsc --noEmit -p tsconfig.json
npm run lint --silent
npx tsx worker/bundle.ts
echo "[test] vitest" >&2
npx vitest run "$@"
