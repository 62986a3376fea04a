// `drctl drill …`: run a DR drill now, schedule it (a Temporal Schedule per plan, quarterly by
// default), sign its report off, read the report and the history of past drills. The report is
// the workflow's result (stored off-site by the worker): the CLI never needs the bucket's keys.
import { writeFileSync } from 'node:fs';
import { type Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Command } from 'commander';
import { renderDrillHtml } from '../../common/drill-html.ts';
import { type DrillReport, drillScheduleId } from '../../common/drill.ts';
import { rootMessage, UsageError } from '../../common/errors.ts';
import type { DrctlConfig, DrillConfig } from '../../config/schema.ts';
import { drDrill } from '../../workflows/drill.ts';
import { optional, positiveDuration, positiveInt } from '../flags.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { type AnyStatus, drillSummary } from '../render.ts';
import { afterStart, describeRun, readStatus, SIGN_UPDATE, startRun, STATUS_QUERY } from '../runbook-kit.ts';
import { checkCron, printSchedule, registerScheduleVerbs, type ScheduleKind, upsertSchedule } from '../schedules.ts';
import { DEFAULT_VALIDITY, requestInput, signDecision, validityMs } from '../signing.ts';
import { withTemporal } from '../temporal.ts';
import { type DecisionRecord, signerText } from '../../common/runbook.ts';
import type { Signed } from '../../common/signed.ts';

