// The stretched cluster against the lab: five real etcd members (kubeadm, 3 at site A, 2 at site
// B), every cross-site connection through Toxiproxy. `drctl lab link` injects the round trip, and
// `drctl etcd latency` (the real CLI, the lab's workers) must see it on exactly the pairs that
// cross sites and judge it against the seed's table: 1 ms safe on etcd's defaults, 7 ms not safe
// on the defaults (tuning needed), 25 ms do not stretch; a cut link leaves the cross-site pairs
// unmeasurable and the verdict not safe. The cluster is brought up for this file and down after
// it, so the other files run on the two sites alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EtcdLatencyReport } from '../common/etcd-tuning.ts';
import { paths } from '../lab/topology.ts';
import { drctlCli, ensureLabHealthy, until } from './support/lab.ts';

const cli = (args: string[]) => drctlCli(['--config', paths.config, ...args]);

async function link(args: string[]) {
  const r = await cli(['lab', 'link', '--between', 'site-a', 'site-b', ...args]);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

async function latency() {
  const r = await cli(['etcd', 'latency', '--cluster', 'stretched', '--json']);
  const report = r.stdout ? (JSON.parse(r.stdout) as { result: EtcdLatencyReport }).result : undefined;
  return { ...r, report: report! };
}

const cross = (rep: EtcdLatencyReport) => rep.pairs.filter((p) => p.crossesSites);
const local = (rep: EtcdLatencyReport) => rep.pairs.filter((p) => !p.crossesSites);

beforeAll(async () => {
  await ensureLabHealthy();
  const r = await cli(['lab', 'stretched', 'up', '--freeze-sites']);
  expect(r.status, r.stderr).toBe(0);
}, 600_000);

afterAll(async () => {
  await cli(['lab', 'link', '--between', 'site-a', 'site-b', '--rtt', '0ms']);
  await cli(['lab', 'stretched', 'down']);
}, 120_000);

describe('the stretched cluster and its link', () => {
  it('lab link sets and reads back the link; bad input is exit 2 naming the flag', async () => {
    expect(await link(['--rtt', '3ms', '--jitter', '1ms'])).toBe('site-a~site-b: up, rtt +3ms, jitter 1ms\n');
    expect(await link([])).toBe('site-a~site-b: up, rtt +3ms, jitter 1ms\n');
    for (const [args, named] of [
      [['--between', 'site-a', 'site-a', '--rtt', '1ms'], '--between'],
      [['--between', 'site-a', 'site-c', '--rtt', '1ms'], '--between'],
      [['--between', 'site-a', 'site-b', '--rtt', 'fast'], '--rtt'],
      [['--between', 'site-a', 'site-b', '--rtt', '1.5ms'], '--rtt'],
    ] as const) {
      const r = await cli(['lab', 'link', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(named);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('1 ms: seen on the 12 cross-site pairs only; safe on etcd defaults, exit 0', async () => {
    await link(['--rtt', '1ms']);
    const { status, report: rep, stderr } = await latency();
    expect(rep.stretched).toBe(true);
    expect(rep.problems).toEqual([]);
    expect(rep.pairs).toHaveLength(20);
    expect(cross(rep)).toHaveLength(12);
    for (const p of cross(rep)) expect(p.probeMs, `${p.from}->${p.to}`).toBeGreaterThanOrEqual(1);
    expect(Object.values(rep.sites).sort()).toEqual(['site-a', 'site-a', 'site-a', 'site-b', 'site-b']);
    expect(['excellent', 'good']).toContain(rep.verdict.row);
    expect(rep.verdict.recommended).toEqual({ heartbeatMs: 100, electionMs: 1000 });
    expect(status, stderr).toBe(0);
    expect(rep.leader?.site).toMatch(/^site-[ab]$/);
  });

  it('7 ms: every cross-site pair at least 7 ms, same-site pairs not; not safe on the defaults, exit 1', async () => {
    await link(['--rtt', '7ms']);
    const { status, report: rep } = await latency();
    for (const p of cross(rep)) expect(p.probeMs, `${p.from}->${p.to}`).toBeGreaterThanOrEqual(7);
    // Same-site pairs never cross the link (a loaded 2-core machine adds a few ms, never 7).
    for (const p of local(rep)) expect(p.probeMs, `${p.from}->${p.to}`).toBeLessThan(7);
    // 7 ms plus this machine's overhead: the tuned row, where etcd's defaults (100/1000) are not
    // enough; or degraded when the slowest pair's best of five lands past 10 ms. Not safe either way.
    const v = rep.verdict;
    expect(['acceptable-with-tuning', 'degraded'], `worst ${v.worstRttMs} ms`).toContain(v.row);
    expect(v.recommended!.heartbeatMs).toBeGreaterThanOrEqual(250);
    if (v.row === 'acceptable-with-tuning') expect(v.problems.map((p) => p.rule)).toContain('tuned-for-the-row');
    expect(v.safe).toBe(false);
    expect(status).toBe(1);
  });

  it('25 ms: do not stretch, no values recommended, exit 1', async () => {
    await link(['--rtt', '25ms']);
    const { status, report: rep } = await latency();
    for (const p of cross(rep)) expect(p.probeMs, `${p.from}->${p.to}`).toBeGreaterThanOrEqual(25);
    expect(rep.verdict.row).toBe('do-not-stretch');
    expect(rep.verdict.recommended).toBeUndefined();
    expect(status).toBe(1);
  });

  it('--down black-holes the link: cross-site probes time out, same-site ones answer; back up, the members agree again', async () => {
    await link(['--down']);
    expect(await link([])).toBe('site-a~site-b: DOWN (black-holed), rtt +0ms, jitter 0ms\n');
    const { status, report: rep } = await latency();
    expect(status).toBe(1);
    // From every member, each peer on the other side is a probe error (a timeout: nothing refuses).
    const errs = rep.problems.filter((p) => p.startsWith('probe '));
    expect(errs).toHaveLength(12);
    for (const e of errs) expect(e).toMatch(/timed out|Operation timed out|28/);
    for (const p of local(rep)) expect(p.probeMs, `${p.from}->${p.to}`).toBeLessThan(7);
    await link(['--rtt', '0ms']);
    await until(
      'all five members answer the advisor again with one leader',
      async () => (await latency()).report,
      (r) => r.problems.length === 0 && r.members.length === 5 && !!r.leader,
      120_000,
      3000,
    );
  });
});
