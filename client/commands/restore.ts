import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../../common/duration.ts';
import { UsageError } from '../../common/errors.ts';
import type { DrillStatus } from '../../common/drill.ts';
import type { FailoverStatus } from '../../common/failover.ts';
import type { RestoreResult, RestoreStatus } from '../../common/restore.ts';
import { findCluster, loadConfig } from '../../config/load.ts';
import { decideUpdate, etcdRestore, statusQuery } from '../../workflows/etcd-restore.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { connectClient } from '../temporal.ts';
import { followDrill, renderDrill } from './drill.ts';
import { followFailover, renderFailover } from './failover.ts';

const whoami = () => process.env.DRCTL_USER ?? process.env.USER ?? userInfo().username;
const TERMINAL = new Set(['completed', 'dry-run', 'aborted', 'compensated', 'failed']);

export const restoreWorkflowId = (cluster: string) => `etcd-restore-${cluster}`;

export function registerRestoreCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;

  const etcd = program.command('etcd').description('etcd runbooks');
  etcd
    .command('restore')
    .description(
      "Quorum restore of a cluster's etcd from an off-site snapshot on every control-plane node (waits for go/no-go)",
    )
    .requiredOption('--cluster <name>', 'cluster to restore')
    .option('--snapshot <key>', "'latest' or an object key from `drctl snapshot list`", 'latest')
    .option('--as <name>', 'who is asking (two-person rule: you cannot approve your own restore)', whoami())
    .option('--dry-run', 'preflight only: print the per-node plan and the exact commands, change nothing')
    .option('--force', 'restore even though the cluster has quorum (discards every write since the snapshot)')
    .option(
      '--approval-timeout <duration>',
      'abort, changing nothing, if no decision arrives in time (default: config approvals.timeout)',
    )
    .option('--bump-revision <n>', 'override the computed --bump-revision')
    .option('--wait', 'follow the run to its end')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        cluster: string;
        snapshot: string;
        as: string;
        dryRun?: boolean;
        force?: boolean;
        approvalTimeout?: string;
        bumpRevision?: string;
        wait?: boolean;
        json?: boolean;
      }) => {
        const { config } = loadConfig(cfgPath());
        const cluster = findCluster(config, opts.cluster).cluster.name;
        const approvalTimeoutMs = opts.approvalTimeout === undefined ? undefined : parseDuration(opts.approvalTimeout);
        if (approvalTimeoutMs === undefined && opts.approvalTimeout !== undefined)
          throw new UsageError(`--approval-timeout: expected a duration like 30m, 1h (got '${opts.approvalTimeout}')`);
        const bump = opts.bumpRevision === undefined ? undefined : Number(opts.bumpRevision);
        if (bump !== undefined && (!Number.isInteger(bump) || bump < 0))
          throw new UsageError(`--bump-revision: expected a non-negative integer (got '${opts.bumpRevision}')`);
        if (!opts.as) throw new UsageError('--as: who is asking? (set --as or $DRCTL_USER)');
        const client = await connectClient(config);
        try {
          const workflowId = opts.dryRun ? `etcd-restore-dry-run-${cluster}-${Date.now()}` : restoreWorkflowId(cluster);
          let handle;
          try {
            handle = await client.workflow.start(etcdRestore, {
              taskQueue: config.temporal.taskQueue,
              workflowId,
              workflowIdConflictPolicy: 'FAIL',
              args: [
                {
                  cluster,
                  snapshot: opts.snapshot,
                  requestedBy: opts.as,
                  force: !!opts.force,
                  dryRun: !!opts.dryRun,
                  approvalTimeoutMs,
                  bumpRevision: bump,
                },
              ],
            });
          } catch (err) {
            if (err instanceof WorkflowExecutionAlreadyStartedError) {
              throw new FailedOutcome(
                `error: a restore of cluster '${cluster}' is already running (workflow ${workflowId}); see \`drctl status ${workflowId}\``,
              );
            }
            throw err;
          }
          if (opts.dryRun) {
            const r = await resultOf(client, workflowId);
            if (opts.json) return printJson(r);
            process.stdout.write(`dry run of ${workflowId}: nothing was changed\n`);
            if (r.refusal) process.stdout.write(`NOTE: without --force the real run would be refused: ${r.refusal}\n`);
            process.stdout.write(
              `snapshot ${r.plan.snapshot.key} (revision ${r.plan.snapshot.revision}, taken ${r.plan.snapshot.takenAt})\n`,
            );
            process.stdout.write(
              `--initial-cluster=${r.plan.initialCluster}\n--initial-cluster-token=${r.plan.token}\n`,
            );
            for (const n of r.plan.nodes) {
              process.stdout.write(
                `\n# ${n.node}\nmv ${n.dataDir} ${n.asideDir}\n${n.restoreCommand}\nmv ${n.workDir}/restored ${n.dataDir}\n`,
              );
            }
            return;
          }
          if (!opts.json) process.stdout.write(`${workflowId}\n`);
          if (!opts.wait) {
            if (opts.json) printJson({ workflowId, runId: handle.firstExecutionRunId });
            return;
          }
          await follow(client, workflowId, !!opts.json);
        } finally {
          await client.connection.close();
        }
      },
    );

  for (const approve of [true, false]) {
    program
      .command(approve ? 'approve' : 'reject')
      .description(
        approve
          ? 'Approve a run waiting at its go/no-go gate'
          : 'Reject a run waiting at its go/no-go gate (it aborts, changing nothing)',
      )
      .argument('<workflow-id>')
      .option('--as <name>', "approver (must be on the config's allowlist)", whoami())
      .option('--reason <text>', 'why')
      .action(async (workflowId: string, opts: { as: string; reason?: string }) => {
        const { config } = loadConfig(cfgPath());
        const client = await connectClient(config);
        try {
          const rec = await client.workflow
            .getHandle(workflowId)
            .executeUpdate(decideUpdate, { args: [{ approve, by: opts.as, reason: opts.reason }] });
          process.stdout.write(`${approve ? 'approved' : 'rejected'} ${workflowId} as ${rec.by}\n`);
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError)
            throw new UsageError(`${workflowId}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
          throw err;
        } finally {
          await client.connection.close();
        }
      });
  }

  program
    .command('status')
    .description("A run's state and every step with per-node progress")
    .argument('<workflow-id>')
    .option('--wait', 'follow live until the run ends')
    .option('--json', 'print JSON')
    .action(async (workflowId: string, opts: { wait?: boolean; json?: boolean }) => {
      const { config } = loadConfig(cfgPath());
      const client = await connectClient(config);
      try {
        // Every runbook answers the same 'status' query: a drill's names its plan, a failover's
        // carries from/to, a restore's its cluster.
        const st = (await client.workflow.getHandle(workflowId).query(statusQuery)) as unknown as
          RestoreStatus | FailoverStatus | DrillStatus;
        if ('requestedBy' in st && typeof (st as { plan?: unknown }).plan === 'string') {
          const d = st as DrillStatus;
          if (opts.wait) return await followDrill(client, workflowId, !!opts.json);
          return opts.json ? printJson(d) : void process.stdout.write(`${renderDrill(workflowId, d)}\n`);
        }
        if ('from' in st) {
          if (opts.wait) return await followFailover(client, workflowId, !!opts.json);
          return opts.json ? printJson(st) : void process.stdout.write(`${renderFailover(workflowId, st)}\n`);
        }
        const r = st as RestoreStatus;
        if (opts.wait) return await follow(client, workflowId, !!opts.json);
        if (opts.json) printJson(r);
        else process.stdout.write(`${render(workflowId, r)}\n`);
      } finally {
        await client.connection.close();
      }
    });
}

async function resultOf(client: Client, workflowId: string): Promise<RestoreResult> {
  try {
    return (await client.workflow.getHandle(workflowId).result()) as RestoreResult;
  } catch (err) {
    if (err instanceof WorkflowFailedError)
      throw new FailedOutcome(`${workflowId} failed: ${(err.cause as Error | undefined)?.message ?? err.message}`);
    throw err;
  }
}

/** Re-renders the status until the run ends; exit 1 unless it completed. */
async function follow(client: Client, workflowId: string, json: boolean) {
  const handle = client.workflow.getHandle(workflowId);
  let last = '';
  for (;;) {
    const st = await handle.query(statusQuery);
    const text = render(workflowId, st);
    if (!json && text !== last) process.stdout.write(`${text}\n\n`);
    last = text;
    if (TERMINAL.has(st.phase)) {
      if (json) printJson(st);
      if (st.phase !== 'completed' && st.phase !== 'dry-run')
        throw new FailedOutcome(`${workflowId}: ${st.phase}${st.error ? `: ${st.error}` : ''}`);
      return;
    }
    await sleep(1000);
  }
}

export function render(workflowId: string, st: RestoreStatus): string {
  const lines = [`${workflowId}: ${st.phase.toUpperCase()} (cluster ${st.cluster}, requested by ${st.requestedBy})`];
  if (st.evidence) {
    const e = st.evidence;
    lines.push(
      `snapshot ${e.snapshotKey}: revision ${e.revision}, hash ${e.etcdHash}, ${formatDuration(e.snapshotAgeSeconds * 1000)} old` +
        `${e.writesLost !== undefined ? `; ${e.writesLost} writes since it will be lost` : ''}; --bump-revision ${e.bumpRevision ?? 'n/a'}`,
    );
  }
  if (st.phase === 'waiting-approval' && st.evidence) {
    lines.push(
      `waiting for go/no-go until ${st.evidence.approvalDeadline}: drctl approve|reject ${workflowId} --as NAME [--reason TEXT]`,
    );
    lines.push(
      `  or Temporal Web UI → this workflow → Signal 'approve' / 'reject' with {"by": "NAME", "reason": "..."}; approvers: ${st.evidence.approvers.join(', ')}`,
    );
  }
  const rows = [['STEP', 'STATE', 'TOOK', 'NODES']];
  for (const s of st.steps) {
    const took =
      s.startedAt && s.endedAt
        ? formatDuration(Date.parse(s.endedAt) - Date.parse(s.startedAt))
        : s.startedAt
          ? '…'
          : '';
    rows.push([
      s.step,
      s.state,
      took,
      Object.entries(s.nodes)
        .map(([n, v]) => `${n}: ${v}`)
        .join('; ')
        .slice(0, 110) || (s.detail ?? '').slice(0, 110),
    ]);
  }
  lines.push(table(rows));
  for (const d of st.decisions)
    lines.push(
      `  ${d.approve ? 'approve' : 'reject'} by ${d.by} at ${d.at}: ${d.accepted ? 'ACCEPTED' : `refused (${d.why})`}${d.reason ? ` — ${d.reason}` : ''}`,
    );
  if (st.error) lines.push(`error: ${st.error}`);
  return lines.join('\n');
}
