// `drctl drill …`: run a DR drill now, schedule it (a Temporal Schedule per plan, quarterly by
// default), sign its report off, read the report and the history of past drills. The report is
// the workflow's result (stored off-site by the worker): the CLI never needs the bucket's keys.
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
} from '@temporalio/client';
import type { Command } from 'commander';
import { renderDrillHtml } from '../../common/drill-html.ts';
import type { DrillReport, DrillStatus } from '../../common/drill.ts';
import { formatDuration, parseDuration } from '../../common/duration.ts';
import { rootMessage, UsageError } from '../../common/errors.ts';
import { loadConfig } from '../../config/load.ts';
import type { DrctlConfig, DrillConfig } from '../../config/schema.ts';
import { drDrill, drillStatusQuery, signoffUpdate } from '../../workflows/drill.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { connectClient } from '../temporal.ts';
import { specSummary } from './snapshot.ts';

const whoami = () => process.env.DRCTL_USER ?? process.env.USER ?? userInfo().username;

export const drillScheduleId = (plan: string) => `drill-${plan}`;
/** Unique per run (history keeps every drill); sortable by start time. */
export const drillWorkflowId = (plan: string, at = new Date()) =>
  `drill-${plan}-${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;

/** Phases after which `drill run --wait` stops following (sign-off may take days). */
const SETTLED = new Set(['waiting-signoff', 'completed', 'aborted']);

function planOf(config: DrctlConfig, plan: string): DrillConfig {
  const p = config.drills.find((d) => d.name === plan);
  if (!p)
    throw new UsageError(
      `--plan: no drill plan '${plan}' in the config (plans: ${config.drills.map((d) => d.name).join(', ') || 'none; add a drills section'})`,
    );
  return p;
}

const uiLink = (config: DrctlConfig, client: Client, workflowId: string) =>
  config.temporal.webUi
    ? `${config.temporal.webUi.replace(/\/$/, '')}/namespaces/${encodeURIComponent(client.options.namespace)}/workflows/${encodeURIComponent(workflowId)}`
    : undefined;

/** Drills of the plan still doing something: one only waiting for its sign-off has left the DR site as it was. */
async function runningDrills(client: Client, plan: string): Promise<string[]> {
  const out: string[] = [];
  for await (const w of client.workflow.list({ query: `WorkflowType = 'drDrill' AND ExecutionStatus = 'Running'` })) {
    if (!w.workflowId.startsWith(`drill-${plan}-`)) continue;
    const phase = await client.workflow
      .getHandle(w.workflowId, w.runId)
      .query(drillStatusQuery)
      .then(
        (s) => s.phase,
        () => 'unknown',
      );
    if (phase !== 'waiting-signoff') out.push(w.workflowId);
  }
  return out;
}

export function registerDrillCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;
  /** Bad input (`check`) is refused before connecting: exit 2 even with Temporal down. */
  const withClient = async <T>(
    fn: (c: { config: DrctlConfig; client: Client }) => Promise<T>,
    check: (config: DrctlConfig) => void = () => undefined,
  ): Promise<T> => {
    const { config } = loadConfig(cfgPath());
    check(config);
    const client = await connectClient(config);
    try {
      return await fn({ config, client });
    } finally {
      await client.connection.close();
    }
  };

  const drill = program
    .command('drill')
    .description(
      'DR drills: restore into the DR site, switch a drill record, measure RTO/RPO against targets, clean up, report',
    );

  drill
    .command('run')
    .description('Run a drill now; it waits at the go/no-go gate for an approver (CLI or Web UI)')
    .requiredOption('--plan <name>', 'drill plan from the config')
    .option('--as <name>', 'who is asking (two-person rule: you cannot approve your own drill)', whoami())
    .option('--reason <text>', 'why (shown at the gate and in the report)')
    .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
    .option('--wait', 'follow the drill until its report is written')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        plan: string;
        as: string;
        reason?: string;
        approvalTimeout?: string;
        wait?: boolean;
        json?: boolean;
      }) => {
        const { config } = loadConfig(cfgPath());
        planOf(config, opts.plan);
        const approvalTimeoutMs = opts.approvalTimeout === undefined ? undefined : parseDuration(opts.approvalTimeout);
        if (opts.approvalTimeout !== undefined && !approvalTimeoutMs)
          throw new UsageError(`--approval-timeout: expected a duration like 30m, 1h (got '${opts.approvalTimeout}')`);
        if (!opts.as) throw new UsageError('--as: who is asking? (set --as or $DRCTL_USER)');
        await withClient(async ({ client }) => {
          const running = await runningDrills(client, opts.plan);
          if (running.length)
            throw new FailedOutcome(
              `error: a drill of plan '${opts.plan}' is already running (${running.join(', ')}); see \`drctl status ${running[0]}\``,
            );
          const workflowId = drillWorkflowId(opts.plan);
          try {
            await client.workflow.start(drDrill, {
              taskQueue: config.temporal.taskQueue,
              workflowId,
              workflowIdConflictPolicy: 'FAIL',
              args: [{ plan: opts.plan, requestedBy: opts.as, reason: opts.reason, approvalTimeoutMs }],
            });
          } catch (err) {
            if (err instanceof WorkflowExecutionAlreadyStartedError)
              throw new FailedOutcome(`error: ${workflowId} is already running`);
            throw err;
          }
          if (!opts.json) {
            process.stdout.write(`started drill '${opts.plan}': workflow ${workflowId}\n`);
            process.stdout.write(gateHelp(workflowId, uiLink(config, client, workflowId)));
          }
          if (opts.wait) await followDrill(client, workflowId, !!opts.json);
          else if (opts.json) printJson({ workflowId });
        });
      },
    );

  drill
    .command('sign')
    .description("Sign a finished drill's report off (an approver from the allowlist)")
    .argument('<workflow-id>')
    .option('--as <name>', 'approver signing off', whoami())
    .option('--comment <text>', 'what the reviewer concluded')
    .action(async (workflowId: string, opts: { as: string; comment?: string }) => {
      await withClient(async ({ client }) => {
        try {
          const rec = await client.workflow
            .getHandle(workflowId)
            .executeUpdate(signoffUpdate, { args: [{ by: opts.as, comment: opts.comment }] });
          process.stdout.write(`signed off ${workflowId} as ${rec.by}\n`);
        } catch (err) {
          const desc = await client.workflow
            .getHandle(workflowId)
            .describe()
            .catch(() => undefined);
          if (!desc) throw new UsageError(`${workflowId}: no such workflow`);
          if (desc.status.name !== 'RUNNING')
            throw new UsageError(`${workflowId}: not waiting for sign-off (${desc.status.name.toLowerCase()})`);
          const msg = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
          throw new UsageError(`${workflowId}: ${msg}`);
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
      await withClient(async ({ client }) => {
        const report = await reportOf(client, workflowId);
        if (opts.out) {
          writeFileSync(
            opts.out,
            opts.out.endsWith('.json') ? `${JSON.stringify(report, null, 2)}\n` : renderDrillHtml(report),
          );
          if (!opts.json) process.stdout.write(`wrote ${opts.out}\n`);
        }
        if (opts.json) return printJson(report);
        if (!opts.out) process.stdout.write(`${renderSummary(report)}\n`);
      });
    });

  drill
    .command('history')
    .description('Past drills, newest first, with their verdicts and figures')
    .option('--plan <name>', 'only this plan')
    .option('--limit <n>', 'at most this many', '20')
    .option('--json', 'print JSON')
    .action(async (opts: { plan?: string; limit: string; json?: boolean }) => {
      const limit = Number(opts.limit);
      if (!/^\d+$/.test(opts.limit) || limit < 1)
        throw new UsageError(`--limit: expected an integer >= 1 (got '${opts.limit}')`);
      await withClient(
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
  drill
    .command('schedule')
    .description("Create or update the plan's drill schedule (Temporal Schedule drill-<plan>, overlap SKIP)")
    .requiredOption('--plan <name>', 'drill plan from the config')
    .option('--cron <expr>', "cron in UTC (default: the plan's schedule, quarterly)")
    .option('--json', 'print the schedule as JSON')
    .action(async (opts: { plan: string; cron?: string; json?: boolean }) => {
      const cronOf = (plan: DrillConfig) => {
        const cron = opts.cron ?? plan.schedule;
        if (cron.trim().split(/\s+/).length !== 5 && !cron.startsWith('@'))
          throw new UsageError(
            `--cron: expected 5 fields (minute hour day-of-month month day-of-week) or @every/@daily, got '${cron}'`,
          );
        return cron;
      };
      await withClient(
        async ({ config, client }) => {
          const plan = planOf(config, opts.plan);
          const cron = cronOf(plan);
          const id = drillScheduleId(plan.name);
          const action = {
            type: 'startWorkflow' as const,
            workflowType: drDrill,
            taskQueue: config.temporal.taskQueue,
            workflowId: `drill-${plan.name}`,
            args: [{ plan: plan.name, requestedBy: `schedule:${id}`, reason: 'scheduled drill' }] as [
              Parameters<typeof drDrill>[0],
            ],
          };
          const spec = { cronExpressions: [cron] };
          const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour', pauseOnFailure: false };
          let verb = 'created';
          try {
            await client.schedule.create({
              scheduleId: id,
              spec,
              action,
              policies,
              state: { note: `drctl: DR drill ${plan.name} (${plan.from} → ${plan.to}), cron ${cron}` },
            });
          } catch (err) {
            if (!(err instanceof ScheduleAlreadyRunning)) throw invalidCron(err, cron);
            await client.schedule
              .getHandle(id)
              .update((prev) => ({ ...prev, spec, action, policies }))
              .catch((e: unknown) => {
                throw invalidCron(e, cron);
              });
            verb = 'updated';
          }
          const d = await client.schedule.getHandle(id).describe();
          if (opts.json) return printJson(describeJson(d));
          process.stdout.write(
            `${verb} schedule ${id}: cron ${cron} (UTC), overlap SKIP; next ${d.info.nextActionTimes[0]?.toISOString() ?? '-'}\n`,
          );
        },
        (config) => cronOf(planOf(config, opts.plan)),
      );
    });

  for (const [name, what] of [
    ['pause', 'Pause'],
    ['unpause', 'Unpause'],
    ['trigger', 'Start a drill now from'],
    ['delete', 'Delete'],
  ] as const) {
    drill
      .command(name)
      .description(`${what} the plan's drill schedule`)
      .requiredOption('--plan <name>', 'drill plan')
      .option('--note <text>', 'why (pause/unpause)')
      .action(async (opts: { plan: string; note?: string }) => {
        await withClient(
          async ({ client }) => {
            const id = drillScheduleId(opts.plan);
            const h = client.schedule.getHandle(id);
            try {
              if (name === 'pause') await h.pause(opts.note ?? `paused by ${whoami()}`);
              else if (name === 'unpause') await h.unpause(opts.note ?? `unpaused by ${whoami()}`);
              else if (name === 'trigger')
                await h.trigger(ScheduleOverlapPolicy.SKIP); // the SDK's default would be ALLOW_ALL
              else await h.delete();
            } catch (err) {
              if (err instanceof ScheduleNotFoundError)
                throw new FailedOutcome(
                  `error: no drill schedule for plan '${opts.plan}' (${id}); create one with \`drctl drill schedule --plan ${opts.plan}\``,
                );
              throw err;
            }
            process.stdout.write(`${name === 'trigger' ? 'triggered' : `${name}d`} ${id}\n`);
          },
          (config) => planOf(config, opts.plan),
        );
      });
  }

  drill
    .command('list')
    .description('Every drill schedule: cron, paused, next and recent runs, skipped overlaps')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withClient(async ({ client }) => {
        const out: ReturnType<typeof describeJson>[] = [];
        for await (const s of client.schedule.list()) {
          if (!s.scheduleId.startsWith('drill-')) continue;
          try {
            out.push(describeJson(await client.schedule.getHandle(s.scheduleId).describe()));
          } catch (err) {
            if (!(err instanceof ScheduleNotFoundError)) throw err;
          }
        }
        if (opts.json) return printJson(out);
        if (!out.length) return void process.stdout.write('no drill schedules: drctl drill schedule --plan NAME\n');
        const rows = [['SCHEDULE', 'WHEN (UTC)', 'PAUSED', 'NEXT', 'RUNS', 'SKIPPED', 'RUNNING']];
        for (const s of out)
          rows.push([
            s.scheduleId,
            s.schedule,
            s.paused ? `yes${s.note ? ` (${s.note})` : ''}` : 'no',
            s.nextActionTimes[0] ?? '-',
            String(s.numActionsTaken),
            String(s.numActionsSkippedOverlap),
            s.running.join(', ') || '-',
          ]);
        process.stdout.write(`${table(rows)}\n`);
      });
    });
}

function invalidCron(err: unknown, cron: string): Error {
  const msg = (err as Error).message ?? String(err);
  return /invalid|cron|parse/i.test(msg)
    ? new UsageError(`--cron: the server refused '${cron}': ${msg}`)
    : (err as Error);
}

function describeJson(d: ScheduleDescription) {
  return {
    scheduleId: d.scheduleId,
    schedule: specSummary(d.spec),
    paused: d.state.paused,
    note: d.state.note,
    overlap: d.policies.overlap,
    nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()),
    numActionsTaken: d.info.numActionsTaken,
    numActionsSkippedOverlap: d.info.numActionsSkippedOverlap,
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
    recentActions: d.info.recentActions.map((a) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      takenAt: a.takenAt.toISOString(),
      workflowId: a.action.workflow.workflowId,
    })),
  };
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
    else if (status === 'RUNNING' || status === 'CANCELLED') report = (await h.query(drillStatusQuery)).report;
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
  let st: DrillStatus;
  try {
    st = await h.query(drillStatusQuery);
  } catch (err) {
    throw new FailedOutcome(`error: ${workflowId} (${desc.status.name}) has no report: ${rootMessage(err)}`);
  }
  if (!st.report) {
    let why = st.error ?? `phase ${st.phase}`;
    if (desc.status.name === 'FAILED') await h.result().catch((e: unknown) => (why = rootMessage(e)));
    throw new FailedOutcome(`error: ${workflowId} has no report (${desc.status.name.toLowerCase()}: ${why})`);
  }
  return st.report;
}

