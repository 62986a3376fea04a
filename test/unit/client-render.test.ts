// The CLI's pure parts on fixture statuses, no lab: the status rendering every runbook shares, the
// one-line transitions printed while following a run without a terminal (never the whole table per
// change), when a followed run is over and whether it failed, `drctl runs`' query, and bad input
// refused with exit 2 before anything connects.
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DrillReport } from '../../common/drill.ts';
import type { RestoreEvidence } from '../../common/restore.ts';
import { STATUS_MEMO_KEY, type StatusMemo, memoOf } from '../../common/runbook.ts';
import { runsQuery, runsTable } from '../../client/commands/runbook.ts';
import { main } from '../../client/main.ts';
import {
  type AnyStatus,
  failureOf,
  renderStatus,
  secondsText,
  settled,
  stepTable,
  transitions,
} from '../../client/render.ts';
import { follow, outcomeOf, readStatus, runSummary } from '../../client/runbook-kit.ts';
import { checkCron, cronOf, invalidCron } from '../../client/schedules.ts';

const T0 = Date.parse('2026-01-10T12:01:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const utc = (t: string | number) => new Date(t).toISOString().slice(11, 19);

const evidence: RestoreEvidence = {
  snapshotKey: 'drctl/etcd/site-b/snap-1.db',
  snapshotTakenAt: at(-600),
  snapshotAgeSeconds: 600,
  revision: 4242,
  etcdHash: 99,
  sha256: 'ab'.repeat(32),
  writesLost: 17,
  bumpRevision: 1_000_000_000,
  quorumAtPreflight: false,
  perNode: [],
  approvers: ['bob', 'carol'],
  twoPersonRule: true,
  approvalDeadline: at(3600),
};

function restore(over: Partial<AnyStatus> = {}): AnyStatus {
  return {
    runbook: 'etcd-restore',
    title: 'etcd restore of site-b from snap-1.db',
    phase: 'running',
    requestedBy: 'alice',
    sites: ['site-b'],
    cluster: 'site-b',
    steps: [
      {
        step: 'preflight',
        state: 'done',
        startedAt: at(0),
        endedAt: at(2),
        seconds: 2.04,
        detail: '3 nodes, etcd 3.6',
        items: {},
      },
      { step: 'distribute', state: 'running', startedAt: at(2), items: { cp1: 'done', cp2: 'running' } },
      { step: 'approval', state: 'pending', items: {} },
    ],
    decisions: [],
    evidence,
    ...over,
  };
}

describe('renderStatus', () => {
  it('one header, the evidence, one step table with per-item progress and the running step’s elapsed time', () => {
    const text = renderStatus(
      'etcd-restore-site-b',
      'etcdRestore',
      { status: restore(), source: 'worker' },
      {
        now: T0 + 14_300,
      },
    );
    const lines = text.split('\n');
    expect(lines[0]).toBe('etcd-restore-site-b: RUNNING — etcd restore of site-b from snap-1.db, requested by alice');
    expect(text).toContain('snapshot drctl/etcd/site-b/snap-1.db: revision 4242, hash 99, 10m old; 17 writes since');
    expect(text).toMatch(/^STEP +STATE +TOOK +DETAIL$/m);
    expect(text).toMatch(/^preflight +done +2\.0 s +3 nodes, etcd 3\.6$/m);
    expect(text).toMatch(/^distribute +running +12\.3 s… +cp1: done; cp2: running$/m);
    expect(text).toMatch(/^approval +pending *$/m);
    expect(text.match(/^STEP/gm)).toHaveLength(1);
  });

  it('at the gate: who may decide, and how from the CLI and the Web UI', () => {
    const st = restore({
      phase: 'waiting-approval',
      waitingFor: 'a go/no-go from bob or carol',
      gate: {
        evidenceDigest: '0123456789abcdef'.repeat(4),
        unsignedAllowed: true,
        approvalsNeeded: 2,
        requesterUnproven: 'the request is not signed',
      },
    });
    const text = renderStatus(
      'etcd-restore-site-b',
      'etcdRestore',
      { status: st, source: 'worker' },
      {
        url: 'http://ui/wf',
      },
    );
    expect(text).toContain('waiting for a go/no-go from bob or carol');
    expect(text).toContain('UNSIGNED DECISIONS ALLOWED (approvals.unsigned: allow)');
    expect(text).toContain(`evidence sha256 ${'0123456789abcdef'.repeat(4)} (decisions are signed over it)`);
    expect(text).toContain('requester alice not proven (the request is not signed): 2 approvers needed');
    expect(text).toContain('drctl approve etcd-restore-site-b --reason TEXT');
    expect(text).toContain('drctl approve etcd-restore-site-b --sign-only prints a JSON decision');
    expect(text).toContain("Signal 'approve' (or 'reject') at http://ui/wf");
    expect(text).toContain('approvers: bob, carol');
  });

  it('decisions, what needs attention and the error', () => {
    const st = restore({
      phase: 'needs-attention',
      decisions: [
        { by: 'alice', approve: true, at: at(5), accepted: false, why: 'two-person rule' },
        {
          by: 'bob',
          approve: true,
          at: at(6),
          accepted: true,
          reason: 'site lost',
          fingerprint: 'SHA256:bobkey',
          evidence: 'abcdef0123456789'.repeat(4),
        },
      ],
      attention: [{ undo: 'start etcd on cp2', error: 'ssh: unreachable\nstack', check: 'is cp2 up? etcd running?' }],
      error: 'restore on cp2 failed',
    });
    const text = renderStatus('r', 'etcdRestore', { status: st, source: 'worker' });
    expect(text).toContain('  approve by alice (unverified) at 2026-01-10T12:01:05.000Z: refused (two-person rule)');
    expect(text).toContain(
      '  approve by bob (SHA256:bobkey) at 2026-01-10T12:01:06.000Z over abcdef012345…: ACCEPTED — site lost',
    );
    expect(text).toContain('NEEDS ATTENTION: 1 undo(s) could not finish; check by hand:');
    expect(text).toContain('  start etcd on cp2: ssh: unreachable\n    check: is cp2 up? etcd running?');
    expect(text).toContain('error: restore on cp2 failed');
  });

  it('protect-namespaces at its gate: what it creates and labels, what it leaves', () => {
    const st = {
      ...restore({ phase: 'waiting-approval' }),
      runbook: 'protect-namespaces',
      evidence: {
        site: 'site-a',
        cluster: 'site-a',
        policy: 'drctl-protect-namespaces',
        creates: ['ValidatingAdmissionPolicy drctl-protect-namespaces'],
        labels: ['demo-app: protected=true'],
        already: ['shop'],
        missing: ['payments'],
        approvers: ['alice', 'bob'],
        twoPersonRule: true,
        approvalDeadline: '2026-01-10T13:00:00.000Z',
      },
    } as unknown as Parameters<typeof renderStatus>[2]['status'];
    const text = renderStatus('p', 'protectNamespaces', { status: st, source: 'worker' });
    expect(text).toContain(
      'at site-a (site-a): creates ValidatingAdmissionPolicy drctl-protect-namespaces; labels demo-app: protected=true',
    );
    expect(text).toContain('already labelled (left as they are): shop');
    expect(text).toContain('not present (not protected): payments');
  });

  it('a run rolled forward says what it kept instead of undoing it', () => {
    const st = restore({ phase: 'rolled-forward', rolledForward: 'DNS stays on site-b, restore r1 is kept there' });
    const text = renderStatus('f', 'etcdRestore', { status: st, source: 'worker' });
    expect(text).toMatch(/^f: ROLLED-FORWARD — /);
    expect(text).toContain('ROLLED FORWARD (kept, not undone): DNS stays on site-b, restore r1 is kept there');
    expect(failureOf('f', 'etcdRestore', st)).toBe('f: rolled-forward');
    expect(settled('etcdRestore', st)).toBe(true);
  });

  it('from the server (no worker): says so with the time of its last memo update', () => {
    const text = renderStatus('r', 'etcdRestore', {
      status: restore(),
      source: 'server',
      asOf: at(3),
      execution: 'RUNNING',
    });
    expect(text.split('\n')[1]).toBe(
      `no worker answered the status query; showing what the server holds (as of ${at(3)})`,
    );
  });

  it('a drill waiting for sign-off shows its report and how to sign', () => {
    const report = {
      plan: 'q',
      workflowId: 'drill-q-1',
      outcome: 'passed',
      from: 'site-a',
      to: 'site-b',
      startedAt: at(0),
      endedAt: at(60),
      tiers: [],
      verdicts: [{ criterion: 'app-serves', ok: true, detail: '200' }],
      failures: [],
      approvals: [],
    } as unknown as DrillReport;
    const st: AnyStatus = { ...restore(), runbook: 'drill', phase: 'waiting-signoff', evidence: undefined, report };
    const text = renderStatus('drill-q-1', 'drDrill', { status: st, source: 'worker' });
    expect(text).toContain('drill q (drill-q-1): PASSED');
    expect(text).toContain('  PASS app-serves: 200');
    expect(text).toContain('drctl drill sign drill-q-1 --comment TEXT');
  });

  it('the memo (steps without items) renders the same table', () => {
    const memo = memoOf(restore());
    expect(stepTable(memo.steps, T0 + 3000)).toMatch(/^distribute +running +1\.0 s…$/m);
  });
});

describe('transitions (following without a terminal)', () => {
  const opts = { now: T0 + 10_000, clock: utc };

  it('the first look prints each step already under way, one line each', () => {
    expect(transitions('etcdRestore', undefined, restore(), opts)).toEqual([
      '[12:01:02] preflight: done (2.0 s) — 3 nodes, etcd 3.6',
      '[12:01:02] distribute: running',
    ]);
  });

  it('an unchanged run prints nothing; a change prints only what changed', () => {
    const a = restore();
    expect(transitions('etcdRestore', a, restore(), opts)).toEqual([]);
    const b = restore({ phase: 'waiting-approval', waitingFor: 'a go/no-go from bob or carol' });
    b.steps[1] = { ...b.steps[1]!, state: 'done', endedAt: at(5.1), items: { cp1: 'done', cp2: 'done' } };
    b.steps[2] = { ...b.steps[2]!, state: 'running', startedAt: at(5.1) };
    expect(transitions('etcdRestore', a, b, opts)).toEqual([
      '[12:01:10] waiting-approval — a go/no-go from bob or carol',
      '[12:01:05] distribute: done (3.1 s)',
      '[12:01:05] approval: running',
    ]);
  });

  it('the compensation step: one line per undo as it progresses', () => {
    const a = restore({
      phase: 'compensating',
      steps: [{ step: 'compensate', state: 'running', startedAt: at(8), items: { 'move back cp1': 'running' } }],
    });
    const b = restore({
      phase: 'compensated',
      steps: [
        {
          step: 'compensate',
          state: 'done',
          startedAt: at(8),
          endedAt: at(9),
          items: { 'move back cp1': 'done', 'start etcd': 'done' },
        },
      ],
    });
    expect(transitions('etcdRestore', a, b, opts)).toEqual([
      '[12:01:10] compensated',
      '[12:01:09] compensate: done (1.0 s)',
      '[12:01:10] compensate › move back cp1: done',
      '[12:01:10] compensate › start etcd: done',
    ]);
  });

  it('secondsText: tenths below a minute, durations above', () => {
    expect(secondsText(3.14)).toBe('3.1 s');
    expect(secondsText(125)).toBe('2m5s');
  });
});

describe('when following ends, and with what exit', () => {
  it('final phases settle; a drill also settles waiting for its sign-off', () => {
    expect(settled('etcdRestore', { phase: 'waiting-approval' })).toBe(false);
    expect(settled('etcdRestore', { phase: 'compensated' })).toBe(true);
    expect(settled('etcdRestore', { phase: 'waiting-signoff' })).toBe(false);
    expect(settled('drDrill', { phase: 'waiting-signoff' })).toBe(true);
  });

  it('completed and dry-run succeed; the rest fail with the phase and the error', () => {
    expect(failureOf('r', 'etcdRestore', restore({ phase: 'completed' }))).toBeUndefined();
    expect(failureOf('r', 'etcdRestore', restore({ phase: 'dry-run' }))).toBeUndefined();
    expect(failureOf('r', 'etcdRestore', restore({ phase: 'aborted', error: 'rejected by bob' }))).toBe(
      'r: aborted: rejected by bob',
    );
    // A refusal's list: every line of it, indented under the first.
    expect(
      failureOf(
        'r',
        'etcdRestore',
        restore({ phase: 'failed', error: 'refused, nothing changed:\ncp1: unreachable\n\ncp2: full' }),
      ),
    ).toBe('r: failed: refused, nothing changed:\n  cp1: unreachable\n  cp2: full');
    const failed = { outcome: 'failed' } as DrillReport;
    expect(failureOf('d', 'drDrill', restore({ phase: 'waiting-signoff', report: failed }))).toBe('d: drill failed');
  });

  it('a run ended from outside (terminated) in a non-final phase is a failure naming both', () => {
    const shown = {
      status: restore(),
      source: 'server' as const,
      execution: 'TERMINATED',
      type: 'etcdRestore' as const,
    };
    expect(outcomeOf('r', shown)).toBe('r: terminated in phase running');
  });
});

/** A client whose run moves through `statuses`, one per look; `worker: false` makes every query fail. */
function fakeClient(statuses: AnyStatus[], worker = true) {
  let look = -1;
  const current = () => statuses[Math.min(look, statuses.length - 1)]!;
  return {
    options: { namespace: 'default' },
    connection: { withDeadline: <R>(_d: number, fn: () => Promise<R>) => fn() },
    workflowService: {
      getWorkflowExecutionHistoryReverse: async () => ({
        history: { events: [{ workflowPropertiesModifiedEventAttributes: {}, eventTime: { seconds: T0 / 1000 + 7 } }] },
      }),
    },
    workflow: {
      getHandle: () => ({
        // Each look at the run starts with describe(): the run moves on one status per look.
        describe: async () => {
          look++;
          const memo: StatusMemo = memoOf(current());
          return {
            workflowId: 'r',
            runId: 'run-1',
            type: 'etcdRestore',
            // Without a worker, the run ends (e.g. terminated) at the last status.
            status: { name: !worker && look >= statuses.length - 1 ? 'TERMINATED' : 'RUNNING' },
            startTime: new Date(T0),
            memo: { [STATUS_MEMO_KEY]: memo },
            typedSearchAttributes: { get: () => undefined },
          };
        },
        query: async () => {
          if (!worker) throw new Error('Failed to query Workflow');
          return current();
        },
      }),
    },
  } as unknown as Client;
}

describe('follow and readStatus against a fake server', () => {
  const out: string[] = [];
  const err: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    out.length = 0;
    err.length = 0;
  });
  const capture = () => {
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
  };

  it('without a terminal: one line per transition, the table once at the end', async () => {
    const done = restore({ phase: 'completed' });
    done.steps = done.steps.map((s) => ({ ...s, state: 'done', startedAt: at(0), endedAt: at(1), items: {} }));
    capture();
    const shown = await follow(fakeClient([restore(), restore(), done]), 'r', { tty: false, pollMs: 1 });
    expect(shown.status.phase).toBe('completed');
    const text = out.join('');
    expect(text.match(/^STEP/gm)).toHaveLength(1);
    expect(text).toMatch(/\] distribute: running\n/);
    expect(text.match(/distribute: running/g)).toHaveLength(1);
    expect(text).toMatch(/\] completed\n/);
    expect(err).toEqual([]);
  });

  it('on a terminal: the status is redrawn in place (log-update erases the previous frame)', async () => {
    const done = restore({ phase: 'completed' });
    capture();
    await follow(fakeClient([restore(), done]), 'r', { tty: true, pollMs: 1 });
    const text = out.join('');
    expect(text.match(/r: RUNNING/g)).toHaveLength(1);
    expect(text.match(/r: COMPLETED/g)).toHaveLength(1);
    expect(text).toContain('\u001B[2K'); // erase line, before the second frame
    expect(text).not.toMatch(/\] distribute: running/);
  });

  it('no worker: the memo, the search attributes and the execution, said so once', async () => {
    capture();
    const st = restore();
    const shown = await readStatus(fakeClient([st, st], false), 'r');
    expect(shown.source).toBe('server');
    expect(shown.asOf).toBe(at(7));
    expect(shown.status.steps.map((s) => [s.step, s.state])).toEqual([
      ['preflight', 'done'],
      ['distribute', 'running'],
      ['approval', 'pending'],
    ]);
    const followed = await follow(fakeClient([st, st], false), 'r', { tty: false, pollMs: 1 });
    expect(followed.execution).toBe('TERMINATED');
    expect(outcomeOf('r', followed)).toBe('r: terminated in phase running');
    expect(err).toEqual([`no worker answered the status query; showing what the server holds (as of ${at(7)})\n`]);
  });
});