/** Unique per run (history keeps every drill); sortable by start time. */
export const drillWorkflowId = (plan: string, at = new Date()) =>
  `drill-${plan}-${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;

function planOf(config: DrctlConfig, plan: string): DrillConfig {
  const p = config.drills.find((d) => d.name === plan);
  if (!p)
    throw new UsageError(
      `--plan: no drill plan '${plan}' in the config (plans: ${config.drills.map((d) => d.name).join(', ') || 'none; add a drills section'})`,
    );
  return p;
}

/** Drills of the plan still doing something: one only waiting for its sign-off has left the DR site as it was. */
async function runningDrills(client: Client, plan: string): Promise<string[]> {
  const out: string[] = [];
  for await (const w of client.workflow.list({ query: `WorkflowType = 'drDrill' AND ExecutionStatus = 'Running'` })) {
    if (!w.workflowId.startsWith(`drill-${plan}-`)) continue;
    const { status } = await readStatus(client, w.workflowId);
    if (status.phase !== 'waiting-signoff') out.push(w.workflowId);
  }
  return out;
}

export function registerDrillCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;

  const drill = program
    .command('drill')
    .description(
      'DR drills: restore into the DR site, switch a drill record, measure RTO/RPO against targets, clean up, report',
    );

  drill
    .command('run')
    .description('Run a drill now; it waits at the go/no-go gate for an approver (CLI or Web UI)')
    .requiredOption('--plan <name>', 'drill plan from the config')
    .option('--key <file>', 'your SSH key: signs the request (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
    .option('--as <name>', 'who is asking, when the request is not signed (default: the login name)')
    .option('--reason <text>', 'why (shown at the gate and in the report)')
    .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
    .option('--wait', 'follow the drill until its report is written (it then waits for sign-off)')
    .option('--json', 'print JSON: { workflowId, runId, runbook, url } (with --wait also status and result)')
    .action(
      async (opts: {
        plan: string;
        key?: string;
        as?: string;
        reason?: string;
        approvalTimeout?: string;
        wait?: boolean;
        json?: boolean;
      }) => {
        const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
        await withTemporal(
          cfgPath(),
          async (s) => {
            const running = await runningDrills(s.client, opts.plan);
            if (running.length)
              throw new FailedOutcome(
                `error: a drill of plan '${opts.plan}' is already running (${running.join(', ')}); see \`drctl status ${running[0]}\``,
              );
            const workflowId = drillWorkflowId(opts.plan);
            const started = await startRun(
              s,
              drDrill,
              {
                taskQueue: s.config.temporal.taskQueue,
                workflowId,
                workflowIdConflictPolicy: 'FAIL',
                args: [
                  await requestInput(s.config, {
                    runbook: 'drill',
                    workflowId,
                    key: opts.key,
                    as: opts.as,
                    input: { plan: opts.plan, reason: opts.reason, approvalTimeoutMs },
                  }),
                ],
              },
              (id) => `error: ${id} is already running`,
            );
            await afterStart<DrillReport>(s, started, { ...opts, gate: true });
          },
          (config) => {
            planOf(config, opts.plan);
          },
        );
      },
    );

  drill
    .command('sign')
    .description("Sign a finished drill's report off (an approver from the allowlist), with your SSH key")
    .argument('<workflow-id>')
    .option('--key <file>', 'your SSH key (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
    .option('--comment <text>', 'what the reviewer concluded (signed with the sign-off)')
    .option('--sign-only', "print the signed sign-off as JSON, to paste into the Web UI's Signal input")
    .option('--valid <duration>', 'how long the signed sign-off stays valid (at most 24h)', DEFAULT_VALIDITY)
    .action(async (workflowId: string, opts: { key?: string; comment?: string; signOnly?: boolean; valid: string }) => {
      const validMs = validityMs(opts.valid);
      await withTemporal(cfgPath(), async ({ client, config }) => {
        const { desc } = await describeRun(client, workflowId);
        if (desc.type !== 'drDrill') throw new UsageError(`${workflowId} is a ${desc.type}, not a drill`);
        if (desc.status.name !== 'RUNNING')
          throw new UsageError(`${workflowId}: not waiting for sign-off (${desc.status.name.toLowerCase()})`);
        const signed = await signDecision(client, config, {
          workflowId,
          decision: 'signoff',
          reason: opts.comment,
          key: opts.key,
          validMs,
        });
        if (opts.signOnly) {
          process.stdout.write(`${JSON.stringify(signed)}\n`);
          return;
        }
        try {
          const rec = await client.workflow
            .getHandle(workflowId)
            .executeUpdate<DecisionRecord, [Signed]>(SIGN_UPDATE, { args: [signed] });
          process.stdout.write(`signed off ${workflowId} as ${signerText(rec)}\n`);
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError) throw new UsageError(`${workflowId}: ${rootMessage(err)}`);
          throw err;
        }
      });
    });

  drill
    .command('report')
    .description("A drill's evidence report: a summary, or the self-contained HTML page / JSON with --out")
    .argument('<workflow-id>')
    .option('--out <file>', 'write the report: .json writes JSON, anything else the HTML page')
    .option('--json', 'print the report as JSON')
    .action(async (workflowId: string, opts: { out?: string; json?: boolean }) => {
      await withTemporal(cfgPath(), async ({ client }) => {
        const report = await reportOf(client, workflowId);
        if (opts.out) {
          writeFileSync(
            opts.out,
            opts.out.endsWith('.json') ? `${JSON.stringify(report, null, 2)}\n` : renderDrillHtml(report),
          );
          if (!opts.json) process.stdout.write(`wrote ${opts.out}\n`);
        }
        if (opts.json) return printJson(report);
        if (!opts.out) process.stdout.write(`${drillSummary(report)}\n`);
      });
    });

  drill
    .command('history')
    .description('Past drills, newest first, with their verdicts and figures')
    .option('--plan <name>', 'only this plan')
    .option('--limit <n>', 'at most this many', '20')
    .option('--json', 'print JSON')
    .action(async (opts: { plan?: string; limit: string; json?: boolean }) => {
      const limit = positiveInt('--limit', opts.limit);
      await withTemporal(
        cfgPath(),
        async ({ client }) => {
          // The listing is cheap; each row's result or query is a round trip: only the newest `limit`.
          const runs = [];
          for await (const w of client.workflow.list({ query: `WorkflowType = 'drDrill'` })) {
            if (!opts.plan || w.workflowId.startsWith(`drill-${opts.plan}-`)) runs.push(w);
          }
          runs.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
          const shown = await Promise.all(
            runs.slice(0, limit).map((w) => historyRow(client, w.workflowId, w.runId, w.status.name, w.startTime)),
          );
          if (opts.json) return printJson(shown);
          if (!shown.length) return void process.stdout.write('no drills yet: drctl drill run --plan NAME\n');
          const out = [['WORKFLOW', 'STARTED', 'STATUS', 'OUTCOME', 'RTO', 'RPO', 'FAILED CRITERIA', 'SIGNED OFF']];
          for (const r of shown)
            out.push([
              r.workflowId,
              r.startedAt,
              r.status,
              r.outcome ?? '-',
              r.rto ?? '-',
              r.rpo ?? '-',
              r.failed?.join(',') || (r.outcome ? 'none' : '-'),
              r.signedOffBy ?? '-',
            ]);
          process.stdout.write(`${table(out)}\n`);
        },
        (config) => opts.plan && planOf(config, opts.plan),
      );
    });

  // Schedules: one per plan, quarterly by default; a drill never overlaps another of its plan.
  const schedule = drill
    .command('schedule')
    .description(
      "The plan's drill schedule (Temporal Schedule drill-<plan>): set (the default verb), describe, pause, unpause, trigger, delete, list",
    );
  schedule
    .command('set', { isDefault: true })
    .description("Create or update the plan's drill schedule: overlap SKIP, catch-up window 1 hour")
    .requiredOption('--plan <name>', 'drill plan from the config')
    .option('--cron <expr>', "cron in UTC (default: the plan's schedule, quarterly)")
    .option('--json', 'print the schedule as JSON')
    .action(async (opts: { plan: string; cron?: string; json?: boolean }) => {
      let plan: DrillConfig;
      let cron = '';
      await withTemporal(
        cfgPath(),
        async ({ config, client }) => {
          const id = drillScheduleId(plan.name);
          const { result, description } = await upsertSchedule(client, id, {
            spec: { cronExpressions: [cron] },
            cron,
            catchupWindow: '1 hour',
            note: `drctl: DR drill ${plan.name} (${plan.from} → ${plan.to}), cron ${cron}`,
            action: {
              type: 'startWorkflow',
              workflowType: drDrill,
              taskQueue: config.temporal.taskQueue,
              workflowId: `drill-${plan.name}`,
              args: [{ plan: plan.name, requestedBy: `schedule:${id}`, reason: 'scheduled drill' }],
            },
          });
          printSchedule(result, description, opts.json);
        },
        (config) => {
          plan = planOf(config, opts.plan);
          cron = checkCron(opts.cron ?? plan.schedule);
        },
      );
    });

  const kind: ScheduleKind = {
    noun: 'drill',
    workflowType: 'drDrill',
    flag: '--plan <name>',
    key: 'plan',
    idOf: (config, plan) => drillScheduleId(planOf(config, plan).name),
  };
  registerScheduleVerbs(schedule, kind, cfgPath);
  // The spellings before `drill schedule <verb>`.
  registerScheduleVerbs(drill, kind, cfgPath, { hidden: true });
}

