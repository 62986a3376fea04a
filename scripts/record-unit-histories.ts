// Records the replay histories of the runbooks' unhappy paths (compensated, cancelled,
// needs-attention) on Temporal's time-skipping test server with the unit project's mocked
// activities: the workflow code's decisions are what replay checks, and these paths are hard to
// reach on demand on the lab. The happy paths are recorded on the lab (scripts/record-histories.ts).
//   npx tsx scripts/record-unit-histories.ts [name ...]   (only the named ones; all without a name)
import { writeFileSync } from 'node:fs';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import {
  drillImpl,
  failoverImpl,
  type Impl,
  once,
  rebuildImpl,
  recoverImpl,
  rejoinImpl,
  restoreImpl,
} from '../test/unit/support/mocks.ts';
import { type Calls, mockActivities, timeSkipping, withWorker } from '../test/unit/support/time-skipping.ts';

const { env, bundle } = await timeSkipping();
let n = 0;
const only = process.argv.slice(2);

async function record(
  name: string,
  impl: Impl,
  failures: Parameters<typeof mockActivities>[2],
  start: { type: string; args: unknown[] },
  drive: (h: WorkflowHandle) => Promise<unknown>,
) {
  if (only.length && !only.includes(name)) return;
  const calls: Calls = [];
  const taskQueue = `record-${name}`;
  await withWorker(env, bundle, mockActivities(impl, calls, failures), taskQueue, async () => {
    const h = await env.client.workflow.start(start.type, {
      taskQueue,
      workflowId: `record-${name}-${++n}`,
      args: start.args,
    });
    for (let i = 0; i < 200 && (await h.query<{ phase: string }>('status')).phase !== 'waiting-approval'; i++)
      await new Promise((r) => setTimeout(r, 50));
    await drive(h);
    await h.result().catch(() => undefined);
    const json = historyToJSON(await h.fetchHistory());
    writeFileSync(new URL(`../test/histories/${name}.json`, import.meta.url), `${json}\n`);
    console.log(`test/histories/${name}.json: ${(JSON.parse(json) as { events: unknown[] }).events.length} events`);
  });
}

const restore = { type: 'etcdRestore', args: [{ cluster: 'c1', snapshot: 'latest', requestedBy: 'alice' }] };
const failover = { type: 'siteFailover', args: [{ from: 'site-a', to: 'site-b', requestedBy: 'alice' }] };
const drill = { type: 'drDrill', args: [{ plan: 'q', requestedBy: 'alice' }] };
const approve = (h: WorkflowHandle) => h.signal('approve', { by: 'bob' });

await record(
  'etcd-restore-compensated',
  restoreImpl,
  [{ activity: 'restoreMember', when: once(() => true) }],
  restore,
  approve,
);
await record(
  'etcd-restore-needs-attention',
  restoreImpl,
  [
    { activity: 'restoreMember', when: once(() => true) },
    { activity: 'putOriginalBack', retryable: true },
  ],
  restore,
  approve,
);
await record('etcd-restore-cancelled', restoreImpl, [], restore, (h) => h.cancel());
await record('site-failover-compensated', failoverImpl, [{ activity: 'verifyDns' }], failover, approve);
await record('site-failover-cancelled', failoverImpl, [], failover, (h) => h.cancel());
await record('dr-drill-cancelled', drillImpl, [], drill, (h) => h.cancel());
await record('dr-drill-failed', drillImpl, [{ activity: 'verifySite' }], drill, async (h) => {
  await approve(h);
  for (let i = 0; i < 200 && (await h.query<{ phase: string }>('status')).phase !== 'waiting-signoff'; i++)
    await new Promise((r) => setTimeout(r, 50));
  await h.signal('signoff', { by: 'alice', comment: 'failed on purpose' });
});
// etcd recover and rejoin: their happy paths too (the lab's is site A killed, test/stretched.test.ts).
const recover = { type: 'etcdRecover', args: [{ cluster: 'stretched', requestedBy: 'alice' }] };
const attest = (h: WorkflowHandle) => h.signal('approve', { by: 'bob', reason: 'attest: site A is powered off' });
await record('etcd-recover', recoverImpl, [], recover, attest);
await record(
  'etcd-recover-compensated',
  recoverImpl,
  [{ activity: 'startComponent', when: once((i) => i.node === 'b1') }],
  recover,
  attest,
);
await record(
  'etcd-rejoin',
  rejoinImpl,
  [],
  { type: 'etcdRejoin', args: [{ cluster: 'stretched', node: 'a1', requestedBy: 'alice' }] },
  approve,
);
// cluster rebuild: its happy path (the lab's is test/rebuild.test.ts) and a failed restore undone.
const rebuild = { type: 'clusterRebuild', args: [{ cluster: 'c1', snapshot: 'latest', requestedBy: 'alice' }] };
await record('cluster-rebuild', rebuildImpl, [], rebuild, approve);
await record(
  'cluster-rebuild-compensated',
  rebuildImpl,
  [{ activity: 'restoreMember', when: once((i) => i.node === 'cp3') }],
  rebuild,
  approve,
);
await env.teardown();
