// Signed approvals through the real gate: the kernel's gate (time-skipping server) with the REAL
// approval activities (activities/approval.ts → ssh-keygen -Y verify) and keys made here, signed
// the way the CLI signs (client/signing.ts). Everything else the restore does is mocked: this file
// is about who may open the gate. Forged, replayed, mis-bound and unsigned decisions leave it shut
// and are recorded as refused; a genuine one opens it and says who, with which key, over what.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/index.ts';
import { createApprovalActivities } from '../../activities/approval.ts';
import type { RunbookStatus } from '../../common/runbook.ts';
import type { Signed } from '../../common/signed.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { signDecision, signRequest } from '../../client/signing.ts';
import { signClaims } from '../../gateways/ssh-signatures.ts';
import type { Gateways } from '../../gateways/index.ts';
import { restoreImpl } from './support/mocks.ts';
import { mockActivities, timeSkipping, withWorker } from './support/time-skipping.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
let dir: string;
const key = (who: string) => join(dir, who);
const pub = (who: string) => execFileSync('cat', [`${key(who)}.pub`], { encoding: 'utf8' }).trim();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drctl-signers-'));
  for (const who of ['alice', 'bob', 'carol', 'mallory'])
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', who, '-f', key(who)]);
  ({ env, bundle } = await timeSkipping());
}, 120_000);
afterAll(async () => {
  await env?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The worker's config as far as approvals go: alice, bob, carol listed with keys; mallory is not. */
const config = (unsigned: 'refuse' | 'allow' = 'refuse') =>
  ({
    approvals: {
      approvers: ['alice', 'bob', 'carol'],
      twoPersonRule: true,
      timeout: 3_600_000,
      signers: { alice: [pub('alice')], bob: [pub('bob')], carol: [pub('carol')] },
      unsigned,
    },
  }) as unknown as DrctlConfig;

let seq = 0;
const status = (h: WorkflowHandle) => h.query<RunbookStatus>('status');
async function until(h: WorkflowHandle, ok: (st: RunbookStatus) => boolean, what: string): Promise<RunbookStatus> {
  for (let i = 0; i < 200; i++) {
    const st = await status(h);
    if (ok(st)) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never ${what}: ${JSON.stringify((await status(h)).decisions)}`);
}
const decided = (h: WorkflowHandle, n: number) => until(h, (st) => st.decisions.length >= n, `${n} decisions`);
/** The gate opened (its step done, the approvals recorded); the rest of the run is not this file's business. */
const opened = (h: WorkflowHandle) =>
  until(h, (st) => st.steps.find((x) => x.step === 'approval')?.state === 'done', 'the gate open');

/**
 * A restore requested by `requester` (signed with their key unless `signedRequest` is false),
 * waiting at its gate; `then` runs while the worker with the real approval activities runs.
 */
async function atGate<T>(
  opts: { requester?: string; signedRequest?: boolean; unsigned?: 'refuse' | 'allow' },
  then: (h: WorkflowHandle, cfg: DrctlConfig) => Promise<T>,
): Promise<T> {
  // A test server of its own per run: after a run whose result was awaited (time skipped), the
  // shared time-skipping server stopped delivering a later run's activations here.
  await env?.teardown();
  ({ env, bundle } = await timeSkipping());
  const cfg = config(opts.unsigned);
  const approval = createApprovalActivities({ config: cfg } as unknown as Gateways);
  const activities = { ...mockActivities(restoreImpl, []), ...approval } as Activities;
  const tq = `signed-${++seq}`;
  const workflowId = `etcd-restore-signed-${Date.now()}-${seq}`;
  const requester = opts.requester ?? 'alice';
  const input = { cluster: 'c1', snapshot: 'latest', requestedBy: requester };
  const args =
    opts.signedRequest === false
      ? [input]
      : [(await signRequest(cfg, { runbook: 'etcd-restore', workflowId, input, key: key(requester) })).input];
  return withWorker(env, bundle, activities, tq, async () => {
    const h = await env.client.workflow.start('etcdRestore', { taskQueue: tq, workflowId, args });
    await until(h, (st) => st.phase === 'waiting-approval', 'at the gate');
    return then(h, cfg);
  });
}

const sign = (h: WorkflowHandle, cfg: DrctlConfig, who: string, decision: 'approve' | 'reject' = 'approve') =>
  signDecision(env.client, cfg, {
    workflowId: h.workflowId,
    decision,
    key: key(who),
    reason: `${who} says ${decision}`,
    validMs: 600_000,
  });

describe('the gate opens only on a decision the worker can verify', () => {
  it('a genuine signed approval opens it and names the signer, the key and the evidence', async () => {
    await atGate({}, async (h, cfg) => {
      const st0 = await status(h);
      expect(st0.gate?.requester?.by).toBe('alice');
      expect(st0.gate?.approvalsNeeded).toBe(1);
      const fp = execFileSync('ssh-keygen', ['-lf', `${key('bob')}.pub`], { encoding: 'utf8' }).split(' ')[1];
      await h.signal('approve', await sign(h, cfg, 'bob'));
      const r = (await h.result()) as { outcome: string };
      expect(r.outcome).toBe('completed');
      const st = await status(h);
      expect(st.approvals?.map((a) => [a.by, a.fingerprint, a.evidence])).toEqual([
        ['bob', fp, st0.gate!.evidenceDigest],
      ]);
      expect(st.steps.find((s) => s.step === 'approval')?.detail).toBe(`approved by bob (${fp})`);
    });
  });

  it('forged, unsigned, replayed, mis-bound and expired decisions are refused; the gate stays shut', async () => {
    await atGate({}, async (h, cfg) => {
      const genuine = await sign(h, cfg, 'bob');
      // 1. The Web UI's old form: a name typed by anyone.
      await h.signal('approve', { by: 'bob', reason: 'trust me' });
      // 2. mallory signs with her own key, claiming to be bob.
      await h.signal('approve', await signClaims(genuine.claims, key('mallory')));
      // 3. bob's real signature from another run of this workflow id.
      await h.signal('approve', await signClaims({ ...genuine.claims, runId: 'an-earlier-run' }, key('bob')));
      // 4. bob's signature over other evidence (what he saw is not what the gate shows).
      await h.signal('approve', await signClaims({ ...genuine.claims, evidence: 'f'.repeat(64) }, key('bob')));
      // 5. expired.
      await h.signal(
        'approve',
        await signClaims({ ...genuine.claims, notAfter: new Date(Date.now() - 1000).toISOString() }, key('bob')),
      );
      // 6. a rejection sent as an approval.
      await h.signal('approve', await sign(h, cfg, 'bob', 'reject'));
      // 7. a genuine signature with one byte of the claims changed.
      await h.signal('approve', { ...genuine, claims: { ...genuine.claims, reason: 'changed' } } as Signed);
      // 8. the requester, genuinely signed.
      await h.signal('approve', await sign(h, cfg, 'alice'));
      const st = await decided(h, 8);
      expect(st.phase).toBe('waiting-approval');
      expect(st.decisions.every((d) => !d.accepted)).toBe(true);
      const why = st.decisions.map((d) => d.why ?? '');
      expect(why[0]).toMatch(/^unsigned/);
      expect(why[1]).toMatch(/signature check failed for bob/);
      expect(why[2]).toMatch(/signed for run an-earlier-run/);
      expect(why[3]).toMatch(/signed over evidence ffffffffffff/);
      expect(why[4]).toMatch(/^expired at/);
      expect(why[5]).toBe('signed a reject, sent as a approve');
      expect(why[6]).toMatch(/signature check failed for bob/);
      expect(why[7]).toBe('two-person rule: alice requested this restore and cannot approve it');
      expect(st.steps.find((s) => s.step === 'stop')?.state).toBe('pending');
      // The CLI's update gets the refusal as its answer.
      const err = await h
        .executeUpdate('decide', {
          args: [{ approve: true, signed: await signClaims(genuine.claims, key('mallory')) }],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(/signature check failed/);
      // The genuine one still opens it.
      await h.executeUpdate('decide', { args: [{ approve: true, signed: genuine }] });
      expect((await opened(h)).approvals?.map((a) => a.by)).toEqual(['bob']);
      await h.cancel();
    });
  });

  it('an unsigned request needs two approvers: the same one twice is refused', async () => {
    await atGate({ signedRequest: false, requester: 'carol' }, async (h, cfg) => {
      const st0 = await status(h);
      expect(st0.gate?.approvalsNeeded).toBe(2);
      expect(st0.gate?.requesterUnproven).toBe('the request is not signed');
      await h.signal('approve', await sign(h, cfg, 'bob'));
      await h.signal('approve', await sign(h, cfg, 'bob'));
      const st = await decided(h, 2);
      expect(st.phase).toBe('waiting-approval');
      expect(st.decisions.map((d) => [d.by, d.accepted])).toEqual([
        ['bob', true],
        ['bob', false],
      ]);
      expect(st.decisions[1]!.why).toBe('bob already approved; the two-person rule needs a second approver');
      await h.signal('approve', await sign(h, cfg, 'alice'));
      expect(((await h.result()) as { outcome: string }).outcome).toBe('completed');
      expect((await status(h)).approvals?.map((a) => a.by)).toEqual(['bob', 'alice']);
    });
  });

  it('a request signed by someone else than it names is not proven', async () => {
    const cfg = config();
    const input = { cluster: 'c1', snapshot: 'latest', requestedBy: 'carol' };
    // signRequest sets requestedBy to the key's owner: it cannot be made to name someone else.
    const { input: signed } = await signRequest(cfg, {
      runbook: 'etcd-restore',
      workflowId: 'x',
      input,
      key: key('bob'),
    });
    expect(signed.requestedBy).toBe('bob');
    await expect(
      signRequest(cfg, { runbook: 'etcd-restore', workflowId: 'x', input, key: key('mallory') }),
    ).rejects.toThrow(/nobody's key/);
  });

  it('approvals.unsigned: allow lets a typed name in, marked UNSIGNED', async () => {
    await atGate({ unsigned: 'allow' }, async (h) => {
      expect((await status(h)).gate?.unsignedAllowed).toBe(true);
      await h.signal('approve', { by: 'bob', reason: 'first try' });
      const st = await opened(h);
      await h.cancel();
      expect(st.approvals?.map((a) => [a.by, a.unsigned, a.fingerprint])).toEqual([['bob', true, undefined]]);
      expect(st.steps.find((s) => s.step === 'approval')?.detail).toBe('approved by bob (UNSIGNED)');
    });
  });
});
