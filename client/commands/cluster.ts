import type { Command } from 'commander';
import type { ClusterHealthReport } from '../../common/types.ts';
import { findCluster } from '../../config/load.ts';
import { clusterHealth } from '../../workflows/cluster-health.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { startRun } from '../runbook-kit.ts';
import { withTemporal } from '../temporal.ts';

export function registerClusterCommands(program: Command) {
  const cmd = program.command('cluster').description('Control-plane clusters');
  cmd
    .command('check')
    .description(
      'Run the cluster-health runbook: SSH with pinned host keys, etcd quorum and leader, API server readiness',
    )
    .option('--cluster <name>', 'one cluster (default: every cluster in the config)')
    .option('--json', 'print JSON: per cluster { workflowId, runId, runbook, url, result } (result: the report)')
    .action(async (opts: { cluster?: string; json?: boolean }) => {
      let clusters: string[] = [];
      await withTemporal(
        program.opts<{ config: string }>().config,
        async (s) => {
          const runs = await Promise.all(
            clusters.map(async (cluster) => {
              const started = await startRun(s, clusterHealth, {
                taskQueue: s.config.temporal.taskQueue,
                workflowId: `cluster-health-${cluster}-${Date.now()}`,
                args: [{ cluster }],
                workflowExecutionTimeout: '5 minutes',
              });
              const result = await s.client.workflow.getHandle<typeof clusterHealth>(started.workflowId).result();
              return { ...started, result };
            }),
          );
          if (opts.json) printJson(runs);
          else for (const r of runs) process.stdout.write(`${render(r.result)}\n`);
          const unhealthy = runs.filter((r) => !r.result.ok).map((r) => r.result.cluster);
          if (unhealthy.length) throw new FailedOutcome(`unhealthy: ${unhealthy.join(', ')}`);
        },
        (config) => {
          clusters = opts.cluster
            ? [findCluster(config, opts.cluster).cluster.name]
            : config.sites.map((site) => site.cluster.name);
        },
      );
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
