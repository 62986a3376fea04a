// The Temporal Web UI as an operator uses it: a real Chromium finds a failover waiting at its
// go/no-go gate and sends `reject` through More Actions → Send a Signal. Up to the gate a failover
// only reads the lab, and a rejection ends it there, so this runs safely beside the other lab tests.
import { setTimeout as sleep } from 'node:timers/promises';
import { type WorkflowHandle, WorkflowFailedError } from '@temporalio/client';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FailureType } from '../common/errors.ts';
import { createFailoverActivities } from '../activities/failover.ts';
import type { FailoverStatus, FailoverStep } from '../common/failover.ts';
import { statusQuery, siteFailover } from '../workflows/site-failover.ts';
import { launchBrowser, screenshot, signalFromWebUi } from './support/browser.ts';
import { NS } from './support/failover.ts';
import { startTestEnv, type TestEnv, until } from './support/lab.ts';

let env: TestEnv;
let browser: Browser;

beforeAll(async () => {
  [env, browser] = await Promise.all([startTestEnv('web-ui'), launchBrowser()]);
}, 300_000);
afterAll(async () => {
  await browser?.close();
  await env?.close();
});

/** Every step that would change something comes after the gate. */
const AFTER_GATE: FailoverStep[] = ['fence-primary', 'restore', 'verify', 'switch-dns', 'report'];

/**
 * A failover site-a → site-b waiting for its go/no-go. Its preflight reads the shared lab, which a
 * failover test running beside this one may have half down for a while (site B stopped, backups
 * being replaced): a refused preflight is retried with a fresh run for up to three minutes.
 */
async function failoverAtGate(): Promise<WorkflowHandle<typeof siteFailover>> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const handle = await env.client.workflow.start(siteFailover, {
      taskQueue: env.taskQueue,
      workflowId: `web-ui-probe-${Math.random().toString(36).slice(2, 10)}`,
      args: [{ from: 'site-a', to: 'site-b', requestedBy: 'alice', approvalTimeoutMs: 120_000 }],
    });
    const st = await until(
      'the failover past its preflight',
      () => handle.query(statusQuery),
      (s) => s.phase !== 'running',
      120_000,
      250,
    );
    if (st.phase === 'waiting-approval') return handle;
    if (Date.now() > deadline)
      throw new Error(`no failover reached its gate within 3 minutes; the last one ended ${st.phase}: ${st.error}`);
    process.stderr.write(`[web-ui] ${handle.workflowId} ended ${st.phase} before the gate (${st.error}); retrying\n`);
    await sleep(10_000);
  }
}

it("rejects a failover waiting at its gate through the Web UI's Signal action", { timeout: 360_000 }, async () => {
  const webUi = env.config.temporal.webUi;
  if (!webUi) throw new Error("temporal.webUi is not set in the lab's config");
  // The preflight wants a backup within the RPO: this test is about the gate, not the schedule.
  await createFailoverActivities(env.gw).takeBackup({
    site: 'site-a',
    seenBy: 'site-b',
    name: `web-ui-${Date.now()}`,
    namespaces: [NS],
  });
  const handle = await failoverAtGate();
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  try {
    const t0 = Date.now();
    await signalFromWebUi(page, {
      webUi,
      namespace: env.client.options.namespace,
      workflowId: handle.workflowId,
      signal: 'reject',
      input: { by: 'bob', reason: 'web ui test' },
    });
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
    expect(st.decisions).toEqual([
      expect.objectContaining({ by: 'bob', reason: 'web ui test', approve: false, accepted: true }),
    ]);
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
    expect([...activities].sort()).toEqual(['failoverPreflight', 'loadApprovalPolicy']);

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
});
