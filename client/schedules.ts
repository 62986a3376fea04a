// Temporal Schedules the same way for every runbook that has them (etcd snapshots per cluster, DR
// drills per plan): `schedule [set]|describe|pause|unpause|trigger|delete|list`, one JSON shape, one
// cron check.
import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type ScheduleOptionsAction,
  type ScheduleOptionsStartWorkflowAction,
  type ScheduleOptions,
  type ScheduleSpec,
} from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import type { Command } from 'commander';
import { formatDuration } from '../common/duration.ts';
import { UsageError } from '../common/errors.ts';
import type { WorkflowType } from '../common/runbook.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { FailedOutcome, printJson, table } from './output.ts';
import { runbookSearchAttributes } from './runbook-kit.ts';
import { whoami, withTemporal } from './temporal.ts';

type CalendarDescription = NonNullable<ScheduleDescription['spec']['calendars']>[number];

/**
 * Back from the calendar the server compiled a cron string into, to cron's five fields (the
 * server keeps no copy of the string). A field that spans its whole range prints as `*`.
 */
export function cronOf(c: CalendarDescription): string {
  const MONTHS = [
    'JANUARY',
    'FEBRUARY',
    'MARCH',
    'APRIL',
    'MAY',
    'JUNE',
    'JULY',
    'AUGUST',
    'SEPTEMBER',
    'OCTOBER',
    'NOVEMBER',
    'DECEMBER',
  ];
  const DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];
  const num = (v: unknown, names?: string[]) =>
    typeof v === 'number' ? v : (names?.indexOf(String(v)) ?? -1) + (names === MONTHS ? 1 : 0);
  const field = (
    ranges: { start: unknown; end?: unknown; step?: number }[] | undefined,
    lo: number,
    hi: number,
    names?: string[],
  ) => {
    if (!ranges?.length) return '*';
    return ranges
      .map((r) => {
        const start = num(r.start, names);
        const end = r.end === undefined ? start : num(r.end, names);
        const step = r.step && r.step > 1 ? `/${r.step}` : '';
        if (start === lo && end === hi) return `*${step}`;
        return start === end ? String(start) : `${start}-${end}${step}`;
      })
      .join(',');
  };
  return [
    field(c.minute, 0, 59),
    field(c.hour, 0, 23),
    field(c.dayOfMonth, 1, 31),
    field(c.month, 1, 12, MONTHS),
    field(c.dayOfWeek, 0, 6, DAYS),
  ].join(' ');
}

/** One readable line for a schedule's spec (the server turns a cron string into calendars). */
export function specSummary(spec: ScheduleDescription['spec']): string {
  const parts: string[] = [];
  for (const i of spec.intervals ?? [])
    parts.push(
      `every ${formatDuration(Number(i.every))}${i.offset ? ` (offset ${formatDuration(Number(i.offset))})` : ''}`,
    );
  for (const c of spec.calendars ?? []) parts.push(c.comment ? `cron '${c.comment}'` : `cron '${cronOf(c)}'`);
  return parts.join(', ') || '(no times)';
}

/** A cron expression's shape (5–7 fields, an optional CRON_TZ=, or @daily/@every …); the server judges the rest. */
export function checkCron(cron: string): string {
  const c = cron.trim();
  const fields = c.replace(/^CRON_TZ=\S+\s+/, '').split(/\s+/);
  if (!(c.startsWith('@') || (fields.length >= 5 && fields.length <= 7)))
    throw new UsageError(`--cron: expected a cron expression like '*/15 * * * *' or '@hourly' (got '${cron}')`);
  return c;
}

/** The server is the judge of cron syntax: the SDK raises its "Invalid schedule spec" as a TypeError. */
export function invalidCron(err: unknown, cron: string | undefined): unknown {
  if (cron !== undefined && err instanceof TypeError)
    return new UsageError(`--cron: the server rejects '${cron}': ${err.message}`);
  return err;
}

