import type { Command } from 'commander';
import type { ClusterHealthReport } from '../../common/types.ts';
import { findCluster, loadConfig } from '../../config/load.ts';
import { clusterHealth } from '../../workflows/cluster-health.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { connectClient } from '../temporal.ts';

export function registerClusterCommands(program: Command) {
  const cmd = program.command('cluster').description('Control-plane clusters');
  cmd
    .command('check')
    .description(
      'Run the cluster-health runbook: SSH with pinned host keys, etcd quorum and leader, API server readiness',
    )
    .option('--cluster <name>', 'one cluster (default: every cluster in the config)')
    .option('--json', 'print the reports as JSON')
    .action(async (opts: { cluster?: string; json?: boolean }) => {
      const { config } = loadConfig(program.opts<{ config: string }>().config);
      const clusters = opts.cluster
        ? [findCluster(config, opts.cluster).cluster.name]
        : config.sites.map((s) => s.cluster.name);
      const client = await connectClient(config);
      try {
        const reports = await Promise.all(
          clusters.map((cluster) =>
            client.workflow.execute(clusterHealth, {
              taskQueue: config.temporal.taskQueue,
              workflowId: `cluster-health-${cluster}-${Date.now()}`,
              args: [{ cluster }],
              workflowExecutionTimeout: '5 minutes',
            }),
          ),
        );
        if (opts.json) printJson(reports);
        else for (const r of reports) process.stdout.write(`${render(r)}\n`);
        if (!reports.every((r) => r.ok))
          throw new FailedOutcome(
            `unhealthy: ${reports
              .filter((r) => !r.ok)
              .map((r) => r.cluster)
              .join(', ')}`,
          );
      } finally {
        await client.connection.close();
      }
    });
}

function render(r: ClusterHealthReport): string {
  const rows = [['NODE', 'SSH', 'ETCD', 'VERSION', 'REVISION', 'LEADER', 'TOOK']];
  for (const n of r.nodes) {
    rows.push([
      n.node,
      n.reachable ? 'ok' : n.hostKeyMismatch ? 'HOST KEY MISMATCH' : 'UNREACHABLE',
      n.etcd.healthy ? 'healthy' : 'UNHEALTHY',
      n.etcd.version ?? '-',
      n.etcd.revision?.toString() ?? '-',
      n.etcd.leader === n.etcd.memberId && n.etcd.leader ? 'yes' : '',
      `${n.tookMs} ms`,
    ]);
  }
  const head = `${r.cluster}: ${r.ok ? 'OK' : 'PROBLEMS'} — quorum ${r.quorum ? 'yes' : 'NO'} (${r.healthyMembers}/${r.members} healthy), kube-apiserver ${r.kube.ready ? 'ready' : 'NOT READY'} (${r.kube.namespaces.length} namespaces)`;
  return [head, table(rows), ...r.problems.map((p) => `  ! ${p}`)].join('\n');
}
