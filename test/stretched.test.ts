// The stretched cluster against the lab: five real etcd members (kubeadm, 3 at site A, 2 at site
// B), every cross-site connection through Toxiproxy. `drctl lab link` injects the round trip, and
// `drctl etcd latency` (the real CLI, the lab's workers) must see it on exactly the pairs that
// cross sites and judge it against the seed's table: 1 ms safe on etcd's defaults, 7 ms not safe
// on the defaults (tuning needed), 25 ms do not stretch; a cut link leaves the cross-site pairs
// unmeasurable and the verdict not safe. The cluster is brought up for this file and down after
// it, so the other files run on the two sites alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EtcdLatencyReport } from '../common/etcd-tuning.ts';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { nodeCommand, nodeProcesses } from '../lab/namespaces.ts';
import { siteDown, siteUp } from '../lab/site-loss.ts';
import { thawSites } from '../lab/stretched.ts';
import { bin, onHost, paths, STRETCHED } from '../lab/topology.ts';
import { drctlCli, ensureLabHealthy, until } from './support/lab.ts';

const run = promisify(execFile);
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

/** The median (the upper one of an even count). */
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
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
    // `lab status` lists the cluster while it is up: the link, five members, five API servers.
    const st = await cli(['lab', 'status', '--json']);
    const comps = (JSON.parse(st.stdout) as { name: string; kind: string; healthy: boolean; detail: string }[]).filter(
      (c) => c.name.startsWith('stretched/'),
    );
    expect(comps.map((c) => c.kind).sort()).toEqual([
      ...Array<string>(5).fill('etcd'),
      ...Array<string>(5).fill('kube-apiserver'),
      'toxiproxy',
    ]);
    for (const c of comps) expect(c.healthy, `${c.name}: ${c.detail}`).toBe(true);
    expect(comps.find((c) => c.kind === 'toxiproxy')?.detail).toBe('site-a~site-b: up, rtt +3ms, jitter 1ms');
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
    // Same-site pairs never cross the link. One of them may still read a few ms on 2 busy cores
    // (measured: 9 ms once, best of seven), so it is their median that stays well under the link.
    expect(med(local(rep).map((p) => p.probeMs!)), JSON.stringify(local(rep))).toBeLessThan(3.5);
    // 7 ms plus this machine's overhead: the tuned row, where etcd's defaults (100/1000) are not
    // enough; or degraded when the slowest pair's best of seven lands past 10 ms. Not safe either way.
    const v = rep.verdict;
    expect(['acceptable-with-tuning', 'degraded'], `worst ${v.worstRttMs} ms`).toContain(v.row);
    expect(v.recommended!.heartbeatMs).toBeGreaterThanOrEqual(250);
    // On etcd's defaults (kubeadm's, as in CI, where this test runs before any tune): not safe,
    // and in the tuned row the tuning is named as the problem. (A lab an earlier run of this file
    // left tuned may be safe in the tuned row; the exit code must then say what the verdict says.)
    const onDefaults = rep.members.every((m) => m.tuning?.heartbeatMs === 100 && m.tuning.electionMs === 1000);
    if (onDefaults) {
      if (v.row === 'acceptable-with-tuning') expect(v.problems.map((p) => p.rule)).toContain('tuned-for-the-row');
      expect(v.safe).toBe(false);
    }
    expect(status).toBe(v.safe ? 0 : 1);
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
    // Each same-site pair answers; their median stays off the link. (One pair may read more in a
    // partition's election churn: measured 15 ms once, b2->b1, best of six.)
    for (const p of local(rep)) expect(p.probeMs, `${p.from}->${p.to}`).toBeGreaterThan(0);
    expect(med(local(rep).map((p) => p.probeMs!)), JSON.stringify(local(rep))).toBeLessThan(3.5);
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

