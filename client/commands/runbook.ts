// The commands every runbook answers to, whatever it is: approve | reject (the go/no-go gate),
// status (its steps, live or from the server when no worker answers), cancel (it undoes what it
// did), and runs (the runs on record, found by their search attributes).
import { randomUUID } from 'node:crypto';
import { isGrpcServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Command } from 'commander';
import { rootMessage, UsageError } from '../../common/errors.ts';
import { ATTEST_PREFIX } from '../../common/etcd-recover.ts';
import {
  type DecisionRecord,
  FINAL_PHASES,
  PHASES,
  type Phase,
  RUNBOOKS,
  type RunbookName,
  SEARCH_ATTRIBUTES,
  signerText,
} from '../../common/runbook.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { compensationStep, renderStatus, serverNote } from '../render.ts';
import {
  DECIDE_UPDATE,
  describeRun,
  follow,
  isWorkflowType,
  outcomeOf,
  readStatus,
  SEARCH_KEYS,
  statusJson,
} from '../runbook-kit.ts';
import { DEFAULT_VALIDITY, signDecision, signingKey, validityMs } from '../signing.ts';
import { requireAs, webUiUrl, whoami, withTemporal } from '../temporal.ts';
import type { Signed } from '../../common/signed.ts';

/** gRPC's NOT_FOUND: the server's answer to a cancel of a run that has ended. */
const GRPC_NOT_FOUND = 5;

export interface RunsFilter {
  site?: string;
  phase?: string;
  runbook?: string;
}

/** The visibility query for `drctl runs`; bad flags are refused here (exit 2), before connecting. */
export function runsQuery(f: RunsFilter, sites: string[]): string {
  const names = Object.values(RUNBOOKS) as string[];
  const clauses: string[] = [];
  if (f.runbook !== undefined) {
    // Both spellings: the runbook's name (etcd-restore) and its workflow type (etcdRestore).
    const name = isWorkflowType(f.runbook) ? RUNBOOKS[f.runbook] : f.runbook;
    if (!names.includes(name))
      throw new UsageError(`--runbook: unknown runbook '${f.runbook}' (runbooks: ${names.join(', ')})`);
    clauses.push(`${SEARCH_ATTRIBUTES.runbook} = '${name}'`);
  } else clauses.push(`${SEARCH_ATTRIBUTES.runbook} IN (${names.map((n) => `'${n}'`).join(', ')})`);
  if (f.phase !== undefined) {
    if (!(PHASES as readonly string[]).includes(f.phase))
      throw new UsageError(`--phase: unknown phase '${f.phase}' (phases: ${PHASES.join(', ')})`);
    clauses.push(`${SEARCH_ATTRIBUTES.phase} = '${f.phase}'`);
  }
  if (f.site !== undefined) {
    if (!sites.includes(f.site)) throw new UsageError(`--site: unknown site '${f.site}' (sites: ${sites.join(', ')})`);
    clauses.push(`${SEARCH_ATTRIBUTES.sites} = '${f.site}'`);
  }
  return clauses.join(' AND ');
}

export interface RunRow {
  workflowId: string;
  runId: string;
  runbook?: string;
  sites: string[];
  cluster?: string;
  phase?: string;
  requestedBy?: string;
  startTime: string;
  closeTime?: string;
  /** The execution's status on the server: RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, … */
  execution: string;
}

export function runsTable(rows: RunRow[]): string {
  const out = [['WORKFLOW', 'RUNBOOK', 'SITES/CLUSTER', 'PHASE', 'REQUESTED BY', 'STARTED']];
  for (const r of rows) {
    const where = [r.sites.join(','), r.cluster && !r.sites.includes(r.cluster) ? `cluster ${r.cluster}` : '']
      .filter(Boolean)
      .join(' ');
    // A run ended from outside (terminated, timed out) never wrote its last phase: say both.
    const stale = r.execution !== 'RUNNING' && !FINAL_PHASES.includes(r.phase as Phase) && r.phase !== undefined;
    out.push([
      r.workflowId,
      r.runbook ?? '-',
      where || '-',
      `${r.phase ?? '-'}${stale ? ` (${r.execution.toLowerCase()})` : ''}`,
      r.requestedBy ?? '-',
      r.startTime,
    ]);
  }
  return table(out);
}