function gateHelp(workflowId: string, link?: string): string {
  return [
    `  it waits for go/no-go by an approver (not the requester):`,
    `    CLI:    drctl approve ${workflowId} --as NAME --reason TEXT   (or: drctl reject …)`,
    `    Web UI: ${link ?? '(set temporal.webUi in the config)'} → Signal → 'approve' with {"by": "NAME", "reason": "..."}`,
    '',
  ].join('\n');
}

export async function followDrill(client: Client, workflowId: string, json: boolean) {
  const handle = client.workflow.getHandle(workflowId);
  let last = '';
  for (;;) {
    let st: DrillStatus;
    try {
      st = await handle.query(drillStatusQuery);
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new FailedOutcome(`${workflowId}: ${rootMessage(err)}`);
      throw err;
    }
    const text = renderDrill(workflowId, st);
    if (!json && text !== last) process.stdout.write(`${text}\n\n`);
    last = text;
    if (SETTLED.has(st.phase)) {
      if (json) printJson(st.report ?? st);
      if (st.phase === 'aborted') throw new FailedOutcome(`${workflowId}: aborted${st.error ? `: ${st.error}` : ''}`);
      if (st.report) {
        if (!json) {
          process.stdout.write(`${renderSummary(st.report)}\n`);
          if (st.phase === 'waiting-signoff')
            process.stdout.write(
              `sign it off: drctl drill sign ${workflowId} --as APPROVER --comment TEXT (or Signal 'signoff' in the Web UI)\n`,
            );
        }
        if (st.report.outcome !== 'passed') throw new FailedOutcome(`${workflowId}: drill ${st.report.outcome}`);
      }
      return;
    }
    await sleep(1000);
  }
}

