// Runbook: "can this etcd stand the link between its members?" — every member measured at once
// (etcd's own round-trip histogram, an active probe of each peer, the heartbeat and election its
// manifest runs with), then the seed's latency table and etcd's tuning rules applied to the slowest
// pair that crosses sites. Read-only: `drctl etcd latency`.
import type { RunbookStatus } from '../common/runbook.ts';
import { defineQuery } from '@temporalio/workflow';
import { type EtcdLatencyReport, latencyReport, type MemberTiming } from '../common/etcd-tuning.ts';
import { quick } from './activity-options.ts';
import { Runbook } from './runbook.ts';

/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<RunbookStatus>('status');

export async function etcdLatency(input: { cluster: string }): Promise<EtcdLatencyReport> {
  const { cluster } = input;
  const rb = new Runbook(
    { runbook: 'etcd-latency', title: `etcd latency of ${cluster}`, steps: ['measure', 'verdict'], cluster },
    {},
  );
  return rb.execute(
    async () => {
      const layout = await quick.describeEtcdLayout(cluster);
      const sites = Object.fromEntries(layout.map((n) => [n.node, n.site]));
      const timings: MemberTiming[] = await rb.run('measure', async (s) => {
        // Fan out: every member reads itself and probes its peers at once.
        const all = await rb.each(
          s,
          layout,
          (n) => n.node,
          (n) =>
            quick.readMemberTiming({
              cluster,
              node: n.node,
              peers: layout
                .filter((p) => p.node !== n.node)
                .map((p) => ({ node: p.node, host: p.host, port: p.peerPort })),
            }),
        );
        for (const t of all) {
          const probes = Object.entries(t.probeRttMs).map(([peer, ms]) => `${peer} ${ms.toFixed(2)} ms`);
          s.items[t.node] = t.error ?? (probes.length ? probes.join(', ') : 'no peer answered');
        }
        s.detail = `${all.filter((t) => t.reachable && !t.error).length}/${all.length} members read`;
        return all;
      });
      return rb.run('verdict', async (s) => {
        const report = latencyReport(cluster, sites, timings, new Date().toISOString());
        const v = report.verdict;
        s.detail = `worst ${v.worstRttMs.toFixed(2)} ms: ${v.row}${v.safe ? '' : ' (not safe)'}`;
        for (const p of [...v.problems.map((x) => x.detail), ...report.problems]) s.items[p] = 'problem';
        return report;
      });
    },
    (cause) => `etcd latency of ${cluster} failed (${cause})`,
  );
}
