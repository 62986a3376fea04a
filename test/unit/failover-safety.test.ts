// The failover's undo after the DNS switch, and the fence-on-return, on the time-skipping test
// server with mocked activities that keep a tiny model of the two sites (is site-a fenced, where
// does DNS point, what was removed while DNS pointed where). The rule under test: DNS always ends
// on a site that serves, and nothing DNS points at is deleted; an old primary that could not be
// fenced is fenced when it answers again, unless a failback took over.
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { FenceOnReturnResult } from '../../common/failover.ts';
import type { RunbookStatus } from '../../common/runbook.ts';
import { failoverImpl, type Impl } from './support/mocks.ts';
import { type Calls, mockActivities, timeSkipping, timeSkippingServer, withWorker } from './support/time-skipping.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
beforeAll(async () => {
  ({ env, bundle } = await timeSkipping());
}, 120_000);
afterAll(async () => {
  await env?.teardown();
});
// A fence-on-return outlives the run that started it (ABANDON): none may leak into the next test.
afterEach(async () => {
  for (const site of ['site-a', 'site-b'])
    await env.client.workflow
      .getHandle(`fence-on-return-${site}`)
      .terminate('test over')
      .catch(() => undefined);
});

const A = '127.0.10.100';
const B = '127.0.20.100';
const DNS_UNDO = 'DNS back to site-a if it serves once unfenced, else kept on site-b';
const REMOVE = /^remove what restore drctl-failover-\w+ created at site-b$/;

