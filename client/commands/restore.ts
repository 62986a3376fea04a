// `drctl etcd restore`: start the quorum-restore runbook (or its dry run, which prints the per-node plan).
import type { Command } from 'commander';
import { registerEtcdLatencyCommand } from './etcd-latency.ts';
import { registerEtcdRecoverCommands } from './etcd-recover.ts';
import { registerEtcdTuneCommand } from './etcd-tune.ts';
import type { RestoreResult } from '../../common/restore.ts';
import { findCluster } from '../../config/load.ts';
import { etcdRestore } from '../../workflows/etcd-restore.ts';
import { optional, positiveDuration, positiveInt } from '../flags.ts';
import { afterDryRun, afterStart, startRun } from '../runbook-kit.ts';
import { requestInput } from '../signing.ts';
import { withTemporal } from '../temporal.ts';

export const restoreWorkflowId = (cluster: string) => `etcd-restore-${cluster}`;

interface RestoreOpts {
  cluster: string;
  snapshot: string;
  as?: string;
  key?: string;
  dryRun?: boolean;
  force?: boolean;
  approvalTimeout?: string;
  bumpRevision?: string;
  wait?: boolean;
  json?: boolean;
}

/** The dry run's plan as a person reads it: the exact commands per node, nothing changed. */
function dryRunText(workflowId: string, r: RestoreResult): string {
  const lines = [`dry run of ${workflowId}: nothing was changed`];
  if (r.refusal) lines.push(`NOTE: without --force the real run would be refused: ${r.refusal}`);
  lines.push(
    `snapshot ${r.plan.snapshot.key} (revision ${r.plan.snapshot.revision}, taken ${r.plan.snapshot.takenAt})`,
    `--initial-cluster=${r.plan.initialCluster}`,
    `--initial-cluster-token=${r.plan.token}`,
  );
  for (const n of r.plan.nodes)
    lines.push(
      '',
      `# ${n.node}`,
      `mv ${n.dataDir} ${n.asideDir}`,
      n.restoreCommand,
      `mv ${n.workDir}/restored ${n.dataDir}`,
    );
  return `${lines.join('\n')}\n`;
}

export function registerRestoreCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;

  const etcd = program.command('etcd').description('etcd runbooks');
  registerEtcdLatencyCommand(etcd, program);
  registerEtcdTuneCommand(etcd, program);
  registerEtcdRecoverCommands(etcd, program);
  etcd
    .command('restore')
    .description(
      "Quorum restore of a cluster's etcd from an off-site snapshot on every control-plane node (waits for go/no-go)",
    )
    .requiredOption('--cluster <name>', 'cluster to restore')
    .option('--snapshot <key>', "'latest' or an object key from `drctl snapshot list`", 'latest')
    .option('--key <file>', 'your SSH key: signs the request (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
    .option('--as <name>', 'who is asking, when the request is not signed (default: the login name)')
    .option('--dry-run', 'preflight only: print the per-node plan and the exact commands, change nothing')
    .option('--force', 'restore even though the cluster has quorum (discards every write since the snapshot)')
    .option(
      '--approval-timeout <duration>',
      'abort, changing nothing, if no decision arrives in time (default: config approvals.timeout)',
    )
    .option('--bump-revision <n>', 'override the computed --bump-revision (an integer >= 1)')
    .option('--wait', 'follow the run to its end')
    .option(
      '--json',
      'print JSON: { workflowId, runId, runbook, url } (with --wait or --dry-run also status and result)',
    )
    .action(async (opts: RestoreOpts) => {
      const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
      const bump = optional(opts.bumpRevision, (v) => positiveInt('--bump-revision', v));
      let cluster = '';
      await withTemporal(
        cfgPath(),
        async (s) => {
          const workflowId = opts.dryRun ? `etcd-restore-dry-run-${cluster}-${Date.now()}` : restoreWorkflowId(cluster);
          const started = await startRun(
            s,
            etcdRestore,
            {
              taskQueue: s.config.temporal.taskQueue,
              workflowId,
              workflowIdConflictPolicy: 'FAIL',
              args: [
                await requestInput(s.config, {
                  runbook: 'etcd-restore',
                  workflowId,
                  key: opts.key,
                  as: opts.as,
                  input: {
                    cluster,
                    snapshot: opts.snapshot,
                    force: !!opts.force,
                    dryRun: !!opts.dryRun,
                    approvalTimeoutMs,
                    bumpRevision: bump,
                  },
                }),
              ],
            },
            (id) =>
              `error: a restore of cluster '${cluster}' is already running (workflow ${id}); see \`drctl status ${id}\``,
          );
          if (!opts.dryRun) return afterStart<RestoreResult>(s, started, { ...opts, gate: true });
          await afterDryRun<RestoreResult>(s, started, { json: opts.json, human: (r) => dryRunText(workflowId, r) });
        },
        (config) => {
          cluster = findCluster(config, opts.cluster).cluster.name;
        },
      );
    });
}
