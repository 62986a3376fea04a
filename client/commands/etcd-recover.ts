// `drctl etcd recover` (a lost quorum rebuilt from the surviving members' own data) and `drctl etcd
// rejoin` (a returning member added back wiped): start the gated runbooks of
// workflows/etcd-recover.ts.
import type { Command } from 'commander';
import type { RecoverResult, RejoinResult } from '../../common/etcd-recover.ts';
import { UsageError } from '../../common/errors.ts';
import { findCluster } from '../../config/load.ts';
import { etcdRecover, etcdRejoin } from '../../workflows/etcd-recover.ts';
import { optional, positiveDuration } from '../flags.ts';
import { afterDryRun, afterStart, startRun } from '../runbook-kit.ts';
import { requestInput } from '../signing.ts';
import { withTemporal } from '../temporal.ts';

export const recoverWorkflowId = (cluster: string) => `etcd-recover-${cluster}`;
export const rejoinWorkflowId = (cluster: string, node: string) => `etcd-rejoin-${cluster}-${node}`;

interface CommonOpts {
  cluster: string;
  as?: string;
  key?: string;
  dryRun?: boolean;
  approvalTimeout?: string;
  memberTimeout?: string;
  wait?: boolean;
  json?: boolean;
}

function recoverText(workflowId: string, r: RecoverResult): string {
  const p = r.plan;
  const lines = [
    r.outcome === 'dry-run'
      ? `dry run of ${workflowId}: nothing was changed`
      : `recovered: ${r.members?.length ?? 0} member(s), revision ${r.revision ?? '?'}`,
    `keep ${p.keep}: revision ${p.revisionKept}, raft index ${p.raftIndexKept}${p.lastWriteKeptAt ? `, last write received ${p.lastWriteKeptAt}` : ''}`,
    `add back (wiped, synced from ${p.keep}): ${p.addBack.join(', ') || 'none'}`,
    `drop: ${p.dropped.map((d) => `${d.node} (${d.fence})`).join(', ')}`,
  ];
  if (r.attestation) lines.push(`fenced by attestation: ${r.attestation}`);
  if (r.outcome !== 'dry-run')
    lines.push(
      `bring a dropped member back with \`drctl etcd rejoin --cluster <cluster> --node <node>\`, never with its old data`,
    );
  return `${lines.join('\n')}\n`;
}

function rejoinText(workflowId: string, r: RejoinResult): string {
  if (r.outcome === 'dry-run')
    return `dry run of ${workflowId}: nothing was changed; members now ${r.members.join(', ')}\n`;
  return `${r.node} rejoined, wiped: members ${r.members.join(', ')}${r.oldDataAt ? `\nits old data is kept at ${r.oldDataAt} on the node (drctl never deletes it)` : ''}\n`;
}

function common(cmd: Command): Command {
  return cmd
    .option('--key <file>', 'your SSH key: signs the request (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
    .option('--as <name>', 'who is asking, when the request is not signed (default: the login name)')
    .option('--dry-run', 'preflight only: print the plan, change nothing')
    .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
    .option('--member-timeout <duration>', 'how long one member may take to come back healthy (default 3m)')
    .option('--wait', 'follow the run to its end')
    .option(
      '--json',
      'print JSON: { workflowId, runId, runbook, url } (with --wait or --dry-run also status and result)',
    );
}

export function registerEtcdRecoverCommands(etcd: Command, program: Command) {
  common(
    etcd
      .command('recover')
      .description(
        "Quorum lost: a new cluster from the surviving members' own data (the freshest one forced to a cluster of one, the others added back), no snapshot needed; lost members must be fenced (waits for go/no-go)",
      )
      .requiredOption('--cluster <name>', 'cluster whose quorum is lost'),
  ).action(async (opts: CommonOpts) => {
    const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
    const memberTimeoutMs = optional(opts.memberTimeout, (v) => positiveDuration('--member-timeout', v));
    let cluster = '';
    await withTemporal(
      program.opts<{ config: string }>().config,
      async (s) => {
        const workflowId = opts.dryRun ? `etcd-recover-dry-run-${cluster}-${Date.now()}` : recoverWorkflowId(cluster);
        const started = await startRun(
          s,
          etcdRecover,
          {
            taskQueue: s.config.temporal.taskQueue,
            workflowId,
            workflowIdConflictPolicy: 'FAIL',
            args: [
              await requestInput(s.config, {
                runbook: 'etcd-recover',
                workflowId,
                key: opts.key,
                as: opts.as,
                input: { cluster, dryRun: !!opts.dryRun, approvalTimeoutMs, memberTimeoutMs },
              }),
            ],
          },
          (id) =>
            `error: a recover of cluster '${cluster}' is already running (workflow ${id}); see \`drctl status ${id}\``,
        );
        const human = (r: RecoverResult) => recoverText(workflowId, r);
        if (!opts.dryRun) return afterStart<RecoverResult>(s, started, { ...opts, gate: true, human });
        await afterDryRun<RecoverResult>(s, started, { json: opts.json, human });
      },
      (config) => {
        cluster = findCluster(config, opts.cluster).cluster.name;
      },
    );
  });

  common(
    etcd
      .command('rejoin')
      .description(
        'A member that was dropped (by a recover) comes back: its etcd stopped, its old data moved aside (kept, never started again), added with `member add` and started empty, syncing from the leader (waits for go/no-go)',
      )
      .requiredOption('--cluster <name>', 'the cluster')
      .requiredOption('--node <name>', 'the returning node, as the config names it'),
  ).action(async (opts: CommonOpts & { node: string }) => {
    const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
    const memberTimeoutMs = optional(opts.memberTimeout, (v) => positiveDuration('--member-timeout', v));
    let cluster = '';
    await withTemporal(
      program.opts<{ config: string }>().config,
      async (s) => {
        const workflowId = opts.dryRun
          ? `etcd-rejoin-dry-run-${cluster}-${opts.node}-${Date.now()}`
          : rejoinWorkflowId(cluster, opts.node);
        const started = await startRun(
          s,
          etcdRejoin,
          {
            taskQueue: s.config.temporal.taskQueue,
            workflowId,
            workflowIdConflictPolicy: 'FAIL',
            args: [
              await requestInput(s.config, {
                runbook: 'etcd-rejoin',
                workflowId,
                key: opts.key,
                as: opts.as,
                input: { cluster, node: opts.node, dryRun: !!opts.dryRun, approvalTimeoutMs, memberTimeoutMs },
              }),
            ],
          },
          (id) => `error: a rejoin of ${opts.node} is already running (workflow ${id}); see \`drctl status ${id}\``,
        );
        const human = (r: RejoinResult) => rejoinText(workflowId, r);
        if (!opts.dryRun) return afterStart<RejoinResult>(s, started, { ...opts, gate: true, human });
        await afterDryRun<RejoinResult>(s, started, { json: opts.json, human });
      },
      (config) => {
        const c = findCluster(config, opts.cluster).cluster;
        cluster = c.name;
        if (!c.nodes.some((n) => n.name === opts.node))
          throw new UsageError(
            `--node: '${opts.node}' is not a node of cluster '${cluster}' (its nodes: ${c.nodes.map((n) => n.name).join(', ')})`,
          );
      },
    );
  });
}
