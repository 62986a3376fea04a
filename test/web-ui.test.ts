// The Temporal Web UI as an operator uses it: a real Chromium finds a failover waiting at its
// go/no-go gate and sends signals through More Actions → Send a Signal. Forged decisions (a typed
// name, another's key) are refused and recorded; bob's signed rejection, pasted as printed by
// `drctl reject --sign-only`, ends the run. Up to the gate a failover only reads: nothing changes.
import { WorkflowFailedError } from '@temporalio/client';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FailureType } from '../common/errors.ts';
import type { FailoverStatus, FailoverStep } from '../common/failover.ts';
import { statusQuery, siteFailover } from '../workflows/site-failover.ts';
import { launchBrowser, screenshot, signalFromWebUi } from './support/browser.ts';
import { resetFailoverLab } from './support/failover.ts';
import { signClaims } from '../gateways/ssh-signatures.ts';
import { keyFingerprint, personKey, signedDecision, startTestEnv, type TestEnv, until } from './support/lab.ts';

let env: TestEnv;
let browser: Browser;

beforeAll(async () => {
  [env, browser] = await Promise.all([startTestEnv('web-ui'), launchBrowser()]);
  // What the failover's preflight needs, whatever the file before left: both sites up, site B
  // ready with nothing restored, DNS on site A, and a backup of site A within the RPO, seen at B.
  await resetFailoverLab(env.gw, env.config);
  // As long as the failover file's baseline may take: after an etcd restore test, site B's Velero
  // and namespace controller can each take minutes (a CI run timed out here at 300 s).
}, 600_000);
afterAll(async () => {
  await browser?.close();
  await env?.close();
});

/** Every step that would change something comes after the gate. */
const AFTER_GATE: FailoverStep[] = ['fence-primary', 'restore', 'verify', 'switch-dns', 'report'];

it(
  'refuses forged decisions from the Web UI and takes a signed rejection pasted into its Signal action',
  { timeout: 360_000 },
  async () => {
    const webUi = env.config.temporal.webUi;
    if (!webUi) throw new Error("temporal.webUi is not set in the lab's config");
    const handle = await env.client.workflow.start(siteFailover, {
      taskQueue: env.taskQueue,
      workflowId: `web-ui-probe-${Math.random().toString(36).slice(2, 10)}`,
      args: [{ from: 'site-a', to: 'site-b', requestedBy: 'alice', approvalTimeoutMs: 120_000 }],
    });
    // Unsigned here: then the gate wants two approvers, and says so.
    // The lab was set up for it: a refused preflight is a failure, with the refusal's own words.
    const gate = await until(
      'the failover past its preflight',
      () => handle.query(statusQuery),
      (s) => s.phase !== 'running',
      120_000,
      250,
    );
    expect(gate.phase, `the failover ended ${gate.phase} before its gate: ${gate.error}`).toBe('waiting-approval');
    expect(gate.gate?.approvalsNeeded).toBe(2);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      const send = (signal: string, input: unknown) =>
        signalFromWebUi(page, {
          webUi,
          namespace: env.client.options.namespace,
          workflowId: handle.workflowId,
          signal,
          input,
        });
      // Forged from the Web UI: a typed name, and bob's decision signed with dave's key. Both are
      // refused and recorded; the gate stays shut.
      const bobs = await signedDecision(env, handle.workflowId, 'bob', 'reject', 'web ui test');
      await send('approve', { by: 'bob', reason: 'typed in the Web UI' });
      await send('approve', await signClaims({ ...bobs.claims, decision: 'approve' }, personKey('dave')));
      const refused = await until(
        'two refused decisions',
        () => handle.query(statusQuery),
        (s) => s.decisions.length >= 2,
        60_000,
        250,
      );
      expect(refused.phase).toBe('waiting-approval');
      expect(refused.decisions.map((d) => [d.accepted, d.why])).toEqual([
        [false, expect.stringMatching(/^unsigned: a decision must be signed/)],
        [false, expect.stringMatching(/^signature check failed for bob/)],
      ]);
      // The genuine one: what `drctl reject <id> --sign-only` printed for bob, pasted as the input.
      const t0 = Date.now();
      await send('reject', bobs);
      process.stderr.write(`[web-ui] signal sent through the Web UI in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

      const err = await handle.result().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toMatchObject({
        type: FailureType.ApprovalRejected,
        message: 'rejected by bob: web ui test; nothing was changed',
      });

      const st: FailoverStatus = await handle.query(statusQuery);
      expect(st.phase).toBe('aborted');
      expect(st.decisions[2]).toMatchObject({
        by: 'bob',
        reason: 'web ui test',
        approve: false,
        accepted: true,
        fingerprint: keyFingerprint('bob'),
      });
      expect(st.approval).toMatchObject({ by: 'bob', approve: false });
      // Nothing changed: no step past the gate started, and the only activities were the read-only ones.
      expect(
        Object.fromEntries(
          st.steps.filter((s) => AFTER_GATE.includes(s.step as FailoverStep)).map((s) => [s.step, s.state]),
        ),
      ).toEqual(Object.fromEntries(AFTER_GATE.map((s) => [s, 'pending'])));
      const history = await handle.fetchHistory();
      const activities = new Set(
        (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []),
      );
      expect([...activities].sort()).toEqual(['failoverPreflight', 'loadApprovalPolicy', 'openGate', 'verifyDecision']);

      // The operator's view of the outcome, kept as the artefact.
      await page.reload();
      await page
        .getByRole('row', { name: /Workflow Execution Failed/ })
        .filter({ hasText: 'rejected by bob: web ui test' })
        .waitFor({ timeout: 30_000 });
    } finally {
      process.stderr.write(`[web-ui] screenshot: ${await screenshot(page, 'web-ui-reject')}\n`);
      await page.close();
    }
  },
);