export function registerRunbookCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;

  for (const approve of [true, false]) {
    program
      .command(approve ? 'approve' : 'reject')
      .description(
        approve
          ? 'Approve a run waiting at its go/no-go gate, signed with your SSH key'
          : 'Reject a run waiting at its go/no-go gate (it aborts, changing nothing), signed with your SSH key',
      )
      .argument('<workflow-id>')
      .option(
        '--key <file>',
        'your SSH key (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519; ssh-agent: the .pub file)',
      )
      .option('--reason <text>', 'why (signed with the decision)')
      .option(
        '--attest <text>',
        'etcd recover: how the members whose hosts do not answer are fenced, e.g. "site A is powered off" (signed with the decision)',
      )
      .option(
        '--sign-only',
        "print the signed decision as JSON, to paste into the Web UI's Signal input, and send nothing",
      )
      .option('--valid <duration>', `how long the signed decision stays valid (at most 24h)`, DEFAULT_VALIDITY)
      .option('--as <name>', 'with approvals.unsigned: allow only, and no key: the name to send unsigned')
      .action(
        async (
          workflowId: string,
          opts: { key?: string; reason?: string; attest?: string; signOnly?: boolean; valid: string; as?: string },
        ) => {
          const validMs = validityMs(opts.valid);
          if (opts.attest !== undefined) {
            if (!approve) throw new UsageError('--attest: only an approval attests');
            if (!opts.attest.trim()) throw new UsageError('--attest: say how the lost members are fenced');
            opts.reason = `${ATTEST_PREFIX} ${opts.attest.trim()}${opts.reason ? ` (${opts.reason})` : ''}`;
          }
          await withTemporal(cfgPath(), async ({ client, config }) => {
            await describeRun(client, workflowId);
            const unsignedAs =
              opts.as !== undefined && !signingKey(opts.key) && config.approvals.unsigned === 'allow'
                ? opts.as
                : undefined;
            const signed = unsignedAs
              ? undefined
              : await signDecision(client, config, {
                  workflowId,
                  decision: approve ? 'approve' : 'reject',
                  reason: opts.reason,
                  key: opts.key,
                  validMs,
                });
            if (opts.signOnly) {
              if (!signed) throw new UsageError('--sign-only: needs a signing key');
              process.stdout.write(`${JSON.stringify(signed)}\n`);
              return;
            }
            try {
              const rec = await client.workflow
                .getHandle(workflowId)
                .executeUpdate<DecisionRecord, [{ approve: boolean; signed?: Signed; by?: string; reason?: string }]>(
                  DECIDE_UPDATE,
                  { args: [signed ? { approve, signed } : { approve, by: unsignedAs, reason: opts.reason }] },
                );
              process.stdout.write(`${approve ? 'approved' : 'rejected'} ${workflowId} as ${signerText(rec)}\n`);
            } catch (err) {
              if (err instanceof WorkflowUpdateFailedError) throw new UsageError(`${workflowId}: ${rootMessage(err)}`);
              throw err;
            }
          });
        },
      );
  }

  program
    .command('status')
    .description(
      "A run's phase, evidence and every step with per-item progress (any runbook). Without a worker: what the server holds",
    )
    .argument('<workflow-id>')
    .option('--wait', 'follow live until the run ends (exit 1 unless it succeeded)')
    .option('--json', 'print JSON: the status, with source (worker|server), execution and asOf')
    .action(async (workflowId: string, opts: { wait?: boolean; json?: boolean }) => {
      await withTemporal(cfgPath(), async ({ config, client }) => {
        const url = webUiUrl(config, client.options.namespace, workflowId);
        if (opts.wait) {
          const shown = await follow(client, workflowId, { json: opts.json, url });
          if (opts.json) printJson(statusJson(shown));
          const failed = outcomeOf(workflowId, shown);
          if (failed) throw new FailedOutcome(failed);
          return;
        }
        const shown = await readStatus(client, workflowId);
        if (opts.json) {
          if (shown.source === 'server') process.stderr.write(`${serverNote(shown.asOf)}\n`);
          return printJson(statusJson(shown));
        }
        process.stdout.write(`${renderStatus(workflowId, shown.type, shown, { url })}\n`);
      });
    });

  program
    .command('cancel')
    .description('Cancel a run: it stops and undoes, in reverse, what its finished steps did, then ends')
    .argument('<workflow-id>')
    .option('--reason <text>', 'why (kept in the run history)')
    .option('--as <name>', 'who is cancelling (kept in the run history)', whoami())
    .action(async (workflowId: string, opts: { reason?: string; as: string }) => {
      await withTemporal(
        cfgPath(),
        async ({ client }) => {
          const ended = (execution: string) =>
            new UsageError(`${workflowId}: already ended (${execution.toLowerCase()}); nothing to cancel`);
          let { desc, type } = await describeRun(client, workflowId);
          if (desc.status.name !== 'RUNNING') throw ended(desc.status.name);
          const { status } = await readStatus(client, workflowId);
          // A cancel request, never a termination: the run undoes what it changed. The SDK's
          // handle.cancel() sends no reason; the service call keeps it in the history.
          for (let attempt = 0; ; attempt++) {
            try {
              await client.workflowService.requestCancelWorkflowExecution({
                namespace: client.options.namespace,
                workflowExecution: { workflowId, runId: desc.runId },
                identity: `drctl:${opts.as}`,
                requestId: randomUUID(),
                reason: opts.reason ?? '',
              });
              break;
            } catch (err) {
              // The run ended (or continued as new) since it was described: look again.
              if (!isGrpcServiceError(err) || err.code !== GRPC_NOT_FOUND || attempt > 0) throw err;
              ({ desc, type } = await describeRun(client, workflowId));
              if (desc.status.name !== 'RUNNING') throw ended(desc.status.name);
            }
          }
          const done = status.steps.filter((s) => s.state === 'done' || s.state === 'failed').map((s) => s.step);
          const undo = compensationStep(type);
          process.stdout.write(
            [
              `cancel requested for ${workflowId} (${RUNBOOKS[type]}, phase ${status.phase}) by ${opts.as}${opts.reason ? `: ${opts.reason}` : ''}`,
              done.length
                ? `  the run stops and undoes, in reverse, what these steps did: ${[...done].reverse().join(', ')} (step '${undo}')`
                : '  no step has finished yet: the run stops with nothing to undo',
              ...(type === 'drDrill'
                ? ['  its etcd restore drill, if one runs, is asked to cancel too and undoes its own changes']
                : []),
              `  it ends 'compensated' (or 'aborted' before the go), or 'needs-attention' when an undo cannot finish`,
              `  follow it: drctl status ${workflowId} --wait`,
            ].join('\n') + '\n',
          );
        },
        () => void requireAs(opts.as),
      );
    });

  program
    .command('runs')
    .description('Runs of every runbook, newest first, from the search attributes they keep (any worker or none)')
    .option('--site <site>', 'only runs touching this site')
    .option('--phase <phase>', `only runs in this phase (${PHASES.join(', ')})`)
    .option('--runbook <name>', `only this runbook (${Object.values(RUNBOOKS).join(', ')})`)
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(async (opts: RunsFilter & { limit: string; json?: boolean }) => {
      const limit = Number(opts.limit);
      let query = '';
      await withTemporal(
        cfgPath(),
        async ({ client }) => {
          const rows: RunRow[] = [];
          for await (const w of client.workflow.list({ query })) {
            const sa = w.typedSearchAttributes;
            rows.push({
              workflowId: w.workflowId,
              runId: w.runId,
              runbook: sa.get(SEARCH_KEYS.runbook) as RunbookName | undefined,
              sites: sa.get(SEARCH_KEYS.sites) ?? [],
              cluster: sa.get(SEARCH_KEYS.cluster),
              phase: sa.get(SEARCH_KEYS.phase),
              requestedBy: sa.get(SEARCH_KEYS.requestedBy),
              startTime: w.startTime.toISOString(),
              closeTime: w.closeTime?.toISOString(),
              execution: w.status.name,
            });
          }
          // Visibility on SQL stores does not sort by start time: sort here.
          rows.sort((a, b) => b.startTime.localeCompare(a.startTime));
          const shown = rows.slice(0, limit);
          if (opts.json) return printJson(shown);
          if (!shown.length) return void process.stdout.write(`no runs match (${query})\n`);
          process.stdout.write(`${runsTable(shown)}\n`);
        },
        (config) => {
          if (!/^\d+$/.test(opts.limit) || limit < 1)
            throw new UsageError(`--limit: expected an integer >= 1 (got '${opts.limit}')`);
          query = runsQuery(
            opts,
            config.sites.map((s) => s.name),
          );
        },
      );
    });
}