describe('drctl runs: the visibility query', () => {
  const sites = ['site-a', 'site-b'];
  it('every runbook unless one is named; flags become search attribute clauses', () => {
    expect(runsQuery({}, sites)).toBe(
      "DrctlRunbook IN ('cluster-health', 'cluster-rebuild', 'etcd-latency', 'etcd-tune', 'etcd-recover', 'etcd-rejoin', 'etcd-snapshot', 'etcd-restore', 'site-failover', 'health-watch', 'drill', 'fence-on-return', 'namespace-restore', 'audit', 'protect-namespaces')",
    );
    expect(runsQuery({ runbook: 'etcdRestore', phase: 'needs-attention', site: 'site-b' }, sites)).toBe(
      "DrctlRunbook = 'etcd-restore' AND DrctlPhase = 'needs-attention' AND DrctlSites = 'site-b'",
    );
  });

  it.each([
    [{ phase: 'done' }, '--phase'],
    [{ runbook: 'restore' }, '--runbook'],
    [{ site: "x' OR 1=1" }, '--site'],
  ])('refuses %j naming %s', (f, flag) => {
    expect(() => runsQuery(f, sites)).toThrow(new RegExp(`^${flag}: unknown`));
  });

  it('a run ended from outside shows its last phase and how it ended', () => {
    const t = runsTable([
      {
        workflowId: 'etcd-restore-site-b',
        runId: '1',
        runbook: 'etcd-restore',
        sites: ['site-b'],
        cluster: 'site-b',
        phase: 'running',
        requestedBy: 'alice',
        startTime: at(0),
        execution: 'TERMINATED',
      },
    ]);
    expect(t.split('\n')[1]).toMatch(/^etcd-restore-site-b +etcd-restore +site-b +running \(terminated\) +alice +/);
  });
});