/** The one JSON shape of a schedule (describe, list, and what schedule prints). */
export function scheduleJson(d: ScheduleDescription) {
  const action = d.action.type === 'startWorkflow' ? d.action : undefined;
  return {
    scheduleId: d.scheduleId,
    paused: d.state.paused,
    note: d.state.note,
    schedule: specSummary(d.spec),
    intervalsMs: (d.spec.intervals ?? []).map((i) => Number(i.every)),
    calendars: d.spec.calendars ?? [],
    overlap: d.policies.overlap,
    catchupWindowMs: d.policies.catchupWindow,
    pauseOnFailure: d.policies.pauseOnFailure,
    workflowType: action?.workflowType,
    taskQueue: action?.taskQueue,
    args: action?.args,
    nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()),
    recentActions: d.info.recentActions.map((a) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      takenAt: a.takenAt.toISOString(),
      workflowId: a.action.workflow.workflowId,
    })),
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
    numActionsTaken: d.info.numActionsTaken,
    numActionsSkippedOverlap: d.info.numActionsSkippedOverlap,
  };
}
export type ScheduleJson = ReturnType<typeof scheduleJson>;

/** Creates the schedule, or updates it in place when it exists; what the server now holds. */
export async function upsertSchedule<W extends Workflow>(
  client: Client,
  id: string,
  s: {
    spec: ScheduleSpec;
    action: ScheduleOptionsStartWorkflowAction<W>;
    catchupWindow: string;
    note: string;
    cron?: string;
  },
): Promise<{ result: 'created' | 'updated'; description: ScheduleDescription }> {
  // A runbook never overlaps itself: a run still going when the next is due is skipped (CronJob's Forbid).
  const policies: ScheduleOptions['policies'] = {
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: s.catchupWindow,
    pauseOnFailure: false,
  };
  // Scheduled runs carry the runbook's search attributes like runs started by hand (see startRun).
  const requestedBy = `schedule:${id}`;
  const indexed = {
    ...s.action,
    typedSearchAttributes: runbookSearchAttributes(
      String((s.action.workflowType as { name?: string }).name ?? s.action.workflowType),
      requestedBy,
    ),
  } as ScheduleOptionsAction;
  let action = indexed;
  let result: 'created' | 'updated' = 'created';
  try {
    await client.schedule
      .create({ scheduleId: id, spec: s.spec, action, policies, state: { note: s.note } })
      .catch((err: unknown) => {
        if (!/search attribute/i.test(String((err as Error)?.message))) throw err;
        action = s.action as ScheduleOptionsAction;
        return client.schedule.create({ scheduleId: id, spec: s.spec, action, policies, state: { note: s.note } });
      });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw invalidCron(err, s.cron);
    result = 'updated';
    await client.schedule
      .getHandle(id)
      .update((prev) => ({ ...prev, spec: s.spec, action, policies }))
      .catch((e: unknown) => {
        throw invalidCron(e, s.cron);
      });
  }
  return { result, description: await client.schedule.getHandle(id).describe() };
}

/** What `schedule [set]` prints: the schedule as the server now holds it. */
export function printSchedule(result: 'created' | 'updated', d: ScheduleDescription, json?: boolean): void {
  if (json) return printJson({ ...scheduleJson(d), result });
  process.stdout.write(
    `${result} schedule ${d.scheduleId}: ${specSummary(d.spec)} (UTC), overlap ${d.policies.overlap}, catch-up ${formatDuration(d.policies.catchupWindow)}` +
      `${d.state.paused ? ', PAUSED' : ''}; next ${d.info.nextActionTimes[0]?.toISOString() ?? '-'}\n`,
  );
}

/** What the shared verbs need to know about one kind of schedule. */
export interface ScheduleKind {
  /** 'snapshot' or 'drill': the parent command, and how messages name it. */
  noun: string;
  /** The workflow type the schedule starts (how list picks its schedules). */
  workflowType: WorkflowType;
  /** The flag naming one schedule, e.g. `--cluster <name>`, and its option key. */
  flag: string;
  key: string;
  /** The schedule id for the flag's value; refuses (UsageError) a value the config does not know. */
  idOf: (config: DrctlConfig, value: string) => string;
}

const VERBS = ['describe', 'pause', 'unpause', 'trigger', 'delete', 'list'] as const;
type Verb = (typeof VERBS)[number];

/**
 * Registers describe|pause|unpause|trigger|delete|list on `parent` (`drctl <noun> schedule …`).
 * `rename` and `hidden` keep old spellings working (e.g. `drctl drill pause`) without showing them.
 */