export function renderDrill(workflowId: string, st: DrillStatus): string {
  const lines = [`${workflowId}: ${st.phase.toUpperCase()} (drill ${st.plan}, requested by ${st.requestedBy})`];
  const e = st.evidence;
  if (e) {
    lines.push(
      `restore ${e.backup?.name ?? '(no backup)'}${e.backup ? ` (${formatDuration(e.backup.ageSeconds * 1000)} old)` : ''} into ${e.to}; namespaces ${e.namespaces.join(', ')}`,
    );
    lines.push(
      `drill record ${e.record}: ${e.recordBefore.join(',') || '(none)'} → ${e.recordDuring.join(',')} (production records untouched)`,
    );
    if (e.etcdSnapshot) lines.push(`etcd restore drill on ${e.to} from ${e.etcdSnapshot}`);
    for (const w of e.warnings) lines.push(`warning: ${w}`);
    if (st.phase === 'waiting-approval')
      lines.push(`waiting for go/no-go until ${e.approvalDeadline}; approvers: ${e.approvers.join(', ')}`);
  }
  const rows = [['STEP', 'STATE', 'TOOK', 'DETAIL']];
  for (const s of st.steps)
    rows.push([
      s.step,
      s.state,
      s.seconds === undefined ? (s.startedAt ? '…' : '') : formatDuration(s.seconds * 1000),
      (
        s.detail ??
        Object.entries(s.items)
          .map(([k, v]) => `${k}: ${v}`)
          .join('; ')
      )
        .split('\n')[0]!
        .slice(0, 110),
    ]);
  lines.push(table(rows));
  for (const d of st.decisions)
    lines.push(
      `  ${d.approve ? 'approve' : 'reject'} by ${d.by} at ${d.at}: ${d.accepted ? 'ACCEPTED' : `refused (${d.why})`}${d.reason ? ` — ${d.reason}` : ''}`,
    );
  if (st.error) lines.push(`error: ${st.error}`);
  return lines.join('\n');
}

