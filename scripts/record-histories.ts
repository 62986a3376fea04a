// Records the workflow histories that test/replay.test.ts replays against the current code, so a
// change that would break runs in flight fails CI. Run against the lab after an intended change
// to a workflow's command sequence:  npx tsx scripts/record-histories.ts
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { WorkflowHandle } from '@temporalio/client';
import { createGateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import { clusterHealth } from '../workflows/cluster-health.ts';
import { approveSignal, decideUpdate, etcdRestore, statusQuery } from '../workflows/etcd-restore.ts';
import { etcdSnapshot } from '../workflows/etcd-snapshot.ts';
import { bin } from '../lab/topology.ts';
import { labConfig, temporalClient, until } from '../test/support/lab.ts';

const cluster = process.argv[2] ?? 'site-a';
const taskQueue = `record-${Date.now()}`;
const config = labConfig(taskQueue);
const client = await temporalClient(config);
const gw = createGateways(config);
const w = await createWorker(config);

/** The Temporal CLI's JSON export: the same form the Web UI downloads and runReplayHistory takes. */
function save(name: string, handle: WorkflowHandle) {
  const json = execFileSync(bin.temporal, ['workflow', 'show', '--workflow-id', handle.workflowId, '--output', 'json', '--address', config.temporal.address!], { encoding: 'utf8' });
  writeFileSync(new URL(`../test/histories/${name}.json`, import.meta.url), json);
  console.log(`test/histories/${name}.json: ${(JSON.parse(json) as { events: unknown[] }).events.length} events`);
}

await w.worker.runUntil(async () => {
  const id = (n: string) => `record-${n}-${Date.now()}`;
  const health = await client.workflow.start(clusterHealth, { taskQueue, workflowId: id('health'), args: [{ cluster }] });
  await health.result();
  save('cluster-health', health);

  const snap = await client.workflow.start(etcdSnapshot, { taskQueue, workflowId: id('snapshot'), args: [{ cluster, keep: 50 }] });
  const { key } = await snap.result();
  save('etcd-snapshot', snap);

  // A full restore: a refused Web-UI approval, then an approval through the CLI's update.
  const restore = await client.workflow.start(etcdRestore, { taskQueue, workflowId: id('restore'), args: [{ cluster, snapshot: key, requestedBy: 'alice', force: true }] });
  await until('waiting-approval', () => restore.query(statusQuery), (s) => s.phase === 'waiting-approval', 120_000);
  await restore.signal(approveSignal, { by: 'alice', reason: 'self-approval is refused' });
  await restore.executeUpdate(decideUpdate, { args: [{ approve: true, by: 'bob', reason: 'recording' }] });
  await restore.result();
  save('etcd-restore', restore);
});
gw.close();
w.gateways.close();
await w.connection.close();
await client.connection.close();
