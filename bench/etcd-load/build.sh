#!/usr/bin/env bash
# Builds bench/etcd-load (a Go program over etcd's own client) once per content: the binary goes
# to the lab's cache (~/.cache/drctl/bin/etcd-load-<sha of its sources>), never into the repo.
# Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sum="$(cat "$here/main.go" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
out="${DRCTL_CACHE_DIR:-$HOME/.cache/drctl}/bin/etcd-load-$sum"
if [[ ! -x "$out/etcd-load" ]]; then
  mkdir -p "$out.tmp"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp/etcd-load" .) >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
echo "$out/etcd-load"
