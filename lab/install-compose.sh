#!/usr/bin/env bash
# Installs what running docker-compose.yml for real takes (lab/compose.ts), once, cached by version
# in $DRCTL_CACHE_DIR like lab/install.sh: nerdctl and BuildKit (Go modules), Temporal's ui-server
# (the temporalio/ui image's server, a Go module carrying the built UI), MinIO's mc, a debootstrapped
# Debian bookworm (the base of the Dockerfile's node image), and the Debian packages they need
# (iptables for CNI's bridge and port mappings, busybox-static for mc's shell, debootstrap).
# containerd, runc and the CNI plugins are lab/install.sh's already.
# nerdctl v2.0.5, not a newer one: from v2.1 its binary imports nerdctl's tigron module, which the
# Go proxy here does not serve.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log_tag=install-compose
# shellcheck source=lab/go-build.sh
source "$here/go-build.sh" # cache, ver, log, go_build, gomod_of, mod_replaces

missing=()
for p in iptables busybox-static debootstrap; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# Debian minbase, as the official slim images start from; apt's caches and lists emptied, /dev left
# to the runtime. In the background: it waits on the network while the Go builds below use the cores.
dv="$(ver v.debian)"
rootfs="$cache/rootfs/debian-$dv-minbase"
deb_pid=""
if [[ ! -f "$rootfs.complete" ]]; then
  log "debootstrap --variant=minbase $dv (first time only, in the background)"
  rm -rf "$rootfs" "$rootfs.tmp" && mkdir -p "$cache/rootfs"
  (
    t=$SECONDS
    debootstrap --variant=minbase "$dv" "$rootfs.tmp" http://deb.debian.org/debian >"$cache/rootfs/debootstrap.log" 2>&1 ||
      { tail -n 20 "$cache/rootfs/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/* "$rootfs.tmp"/dev/*
    mv "$rootfs.tmp" "$rootfs" && touch "$rootfs.complete"
    log "debootstrapped $dv in $((SECONDS - t))s"
  ) &
  deb_pid=$!
fi

# Static builds (CGO off), as upstream releases them.
nv="$(ver v.nerdctl)"
CGO_ENABLED=0 go_build nerdctl "$nv" "github.com/containerd/nerdctl/v2@$nv" \
  "nerdctl=github.com/containerd/nerdctl/v2/cmd/nerdctl" \
  "$(mod_replaces "github.com/containerd/nerdctl/v2@$nv")" \
  "-X github.com/containerd/nerdctl/v2/pkg/version.Version=$nv"
bv="$(ver v.buildkit)"
CGO_ENABLED=0 go_build buildkit "$bv" "github.com/moby/buildkit@$bv" \
  "buildkitd=github.com/moby/buildkit/cmd/buildkitd buildctl=github.com/moby/buildkit/cmd/buildctl" \
  "$(mod_replaces "github.com/moby/buildkit@$bv")" \
  "-X github.com/moby/buildkit/version.Version=$bv"
uv="$(ver v.temporalUi)"
if [[ ! -f "$cache/bin/temporal-ui-server-$uv/.complete" ]]; then
  CGO_ENABLED=0 go_build temporal-ui-server "$uv" "github.com/temporalio/ui-server/v2@$uv" \
    "ui-server=github.com/temporalio/ui-server/v2/cmd/server"
  # The image's config: the module's own templated docker.yaml (TEMPORAL_ADDRESS, TEMPORAL_CORS_ORIGINS, ...).
  rm "$cache/bin/temporal-ui-server-$uv/.complete"
  cp "$(moddir_of "github.com/temporalio/ui-server/v2@$uv")/config/docker.yaml" "$cache/bin/temporal-ui-server-$uv/docker.yaml"
  touch "$cache/bin/temporal-ui-server-$uv/.complete"
fi
mcv="$(ver v.mc)"
CGO_ENABLED=0 go_build mc "$mcv" "github.com/minio/mc@$mcv" "mc=github.com/minio/mc" "$(mod_replaces "github.com/minio/mc@$mcv")"

[[ -z "$deb_pid" ]] || wait "$deb_pid" || { log "debootstrap failed"; exit 1; }
log "compose tools ready in $cache ($SECONDS s)"
