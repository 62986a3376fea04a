// `drctl etcd latency` against the lab's real etcd members, through the real CLI and a worker: each
// member's manifest, its /metrics and a probe of every peer, read over SSH (site B through its
// bastion, as the sudo login), judged against the latency table and etcd's tuning rules.
import { beforeAll, describe, expect, it } from 'vitest';
import type { EtcdLatencyReport } from '../common/etcd-tuning.ts';
import { paths } from '../lab/topology.ts';
import { drctlCli, ensureLabHealthy } from './support/lab.ts';

// The lab's own workers run it (the lab's config and task queue), as an operator's would.
beforeAll(async () => {
  await ensureLabHealthy();
}, 300_000);

async function latency(cluster: string) {
  const r = await drctlCli(['--config', paths.config, 'etcd', 'latency', '--cluster', cluster, '--json']);
  return { ...r, report: r.stdout ? (JSON.parse(r.stdout) as { result: EtcdLatencyReport }).result : undefined };
}

describe('drctl etcd latency on the lab', () => {
  it.each(['site-a', 'site-b'])('%s: every pair measured both ways, excellent, safe, exit 0', async (cluster) => {
    const r = await latency(cluster);
    expect(r.status, r.stderr).toBe(0);
    const rep = r.report!;
    expect(rep.stretched).toBe(false);
    expect(rep.problems).toEqual([]);
    // 3 members: 6 ordered pairs, each with a probe and etcd's own histogram.
    expect(rep.pairs).toHaveLength(6);
    for (const p of rep.pairs) {
      expect(p.probeMs, `${p.from}->${p.to}`).toBeGreaterThan(0);
      expect(p.probeMs!).toBeLessThan(5);
      expect(p.histogramMs, `${p.from}->${p.to}`).toBeGreaterThan(0);
    }
    expect(rep.verdict).toMatchObject({ row: 'excellent', safe: true, problems: [] });
    // kubeadm sets neither flag: etcd's defaults, read from each manifest.
    for (const m of rep.members) expect(m.tuning).toEqual({ heartbeatMs: 100, electionMs: 1000 });
    expect(rep.leader?.node).toMatch(/^cp[123]$/);
    expect(rep.members.every((m) => typeof m.leaderChanges === 'number')).toBe(true);
  });

  it('prints the verdict, the pairs and the members for a human', async () => {
    const r = await drctlCli(['--config', paths.config, 'etcd', 'latency', '--cluster', 'site-a']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^site-a: SAFE — worst round trip \d+\.\d\d ms: excellent/);
    expect(r.stdout).toContain('recommended: --heartbeat-interval=100 --election-timeout=1000');
    expect(r.stdout).toMatch(/FROM\s+TO\s+PROBE\s+ETCD HISTOGRAM/);
  });

  it('an unknown cluster is bad input: exit 2, named, no stack trace', async () => {
    const r = await drctlCli(['--config', paths.config, 'etcd', 'latency', '--cluster', 'nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/nope/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