/** What each member's manifest says now (the host's view of the node's disk). */
function manifestTuning() {
  return Object.fromEntries(
    STRETCHED.nodes.map((n) => {
      const m = readFileSync(onHost(n, '/etc/kubernetes/manifests/etcd.yaml'), 'utf8');
      const hb = /--heartbeat-interval=(\d+)/.exec(m)?.[1] ?? '100';
      const el = /--election-timeout=(\d+)/.exec(m)?.[1] ?? '1000';
      return [n.name, `${hb}/${el}`];
    }),
  );
}

/** etcdctl from this machine against `nodes`' members, with a healthcheck client certificate. */
function etcdctlArgs(nodes = STRETCHED.nodes, timeout = '5s') {
  const pki = (f: string) => onHost(STRETCHED.nodes[3]!, `/etc/kubernetes/pki/etcd/${f}`);
  return [
    `--endpoints=${nodes.map((n) => `https://${n.ip}:2379`).join(',')}`,
    `--cacert=${pki('ca.crt')}`,
    `--cert=${pki('healthcheck-client.crt')}`,
    `--key=${pki('healthcheck-client.key')}`,
    `--command-timeout=${timeout}`,
  ];
}

function etcdctl(args: string[], nodes = STRETCHED.nodes): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(join(bin.etcdVersionDir(STRETCHED.etcdVersion), 'etcdctl'), [...etcdctlArgs(nodes), ...args]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

/**
 * A client writing through the roll-out (or the loss): one put every 250 ms from this machine with
 * `nodes` as endpoints (etcdctl fails over between them) and a 5 s command timeout: the budget. A
 * write that fails within it is counted; each acknowledged one is kept with when it was.
 */
function writer(prefix = '/drctl-test/tune', nodes = STRETCHED.nodes) {
  let stop = false;
  const failures: string[] = [];
  const acked: { key: string; at: number }[] = [];
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      const t = Date.now();
      const key = `${prefix}/${i}`;
      const r = await etcdctl(['put', key, String(t)], nodes);
      if (r.code === 0) acked.push({ key, at: Date.now() });
      else failures.push(`${new Date(t).toISOString()}: ${r.err.trim().split('\n').pop()}`);
      await new Promise((res) => setTimeout(res, Math.max(0, 250 - (Date.now() - t))));
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
      return { ok: acked.length, acked, failures };
    },
  };
}

/** SIGSTOP (or SIGCONT) the node's kubelet: it no longer acts on its manifests. */
function kubeletSignal(node: string, sig: 'SIGSTOP' | 'SIGCONT') {
  for (const p of nodeProcesses(`stretched/${node}`).filter((x) => x.comm === 'kubelet')) process.kill(p.pid, sig);
}