describe('schedules: one cron check', () => {
  it('shape here, syntax by the server', () => {
    expect(checkCron(' */15 * * * * ')).toBe('*/15 * * * *');
    expect(checkCron('@hourly')).toBe('@hourly');
    expect(() => checkCron('whenever')).toThrow(/^--cron: expected a cron expression/);
    expect(String(invalidCron(new TypeError('bad minute'), '99 * * * *'))).toBe(
      "UsageError: --cron: the server rejects '99 * * * *': bad minute",
    );
    const other = new Error('unavailable');
    expect(invalidCron(other, '* * * * *')).toBe(other);
  });

  it('cronOf turns the calendar the server keeps back into five fields', () => {
    expect(
      cronOf({
        minute: [{ start: 0, end: 0, step: 1 }],
        hour: [{ start: 6, end: 6, step: 1 }],
        dayOfMonth: [{ start: 1, end: 1, step: 1 }],
        month: [{ start: 'JANUARY', end: 'OCTOBER', step: 3 }],
        dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY', step: 1 }],
      } as never),
    ).toBe('0 6 1 1-10/3 *');
  });
});

describe('bad input: one line naming the flag, exit 2, before connecting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drctl-cli-unit-'));
  const cfg = join(dir, 'drctl.yaml');
  // Temporal at an address nothing listens on: a command that connected would fail with exit 1.
  writeFileSync(cfg, readFileSync('test/fixtures/valid.yaml', 'utf8').replace(/^( {2}address: ).*$/m, '$1127.0.0.1:1'));
  it.each([
    [['runs', '--phase', 'done'], '--phase'],
    [['runs', '--runbook', 'nope'], '--runbook'],
    [['runs', '--site', 'site-z'], '--site'],
    [['runs', '--limit', '0'], '--limit'],
    [['approve', 'x', '--valid', '0'], '--valid'],
    [['approve', 'x', '--valid', '2d'], '--valid'],
    [['cancel', 'x', '--as', ''], '--as'],
    [['snapshot', 'schedule', '--cluster', 'prod-a', '--cron', 'whenever'], '--cron'],
    [['snapshot', 'schedule', 'set', '--cluster', 'prod-a', '--every', '10s'], '--every'],
    [['drill', 'schedule', 'pause', '--plan', 'nope'], '--plan'],
    [['drill', 'schedule', 'trigger', '--plan', 'nope'], '--plan'],
    [['drill', 'pause', '--plan', 'nope'], '--plan'],
    [['etcd', 'restore', '--cluster', 'prod-a', '--bump-revision', '-1'], '--bump-revision'],
  ])('%j', async (args, flag) => {
    const errs: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (errs.push(String(s)), true));
    const code = await main(['node', 'drctl', '--config', cfg, ...args]);
    vi.restoreAllMocks();
    expect(code).toBe(2);
    const lines = errs.join('').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^error: ${flag}`));
  });
});

describe('runSummary: the line the Web UI lists a run by', () => {
  it('names the runbook, what it acts on and who asked', () => {
    expect(runSummary('etcd-restore', { cluster: 'site-a', snapshot: 'latest', requestedBy: 'alice' })).toBe(
      'etcd-restore site-a (latest) by alice',
    );
    expect(runSummary('site-failover', { from: 'site-a', to: 'site-b', requestedBy: 'health-watch' })).toBe(
      'site-failover site-a → site-b by health-watch',
    );
    expect(runSummary('drill', { plan: 'quarterly', requestedBy: 'schedule:drill-quarterly' })).toBe(
      'drill plan quarterly by schedule:drill-quarterly',
    );
  });
});