export function renderSummary(r: DrillReport): string {
  const lines = [
    `drill ${r.plan} (${r.workflowId}): ${r.outcome.toUpperCase()}; ${r.from} → ${r.to}, ${r.startedAt} → ${r.endedAt}`,
  ];
  for (const t of r.tiers) {
    lines.push(
      `  ${t.tier}: RTO ${t.rtoSeconds === undefined ? '?' : `${t.rtoSeconds.toFixed(1)} s`} / ${formatDuration(t.rtoTargetSeconds * 1000)} ${t.rtoMet ? 'met' : 'MISSED'}, RPO ${t.rpoSeconds ?? '?'} s / ${formatDuration(t.rpoTargetSeconds * 1000)} ${t.rpoMet ? 'met' : 'MISSED'}`,
    );
  }
  for (const v of r.verdicts) lines.push(`  ${v.ok ? 'PASS' : 'FAIL'} ${v.criterion}: ${v.detail}`);
  for (const f of r.failures) lines.push(`  failure: ${f.split('\n')[0]}`);
  lines.push(
    `  approvals: ${
      r.approvals
        .filter((a) => a.accepted)
        .map((a) => `${a.approve ? 'go' : 'no-go'} by ${a.by}`)
        .join(', ') || 'none'
    }; sign-off: ${r.signOff ? `${r.signOff.by}${r.signOff.comment ? ` (${r.signOff.comment})` : ''}` : 'pending'}`,
  );
  if (r.location)
    lines.push(
      `  report: s3://${r.location.bucket}/${r.location.html} (and report.json); drctl drill report ${r.workflowId} --out report.html`,
    );
  return lines.join('\n');
}
