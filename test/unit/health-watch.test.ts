// The health watch on the time-skipping test server with mocked activities: a DNS API outage is
// ridden out (back-off, its error in the status, one notification per outage, no failover while
// the API cannot say who serves), and a site that is really down is still failed over afterwards.
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WatchStatus } from '../../workflows/health-watch.ts';
import { failoverImpl, type Impl } from './support/mocks.ts';
import { type Calls, mockActivities, timeSkipping, withWorker } from './support/time-skipping.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
beforeAll(async () => {
  ({ env, bundle } = await timeSkipping());
}, 120_000);
afterAll(async () => {
  await env?.teardown();
});

const status = (h: WorkflowHandle) => h.query<WatchStatus>('status');

describe('health watch: a DNS API outage is ridden out', () => {
  it('survives DNS API errors with back-off, says so, notifies once, starts no failover; then recovers', async () => {
    const calls: Calls = [];
    const tq = `tq-${Date.now()}`;
    let dnsDown = false;
    let siteADown = false;
    const impl: Impl = {
      ...failoverImpl,
      loadWatchPolicy: () => ({
        sites: ['site-a', 'site-b'],
        intervalMs: 10_000,
        failuresToDown: 3,
        successesToUp: 5,
        autoFailover: true,
        autoApprove: false,
      }),
      servingSite: () => ({ site: 'site-a', addresses: ['127.0.10.100'] }),
      probeSite: (i: { site: string; as: string }) =>
        i.site === 'site-a' && siteADown ? { ok: false, detail: 'HTTP 503' } : { ok: true, detail: '200' },
      notify: () => 'webhook HTTP 200',
    };
    // The DNS API's failure as it reaches the workflow: after the activity's own retries.
    const failures = [{ activity: 'servingSite' as const, when: () => dnsDown }];
    const watchId = `watch-${Date.now()}`;
    const failoverId = 'failover-site-a-to-site-b';
    const r = await withWorker(env, bundle, mockActivities(impl, calls, failures), tq, async () => {
      const h = await env.client.workflow.start('healthWatch', {
        taskQueue: tq,
        workflowId: watchId,
        args: [{ record: 'app.example.com', roundsPerRun: 1000 }],
      });
      const watch = () => status(h);
      const events = () => calls.filter((x) => x.name === 'notify').map((x) => (x.input as { event: string }).event);
      const exists = (wid: string) =>
        env.client.workflow
          .getHandle(wid)
          .describe()
          .then(
            () => true,
            (e: unknown) => (e instanceof WorkflowNotFoundError ? false : Promise.reject(e)),
          );
      const rounds = async (n: number) => {
        const from = (await watch()).watch.rounds;
        for (let i = 0; i < 200 && (await watch()).watch.rounds < from + n; i++) await env.sleep(10_000);
        return watch();
      };
      await rounds(2);
      // The DNS API goes away, and the serving site's app goes down meanwhile (and comes back):
      // still no failover while the API cannot say who serves.
      dnsDown = true;
      siteADown = true;
      const during = await rounds(4);
      siteADown = false;
      const siteBack = await rounds(5);
      const notifiedDuring = events();
      dnsDown = false;
      const after = await rounds(2);
      const notified = events();
      const startedBefore = await exists(failoverId);
      // The control: with the API answering, a site that is really down is failed over.
      siteADown = true;
      const down = await rounds(4);
      const history = await h.fetchHistory();
      await h.terminate('test over');
      const failover = env.client.workflow.getHandle(failoverId);
      const failoverStarted = (await failover.describe()).status.name;
      await failover.terminate('test over');
      return { during, siteBack, notifiedDuring, after, notified, startedBefore, down, history, failoverStarted };
    });

    // During the outage: still running, the API's error in the status, the outage declared once.
    expect(r.during.phase).toBe('running');
    expect(r.during.error).toMatch(
      /^DNS API: servingSite failed \(injected\) \(since .+\); no failover while it fails$/,
    );
    expect(r.during.watch.dnsApi).toMatchObject({ down: true, lastError: 'servingSite failed (injected)' });
    expect(r.during.steps[0]!.items['DNS API']).toMatch(/^DOWN since .+, \d+ error\(s\) in a row: servingSite failed/);
    // The serving site was probed all along (in its last known role) and went down: no failover.
    expect(r.during.watch.sites['site-a']!.up).toBe(false);
    expect(r.during.watch.failovers).toEqual([]);
    expect(r.siteBack.watch.sites['site-a']!.up).toBe(true);
    expect(r.siteBack.watch.dnsApi!.failures).toBeGreaterThanOrEqual(9);
    expect(r.siteBack.watch.failovers).toEqual([]);
    expect(r.siteBack.watch.events.filter((e) => e.site === 'DNS API').map((e) => e.state)).toEqual(['down']);
    expect(r.notifiedDuring).toEqual(['dns-api-down']);
    // Back-off: the wait after each failed round doubles from the interval (10 s) up to 5 min.
    const timers = r.history.events
      ?.filter((e) => e.timerStartedEventAttributes)
      .map((e) => Number(e.timerStartedEventAttributes!.startToFireTimeout!.seconds));
    expect(timers?.slice(0, 11)).toEqual([10, 10, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
    // After: the API answers, the error is gone, people were told once more, no failover started.
    expect(r.after.phase).toBe('running');
    expect(r.after.error).toBeUndefined();
    expect(r.after.watch.dnsApi).toEqual({ failures: 0, down: false });
    expect(r.after.steps[0]!.items['DNS API']).toMatch(/^ok \(failed \d+ time\(s\) since .+\)$/);
    expect(r.notified).toEqual(['dns-api-down', 'dns-api-up']);
    expect(r.after.watch.failovers).toEqual([]);
    expect(r.startedBefore).toBe(false);
    // The control: the watch still fails a really dead site over once the API answers.
    expect(r.down.watch.failovers.map((f) => f.workflowId)).toEqual([failoverId]);
    expect(r.failoverStarted).toBe('RUNNING');
  }, 120_000);
});