let seq = 0;
const id = (what: string) => `${what}-${Date.now()}-${++seq}`;
type Status = RunbookStatus & { steps: { step: string; items: Record<string, string> }[] };
const status = (h: WorkflowHandle) => h.query<Status>('status');
const items = (st: Status, step = 'compensate') => st.steps.find((s) => s.step === step)?.items ?? {};
async function until(h: WorkflowHandle, ok: (st: Status) => boolean, what: string): Promise<Status> {
  for (let i = 0; i < 400; i++) {
    const st = await status(h);
    if (ok(st)) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never reached ${what}: ${(await status(h)).phase}`);
}
async function failureOf(h: WorkflowHandle): Promise<{ type?: string; message: string; cancelled: boolean }> {
  const err = await h.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as { type?: string; message: string; name?: string } | undefined;
  return { type: cause?.type, message: cause?.message ?? '', cancelled: cause?.name === 'CancelledFailure' };
}

/**
 * Two sites as the activities see them. site-a serves unless fenced (or `aServes` is false: its
 * app is broken); site-b serves once restored (unless `bServes` is false); site-a's API server
 * answers after `aDownLooks` failed looks (0: always). DNS moves with switchDns.
 */
function sites(opts: { aServes?: boolean; bServes?: boolean; aDownLooks?: number; aLostAtSwitch?: boolean } = {}) {
  const w = {
    fencedA: false,
    dns: 'site-a' as 'site-a' | 'site-b',
    /** Where DNS pointed each time something was removed at site-b. */
    removedWhileDnsOn: [] as string[],
    looks: 0,
    /** site-a's API server stopped answering (`aLostAtSwitch`: as DNS moved away from it). */
    aLost: false,
  };
  const aUp = () => !w.aLost && (w.looks > (opts.aDownLooks ?? 0) || !opts.aDownLooks);
  const preflight = failoverImpl.failoverPreflight as () => Record<string, unknown>;
  const impl: Impl = {
    ...failoverImpl,
    // The primary is `from`: site-a for a failover, site-b (always up) for a failback.
    failoverPreflight: (i: { from: string }) => ({
      ...preflight(),
      primaryReachable: i.from === 'site-a' ? aUp() : true,
      verifyTimeoutMs: 60_000,
    }),
    takeBackup: () => ({
      name: 'drctl-failback-x',
      ageSeconds: 1,
      completedAt: new Date().toISOString(),
      includedNamespaces: ['demo-app'],
    }),
    fencePrimary: (i: { site: string; unlessServing?: boolean }) => {
      if (i.site === 'site-a' && !aUp())
        return { fenced: [], skipped: 'site-a API server not reachable (connect ECONNREFUSED): nothing to fence' };
      if (i.site === 'site-a' && i.unlessServing && w.dns === 'site-a')
        return { fenced: [], serving: ['app.example.com'], skipped: 'app.example.com point(s) at site-a' };
      if (i.site === 'site-a') w.fencedA = true;
      return {
        fenced: ['Deployment demo-app/nginx 3→0', 'StatefulSet demo-app/db 1→0', 'CronJob demo-app/report suspended'],
      };
    },
    unfencePrimary: (i: { site: string }) => {
      if (i.site === 'site-a' && !aUp()) throw new Error('site-a: list deployments in demo-app: connect ECONNREFUSED');
      if (i.site === 'site-a') w.fencedA = false;
      return ['Deployment demo-app/nginx →3', 'StatefulSet demo-app/db →1', 'CronJob demo-app/report suspend false'];
    },
    probeSite: (i: { site: string }) => {
      if (i.site !== 'site-a') return { ok: true, detail: 'API 200 ok' };
      w.looks++;
      return aUp() ? { ok: true, detail: 'API 200 ok' } : { ok: false, detail: 'API connect ECONNREFUSED' };
    },
    switchDns: (i: { records: { name: string }[]; addresses: string[] }) => {
      const before = w.dns === 'site-a' ? A : B;
      w.dns = i.addresses[0] === A ? 'site-a' : 'site-b';
      if (opts.aLostAtSwitch && w.dns === 'site-b') w.aLost = true;
      return i.records.map((r) => ({ name: r.name, before: [before] }));
    },
    probeApp: (i: { site: string }) =>
      i.site === 'site-a'
        ? (opts.aServes ?? true) && !w.fencedA
          ? { ok: true, detail: 'HTTP 200 ok site-a' }
          : { ok: false, detail: w.fencedA ? 'HTTP 503 no ready endpoints' : 'HTTP 503 app broken' }
        : (opts.bServes ?? true)
          ? { ok: true, detail: 'HTTP 200 ok site-b' }
          : { ok: false, detail: 'HTTP 503 no ready endpoints' },
    removeRestored: () => {
      w.removedWhileDnsOn.push(w.dns);
      return ['namespace demo-app deleted'];
    },
  };
  return { w, impl };
}

/** A failover site-a → site-b (or `args`), approved by bob, then `drive` while the worker runs. */
function failover<T>(
  impl: Impl,
  failures: Parameters<typeof mockActivities>[2],
  drive: (h: WorkflowHandle, calls: Calls) => Promise<T>,
  on: TestWorkflowEnvironment = env,
): Promise<T> {
  // Every failover on a server of its own: a run's site leases and timers must not hold the clock
  // of a shared test server for the tests after it (the test server applies no parent close policy).
  if (on === env) return ownServer((o) => failover(impl, failures, drive, o));
  const calls: Calls = [];
  const tq = id('tq');
  return withWorker(on, bundle, mockActivities(impl, calls, failures), tq, async () => {
    const h = await on.client.workflow.start('siteFailover', {
      taskQueue: tq,
      workflowId: id('failover'),
      args: [{ from: 'site-a', to: 'site-b', requestedBy: 'alice' }],
    });
    await until(h, (st) => st.phase === 'waiting-approval', 'the gate');
    await h.signal('approve', { by: 'bob' });
    return drive(h, calls);
  });
}

const names = (calls: Calls) => calls.map((c) => c.name);

/** A test whose fence-on-return completes after the failover that abandoned it: on a server of its own (see timeSkippingServer). */
async function ownServer<T>(fn: (on: TestWorkflowEnvironment) => Promise<T>): Promise<T> {
  // Where a test that times out was waiting (CI once saw one of these hang for 60 s, in a run that
  // takes 1.5 s alone): said when it fails, so the next occurrence names the wait.
  let stage = 'starting its time-skipping server';
  onTestFailed(() => void process.stderr.write(`[failover-safety] failed while ${stage}\n`));
  const on = await timeSkippingServer();
  try {
    stage = 'running the test on it';
    const out = await fn(on);
    stage = 'tearing the server down';
    return out;
  } finally {
    await on.teardown();
    stage = 'done with its server';
  }
}

describe('a failure after the DNS switch: DNS ends on a site that serves, nothing serving is deleted', () => {
  it('site-a answers once unfenced: DNS back on it first, then site-b restore removed (compensated)', async () => {
    const { w, impl } = sites();
    const { f, st, calls } = await failover(impl, [{ activity: 'verifyDns' }], async (h, calls) => ({
      f: await failureOf(h),
      st: await status(h),
      calls,
    }));
    expect(f.type).toBe('Compensated');
    expect(st.phase).toBe('compensated');
    expect(w.dns).toBe('site-a');
    expect(w.fencedA).toBe(false);
    // Removed only once DNS pointed back at site-a.
    expect(w.removedWhileDnsOn).toEqual(['site-a']);
    // Unfenced before site-a was probed, probed before DNS moved back.
    const n = names(calls);
    const unfence = n.indexOf('unfencePrimary');
    const dnsBack = n.lastIndexOf('switchDns');
    expect(unfence).toBeGreaterThan(n.indexOf('verifyDns'));
    expect(n.slice(unfence, dnsBack)).toContain('probeApp');
    expect(dnsBack).toBeLessThan(n.indexOf('removeRestored'));
    expect(items(st)[DNS_UNDO]).toBe('back on site-a, which answers (HTTP 200 ok site-a)');
    expect(Object.keys(items(st))).toEqual([
      DNS_UNDO,
      expect.stringMatching(REMOVE),
      'site-b backup location mode back',
      'unfence site-a',
    ]);
  });

  it('site-a does not answer even unfenced: rolled forward, DNS stays on site-b, nothing removed, site-a fenced again', async () => {
    const { w, impl } = sites({ aServes: false });
    const { f, st, calls } = await failover(impl, [{ activity: 'verifyDns' }], async (h, calls) => ({
      f: await failureOf(h),
      st: await status(h),
      calls,
    }));
    expect(f.type).toBe('RolledForward');
    expect(f.message).toMatch(
      /^failover site-a → site-b failed \(verifyDns failed \(injected\)\) past its point of no return; rolled forward, not undone: site-a does not answer \(HTTP 503 app broken\) and site-b does/,
    );
    expect(st.phase).toBe('rolled-forward');
    expect(st.rolledForward).toMatch(
      /DNS stays on site-b \(127\.0\.20\.100\), restore drctl-failover-\w+ is kept there; site-a fenced again$/,
    );
    expect(w.dns).toBe('site-b');
    expect(w.fencedA).toBe(true);
    expect(w.removedWhileDnsOn).toEqual([]);
    expect(names(calls)).not.toContain('restoreStorageLocationMode');
    // Given time to answer (durable timers), then fenced again and site-b promoted.
    expect(
      calls.filter((c) => c.name === 'probeApp' && (c.input as { site: string }).site === 'site-a').length,
    ).toBeGreaterThan(3);
    expect(names(calls).filter((x) => x === 'fencePrimary')).toHaveLength(2);
    expect(names(calls)).toContain('promoteSite');
    const undos = items(st);
    expect(undos[DNS_UNDO]).toBe('kept on site-b: site-b answers');
    expect(
      Object.entries(undos)
        .filter(([, v]) => v === 'kept: rolled forward')
        .map(([k]) => k),
    ).toEqual([expect.stringMatching(REMOVE), 'site-b backup location mode back', 'unfence site-a']);
  });

  it('site-a stops answering at all after the switch: rolled forward, fence-on-return-site-a fences it on its return', async () => {
    const { w, impl } = sites({ aLostAtSwitch: true });
    const { f, st, watcher, calls } = await ownServer((on) =>
      failover(
        impl,
        [{ activity: 'verifyDns' }],
        async (h, calls) => {
          const f = await failureOf(h);
          const st = await status(h);
          // It comes back: the fence-on-return the roll-forward started fences it.
          w.aLost = false;
          const watcher = (await on.client.workflow
            .getHandle('fence-on-return-site-a')
            .result()) as FenceOnReturnResult;
          return { f, st, watcher, calls };
        },
        on,
      ),
    );
    expect(f.type).toBe('RolledForward');
    expect(st.rolledForward).toMatch(
      /^site-a does not answer \(could not be unfenced: site-a: list deployments in demo-app: connect ECONNREFUSED\) and site-b does .*; site-a's API server does not answer: fence-on-return-site-a fences it when it does$/,
    );
    expect(items(st)['fence-on-return-site-a']).toMatch(/^fence-on-return-site-a started/);
    expect(w.dns).toBe('site-b');
    expect(w.removedWhileDnsOn).toEqual([]);
    // The unfence was retried, bounded (the undo policy's 6 attempts), then given up.
    expect(names(calls).filter((x) => x === 'unfencePrimary').length).toBe(6);
    expect(watcher).toMatchObject({ outcome: 'fenced', site: 'site-a' });
    expect(w.fencedA).toBe(true);
  });

  it('neither site answers: needs-attention naming both answers, DNS stays on site-b, nothing removed', async () => {
    const { w, impl } = sites({ aServes: false, bServes: false });
    // This time the failure after the switch is the report's promotion (the roll-forward's succeeds).
    let promotions = 0;
    const { f, st } = await failover(
      impl,
      [{ activity: 'promoteSite', when: () => ++promotions === 1 }],
      async (h) => ({ f: await failureOf(h), st: await status(h) }),
    );
    expect(f.type).toBe('NeedsAttention');
    expect(f.message).toContain('its undo could not finish; check:');
    expect(f.message).toContain('kept (rolled forward, not undone): neither site-a');
    expect(st.phase).toBe('needs-attention');
    expect(st.attention).toEqual([
      {
        undo: DNS_UNDO,
        error:
          'neither site-a (HTTP 503 app broken) nor site-b (HTTP 503 no ready endpoints) answers as the app; DNS stays on site-b, nothing was deleted',
        check: expect.stringContaining('Delete nothing at the site DNS points at'),
      },
    ]);
    expect(w.dns).toBe('site-b');
    expect(w.fencedA).toBe(true);
    expect(w.removedWhileDnsOn).toEqual([]);
    expect(Object.values(items(st)).filter((v) => v === 'kept: rolled forward')).toHaveLength(3);
  });
});

describe('a cancel after the DNS switch: the same', () => {
  for (const c of [
    { aServes: true, phase: 'compensated', dns: 'site-a', removed: ['site-a'] },
    { aServes: false, phase: 'rolled-forward', dns: 'site-b', removed: [] },
  ]) {
    it(`site-a ${c.aServes ? 'answers' : 'does not answer'} once unfenced: ${c.phase}, DNS on ${c.dns}`, async () => {
      const { w, impl } = sites({ aServes: c.aServes });
      // The DNS proof hangs until the test lets it go: the cancel arrives while it runs.
      let release: (v: unknown) => void = () => undefined;
      const blocked: Impl = { ...impl, verifyDns: () => new Promise((r) => (release = r)) };
      // On a server of its own: the cancelled run's blocked activity and its site leases must not
      // hold the shared test server's clock for the tests after it.
      const { f, st } = await ownServer((on) =>
        failover(
          blocked,
          [],
          async (h) => {
            try {
              await until(h, (st) => items(st, 'switch-dns')['app.example.com'] !== undefined, 'the DNS switch');
              expect(w.dns).toBe('site-b');
              await h.cancel();
              // Let the cancelled activity end once the run is undoing (a running activity holds the
              // test server's clock, and the undo waits on durable timers).
              await until(h, (st) => st.phase !== 'running', 'the undo');
              release([]);
              return { f: await failureOf(h), st: await status(h) };
            } finally {
              release([]);
            }
          },
          on,
        ),
      );
      expect(f.cancelled).toBe(true);
      expect(st.phase).toBe(c.phase);
      expect(w.dns).toBe(c.dns);
      expect(w.removedWhileDnsOn).toEqual(c.removed);
      expect(w.fencedA).toBe(!c.aServes);
    });
  }
});

describe('fence on return', () => {
  // Up to 240 s. Alone it takes 1.5-3 s: the watcher's looks (timers of 10, 20, 40, 80 s) are skipped
  // while the failover runs. In two CI runs, with the lab starting beside it, the failover ended after
  // 3 looks and the test server's clock then moved in real time (no 4th look within 60 s); the
  // remaining 40 + 80 s then cost real time. Why the clock stops skipping there is not understood.
  it(
    'a failover that cannot fence site-a starts fence-on-return-site-a, which fences it once it answers',
    { timeout: 240_000 },
    async () => {
      const { w, impl } = sites({ aDownLooks: 4 });
      const { report, watcher, wst, calls } = await ownServer((on) =>
        failover(
          impl,
          [],
          async (h, calls) => {
            onTestFailed(
              () => void process.stderr.write(`[failover-safety] calls so far: ${names(calls).join(' ')}\n`),
            );
            const report = (await h.result()) as { warnings: string[] };
            const wh = on.client.workflow.getHandle('fence-on-return-site-a');
            const watcher = (await wh.result()) as FenceOnReturnResult;
            return { report, watcher, wst: await status(wh), calls };
          },
          on,
        ),
      );
      expect(report.warnings).toContain(
        'site-a was not fenced (unreachable): fence-on-return-site-a started: fences site-a as soon as its API server answers (drctl status fence-on-return-site-a)',
      );
      expect(watcher).toMatchObject({ outcome: 'fenced', site: 'site-a', attempts: 5 });
      expect(w.fencedA).toBe(true);
      // The failover's tag, so that failover's marks; never while DNS points at site-a.
      const fences = calls.filter((c) => c.name === 'fencePrimary').map((c) => c.input as Record<string, unknown>);
      expect(fences).toHaveLength(2);
      expect(fences[1]).toMatchObject({ site: 'site-a', unlessServing: true, tag: fences[0]!.tag });
      expect(wst.runbook).toBe('fence-on-return');
      expect(wst.phase).toBe('completed');
      expect(wst.steps.map((s) => `${s.step}:${s.state}`)).toEqual(['wait-for-return:done', 'fence:done']);
    },
  );

  it('a site the traffic is on again is not fenced', async () => {
    const { impl } = sites();
    const calls: Calls = [];
    const tq = id('tq');
    const r = await withWorker(env, bundle, mockActivities(impl, calls), tq, () =>
      env.client.workflow.execute('fenceOnReturn', {
        taskQueue: tq,
        workflowId: 'fence-on-return-site-a',
        args: [{ site: 'site-a', namespaces: ['demo-app'], tag: 't', startedBy: 'failover-x', servingSite: 'site-b' }],
      }),
    );
    expect(r).toMatchObject({ outcome: 'serving', fenced: [] });
  });

  it('it keeps looking across continue-as-new, its count carried, and fences on the look that answers', async () => {
    const { w, impl } = sites({ aDownLooks: 6 });
    w.dns = 'site-b';
    const tq = id('tq');
    const r = (await withWorker(env, bundle, mockActivities(impl, []), tq, () =>
      env.client.workflow.execute('fenceOnReturn', {
        taskQueue: tq,
        workflowId: 'fence-on-return-site-a',
        args: [
          {
            site: 'site-a',
            namespaces: ['demo-app'],
            tag: 't',
            startedBy: 'failover-x',
            servingSite: 'site-b',
            looksPerRun: 2,
          },
        ],
      }),
    )) as FenceOnReturnResult;
    expect(r).toMatchObject({ outcome: 'fenced', attempts: 7 });
    expect(w.looks).toBe(7);
    expect(w.fencedA).toBe(true);
    // The run that fenced is a continuation (of a continuation): its looks were 7 only because the count was carried.
    const events = (await env.client.workflow.getHandle('fence-on-return-site-a').fetchHistory()).events ?? [];
    expect(events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId).toBeTruthy();
    expect(events.at(-1)?.workflowExecutionCompletedEventAttributes).toBeTruthy();
  });

  it('a failback towards site-a supersedes it; a failback that fails starts it again', async () => {
    for (const fails of [false, true]) {
      const { impl } = sites({ aDownLooks: 1_000_000 });
      const calls: Calls = [];
      const tq = id('tq');
      await withWorker(
        env,
        bundle,
        mockActivities(impl, calls, fails ? [{ activity: 'veleroRestore' }] : []),
        tq,
        async () => {
          const watch = await env.client.workflow.start('fenceOnReturn', {
            taskQueue: tq,
            workflowId: 'fence-on-return-site-a',
            args: [
              { site: 'site-a', namespaces: ['demo-app'], tag: 't', startedBy: 'failover-x', servingSite: 'site-b' },
            ],
          });
          const fb = await env.client.workflow.start('siteFailover', {
            taskQueue: tq,
            workflowId: id('failback'),
            args: [{ from: 'site-b', to: 'site-a', requestedBy: 'alice', backupFirst: true }],
          });
          await until(fb, (st) => st.phase === 'waiting-approval', 'the gate');
          await fb.signal('approve', { by: 'bob' });
          const superseded = (await watch.result()) as FenceOnReturnResult;
          expect(superseded).toMatchObject({ outcome: 'superseded', fenced: [] });
          expect(superseded.detail).toBe(
            `superseded by ${fb.workflowId}: failback site-b → site-a makes site-a primary`,
          );
          const end = await fb.result().then(
            () => 'completed',
            () => 'failed',
          );
          const st = await status(fb);
          expect(items(st, 'fence-primary')['fence-on-return-site-a']).toBe('superseded');
          const again = await env.client.workflow.getHandle('fence-on-return-site-a').describe();
          if (!fails) {
            expect(end).toBe('completed');
            expect(again.runId).toBe(watch.firstExecutionRunId);
          } else {
            expect(end).toBe('failed');
            expect(st.phase).toBe('compensated');
            expect(items(st)['fence-on-return-site-a started again']).toBe('done');
            expect(again.runId).not.toBe(watch.firstExecutionRunId);
            expect(again.status.name).toBe('RUNNING');
          }
        },
      );
      await env.client.workflow
        .getHandle('fence-on-return-site-a')
        .terminate('next case')
        .catch(() => undefined);
    }
  });
});
