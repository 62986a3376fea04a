# shellcheck shell=bash
# The one way this project builds a Go server (sourced by lab/install.sh and lab/install-compose.sh,
# which set $here, their own directory, and $log_tag first), and what both scripts start with.
cache="${DRCTL_CACHE_DIR:-$HOME/.cache/drctl}"
mkdir -p "$cache/bin"
ver() { node -e "const v=require('$here/versions.json');console.log($1)"; }
log() { printf '[%s] %s\n' "${log_tag:-install}" "$*" >&2; }
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

# go_build NAME VERSION 'module@version ...' 'out=pkg ...' [go.mod extra lines] [extra -ldflags]
# builds each out=pkg of a throwaway wrapper module into $cache/bin/NAME-VERSION, once (.complete).
# `go mod tidy -e`: a module whose test-only dependencies the proxy does not serve still builds
# (nerdctl's tigron); the build itself fails loudly on anything the binaries need.
go_build() {
  local name="$1" version="$2" requires="$3" outs="$4" extra="${5:-}" ldx="${6:-}"
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
    go mod tidy -e >/dev/null 2>tidy.err || { log "go mod tidy failed (building anyway):"; tail -n 5 tidy.err >&2; }
    mkdir -p out
    for o in $outs; do
      go build -trimpath -ldflags="-s -w $ldx" -o "out/${o%%=*}" "${o#*=}"
    done
  )
  rm -rf "$dir" && mv "$work/out" "$dir" && rm -rf "$work"
  touch "$dir/.complete"
  log "built $name $version in $((SECONDS - t))s"
}
# gomod_of MODULE@VERSION: path of that module's go.mod in the module cache (downloads it).
gomod_of() {
  go mod download -json "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).GoMod))'
}
# mod_replaces MODULE@VERSION: that go.mod's `replace` directives (one-line and block form) as
# one-line `replace` lines for a wrapper's go.mod, minus local-directory targets (=> ./x, ../x),
# which only make sense inside the upstream repository.
mod_replaces() {
  awk '/^replace[ \t]*\(/ { blk = 1; next }
       blk && /^\)/       { blk = 0; next }
       { sub(/[ \t]*\/\/.*/, "") }
       blk && NF          { sub(/^[ \t]+/, ""); print "replace " $0; next }
       /^replace[ \t]/    { print }' "$(gomod_of "$1")" | grep -vE '=>[[:space:]]*\.\.?/' || true
}
# moddir_of MODULE@VERSION: that module's source directory in the module cache (downloads it).
moddir_of() {
  go mod download -json "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))'
}
