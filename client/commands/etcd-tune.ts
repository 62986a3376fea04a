// `drctl etcd tune`: start the gated rolling change of etcd's heartbeat and election timeout
// (workflows/etcd-tune.ts). Values outside etcd's rules are refused here, before anything starts.
import type { Command } from 'commander';
import { UsageError } from '../../common/errors.ts';
import { type TuneResult, tuneRefusal } from '../../common/etcd-tuning.ts';
import { findCluster } from '../../config/load.ts';
import { etcdTune } from '../../workflows/etcd-tune.ts';
import { optional, positiveDuration } from '../flags.ts';
import { afterDryRun, afterStart, startRun } from '../runbook-kit.ts';
import { requestInput } from '../signing.ts';
import { withTemporal } from '../temporal.ts';

export const tuneWorkflowId = (cluster: string) => `etcd-tune-${cluster}`;

interface TuneOpts {
  cluster: string;
  heartbeat: string;
  election: string;
  as?: string;
  key?: string;
  dryRun?: boolean;
  approvalTimeout?: string;
  memberTimeout?: string;
  wait?: boolean;
  json?: boolean;
}

/** Whole milliseconds ('250ms', '2.5s', '250'), as etcd's flags take them. */
function wholeMs(flag: string, v: string): number {
  const s = v.trim();
  const ms = /^\d+$/.test(s) ? Number(s) : positiveDuration(flag, s, '250ms, 2500ms');
  if (!Number.isInteger(ms) || ms <= 0) throw new UsageError(`${flag}: expected whole milliseconds > 0, got '${v}'`);
  return ms;
}

function resultText(workflowId: string, r: TuneResult): string {
  const lines = [
    r.outcome === 'dry-run'
      ? `dry run of ${workflowId}: nothing was changed`
      : r.outcome === 'already'
        ? `every member already runs ${r.to.heartbeatMs}/${r.to.electionMs} ms: nothing to change`
        : `tuned: every member runs heartbeat ${r.to.heartbeatMs} ms, election ${r.to.electionMs} ms`,
    'order (followers first, the leader last):',
  ];
  for (const m of r.order)
    lines.push(
      `  ${m.node}${m.site ? ` (${m.site})` : ''}${m.leader ? ' leader' : ''}: ${m.from.heartbeatMs}/${m.from.electionMs} -> ${r.to.heartbeatMs}/${r.to.electionMs}${r.changed[m.node] ? ` ${r.changed[m.node]}` : ''}`,
    );
  return `${lines.join('\n')}\n`;
}

export function registerEtcdTuneCommand(etcd: Command, program: Command) {
  etcd
    .command('tune')
    .description(
      "Rolling change of etcd's --heartbeat-interval and --election-timeout: one member at a time, followers first, the leader last, each back healthy before the next (waits for go/no-go)",
    )
    .requiredOption('--cluster <name>', 'cluster to tune')
    .requiredOption('--heartbeat <ms>', 'heartbeat interval, e.g. 250ms')
    .requiredOption('--election <ms>', 'election timeout, e.g. 2500ms (5-10x the heartbeat, at most 50s)')
    .option('--key <file>', 'your SSH key: signs the request (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
    .option('--as <name>', 'who is asking, when the request is not signed (default: the login name)')
    .option('--dry-run', 'preflight only: print the order and the values, change nothing')
    .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
    .option('--member-timeout <duration>', 'how long one member may take to come back healthy (default 2m)')
    .option('--wait', 'follow the run to its end')
    .option(
      '--json',
      'print JSON: { workflowId, runId, runbook, url } (with --wait or --dry-run also status and result)',
    )
    .action(async (opts: TuneOpts) => {
      const heartbeatMs = wholeMs('--heartbeat', opts.heartbeat);
      const electionMs = wholeMs('--election', opts.election);
      const refusal = tuneRefusal({ heartbeatMs, electionMs });
      if (refusal) throw new UsageError(`--heartbeat/--election refused: ${refusal}`);
      const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
      const memberTimeoutMs = optional(opts.memberTimeout, (v) => positiveDuration('--member-timeout', v));
      let cluster = '';
      await withTemporal(
        program.opts<{ config: string }>().config,
        async (s) => {
          const workflowId = opts.dryRun ? `etcd-tune-dry-run-${cluster}-${Date.now()}` : tuneWorkflowId(cluster);
          const started = await startRun(
            s,
            etcdTune,
            {
              taskQueue: s.config.temporal.taskQueue,
              workflowId,
              workflowIdConflictPolicy: 'FAIL',
              args: [
                await requestInput(s.config, {
                  runbook: 'etcd-tune',
                  workflowId,
                  key: opts.key,
                  as: opts.as,
                  input: {
                    cluster,
                    heartbeatMs,
                    electionMs,
                    dryRun: !!opts.dryRun,
                    approvalTimeoutMs,
                    memberTimeoutMs,
                  },
                }),
              ],
            },
            (id) =>
              `error: a tune of cluster '${cluster}' is already running (workflow ${id}); see \`drctl status ${id}\``,
          );
          if (!opts.dryRun)
            return afterStart<TuneResult>(s, started, {
              ...opts,
              gate: true,
              human: (r) => resultText(workflowId, r),
            });
          await afterDryRun<TuneResult>(s, started, { json: opts.json, human: (r) => resultText(workflowId, r) });
        },
        (config) => {
          cluster = findCluster(config, opts.cluster).cluster.name;
        },
      );
    });
}