export function registerScheduleVerbs(
  parent: Command,
  kind: ScheduleKind,
  configPath: () => string,
  opts: { hidden?: boolean; rename?: Partial<Record<Verb, string>> } = {},
): void {
  const flagName = kind.flag.split(' ')[0]!;
  const create = `drctl ${kind.noun} schedule ${flagName} ${kind.key.toUpperCase()}`;
  const notFound = (value: string, id: string) =>
    new FailedOutcome(
      `error: no ${kind.noun} schedule for ${kind.key} '${value}' (${id}); create one with \`${create}\``,
    );
  const what: Record<Exclude<Verb, 'list'>, string> = {
    describe: `Show the ${kind.noun} schedule: times, policies, paused, next and recent runs`,
    pause: `Pause the ${kind.noun} schedule`,
    unpause: `Resume the ${kind.noun} schedule`,
    trigger: `Start a run of the ${kind.noun} schedule now (skipped if one is still going)`,
    delete: `Delete the ${kind.noun} schedule (runs and their results stay)`,
  };

  for (const verb of VERBS) {
    if (verb === 'list') continue;
    const cmd = parent
      .command(opts.rename?.[verb] ?? verb, { hidden: opts.hidden })
      .description(what[verb])
      .requiredOption(kind.flag, `the ${kind.key} whose schedule it is`);
    if (verb === 'pause' || verb === 'unpause') cmd.option('--note <text>', 'why (shown by describe)');
    if (verb === 'describe') cmd.option('--json', 'print JSON');
    cmd.action(async (o: Record<string, string | boolean | undefined>) => {
      const value = String(o[kind.key]);
      let id = '';
      await withTemporal(
        configPath(),
        async ({ client }) => {
          const h = client.schedule.getHandle(id);
          try {
            if (verb === 'describe') {
              const j = scheduleJson(await h.describe());
              if (o.json) return printJson(j);
              return void process.stdout.write(`${describeText(j)}\n`);
            }
            const note = typeof o.note === 'string' ? o.note : `${verb}d with drctl by ${whoami()}`;
            if (verb === 'pause') await h.pause(note);
            else if (verb === 'unpause') await h.unpause(note);
            else if (verb === 'trigger')
              await h.trigger(ScheduleOverlapPolicy.SKIP); // the SDK's default is ALLOW_ALL
            else await h.delete();
          } catch (err) {
            if (err instanceof ScheduleNotFoundError) throw notFound(value, id);
            throw err;
          }
          process.stdout.write(`${id}: ${verb === 'trigger' ? 'triggered' : `${verb}d`}\n`);
        },
        (config) => void (id = kind.idOf(config, value)),
      );
    });
  }

  parent
    .command(opts.rename?.list ?? 'list', { hidden: opts.hidden })
    .description(`Every ${kind.noun} schedule: when, paused, next run, runs taken and skipped`)
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      await withTemporal(configPath(), async ({ client }) => {
        const out: ScheduleJson[] = [];
        for await (const s of client.schedule.list()) {
          if (s.action?.workflowType !== kind.workflowType) continue;
          try {
            out.push(scheduleJson(await client.schedule.getHandle(s.scheduleId).describe()));
          } catch (err) {
            // Listing is eventually consistent: a schedule deleted a moment ago may still be listed.
            if (!(err instanceof ScheduleNotFoundError)) throw err;
          }
        }
        if (o.json) return printJson(out);
        if (!out.length) return void process.stdout.write(`no ${kind.noun} schedules: ${create}\n`);
        const rows = [['SCHEDULE', 'WHEN (UTC)', 'PAUSED', 'NEXT', 'TAKEN', 'SKIPPED', 'RUNNING']];
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

function describeText(j: ScheduleJson): string {
  return [
    `${j.scheduleId}: ${j.schedule}${j.paused ? ' — PAUSED' : ''}`,
    `  overlap ${j.overlap}, catch-up window ${formatDuration(j.catchupWindowMs)}, pause on failure ${j.pauseOnFailure ? 'yes' : 'no'}`,
    `  runs ${j.workflowType} on task queue ${j.taskQueue} with ${JSON.stringify(j.args)}`,
    ...(j.note ? [`  note: ${j.note}`] : []),
    `  next: ${j.nextActionTimes.slice(0, 3).join(', ') || '-'}`,
    `  taken ${j.numActionsTaken}, skipped (overlap) ${j.numActionsSkippedOverlap}; running: ${j.running.join(', ') || '-'}`,
    ...j.recentActions.slice(-5).map((a) => `  recent: ${a.takenAt} ${a.workflowId}`),
  ].join('\n');
}
