// Records the workflow histories that test/replay.test.ts replays against the current code, so a
// change that would break runs in flight fails CI. Run against the lab after an intended change
// to a workflow's command sequence:  npx tsx scripts/record-histories.ts [cluster] [etcd|latency|tune|snapshot-proven|namespace|failover|drill|all]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { WorkflowHandle } from '@temporalio/client';
import { createGateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import { clusterHealth } from '../workflows/cluster-health.ts';
import { etcdLatency } from '../workflows/etcd-latency.ts';
import { approveSignal, etcdRestore, statusQuery } from '../workflows/etcd-restore.ts';
import { decide, signedDecision, signedInput } from '../test/support/lab.ts';
import { etcdSnapshot } from '../workflows/etcd-snapshot.ts';
import { drDrill, statusQuery as drillStatus, signoffSignal } from '../workflows/drill.ts';
import { healthWatch } from '../workflows/health-watch.ts';
import { namespaceRestore, statusQuery as namespaceStatus } from '../workflows/namespace-restore.ts';
import { statusQuery as failoverStatus, siteFailover } from '../workflows/site-failover.ts';
import { labCli, resetFailoverLab } from '../test/support/failover.ts';
import { bin } from '../lab/topology.ts';
import { labConfig, temporalClient, until } from '../test/support/lab.ts';

const cluster = process.argv[2] ?? 'site-a';
const which = process.argv[3] ?? 'all';
const taskQueue = `record-${Date.now()}`;
const config = labConfig(taskQueue);
config.failover!.healthWatch.interval = 500;
// The recorded drill covers the etcd restore drill (a child workflow) as well.
config.drills[0]!.etcdRestore = true;
config.drills[0]!.criteria = [
  ...new Set([
    ...(config.drills[0]!.criteria ??
      ([
        'backup-present',
        'restore-complete',
        'pods-match-source',
        'app-serves',
        'rpo-met',
        'rto-met',
        'cleanup',
      ] as const)),
  ]),
  'etcd-restore',
];
const client = await temporalClient(config);
const gw = createGateways(config);
const w = await createWorker(config);

/** The Temporal CLI's JSON export: the same form the Web UI downloads and runReplayHistory takes. */
function save(name: string, handle: WorkflowHandle, runId?: string) {
  const json = execFileSync(
    bin.temporal,
    [
      'workflow',
      'show',
      '--workflow-id',
      handle.workflowId,
      ...(runId ? ['--run-id', runId] : []),
      '--output',
      'json',
      '--address',
      config.temporal.address!,
    ],
    { encoding: 'utf8' },
  );
  writeFileSync(new URL(`../test/histories/${name}.json`, import.meta.url), json);
  console.log(`test/histories/${name}.json: ${(JSON.parse(json) as { events: unknown[] }).events.length} events`);
}

await w.worker.runUntil(async () => {
  const id = (n: string) => `record-${n}-${Date.now()}`;
  if (which === 'latency' || which === 'all') {
    const latency = await client.workflow.start(etcdLatency, {
      taskQueue,
      workflowId: id('latency'),
      args: [{ cluster }],
    });
    await latency.result();
    save('etcd-latency', latency);
  }
  if (which === 'tune') {
    // A gated roll over the stretched cluster is what test/stretched.test.ts runs (the cluster up,
    // an approver, a member's kubelet stopped for the undo): its newest completed and newest
    // compensated runs are saved, as the lab's workers ran them.
    for (const [name, status] of [
      ['etcd-tune', 'Completed'],
      ['etcd-tune-compensated', 'Failed'],
    ] as const) {
      const runs = JSON.parse(
        execFileSync(
          bin.temporal,
          [
            'workflow',
            'list',
            '--query',
            `WorkflowId='etcd-tune-stretched' AND ExecutionStatus='${status}'`,
            '--limit',
            '1',
            '--output',
            'json',
            '--address',
            config.temporal.address!,
          ],
          { encoding: 'utf8' },
        ),
      ) as { execution: { runId: string } }[];
      if (!runs[0]) throw new Error(`no ${status} run of etcd-tune-stretched: run test/stretched.test.ts first`);
      save(name, client.workflow.getHandle('etcd-tune-stretched'), runs[0].execution.runId);
    }
  }
  if (which === 'etcd' || which === 'all') {
    const health = await client.workflow.start(clusterHealth, {
      taskQueue,
      workflowId: id('health'),
      args: [{ cluster }],
    });
    await health.result();
    save('cluster-health', health);

    const snap = await client.workflow.start(etcdSnapshot, {
      taskQueue,
      workflowId: id('snapshot'),
      args: [{ cluster, keep: 50 }],
    });
    const { key } = await snap.result();
    save('etcd-snapshot', snap);

    // A full restore: a refused Web-UI approval, then an approval through the CLI's update.
    const restoreId = id('restore');
    const restore = await client.workflow.start(etcdRestore, {
      taskQueue,
      workflowId: restoreId,
      args: [await signedInput({ config }, 'etcd-restore', restoreId, { cluster, snapshot: key, force: true })],
    });
    await until(
      'waiting-approval',
      () => restore.query(statusQuery),
      (s) => s.phase === 'waiting-approval',
      120_000,
    );
    await restore.signal(approveSignal, { by: 'bob', reason: 'unsigned: refused' });
    await restore.signal(approveSignal, await signedDecision({ config, client }, restoreId, 'alice', 'approve'));
    await decide({ config, client }, restore, 'bob', true, 'recording');
    await restore.result();
    save('etcd-restore', restore);
  }

  if (which === 'snapshot-proven' || which === 'all') {
    // A snapshot run with its `prove` step (the etcd-snapshot history above may predate it).
    const snap = await client.workflow.start(etcdSnapshot, {
      taskQueue,
      workflowId: id('snapshot-proven'),
      args: [{ cluster, keep: 50 }],
    });
    await snap.result();
    save('etcd-snapshot-proven', snap);
  }

  if (which === 'namespace' || which === 'all') {
    // demo-app deleted at site A, then restored in place from the backup taken before.
    await resetFailoverLab(gw, config);
    const before = new Date().toISOString();
    await gw.kube('site-a').deleteNamespace('demo-app', 180_000);
    const nrId = id('namespace-restore');
    const nr = await client.workflow.start(namespaceRestore, {
      taskQueue,
      workflowId: nrId,
      args: [
        await signedInput({ config }, 'namespace-restore', nrId, {
          site: 'site-a',
          namespaces: ['demo-app'],
          before,
          reason: 'recording',
        }),
      ],
    });
    await until(
      'waiting-approval',
      () => nr.query(namespaceStatus),
      (s) => s.phase === 'waiting-approval',
      120_000,
    );
    await decide({ config, client }, nr, 'bob', true, 'recording');
    await nr.result();
    save('namespace-restore', nr);
  }

  if (which === 'failover' || which === 'all') {
    // A full failover: site A's app down, a refused self-approval, an approval through the update.
    await resetFailoverLab(gw, config);
    await labCli('site', 'down', 'site-a');
    const foId = id('failover');
    const fo = await client.workflow.start(siteFailover, {
      taskQueue,
      workflowId: foId,
      args: [
        await signedInput({ config }, 'site-failover', foId, { from: 'site-a', to: 'site-b', reason: 'recording' }),
      ],
    });
    await until(
      'waiting-approval',
      () => fo.query(failoverStatus),
      (s) => s.phase === 'waiting-approval',
      120_000,
    );
    await fo.signal(approveSignal, await signedDecision({ config, client }, foId, 'alice', 'approve'));
    await decide({ config, client }, fo, 'bob', true, 'recording');
    await fo.result();
    save('site-failover', fo);
    await resetFailoverLab(gw, config);

    // The health watch's first run: a few probe rounds, then continue-as-new.
    const watch = await client.workflow.start(healthWatch, {
      taskQueue,
      workflowId: id('watch'),
      args: [{ record: 'app.example.com', roundsPerRun: 3 }],
    });
    await until(
      'continued as new',
      () => watch.describe(),
      (d) => d.runId !== watch.firstExecutionRunId,
      60_000,
    );
    save('health-watch', watch, watch.firstExecutionRunId);
    await watch.terminate('recorded');
  }

  if (which === 'drill' || which === 'all') {
    // A drill with the etcd restore drill on site B: go by bob, then a sign-off from the Web UI's signal.
    await resetFailoverLab(gw, config);
    await client.workflow.execute(etcdSnapshot, {
      taskQueue,
      workflowId: id('snapshot-b'),
      args: [{ cluster: 'site-b', keep: 50 }],
    });
    const drillId = id('drill');
    const drill = await client.workflow.start(drDrill, {
      taskQueue,
      workflowId: drillId,
      args: [await signedInput({ config }, 'drill', drillId, { plan: config.drills[0]!.name, reason: 'recording' })],
    });
    await until(
      'waiting-approval',
      () => drill.query(drillStatus),
      (s) => s.phase === 'waiting-approval',
      120_000,
    );
    await decide({ config, client }, drill, 'bob', true, 'recording');
    const st = await until(
      'waiting-signoff',
      () => drill.query(drillStatus),
      (s) => s.phase === 'waiting-signoff' || s.phase === 'aborted',
      600_000,
    );
    console.log(
      `drill: ${st.report?.outcome}; ${st.report?.verdicts.map((v) => `${v.criterion} ${v.ok}`).join(', ')}; etcd ${JSON.stringify(st.report?.etcd)}`,
    );
    await drill.signal(
      signoffSignal,
      await signedDecision({ config, client }, drillId, 'carol', 'signoff', 'recording'),
    );
    await drill.result();
    save('dr-drill', drill);
  }
});
gw.close();
w.gateways.close();
await w.connection.close();
await client.connection.close();
