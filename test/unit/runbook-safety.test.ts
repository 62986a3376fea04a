// What the runbooks do when the world moves under them, on the time-skipping test server with
// mocked activities: a gate that waited while the cluster or the DR site changed aborts with
// nothing changed; a drill cancelled or terminated mid-restore lets its child restore undo itself;
// an undo that can never succeed ends `needs-attention` in bounded time; `drctl cancel` requests a
// cancel and refuses what it cannot cancel. (The health watch's DNS API outage: health-watch.test.ts.)
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../client/main.ts';
import { follow, outcomeOf } from '../../client/runbook-kit.ts';
import { type DrillPreflight, drillChanges } from '../../common/drill.ts';
import { leaseId } from '../../common/lease.ts';
import type { NodePreflight } from '../../common/restore.ts';
import { changesSinceApproval } from '../../common/restore.ts';
import type { RunbookStatus } from '../../common/runbook.ts';
import type { SnapshotRef } from '../../common/snapshots.ts';
import { drillImpl, type Impl, once, restoreImpl } from './support/mocks.ts';
import { type Calls, mockActivities, timeSkipping, withWorker } from './support/time-skipping.ts';

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
const status = <S = RunbookStatus>(h: WorkflowHandle) => h.query<S>('status');
async function until<S extends { phase: string }>(h: WorkflowHandle, done: (st: S) => boolean): Promise<S> {
  for (let i = 0; i < 400; i++) {
    const st = await status<S>(h);
    if (done(st)) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never got there: ${JSON.stringify(await status(h))}`);
}
async function failureOf(h: WorkflowHandle): Promise<{ type?: string; message: string; error: unknown }> {
  const err = await h.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as { type?: string; message: string } | undefined;
  return { type: cause?.type, message: cause?.message ?? '', error: err };
}
const items = (st: RunbookStatus, step: string) => st.steps.find((s) => s.step === step)?.items ?? {};
const stepState = (st: RunbookStatus, step: string) => st.steps.find((s) => s.step === step)?.state;
/** Every activity that changes a cluster, a site or DNS (the undos' own included). */
const DESTRUCTIVE =
  /^(stopComponent|moveDataDirAside|restoreMember|startComponent|setStorageLocationMode|veleroRestore|switchDns|fencePrimary)$/;

/** An activity that runs until the test lets it go (or it is cancelled): "mid-flight". */
function blocking() {
  let started!: () => void;
  let release!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  const releaseP = new Promise<void>((r) => (release = r));
  return {
    started: startedP,
    release,
    impl: async () => {
      started();
      await Promise.race([releaseP, Context.current().cancelled]);
      return 'restored';
    },
  };
}

const UNDO = {
  staged: 'remove the staged snapshot',
  apiserver: 'start kube-apiserver and restart the controllers',
  etcd: 'start etcd and prove the pre-restore cluster is back',
  putBack: 'stop etcd, remove the restored dir, move the original back',
};

/** Starts a restore requested by alice, approves it as bob at its gate, then runs `then` with the worker up. */
async function restore<T>(
  impl: Impl,
  failures: Parameters<typeof mockActivities>[2],
  then: (h: WorkflowHandle, calls: Calls) => Promise<T>,
): Promise<T> {
  const calls: Calls = [];
  const tq = id('tq');
  return withWorker(env, bundle, mockActivities(impl, calls, failures), tq, async () => {
    const h = await env.client.workflow.start('etcdRestore', {
      taskQueue: tq,
      workflowId: id('etcd-restore'),
      args: [{ cluster: 'c1', snapshot: 'latest', requestedBy: 'alice' }],
    });
    await until(h, (st) => st.phase === 'waiting-approval');
    await h.signal('approve', { by: 'bob', reason: 'test' });
    return then(h, calls);
  });
}

// ---------------------------------------------------------------- 3: re-check after the gate

/** The nth call of an activity (1-based, counted per test) answers `later`; the ones before, `first`. */
function fromCall<I, O>(n: number, first: (i: I) => O, later: (i: I) => O) {
  let k = 0;
  return (i: I) => (++k >= n ? later(i) : first(i));
}
const preflightOf = restoreImpl.restorePreflightNode as (r: { node: string }) => NodePreflight;
const snapshotOf = restoreImpl.resolveSnapshot as () => SnapshotRef;

describe('etcd restore: what the go was given for is checked again when the gate opens', () => {
  const cases: { what: string; impl: Impl; failures?: Parameters<typeof mockActivities>[2]; says: RegExp }[] = [
    {
      what: 'the cluster regained quorum while the gate waited',
      // Three nodes at preflight (no quorum), the same three healthy again at the recheck.
      impl: { restorePreflightNode: fromCall(4, preflightOf, (r) => ({ ...preflightOf(r), etcdHealthy: true })) },
      says: /^quorum: 0\/3 members healthy at preflight, 3\/3 now: the cluster has quorum again/m,
    },
    {
      what: 'the approved snapshot changed in the bucket (its sha256)',
      impl: { resolveSnapshot: fromCall(2, snapshotOf, () => ({ ...snapshotOf(), sha256: 'cd' })) },
      says: /^snapshot snapshots\/c1\/s\.db: not the one approved: sha256 ab approved, cd now$/m,
    },
    {
      what: 'a staged copy no longer verifies',
      impl: {},
      failures: [{ activity: 'checkStagedSnapshot', when: (i: { node: string }) => i.node === 'cp2' }],
      says: /^cp2: the staged copy: checkStagedSnapshot failed \(injected\)$/m,
    },
    {
      what: 'a node became unreachable',
      impl: {
        restorePreflightNode: fromCall(4, preflightOf, (r) =>
          r.node === 'cp3' ? { node: r.node, reachable: false, error: 'ssh: connect timed out' } : preflightOf(r),
        ),
      },
      says: /^cp3: unreachable now: ssh: connect timed out$/m,
    },
  ];
  for (const c of cases) {
    it(`${c.what}: aborted, nothing changed, a typed failure naming it`, async () => {
      const { f, st, calls } = await restore({ ...restoreImpl, ...c.impl }, c.failures ?? [], async (h, calls) => ({
        f: await failureOf(h),
        st: await status(h),
        calls,
      }));
      expect(f.type).toBe('ChangedSinceApproval');
      expect(f.message).toMatch(/^c1 changed while the gate waited; nothing was changed:\n/);
      expect(f.message).toMatch(c.says);
      expect(f.message.split('\n')).toHaveLength(2); // exactly the one change
      expect(st.phase).toBe('aborted');
      expect(st.error).toBe(f.message);
      expect(stepState(st, 'approval')).toBe('done');
      expect(stepState(st, 'recheck')).toBe('failed');
      expect(stepState(st, 'stop')).toBe('pending');
      // Not one destructive activity; only what was prepared (the staged copies) is removed.
      expect(calls.filter((x) => DESTRUCTIVE.test(x.name))).toEqual([]);
      expect(calls.filter((x) => x.name === 'cleanupStaged')).toHaveLength(3);
      expect(items(st, 'compensate')).toEqual({ [UNDO.staged]: 'done' });
      // The recheck read the approved snapshot by its key, not "latest" again.
      expect(calls.filter((x) => x.name === 'resolveSnapshot').map((x) => x.input)).toEqual([
        { cluster: 'c1', snapshot: 'latest' },
        { cluster: 'c1', snapshot: 'snapshots/c1/s.db' },
      ]);
    });
  }

  it('nothing changed: the recheck passes and the restore goes on (the control)', async () => {
    const st = await restore(restoreImpl, [], async (h) => {
      await h.result();
      return status(h);
    });
    expect(stepState(st, 'recheck')).toBe('done');
    expect(st.steps.find((s) => s.step === 'recheck')?.detail).toMatch(/^as approved: 0\/3 members healthy/);
    expect(st.phase).toBe('completed');
  });

  it('changesSinceApproval: --force ignores regained quorum; a bucket that does not answer is no change', () => {
    const before = ['cp1', 'cp2', 'cp3'].map((node) => preflightOf({ node }));
    const now = before.map((p) => ({ ...p, etcdHealthy: true }));
    const base = { members: 3, snapshot: snapshotOf(), before, now, staged: [] };
    expect(changesSinceApproval({ ...base, force: true, snapshotNow: { unreadable: 'ECONNREFUSED' } })).toEqual([]);
    expect(changesSinceApproval({ ...base, force: false, snapshotNow: { gone: 'not found' } })).toEqual([
      expect.stringMatching(/^quorum: /),
      'snapshot snapshots/c1/s.db: no longer usable in the bucket: not found',
    ]);
  });
});

describe('drill: the preflight is checked again when the gate opens', () => {
  const preflight = drillImpl.drillPreflight as (i: { plan: unknown }) => DrillPreflight;

  it('a namespace of the plan appeared at the DR site while the gate waited: aborted, nothing touched', async () => {
    const calls: Calls = [];
    const tq = id('tq');
    const impl: Impl = {
      ...drillImpl,
      drillPreflight: fromCall(2, preflight, (i) => ({ ...preflight(i), existingAtTarget: ['demo-app'] })),
    };
    const { f, st } = await withWorker(env, bundle, mockActivities(impl, calls), tq, async () => {
      const h = await env.client.workflow.start('drDrill', {
        taskQueue: tq,
        workflowId: id('drill'),
        args: [{ plan: 'q', requestedBy: 'alice' }],
      });
      await until(h, (st) => st.phase === 'waiting-approval');
      await h.signal('approve', { by: 'bob' });
      return { f: await failureOf(h), st: await status(h) };
    });
    expect(f.type).toBe('ChangedSinceApproval');
    expect(f.message).toBe(
      'the DR site changed while the gate waited; nothing was changed:\n' +
        'demo-app now exist(s) at site-b: is it serving? A drill restores only into namespaces that do not exist there',
    );
    expect(st.phase).toBe('aborted');
    expect(stepState(st, 'recheck')).toBe('failed');
    expect(stepState(st, 'restore')).toBe('pending');
    expect(calls.filter((x) => DESTRUCTIVE.test(x.name))).toEqual([]);
    expect(calls.filter((x) => x.name === 'drillPreflight')).toHaveLength(2);
  });

  it('a DR site that serves traffic never gets an etcd restore drill: refused at the preflight, nothing touched', async () => {
    const calls: Calls = [];
    const tq = id('tq');
    const plan = drillImpl.loadDrillPlan as () => Record<string, unknown>;
    const impl: Impl = {
      ...drillImpl,
      loadDrillPlan: () => ({ ...plan(), etcdRestore: true }),
      drillPreflight: (i: { plan: unknown }) => ({
        ...preflight(i),
        etcdSnapshot: { key: 'etcd/site-b/s1', takenAt: '2026-12-01T00:00:00Z' },
        servingRecords: ['app.example.com'],
      }),
    };
    const { f, st } = await withWorker(env, bundle, mockActivities(impl, calls), tq, async () => {
      const h = await env.client.workflow.start('drDrill', {
        taskQueue: tq,
        workflowId: id('drill'),
        args: [{ plan: 'q', requestedBy: 'alice' }],
      });
      return { f: await failureOf(h), st: await status(h) };
    });
    expect(f.type).toBe('PreflightFailed');
    expect(f.message).toBe(
      'app.example.com point(s) at site-b: its cluster serves traffic, and a drill never restores etcd on a cluster that serves',
    );
    expect(st.phase).toBe('aborted');
    expect(calls.filter((x) => DESTRUCTIVE.test(x.name))).toEqual([]);
  });

  it('drillChanges: the drill record answering something else, the DR site not ready, the backup gone', () => {
    const pre = preflight({ plan: (drillImpl.loadDrillPlan as () => unknown)() });
    expect(drillChanges(pre, pre)).toEqual([]);
    expect(
      drillChanges(pre, {
        ...pre,
        recordBefore: ['127.0.20.100'],
        drReady: [{ check: 'api', ok: false, detail: 'connection refused' }],
        backup: undefined,
      }),
    ).toEqual([
      'DR site site-b not ready now: api: connection refused',
      'drill.app.example.com answered 127.0.10.100 at preflight, 127.0.20.100 now: the cleanup would put back an answer that is no longer current',
      'no completed backup of demo-app visible at site-b now (b1 was)',
    ]);
  });
});

// ---------------------------------------------------------------- 4: an undo that can never succeed

describe('etcd restore: an undo that can never succeed ends needs-attention in bounded time', () => {
  it('quorum on the pre-restore data never comes: needs-attention; the result and status --wait return', async () => {
    // etcd never regains quorum on the pre-restore data: the undo's check gives up after its own
    // wait (180 s on a cluster) every time, as a retryable failure.
    const impl: Impl = {
      ...restoreImpl,
      verifyQuorum: () => {
        throw new Error('c1: no quorum after 180 s: cp1: context deadline exceeded');
      },
    };
    const { f, shown, st, calls, virtualMs, workflowId } = await restore(
      impl,
      [{ activity: 'restoreMember', when: once(() => true) }],
      async (h, calls) => {
        // Both at once: what `drctl status --wait` does (follow) and what a caller of the result does.
        const [f, shown] = await Promise.all([
          failureOf(h),
          follow(env.client, h.workflowId, { json: true, pollMs: 2000 }),
        ]);
        // The run's own clock (the server's, skipped): from the go to its end.
        const events = (await h.fetchHistory()).events ?? [];
        const at = (e: (typeof events)[number] | undefined) => Number(e?.eventTime?.seconds ?? 0) * 1000;
        const virtualMs = at(events.at(-1)) - at(events.find((e) => e.workflowExecutionSignaledEventAttributes));
        return { f, shown, st: await status(h), calls, virtualMs, workflowId: h.workflowId };
      },
    );
    expect(f.type).toBe('NeedsAttention');
    expect(f.message).toContain(`- ${UNDO.etcd} (`);
    expect(f.message).toContain('running, quorum, revision >= 150');
    expect(st.phase).toBe('needs-attention');
    expect(st.attention?.map((a) => a.undo)).toEqual([UNDO.etcd, UNDO.apiserver, UNDO.staged]);
    expect(items(st, 'compensate')[UNDO.putBack]).toBe('done');
    expect(items(st, 'compensate')[UNDO.apiserver]).toBe('not run: an earlier undo did not finish');
    expect(st.attention?.[0]?.error).toBe('c1: no quorum after 180 s: cp1: context deadline exceeded');
    // Bounded: the undo activity's 6 attempts, then the run ends; its back-off waits are all the
    // time that passed (each attempt on a cluster is bounded too: 180 s, at most 5 min).
    expect(calls.filter((x) => x.name === 'verifyQuorum')).toHaveLength(6);
    expect(virtualMs).toBeGreaterThanOrEqual(1_000 + 2_000 + 4_000 + 8_000 + 15_000 - 1_000);
    expect(virtualMs).toBeLessThan(5 * 60_000);
    // status --wait stopped at the final phase and says it failed (exit 1).
    expect(shown.status.phase).toBe('needs-attention');
    expect(outcomeOf(workflowId, shown)).toMatch(/: needs-attention: /);
  }, 120_000);
});

// ---------------------------------------------------------------- 2: drctl cancel

describe('drctl cancel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drctl-cancel-unit-'));
  const cfg = join(dir, 'drctl.yaml');
  beforeAll(() => {
    writeFileSync(
      cfg,
      readFileSync('test/fixtures/valid.yaml', 'utf8')
        .replace(/^( {2}address: ).*$/m, `$1${env.address}`)
        .replace(/^( {2}namespace: ).*$/m, '$1default')
        .replace(/^ {2}tls: .*\n/m, ''),
    );
  });
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    try {
      const code = await main(['node', 'drctl', '--config', cfg, ...args]);
      return { code, out: out.join(''), err: err.join('') };
    } finally {
      vi.restoreAllMocks();
    }
  }

  it('an unknown id: exit 2, one line', async () => {
    const r = await cli('cancel', 'no-such-run', '--as', 'alice');
    expect(r).toEqual({ code: 2, out: '', err: 'error: no-such-run: no such workflow\n' });
  });

  it('a finished run: exit 2, one line, nothing requested', async () => {
    const tq = id('tq');
    const wid = id('etcd-restore');
    await withWorker(env, bundle, mockActivities(restoreImpl, []), tq, async () => {
      const h = await env.client.workflow.start('etcdRestore', {
        taskQueue: tq,
        workflowId: wid,
        args: [{ cluster: 'c1', snapshot: 'latest', requestedBy: 'alice', dryRun: true }],
      });
      await h.result();
    });
    const r = await cli('cancel', wid, '--as', 'alice', '--reason', 'too late');
    expect(r).toEqual({ code: 2, out: '', err: `error: ${wid}: already ended (completed); nothing to cancel\n` });
  });

  it('a running run: cancel requested (not terminated); it undoes what it prepared and ends aborted', async () => {
    const calls: Calls = [];
    const tq = id('tq');
    const wid = id('etcd-restore');
    const { r, f, st, events } = await withWorker(env, bundle, mockActivities(restoreImpl, calls), tq, async () => {
      const h = await env.client.workflow.start('etcdRestore', {
        taskQueue: tq,
        workflowId: wid,
        args: [{ cluster: 'c1', snapshot: 'latest', requestedBy: 'alice' }],
      });
      await until(h, (st) => st.phase === 'waiting-approval');
      const r = await cli('cancel', wid, '--as', 'alice', '--reason', 'wrong cluster');
      const f = await failureOf(h);
      const events = (await h.fetchHistory()).events ?? [];
      return { r, f, st: await status(h), events };
    });
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(
      new RegExp(`^cancel requested for ${wid} \\(etcd-restore, phase waiting-approval\\) by alice: wrong cluster\n`),
    );
    expect(r.out).toContain(`follow it: drctl status ${wid} --wait\n`);
    expect(f.error).toBeInstanceOf(WorkflowFailedError);
    expect((f.error as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    expect(st.phase).toBe('aborted');
    expect(calls.filter((x) => x.name === 'cleanupStaged')).toHaveLength(3);
    expect(calls.filter((x) => DESTRUCTIVE.test(x.name))).toEqual([]);
    // A cancel request carrying the reason and who asked; never a termination.
    const req = events.find((e) => e.workflowExecutionCancelRequestedEventAttributes);
    expect(req?.workflowExecutionCancelRequestedEventAttributes).toMatchObject({
      cause: 'wrong cluster',
      identity: 'drctl:alice',
    });
    expect(events.some((e) => e.workflowExecutionTerminatedEventAttributes)).toBe(false);
  });
});

// ---------------------------------------------------------------- 2: a drill ended mid-restore
// Last in this file: after these (an activity cancelled mid-flight, a child workflow), the
// time-skipping test server was seen to stop skipping time for the tests that followed (env.sleep
// waited in real time), so the tests that need skipped time run before.

describe('drill ended while its etcd restore drill runs: the child is asked to cancel and undoes what it changed', () => {
  const drillPlan = drillImpl.loadDrillPlan as () => Record<string, unknown>;
  const drillPre = drillImpl.drillPreflight as (i: { plan: unknown }) => DrillPreflight;

  for (const end of ['cancel', 'terminate'] as const) {
    it(`${end} the drill while the child restores: the child ends compensated, every undo done`, async () => {
      const calls: Calls = [];
      const tq = id('tq');
      const member = blocking();
      const impl: Impl = {
        ...restoreImpl,
        ...drillImpl,
        loadDrillPlan: () => ({ ...drillPlan(), etcdRestore: true }),
        drillPreflight: (i: { plan: unknown }) => ({
          ...drillPre(i),
          etcdSnapshot: { key: 'snapshots/site-b/s.db', takenAt: new Date().toISOString() },
        }),
        restoreMember: member.impl,
      };
      const drillId = id('drill');
      const { child, childSt, drill, policy } = await withWorker(
        env,
        bundle,
        mockActivities(impl, calls),
        tq,
        async () => {
          const h = await env.client.workflow.start('drDrill', {
            taskQueue: tq,
            workflowId: drillId,
            args: [{ plan: 'q', requestedBy: 'alice' }],
          });
          await until(h, (st) => st.phase === 'waiting-approval');
          await h.signal('approve', { by: 'bob' });
          await member.started; // the child stopped etcd, moved the data aside and restores now
          const c = env.client.workflow.getHandle(`${drillId}-etcd`);
          expect(stepState(await status(c), 'restore')).toBe('running');
          if (end === 'cancel') await h.cancel();
          else {
            await h.terminate('test: the drill is terminated');
            // The time-skipping test server applies no parent close policy: do what a Temporal server
            // does for the child's REQUEST_CANCEL (asserted below) when its parent closes.
            await c.cancel();
            // ... and for the DR site's lease (TERMINATE: it ends with its holder).
            await env.client.workflow.getHandle(leaseId('site-b')).terminate('test: its holder was terminated');
          }
          const child = await failureOf(c);
          member.release();
          const drill = await h.result().then(
            () => undefined,
            (e: unknown) => e as WorkflowFailedError,
          );
          const initiated = (await h.fetchHistory()).events?.find(
            (e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name === 'etcdRestore',
          );
          const policy = initiated?.startChildWorkflowExecutionInitiatedEventAttributes?.parentClosePolicy;
          return { child, childSt: await status(c), drill, policy };
        },
      );
      // However the drill ends, the server asks its child to cancel; it never terminates it.
      expect(policy).toBe(3); // temporal.api.enums.v1.ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL
      // The child was cancelled (not terminated) and ran its undo, newest first, to the end.
      expect((child.error as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
      expect(childSt.phase).toBe('compensated');
      expect(items(childSt, 'compensate')).toEqual({
        [UNDO.putBack]: 'done',
        [UNDO.etcd]: 'done',
        [UNDO.apiserver]: 'done',
        [UNDO.staged]: 'done',
      });
      const undone = calls.slice(calls.findIndex((x) => x.name === 'putOriginalBack'));
      expect(undone.filter((x) => x.name === 'putOriginalBack')).toHaveLength(3);
      expect(undone.some((x) => x.name === 'verifyQuorum')).toBe(true);
      expect(drill).toBeInstanceOf(WorkflowFailedError);
      expect(drill!.cause?.name).toBe(end === 'cancel' ? 'CancelledFailure' : 'TerminatedFailure');
    });
  }
});