describe('drctl etcd tune on the stretched cluster at 7 ms', () => {
  const asAlice = ['--as', 'alice', '--key', paths.personKey('alice')];

  /** alice asks for the tune (signed), bob approves it: the roll starts. */
  async function startTune(hb: number, el: number, more: string[] = []) {
    const start = await cli([
      'etcd',
      'tune',
      '--cluster',
      'stretched',
      '--heartbeat',
      `${hb}ms`,
      '--election',
      `${el}ms`,
      ...more,
      ...asAlice,
    ]);
    expect(start.status, start.stderr).toBe(0);
    // The approver decides on the preflight's evidence: approve once the gate shows it.
    const gate = await until(
      'the tune waits at its gate',
      async () => JSON.parse((await cli(['status', 'etcd-tune-stretched', '--json'])).stdout) as { phase: string },
      (st) => st.phase !== 'running',
      120_000,
      1000,
    );
    expect(gate.phase).toBe('waiting-approval');
    const ok = await cli(['approve', 'etcd-tune-stretched', '--key', paths.personKey('bob'), '--reason', 'test']);
    expect(ok.status, ok.stderr).toBe(0);
  }

  it("values outside etcd's rules are refused before anything starts, the rule named (exit 2)", async () => {
    const r = await cli(['etcd', 'tune', '--cluster', 'stretched', '--heartbeat', '250ms', '--election', '1000ms']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('election-5x-heartbeat');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it(
    'rolls the new values out one member at a time, followers first, the leader last; a writer loses no write',
    async () => {
      await link(['--rtt', '7ms']);
      const before = manifestTuning();
      // A fresh lab runs etcd's defaults; a lab this test already tuned goes one step further.
      const to = Object.values(before).every((v) => v === '250/2500') ? [300, 3000] : [250, 2500];
      const w = writer();
      await startTune(to[0]!, to[1]!);
      const r = await cli(['status', 'etcd-tune-stretched', '--wait']);
      const { ok: writes, failures } = await w.stop();
      expect(r.status, r.stdout.slice(-2000)).toBe(0);
      const shown = await cli(['status', 'etcd-tune-stretched', '--json']);
      const steps = (
        JSON.parse(shown.stdout) as { steps: { step: string; detail?: string; items: Record<string, string> }[] }
      ).steps;
      // The order: four followers, then the leader, named in preflight.
      const order = /order (\w+), (\w+), (\w+), (\w+), (\w+) \(leader\)/.exec(
        steps.find((s) => s.step === 'preflight')?.detail ?? '',
      );
      expect(order, steps.find((s) => s.step === 'preflight')?.detail).not.toBeNull();
      // The leader was restarted as a follower: it handed leadership to the member rolled before it.
      expect(steps.find((s) => s.step === 'roll')?.items[order![5]!]).toContain(
        `leadership handed to ${order![4]} first`,
      );
      expect(manifestTuning()).toEqual(Object.fromEntries(STRETCHED.nodes.map((n) => [n.name, `${to[0]}/${to[1]}`])));
      // Quorum kept at every moment: no write failed within its 5 s budget.
      expect(failures, failures.join('\n')).toEqual([]);
      expect(writes).toBeGreaterThan(100);
      const adv = await latency();
      for (const m of adv.report.members) expect(m.tuning).toEqual({ heartbeatMs: to[0], electionMs: to[1] });
      expect(adv.report.verdict.problems.map((p) => p.rule)).not.toContain('same-on-every-member');
    },
    20 * 60_000,
  );

  it(
    'a member that never comes back (its kubelet stopped) is undone: every member back on the values before',
    async () => {
      const before = manifestTuning();
      const [hb, el] = Object.values(before)[0]!.split('/').map(Number) as [number, number];
      // The first follower in the roll's order: its manifest is written, its kubelet never acts
      // on it. (The second follower would also undo a member that did restart, at two more
      // member restarts, 2 min, of CI time; the undo path is the same activity pair.)
      const leader = (await latency()).report.leader!.node;
      const victim = STRETCHED.nodes.map((n) => n.name).filter((n) => n !== leader)[0]!;
      kubeletSignal(victim, 'SIGSTOP');
      try {
        await startTune(hb + 50, (hb + 50) * 10, ['--member-timeout', '60s']);
        const r = await cli(['status', 'etcd-tune-stretched', '--wait']);
        expect(r.status).not.toBe(0);
        expect(r.stdout).toMatch(/COMPENSATED/);
        expect(r.stdout).toContain(`${victim}: not back with ${hb + 50}/${(hb + 50) * 10}`);
        expect(manifestTuning()).toEqual(before);
      } finally {
        kubeletSignal(victim, 'SIGCONT');
      }
      expect(hb * 10).toBe(el);
      // Every member still runs the old values and the cluster is whole.
      await until(
        'the advisor sees all five members on the old values',
        async () => (await latency()).report,
        (rep) =>
          rep.members.length === 5 &&
          rep.members.every((m) => m.tuning?.heartbeatMs === hb && m.tuning.electionMs === el) &&
          !!rep.leader,
        120_000,
        5000,
      );
    },
    20 * 60_000,
  );
});

describe('drctl etcd recover and rejoin: site A (3 of 5) burns', () => {
  const asAlice = ['--as', 'alice', '--key', paths.personKey('alice')];
  const B = STRETCHED.nodes.filter((n) => n.location === 'site-b');
  const ROOT = '/drctl-test/recover';

  /**
   * The run waits at its gate (its preflight done): the approver decides on that evidence. With
   * `since`: a run that started then (not an earlier one under the same id).
   */
  async function atGate(id: string, since = 0) {
    const st = await until(
      `${id} waits at its gate`,
      async () =>
        JSON.parse((await cli(['status', id, '--json'])).stdout) as {
          phase: string;
          error?: string;
          evidence?: Record<string, unknown>;
          steps: { step: string; startedAt?: string; detail?: string; items: Record<string, string> }[];
        },
      (x) => x.phase !== 'running' && Date.parse(x.steps[0]?.startedAt ?? '0') >= since,
      180_000,
      1000,
    );
    expect(st.phase, st.error).toBe('waiting-approval');
    return st;
  }

  const members = async () => {
    const r = await etcdctl(['member', 'list', '-w', 'json'], B);
    expect(r.code, r.err).toBe(0);
    return ((JSON.parse(r.out) as { members: { name: string }[] }).members ?? []).map((m) => m.name).sort();
  };

  beforeAll(async () => {
    // The measurements are over: the sites run again (site A must, to burn).
    thawSites();
    await link(['--rtt', '0ms']);
  }, 120_000);

  afterAll(async () => {
    await siteUp('site-a');
  }, 300_000);

  it('refused while a quorum is reachable: nothing is forced, nothing changed', async () => {
    const r = await cli(['etcd', 'recover', '--cluster', 'stretched', '--wait', ...asAlice]);
    expect(r.status, r.stdout.slice(-1500)).toBe(1);
    expect(r.stdout).toMatch(/quorum is reachable: \w+ has a leader/);
    expect(await members()).toEqual(STRETCHED.nodes.map((n) => n.name).sort());
  });

  it(
    'after `lab site down site-a --hard`: the freshest survivor keeps every write acknowledged before the loss, two members, the API serves',
    async () => {
      const w = writer(ROOT, B);
      await new Promise((r) => setTimeout(r, 4000));
      // `lab site down site-a --hard`, in this process: the kill is at once, so the moment is known.
      const lostAt = Date.now();
      const down = await siteDown('site-a', { hard: true });
      expect(down.changed).toContain('stretched/a1 killed (lost with the site)');
      await new Promise((r) => setTimeout(r, 2000));
      const { acked } = await w.stop();
      // The survivors notice the loss after their election timeout (2.5-3 s once tuned): until
      // then they still follow a leader, and a recover is rightly refused.
      await until(
        'b1 and b2 have no leader',
        async () =>
          JSON.parse((await etcdctl(['endpoint', 'status', '-w', 'json'], B)).out || '[]') as {
            Status: { errors?: string[] };
          }[],
        (st) => st.length === 2 && st.every((x) => (x.Status.errors ?? []).some((e) => e.includes('no leader'))),
        60_000,
        500,
      );
      const before = acked.filter((a) => a.at < lostAt);
      expect(before.length).toBeGreaterThan(5);
      // Nothing after the loss was acknowledged: quorum went with site A.
      expect(acked.filter((a) => a.at > lostAt + 1000)).toEqual([]);

      const asked = Date.now() - 1000;
      const start = await cli(['etcd', 'recover', '--cluster', 'stretched', ...asAlice]);
      expect(start.status, start.stderr).toBe(0);
      const gate = await atGate('etcd-recover-stretched', asked);
      expect(gate.evidence).toMatchObject({ attestationNeeded: ['a1', 'a2', 'a3'] });
      // An approval that does not say how the lost members are fenced is refused; the gate stays shut.
      const bare = await cli(['approve', 'etcd-recover-stretched', '--key', paths.personKey('bob'), '--reason', 'go']);
      expect(bare.status).toBe(2);
      expect(bare.stderr).toContain('approve with --attest');
      const ok = await cli([
        'approve',
        'etcd-recover-stretched',
        '--key',
        paths.personKey('bob'),
        '--attest',
        'site A burned: lab site down --hard killed every host',
      ]);
      expect(ok.status, ok.stderr).toBe(0);
      const t0 = Date.now();
      const r = await cli(['status', 'etcd-recover-stretched', '--wait']);
      const seconds = (Date.now() - t0) / 1000;
      expect(r.status, r.stdout.slice(-2500)).toBe(0);
      const st = JSON.parse((await cli(['status', 'etcd-recover-stretched', '--json'])).stdout) as {
        steps: { step: string; detail?: string; items: Record<string, string> }[];
      };
      expect(st.steps.find((s) => s.step === 'fence')?.items.a1).toContain('fenced by attestation');
      console.log(
        `[recover] after the gate: ${seconds.toFixed(1)} s; ${st.steps.map((s) => `${s.step}: ${s.detail ?? ''}`).join(' | ')}`,
      );

      expect(await members()).toEqual(['b1', 'b2']);
      // Every write acknowledged before the loss is there.
      const got = await etcdctl(['get', ROOT, '--prefix', '--keys-only'], B);
      expect(got.code, got.err).toBe(0);
      const present = new Set(got.out.split('\n').filter(Boolean));
      const missing = before.filter((a) => !present.has(a.key));
      console.log(
        `[recover] writes acknowledged before the loss: ${before.length}, present: ${before.length - missing.length}; the newest ${before.at(-1)!.key} ${lostAt - before.at(-1)!.at} ms before the loss`,
      );
      expect(missing.map((m) => `${m.key} acked ${lostAt - m.at} ms before the loss`)).toEqual([]);
      // The API server on site B serves, on the recovered etcd.
      const api = await run(join(bin.kubeDir, 'kubectl'), [
        '--kubeconfig',
        STRETCHED.kubeconfig,
        '--server',
        STRETCHED.apiserver,
        '--request-timeout=10s',
        'get',
        'namespaces',
        '-o',
        'name',
      ]);
      expect(api.stdout).toContain('namespace/kube-system');
    },
    15 * 60_000,
  );

  it(
    'the lost members come back one at a time and rejoin wiped: their old data kept aside, never started',
    async () => {
      for (const [i, name] of ['a1', 'a2', 'a3'].entries()) {
        const up = await cli(['lab', 'stretched', 'up', '--node', name]);
        expect(up.status, up.stderr).toBe(0);
        // Started and followed to its end (--wait --json: its result too), approved meanwhile.
        const t0 = Date.now() - 1000;
        const started = cli([
          'etcd',
          'rejoin',
          '--cluster',
          'stretched',
          '--node',
          name,
          '--wait',
          '--json',
          ...asAlice,
        ]);
        const id = `etcd-rejoin-stretched-${name}`;
        await atGate(id, t0);
        const ok = await cli(['approve', id, '--key', paths.personKey('bob'), '--reason', 'test']);
        expect(ok.status, ok.stderr).toBe(0);
        const r = await started;
        expect(r.status, r.stdout.slice(-2500) + r.stderr.slice(-1000)).toBe(0);
        const result = (JSON.parse(r.stdout) as { result: { oldDataAt: string; members: string[] } }).result;
        expect(result.members).toHaveLength(3 + i);
        // Its old data is where the run says, on the node (seen from inside it: a2's data dir is
        // a disk of its own, mounted in the node's mount namespace).
        const node = STRETCHED.nodes.find((n) => n.name === name)!;
        const [cmd, ...pre] = nodeCommand(node);
        expect(spawnSync(cmd!, [...pre, 'test', '-d', result.oldDataAt]).status, result.oldDataAt).toBe(0);
        expect(await members()).toEqual([...['a1', 'a2', 'a3'].slice(0, i + 1), 'b1', 'b2'].sort());
      }
      const rep = await until(
        'the advisor sees five members with one leader',
        async () => (await latency()).report,
        (x) => x.members.length === 5 && !!x.leader && x.problems.length === 0,
        120_000,
        3000,
      );
      expect(rep.members).toHaveLength(5);
    },
    20 * 60_000,
  );
});
