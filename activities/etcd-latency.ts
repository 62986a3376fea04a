// Read-only readings of one etcd member for the stretched-cluster advisor (`drctl etcd latency`),
// all in one SSH command as root on its node (pinned host key, through the bastion where the config
// says so), with bash, sed, awk and curl on the node:
//   - its static pod manifest (the --heartbeat-interval and --election-timeout it runs with);
//   - its own /metrics from the manifest's --listen-metrics-urls (kubeadm: http://127.0.0.1:2381):
//     the peer round-trip histogram, the leader changes seen, its member id and whether it leads;
//   - an active probe of every peer: `curl` of the peer port's /version with the member's own peer
//     certificate (the manifest's --peer-* files), best of seven rounds 100 ms apart, timed from the end of the TLS
//     handshake to the end of the answer (curl's time_total - time_appconnect): one request and one
//     answer on an open connection, a round trip through whatever is between them. (A plain HTTP
//     request to the peer port gets no answer at all: etcd's TLS listener waits for a handshake.)
import {
  leaderChangesSeen,
  type MemberTiming,
  peerRoundTripsMs,
  samples,
  tuningFromManifest,
} from '../common/etcd-tuning.ts';
import { shq } from '../common/shell.ts';
import { siteOfNode } from '../config/load.ts';
import type { Gateways } from '../gateways/index.ts';

const MANIFEST = '/etc/kubernetes/manifests/etcd.yaml';

/** The node-side script: sections `=== manifest`, `=== metrics`, `=== probe <node> <µs|error>`. */
export function timingScript(peers: { node: string; host: string; port: number }[]): string {
  const probes = peers.map((p) => `    probe ${shq(p.node)} ${shq(p.host)} ${p.port}`).join('\n');
  const nodes = peers.map((p) => shq(p.node)).join(' ');
  return `set -u
echo '=== manifest'; cat ${MANIFEST} || exit 3
url=$(sed -n 's/.*--listen-metrics-urls=\\(http:[^ ,]*\\).*/\\1/p' ${MANIFEST} | head -n 1)
echo '=== metrics'
if [ -n "$url" ]; then
  hp=\${url#http://}; hp=\${hp%%/*}
  if exec 3<>"/dev/tcp/\${hp%:*}/\${hp##*:}"; then
    printf 'GET /metrics HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' "$hp" >&3
    timeout 10 cat <&3 | sed '1,/^\\r\\{0,1\\}$/d'
    exec 3<&-
  fi
fi
flag() { sed -n "s/.*--$1=\\([^ ]*\\).*/\\1/p" ${MANIFEST} | head -n 1; }
ca=$(flag peer-trusted-ca-file); cert=$(flag peer-cert-file); key=$(flag peer-key-file)
# Every peer once a round, seven rounds 100 ms apart: each pair's samples spread over about two
# seconds, so a burst of CPU on a busy node spoils a round or two, not a whole pair. A peer that
# fails once is not probed again (a cut link costs one curl timeout per peer, not seven).
declare -A best=() err=()
probe() {
  local t d
  [ -n "\${err[$1]:-}" ] && return
  if ! t=$(curl --http1.1 -sS -o /dev/null --max-time 5 --cacert "$ca" --cert "$cert" --key "$key" \
    -w '%{time_appconnect} %{time_total}' "https://$2:$3/version" 2>&1); then
    err[$1]=$(printf %s "$t" | tail -c 200 | tr '\n' ' '); return
  fi
  d=$(awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%d", (a[2] - a[1]) * 1000000 }')
  if [ -z "\${best[$1]:-}" ] || [ "$d" -lt "\${best[$1]}" ]; then best[$1]=$d; fi
}
if command -v curl >/dev/null; then
  for round in 1 2 3 4 5 6 7; do
${probes}
    sleep 0.1
  done
fi
for n in ${nodes}; do
  if ! command -v curl >/dev/null; then echo "=== probe $n error: no curl on the node"
  elif [ -n "\${err[$n]:-}" ]; then echo "=== probe $n error: \${err[$n]}"
  else echo "=== probe $n \${best[$n]}"; fi
done
`;
}

/** The script's output, read back. */
export function parseTiming(out: string): Pick<
  MemberTiming,
  'tuning' | 'histogramRttMs' | 'probeRttMs' | 'probeErrors' | 'leaderChanges' | 'memberId'
> & {
  isLeader: boolean;
} {
  const manifest = /=== manifest\n([\s\S]*?)\n=== metrics\n/.exec(out)?.[1] ?? '';
  const metrics = /=== metrics\n([\s\S]*?)(?:\n=== probe |$)/.exec(out)?.[1] ?? '';
  const probeRttMs: Record<string, number> = {};
  const probeErrors: Record<string, string> = {};
  for (const m of out.matchAll(/^=== probe (\S+) (.*)$/gm)) {
    const [, node, rest] = m;
    if (/^\d+$/.test(rest!)) probeRttMs[node!] = Number(rest) / 1000;
    else probeErrors[node!] = rest!.replace(/^error: /, '');
  }
  return {
    tuning: manifest ? tuningFromManifest(manifest) : undefined,
    histogramRttMs: peerRoundTripsMs(metrics),
    probeRttMs,
    probeErrors,
    leaderChanges: leaderChangesSeen(metrics),
    memberId: samples(metrics, ['etcd_server_id'])[0]?.labels.server_id,
    isLeader: samples(metrics, ['etcd_server_is_leader'])[0]?.value === 1,
  };
}

export interface EtcdLayoutNode {
  node: string;
  host: string;
  peerPort: number;
  site: string;
}

export function createEtcdLatencyActivities(gw: Gateways) {
  return {
    /** Each member's peer address and the site it stands in (a stretched cluster's nodes name theirs). */
    async describeEtcdLayout(cluster: string): Promise<EtcdLayoutNode[]> {
      const c = gw.cluster(cluster);
      return c.nodes.map((n) => {
        const u = new URL(n.etcd.peerUrl);
        return {
          node: n.name,
          host: u.hostname,
          peerPort: Number(u.port || 2380),
          site: siteOfNode(gw.config, c, n) ?? cluster,
        };
      });
    },

    async readMemberTiming(input: {
      cluster: string;
      node: string;
      peers: { node: string; host: string; port: number }[];
    }): Promise<MemberTiming> {
      const empty = { histogramRttMs: {}, probeRttMs: {}, probeErrors: {} };
      const shell = gw.shell(input.cluster, input.node);
      let out: string;
      try {
        const r = await shell.exec(timingScript(input.peers), { timeoutMs: 20_000 + 16_000 * input.peers.length });
        if (r.code === 3) return { node: input.node, reachable: true, error: `no ${MANIFEST} on the node`, ...empty };
        out = r.stdout;
      } catch (err) {
        return { node: input.node, reachable: false, error: (err as Error).message, ...empty };
      }
      // Who it is and whether it leads, from its own /metrics (no etcdctl container: on a busy node
      // that would compete with the probes it is timed against).
      const { isLeader, ...t } = parseTiming(out);
      return { node: input.node, reachable: true, ...t, leader: isLeader ? t.memberId : undefined };
    },
  };
}
