// The runbooks' control flow on the time-skipping test server with mocked activities: a failure at
// every destructive step undoes exactly what was done, newest first, and the run ends in the
// state it says; an undo that cannot finish ends `needs-attention` (and the run ends: it does not
// retry forever); a rejection changes nothing.
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/index.ts';
import type { DrillReport } from '../../common/drill.ts';
import type { RunbookStatus } from '../../common/runbook.ts';
import { drillImpl, failoverImpl, namespaceRestoreImpl, once, protectImpl, restoreImpl } from './support/mocks.ts';
import { type Calls, mockActivities, runsEnded, timeSkipping, withWorker } from './support/time-skipping.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
beforeAll(async () => {
  ({ env, bundle } = await timeSkipping());
}, 120_000);
afterAll(async () => {
  await env?.teardown();
});

let seq = 0;
const id = (what: string) => `${what}-${Date.now()}-${++seq}`;
const status = (h: WorkflowHandle) => h.query<RunbookStatus & Record<string, unknown>>('status');
async function until(h: WorkflowHandle, phase: string): Promise<RunbookStatus> {
  for (let i = 0; i < 200; i++) {
    const st = await status(h);
    if (st.phase === phase) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never reached ${phase}: ${(await status(h)).phase}`);
}
async function failureOf(h: WorkflowHandle): Promise<{ type?: string; message: string }> {
  const err = await h.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as { type?: string; message: string } | undefined;
  return { type: cause?.type, message: cause?.message ?? '' };
}
const undoOrder = (st: RunbookStatus, step = 'compensate') => st.steps.find((s) => s.step === step)?.items ?? {};

// ---------------------------------------------------------------- etcd restore

const UNDO = {
  staged: 'remove the staged snapshot',
  apiserver: 'start kube-apiserver and restart the controllers',
  etcd: 'start etcd and prove the pre-restore cluster is back',
  putBack: 'stop etcd, remove the restored dir, move the original back',
  stopApi: 'stop kube-apiserver',
};

/** Starts a restore requested by alice, waits for its gate, approves it as bob unless `decide` is false, then runs `then` while the worker still runs. */
async function restore<T>(
  failures: Parameters<typeof mockActivities>[2],
  then: (h: WorkflowHandle, calls: Calls) => Promise<T>,
  decide = true,
): Promise<T> {
  const calls: Calls = [];
  const tq = id('tq');
  return withWorker(env, bundle, mockActivities(restoreImpl, calls, failures), tq, async () => {
    const h = await env.client.workflow.start('etcdRestore', {
      taskQueue: tq,
      workflowId: id('etcd-restore'),
      args: [{ cluster: 'c1', snapshot: 'latest', requestedBy: 'alice' }],
    });
    await until(h, 'waiting-approval');
    if (decide) await h.signal('approve', { by: 'bob', reason: 'test' });
    return then(h, calls);
  });
}

describe('etcd restore: a failure at each destructive step undoes what was done, newest first', () => {
  const cases: { at: string; failures: Parameters<typeof mockActivities>[2]; undos: string[] }[] = [
    {
      at: 'stop (kube-apiserver)',
      failures: [{ activity: 'stopComponent', when: once((i) => i.component === 'kube-apiserver') }],
      undos: [UNDO.apiserver, UNDO.staged],
    },
    {
      at: 'stop (etcd)',
      failures: [{ activity: 'stopComponent', when: once((i) => i.component === 'etcd') }],
      undos: [UNDO.etcd, UNDO.apiserver, UNDO.staged],
    },
    {
      at: 'move-aside',
      failures: [{ activity: 'moveDataDirAside', when: once((i) => i.node === 'cp2') }],
      undos: [UNDO.putBack, UNDO.etcd, UNDO.apiserver, UNDO.staged],
    },
    {
      at: 'restore',
      failures: [{ activity: 'restoreMember', when: once((i) => i.node === 'cp3') }],
      undos: [UNDO.putBack, UNDO.etcd, UNDO.apiserver, UNDO.staged],
    },
    {
      at: 'start',
      failures: [{ activity: 'startComponent', when: once((i) => i.component === 'etcd') }],
      undos: [UNDO.putBack, UNDO.etcd, UNDO.apiserver, UNDO.staged],
    },
    {
      at: 'verify-quorum',
      failures: [{ activity: 'verifyQuorum', when: once(() => true) }],
      undos: [UNDO.putBack, UNDO.etcd, UNDO.apiserver, UNDO.staged],
    },
    {
      at: 'start-apiserver',
      failures: [{ activity: 'startComponent', when: once((i) => i.component === 'kube-apiserver') }],
      undos: [UNDO.stopApi, UNDO.putBack, UNDO.etcd, UNDO.apiserver, UNDO.staged],
    },
    {
      at: 'restart-controllers',
      failures: [{ activity: 'restartControllers', when: once(() => true) }],
      undos: [UNDO.stopApi, UNDO.putBack, UNDO.etcd, UNDO.apiserver, UNDO.staged],
    },
  ];
  for (const c of cases) {
    it(`fails at ${c.at}: compensated, undos ${c.undos.length}`, async () => {
      const { f, st, calls, id } = await restore(c.failures, async (h, calls) => ({
        f: await failureOf(h),
        st: await status(h),
        calls,
        id: h.workflowId,
      }));
      expect(f.type).toBe('Compensated');
      expect(f.message).toMatch(/^restore failed \(\w+ failed \(injected\)\); compensated: every node is back/);
      expect(st.phase).toBe('compensated');
      expect(st.error).toMatch(/failed \(injected\)$/);
      // The worker's metrics count the run once, by its final phase.
      expect(runsEnded.filter((e) => e.workflowId === id).map((e) => [e.runbook, e.phase])).toEqual([
        ['etcd-restore', 'compensated'],
      ]);
      const step = c.at.split(' ')[0]!;
      expect(st.steps.find((s) => s.step === step)?.state).toBe('failed');
      expect(undoOrder(st)).toEqual(Object.fromEntries(c.undos.map((u) => [u, 'done'])));
      // Nothing after the failed step ran.
      const later = ['moveDataDirAside', 'restoreMember', 'verifyQuorum', 'countKeys'];
      const failedAt = calls.findIndex((x) => c.failures!.some((y) => y.activity === x.name));
      const firstUndo = calls.findIndex((x, i) => i > failedAt && /cleanupStaged|putOriginalBack/.test(x.name));
      expect(firstUndo).toBeGreaterThan(failedAt);
      if (c.at === 'stop (kube-apiserver)') expect(calls.some((x) => later.includes(x.name))).toBe(false);
    });
  }

  it('an undo that cannot finish ends needs-attention, names what to check, and runs no later undo', async () => {
    const { f, st, calls } = await restore(
      [
        { activity: 'restoreMember', when: once(() => true) },
        { activity: 'putOriginalBack', retryable: true },
      ],
      async (h, calls) => ({ f: await failureOf(h), st: await status(h), calls }),
    );
    expect(f.type).toBe('NeedsAttention');
    expect(f.message).toContain('its undo could not finish; check:');
    expect(f.message).toContain('/var/lib/etcd.drctl-');
    expect(st.phase).toBe('needs-attention');
    expect(st.attention?.map((a) => a.undo)).toEqual([UNDO.putBack, UNDO.etcd, UNDO.apiserver, UNDO.staged]);
    expect(undoOrder(st)[UNDO.putBack]).toBe('failed: putOriginalBack failed (injected)');
    expect(undoOrder(st)[UNDO.etcd]).toBe('not run: an earlier undo did not finish');
    // Bounded: the undo activity's attempts are counted, not endless (6 per node).
    expect(calls.filter((x) => x.name === 'putOriginalBack').length).toBeLessThanOrEqual(18);
    // etcd was never started on data that is not the original.
    const afterFailure = calls.slice(calls.findIndex((x) => x.name === 'putOriginalBack'));
    expect(afterFailure.some((x) => x.name === 'startComponent')).toBe(false);
  });

  it('a rejection changes nothing: aborted, only the staged copies removed', async () => {
    const { f, st, calls } = await restore(
      [],
      async (h, calls) => {
        await h.signal('reject', { by: 'bob', reason: 'wrong snapshot' });
        return { f: await failureOf(h), st: await status(h), calls };
      },
      false,
    );
    expect(f).toEqual({ type: 'ApprovalRejected', message: 'rejected by bob: wrong snapshot; nothing was changed' });
    expect(st.phase).toBe('aborted');
    expect(calls.some((x) => /stopComponent|moveDataDirAside/.test(x.name))).toBe(false);
    expect(calls.filter((x) => x.name === 'cleanupStaged')).toHaveLength(3);
  });

  it('a self-approval is refused and recorded; the gate stays shut', async () => {
    await restore(
      [],
      async (h) => {
        await h.signal('approve', { by: 'alice' });
        await h.signal('approve', { by: 'mallory' });
        // Each decision is verified by an activity before it is recorded.
        let st = await status(h);
        for (let i = 0; i < 100 && st.decisions.length < 2; i++) {
          await new Promise((r) => setTimeout(r, 50));
          st = await status(h);
        }
        expect(st.phase).toBe('waiting-approval');
        expect(st.decisions.map((d) => [d.by, d.accepted, d.why])).toEqual([
          ['alice', false, 'two-person rule: alice requested this restore and cannot approve it'],
          ['mallory', false, 'mallory is not an approver (allowlist: alice, bob)'],
        ]);
        await h.cancel();
        await failureOf(h);
        expect((await status(h)).phase).toBe('aborted');
      },
      false,
    );
  });

  it('completes: every step done, memo on the server says so', async () => {
    const { r, st, memo, id } = await restore([], async (h) => ({
      id: h.workflowId,
      r: (await h.result()) as { outcome: string },
      st: await status(h),
      memo: (await h.describe()).memo?.drctlStatus as { phase: string; steps: { step: string }[] },
    }));
    expect(r.outcome).toBe('completed');
    expect(st.phase).toBe('completed');
    const ended = runsEnded.filter((e) => e.workflowId === id);
    expect(ended.map((e) => [e.runbook, e.phase])).toEqual([['etcd-restore', 'completed']]);
    expect(ended[0]!.seconds).toBeGreaterThan(0);
    expect(st.steps.map((s) => `${s.step}:${s.state}`)).toEqual([
      'lease:done',
      'preflight:done',
      'distribute:done',
      'approval:done',
      'recheck:done',
      'stop:done',
      'move-aside:done',
      'restore:done',
      'start:done',
      'verify-quorum:done',
      'start-apiserver:done',
      'restart-controllers:done',
      'remove-staged:done',
    ]);
    expect(memo.phase).toBe('completed');
    expect(memo.steps).toHaveLength(13);
  });
});

// ---------------------------------------------------------------- site failover
const F = {
  unfence: 'unfence site-a',
  mode: 'site-b backup location mode back',
  remove: (i: unknown) => `remove what restore ${String(i)} created at site-b`,
  dns: 'DNS back to site-a if it serves once unfenced, else kept on site-b',
};

describe('failover: a failure at each step after the gate undoes in reverse', () => {
  const cases: { at: keyof Activities; undos: number }[] = [
    { at: 'fencePrimary', undos: 1 },
    { at: 'veleroRestore', undos: 3 },
    { at: 'verifySite', undos: 3 },
    { at: 'verifyDns', undos: 4 },
    { at: 'promoteSite', undos: 4 },
  ];
  for (const c of cases) {
    it(`fails at ${c.at}: compensated with ${c.undos} undo(s)`, async () => {
      const calls: Calls = [];
      const tq = id('tq');
      const st = await withWorker(
        env,
        bundle,
        mockActivities(failoverImpl, calls, [{ activity: c.at }]),
        tq,
        async () => {
          const h = await env.client.workflow.start('siteFailover', {
            taskQueue: tq,
            workflowId: id('failover'),
            args: [{ from: 'site-a', to: 'site-b', requestedBy: 'alice' }],
          });
          await until(h, 'waiting-approval');
          await h.signal('approve', { by: 'bob' });
          const f = await failureOf(h);
          expect(f.type).toBe('Compensated');
          expect(f.message).toContain(`failover site-a → site-b failed (${c.at} failed (injected)); compensated`);
          return status(h);
        },
      );
      expect(st.phase).toBe('compensated');
      const names = Object.keys(undoOrder(st));
      const restoreName = names.find((n) => n.startsWith('remove what restore'))?.split(' ')[3];
      const all = [F.dns, F.remove(restoreName), F.mode, F.unfence];
      expect(names).toEqual(all.slice(all.length - c.undos));
      // Every undo done; the DNS one says where DNS went and why.
      expect(Object.entries(undoOrder(st)).filter(([k, v]) => k !== F.dns && v !== 'done')).toEqual([]);
      // DNS went back only after site-a was unfenced and answered.
      if (c.undos === 4) {
        expect(undoOrder(st)[F.dns]).toBe('back on site-a, which answers (200)');
        const order = calls.map((x) => x.name);
        expect(order.lastIndexOf('unfencePrimary')).toBeLessThan(order.lastIndexOf('switchDns'));
        const back = calls.filter((x) => x.name === 'switchDns').at(-1)?.input as { addresses: string[] };
        expect(back.addresses).toEqual(['127.0.10.100']);
      }
    });
  }
});

// ---------------------------------------------------------------- namespace protection (audit --fix)

describe('protect-namespaces: a failure after the gate removes only what the run made', () => {
  const start = (tq: string) =>
    env.client.workflow.start('protectNamespaces', {
      taskQueue: tq,
      workflowId: id('protect'),
      args: [{ site: 'site-a', requestedBy: 'alice' }],
    });
  const POLICY = 'remove drctl-protect-namespaces at site-a (only what this run created)';
  const LABEL = 'remove protected=true from demo-app';
  const cases: { at: keyof Activities; undos: string[] }[] = [
    { at: 'installProtectionPolicy', undos: [POLICY] },
    { at: 'labelProtected', undos: [LABEL, POLICY] },
    { at: 'verifyProtection', undos: [LABEL, POLICY] },
  ];
  for (const c of cases) {
    it(`fails at ${c.at}: compensated, ${c.undos.length} undo(s), the already-labelled namespace untouched`, async () => {
      const calls: Calls = [];
      const tq = id('tq');
      const st = await withWorker(
        env,
        bundle,
        mockActivities(protectImpl, calls, [{ activity: c.at }]),
        tq,
        async () => {
          const h = await start(tq);
          const gate = await until(h, 'waiting-approval');
          expect(gate.evidence).toMatchObject({ labels: ['demo-app: protected=true'], already: ['shop'] });
          await h.signal('approve', { by: 'bob' });
          expect((await failureOf(h)).type).toBe('Compensated');
          return status(h);
        },
      );
      expect(st.phase).toBe('compensated');
      expect(Object.keys(undoOrder(st))).toEqual(c.undos);
      const unlabel = calls.find((x) => x.name === 'unlabelProtected');
      if (c.undos.includes(LABEL)) expect(unlabel?.input).toEqual({ site: 'site-a', namespaces: ['demo-app'] });
      const removed = calls.find((x) => x.name === 'removeProtectionPolicy');
      expect(removed?.input).toEqual({ site: 'site-a', created: { policy: true, binding: true } });
    });
  }

  it('rejected: nothing is installed or labelled', async () => {
    const calls: Calls = [];
    const tq = id('tq');
    await withWorker(env, bundle, mockActivities(protectImpl, calls), tq, async () => {
      const h = await start(tq);
      await until(h, 'waiting-approval');
      await h.signal('reject', { by: 'bob', reason: 'not now' });
      expect((await failureOf(h)).type).toBe('ApprovalRejected');
    });
    expect(calls.map((x) => x.name).filter((n) => /install|label/i.test(n))).toEqual([]);
  });
});

// ---------------------------------------------------------------- namespace restore

describe('namespace restore: rejected it changes nothing; a failure after the gate undoes in reverse', () => {
  const start = (tq: string, namespaces = ['demo-app']) =>
    env.client.workflow.start('namespaceRestore', {
      taskQueue: tq,
      workflowId: id('namespace-restore'),
      args: [{ site: 'site-a', namespaces, before: '2026-12-03T10:42:00.000Z', requestedBy: 'alice' }],
    });
  const VOLUMES = 'volumes at site-a name their old claims again';
  const cases: { at: keyof Activities; undos: number }[] = [
    { at: 'releaseRetainedVolumes', undos: 1 },
    { at: 'veleroRestore', undos: 2 },
    { at: 'verifySite', undos: 2 },
    { at: 'verifyDns', undos: 2 },
  ];
  for (const c of cases) {
    it(`fails at ${c.at}: compensated with ${c.undos} undo(s)`, async () => {
      const calls: Calls = [];
      const tq = id('tq');
      const st = await withWorker(
        env,
        bundle,
        mockActivities(namespaceRestoreImpl, calls, [{ activity: c.at }]),
        tq,
        async () => {
          const h = await start(tq);
          const gate = await until(h, 'waiting-approval');
          expect(gate.evidence).toMatchObject({ changesLostSeconds: 600, backup: { name: 'b1' } });
          await h.signal('approve', { by: 'bob' });
          const f = await failureOf(h);
          expect(f.type).toBe('Compensated');
          expect(f.message).toContain(`restore of demo-app at site-a failed (${c.at} failed (injected)); compensated`);
          return status(h);
        },
      );
      expect(st.phase).toBe('compensated');
      const names = Object.keys(undoOrder(st));
      const remove = names.filter((n) => n.startsWith('remove what restore'));
      expect(names).toEqual([...remove, VOLUMES].slice(-c.undos));
      const undone = calls.filter((x) => ['removeRestored', 'settleReleasedVolumes'].includes(x.name));
      expect(undone.map((x) => x.input)).toEqual([
        ...(c.undos === 2 ? [expect.objectContaining({ inPlace: true, created: ['demo-app'], existed: [] })] : []),
        expect.objectContaining({ undo: true }),
      ]);
    });
  }

  it('rejected: nothing after the gate runs', async () => {
    const calls: Calls = [];
    const tq = id('tq');
    await withWorker(env, bundle, mockActivities(namespaceRestoreImpl, calls), tq, async () => {
      const h = await start(tq);
      await until(h, 'waiting-approval');
      await h.signal('reject', { by: 'bob', reason: 'not now' });
      expect((await failureOf(h)).type).toBe('ApprovalRejected');
    });
    expect(calls.map((x) => x.name)).not.toContain('releaseRetainedVolumes');
    expect(calls.map((x) => x.name)).not.toContain('veleroRestore');
  });

  it('a namespace still Terminating is refused at the preflight', async () => {
    const calls: Calls = [];
    const tq = id('tq');
    await withWorker(env, bundle, mockActivities(namespaceRestoreImpl, calls), tq, async () => {
      const h = await start(tq, ['stuck']);
      const f = await failureOf(h);
      expect(f).toMatchObject({
        type: 'PreflightFailed',
        message: expect.stringMatching(/^stuck still being deleted/),
      });
    });
    expect(calls.map((x) => x.name)).not.toContain('openGate');
  });
});

// ---------------------------------------------------------------- drill

describe('drill: cleanup always runs every undo; the report is written before and after sign-off', () => {
  it('a failed verification and a failing undo: the other undos still run, outcome failed, then signed', async () => {
    const calls: Calls = [];
    const tq = id('tq');
    const failures = [
      { activity: 'verifySite' as const },
      // Non-retryable: the query polling below keeps the test server's clock from skipping a back-off.
      { activity: 'restoreStorageLocationMode' as const },
    ];
    const { report, st } = await withWorker(env, bundle, mockActivities(drillImpl, calls, failures), tq, async () => {
      const h = await env.client.workflow.start('drDrill', {
        taskQueue: tq,
        workflowId: id('drill'),
        args: [{ plan: 'q', requestedBy: 'alice' }],
      });
      await until(h, 'waiting-approval');
      await h.signal('approve', { by: 'bob' });
      await until(h, 'waiting-signoff');
      await h.signal('signoff', { by: 'carol' }); // not an approver: refused
      await h.signal('signoff', { by: 'alice', comment: 'seen' });
      return { report: (await h.result()) as DrillReport, st: await status(h) };
    });
    expect(report.outcome).toBe('failed');
    expect(report.failures[0]).toBe('verifySite failed (injected)');
    expect(report.signOff?.by).toBe('alice');
    const cleanup = undoOrder(st, 'cleanup');
    expect(Object.keys(cleanup)[0]).toMatch(/^delete what restore drctl-drill-\w+ created at site-b$/);
    expect(Object.values(cleanup)).toEqual(['done', 'failed: restoreStorageLocationMode failed (injected)']);
    expect(st.steps.map((s) => `${s.step}:${s.state}`)).toEqual([
      'lease:done',
      'preflight:done',
      'approval:done',
      'recheck:done',
      'etcd-restore:skipped',
      'restore:done',
      'verify:failed',
      'switch-drill-record:pending',
      'measure:pending',
      'cleanup:done',
      'report:done',
      'sign-off:done',
      'signed-report:done',
    ]);
    expect(calls.filter((x) => x.name === 'writeDrillReport')).toHaveLength(2);
    expect(st.phase).toBe('completed');
  });
});

// ---------------------------------------------------------------- bad inputs from any client

describe('a bad input is refused before any activity runs', () => {
  it.each([
    [
      'etcdRestore',
      { cluster: 'c1', snapshot: 'latest', requestedBy: 'alice', bumpRevision: 0 },
      'bumpRevision must be an integer >= 1 (got 0)',
    ],
    ['etcdSnapshot', { cluster: 'c1', maxAgeMs: 0 }, /^maxAgeMs must be above 0 \(got 0\)/],
    ['etcdSnapshot', { cluster: 'c1', keep: 0 }, 'keep must be an integer >= 1 (got 0)'],
  ] as const)('%s %j', async (workflow, input, message) => {
    const calls: Calls = [];
    const tq = id('tq');
    const f = await withWorker(env, bundle, mockActivities(restoreImpl, calls), tq, async () =>
      failureOf(await env.client.workflow.start(workflow, { taskQueue: tq, workflowId: id(workflow), args: [input] })),
    );
    expect(f.type).toBe('PreflightFailed');
    expect(f.message).toMatch(message);
    expect(calls).toEqual([]);
  });
});

describe('failover auto-approval: the worker config decides, never the input', () => {
  const autoPolicy = {
    ...failoverImpl,
    loadApprovalPolicy: () => ({
      approvers: ['alice', 'bob'],
      twoPersonRule: true,
      timeoutMs: 3_600_000,
      autoApproveWatchFailovers: true,
    }),
  };

  it('an input asking for it (the old `autoApprove: true`) still waits at the gate', async () => {
    const tq = id('tq');
    await withWorker(env, bundle, mockActivities(autoPolicy, []), tq, async () => {
      const h = await env.client.workflow.start('siteFailover', {
        taskQueue: tq,
        workflowId: id('failover'),
        args: [{ from: 'site-a', to: 'site-b', requestedBy: 'mallory', autoApprove: true }],
      });
      const st = await until(h, 'waiting-approval');
      expect(st.steps.find((s) => s.step === 'approval')?.state).toBe('running');
      await h.cancel();
      await failureOf(h);
    });
  });

  it("a failover the health watch starts passes the gate when the worker's config says so", async () => {
    const tq = id('tq');
    const impl = {
      ...autoPolicy,
      loadWatchPolicy: () => ({
        sites: ['site-a', 'site-b'],
        intervalMs: 10_000,
        failuresToDown: 2,
        successesToUp: 5,
        autoFailover: true,
        autoApprove: true,
      }),
      servingSite: () => ({ site: 'site-a', addresses: ['127.0.10.100'] }),
      probeSite: (i: { site: string }) =>
        i.site === 'site-a' ? { ok: false, detail: 'HTTP 503' } : { ok: true, detail: '200' },
      notify: () => 'ok',
    };
    await withWorker(env, bundle, mockActivities(impl, []), tq, async () => {
      const watch = await env.client.workflow.start('healthWatch', {
        taskQueue: tq,
        workflowId: id('health-watch-app.example.com'),
        args: [{ record: 'app.example.com', roundsPerRun: 1000 }],
      });
      const fo = env.client.workflow.getHandle('failover-site-a-to-site-b');
      let approval: { state: string; detail?: string } | undefined;
      for (let i = 0; i < 100 && approval?.state !== 'skipped'; i++) {
        await env.sleep(10_000);
        approval = await fo
          .query<RunbookStatus>('status')
          .then((st) => st.steps.find((x) => x.step === 'approval'))
          .catch(() => undefined);
      }
      expect(approval?.state).toBe('skipped');
      expect(approval?.detail).toMatch(
        /^auto-approved: started by health-watch-app\.example\.com-.*failover\.healthWatch\.autoApprove is on/,
      );
      await Promise.all([watch.terminate('test over'), fo.terminate('test over').catch(() => undefined)]);
    });
  });
});