interface HistoryRow {
  workflowId: string;
  startedAt: string;
  status: string;
  outcome?: string;
  rto?: string;
  rpo?: string;
  failed?: string[];
  signedOffBy?: string;
  report?: string;
  error?: string;
}

async function historyRow(
  client: Client,
  workflowId: string,
  runId: string,
  status: string,
  started: Date,
): Promise<HistoryRow> {
  const row: HistoryRow = { workflowId, startedAt: started.toISOString(), status };
  let report: DrillReport | undefined;
  try {
    const h = client.workflow.getHandle(workflowId, runId);
    if (status === 'COMPLETED') report = (await h.result()) as DrillReport;
    else if (status === 'RUNNING' || status === 'CANCELLED') report = (await h.query<AnyStatus>(STATUS_QUERY)).report;
    else if (status === 'FAILED') await h.result();
  } catch (err) {
    row.error = rootMessage(err);
    row.outcome = status === 'FAILED' ? 'aborted' : undefined;
  }
  if (report) {
    row.outcome = report.outcome;
    row.rto =
      report.tiers
        .map((x) => (x.rtoSeconds === undefined ? '?' : `${x.rtoSeconds.toFixed(1)}s/${x.rtoTargetSeconds}s`))
        .join(' ') || undefined;
    row.rpo = report.tiers.map((x) => `${x.rpoSeconds ?? '?'}s/${x.rpoTargetSeconds}s`).join(' ') || undefined;
    row.failed = report.verdicts.filter((v) => !v.ok).map((v) => v.criterion);
    row.signedOffBy = report.signOff?.by;
    row.report = report.location ? `s3://${report.location.bucket}/${report.location.html}` : undefined;
  }
  return row;
}

/** The report: the result once the drill is done, else what its status query holds (written before sign-off). */
export async function reportOf(client: Client, workflowId: string): Promise<DrillReport> {
  const h = client.workflow.getHandle(workflowId);
  let desc;
  try {
    desc = await h.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UsageError(`${workflowId}: no such workflow`);
    throw err;
  }
  if (desc.type !== 'drDrill') throw new UsageError(`${workflowId} is a ${desc.type}, not a drill`);
  if (desc.status.name === 'COMPLETED') return (await h.result()) as DrillReport;
  const { status: st, source } = await readStatus(client, workflowId);
  if (source === 'server')
    throw new FailedOutcome(
      `error: ${workflowId} (${desc.status.name}): no worker answered, and the report is only in the run`,
    );
  if (!st.report) {
    let why = st.error ?? `phase ${st.phase}`;
    if (desc.status.name === 'FAILED') await h.result().catch((e: unknown) => (why = rootMessage(e)));
    throw new FailedOutcome(`error: ${workflowId} has no report (${desc.status.name.toLowerCase()}: ${why})`);
  }
  return st.report;
}
