// `drctl snapshot …`: run the snapshot runbook now, list what is off-site (through the worker: the
// bucket's credentials never reach the CLI), and manage the per-cluster Temporal Schedule.
import { userInfo } from 'node:os';
import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  ScheduleNotFoundError,
  type ScheduleSpec,
  WorkflowFailedError,
} from '@temporalio/client';
import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../../common/duration.ts';
import { rootMessage, UsageError } from '../../common/errors.ts';
import type { SnapshotRef } from '../../common/snapshots.ts';
import { findCluster, loadConfig } from '../../config/load.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { type EtcdSnapshotInput, etcdSnapshot, listEtcdSnapshots } from '../../workflows/etcd-snapshot.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { connectClient } from '../temporal.ts';

const whoami = () => process.env.DRCTL_USER ?? process.env.USER ?? userInfo().username;

export const snapshotScheduleId = (cluster: string) => `etcd-snapshot-${cluster}`;

/** Below this, snapshots would overlap their own upload on a real cluster. */
const MIN_EVERY_MS = 60_000;
const CATCHUP_WINDOW = '1 minute';

interface RetentionOpts {
  keep?: string;
  maxAge?: string;
}

function retention(opts: RetentionOpts): Pick<EtcdSnapshotInput, 'keep' | 'maxAgeMs'> {
  const out: Pick<EtcdSnapshotInput, 'keep' | 'maxAgeMs'> = {};
  if (opts.keep !== undefined) {
    const keep = Number(opts.keep);
    if (!/^\d+$/.test(opts.keep) || keep < 1)
      throw new UsageError(`--keep: expected an integer >= 1 (got '${opts.keep}')`);
    out.keep = keep;
  }
  if (opts.maxAge !== undefined) {
    const ms = parseDuration(opts.maxAge);
    if (ms === undefined || ms <= 0)
      throw new UsageError(`--max-age: expected a duration like 7d, 36h (got '${opts.maxAge}')`);
    out.maxAgeMs = ms;
  }
  return out;
}

/**
 * The RPO a snapshot's age is judged against: `--tier`, else the strictest tier with an RPO above
 * zero (an RPO of 0 needs synchronous replication; periodic snapshots can never meet it).
 */
export function rpoTarget(config: DrctlConfig, tier?: string): { tier: string; rpoMs: number } | undefined {
  const targets = Object.entries(config.targets);
  if (tier !== undefined) {
    const t = config.targets[tier];
    if (!t) throw new UsageError(`--tier: unknown tier '${tier}' (known: ${targets.map(([k]) => k).join(', ')})`);
    return { tier, rpoMs: t.rpo };
  }
  const [best] = targets.filter(([, t]) => t.rpo > 0).sort((a, b) => a[1].rpo - b[1].rpo);
  return best ? { tier: best[0], rpoMs: best[1].rpo } : undefined;
}

function specFrom(
  opts: { every?: string; cron?: string },
  config: DrctlConfig,
): { spec: ScheduleSpec; summary: string } {
  if (opts.every !== undefined && opts.cron !== undefined)
    throw new UsageError('--every and --cron: give one or the other, not both');
  if (opts.cron !== undefined) {
    const cron = opts.cron.trim();
    const fields = cron.replace(/^CRON_TZ=\S+\s+/, '').split(/\s+/);
    if (!(cron.startsWith('@') || (fields.length >= 5 && fields.length <= 7))) {
      throw new UsageError(`--cron: expected a cron expression like '*/15 * * * *' or '@hourly' (got '${opts.cron}')`);
    }
    return { spec: { cronExpressions: [cron] }, summary: `cron '${cron}'` };
  }
  const every = opts.every === undefined ? config.snapshots.every : parseDuration(opts.every);
  if (every === undefined) throw new UsageError(`--every: expected a duration like 15m, 1h (got '${opts.every}')`);
  if (every < MIN_EVERY_MS)
    throw new UsageError(`--every: at least ${formatDuration(MIN_EVERY_MS)} (got '${opts.every}')`);
  return { spec: { intervals: [{ every }] }, summary: `every ${formatDuration(every)}` };
}

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

function describeJson(d: ScheduleDescription) {
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
    runningActions: d.info.runningActions.map((a) => a.workflow.workflowId),
    numActionsTaken: d.info.numActionsTaken,
    numActionsSkippedOverlap: d.info.numActionsSkippedOverlap,
  };
}

export function registerSnapshotCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;
  /** Config, the cluster's canonical name (a site name works too) and a client, closed afterwards. */
  async function withClient<T>(
    clusterOpt: string | undefined,
    fn: (ctx: { config: DrctlConfig; cluster: string; client: Client }) => Promise<T>,
  ): Promise<T> {
    const { config } = loadConfig(cfgPath());
    const cluster = clusterOpt === undefined ? '' : findCluster(config, clusterOpt).cluster.name;
    const client = await connectClient(config);
    try {
      return await fn({ config, cluster, client });
    } finally {
      await client.connection.close();
    }
  }
  /** A schedule that must exist: a missing one is a failed outcome (exit 1), naming how to create it. */
  async function scheduleOf(client: Client, cluster: string): Promise<{ id: string; d: ScheduleDescription }> {
    const id = snapshotScheduleId(cluster);
    try {
      return { id, d: await client.schedule.getHandle(id).describe() };
    } catch (err) {
      if (err instanceof ScheduleNotFoundError)
        throw new FailedOutcome(
          `error: no snapshot schedule for cluster '${cluster}' (${id}); create one with \`drctl snapshot schedule --cluster ${cluster}\``,
        );
      throw err;
    }
  }

  const cmd = program.command('snapshot').description('etcd snapshots, streamed off-site: run now, list, schedule');

  cmd
    .command('now')
    .description(
      'Run the etcd snapshot runbook once: pick a follower, snapshot save, verify, upload (sha256-checked), prune',
    )
    .requiredOption('--cluster <name>', 'cluster to snapshot')
    .option('--keep <n>', 'keep the newest N verified snapshots (default: config snapshots.keep)')
    .option(
      '--max-age <duration>',
      'also delete snapshots older than this, never the newest (default: config snapshots.maxAge)',
    )
    .option('--wait', 'wait for the result (else print the workflow id and return)')
    .option('--json', 'print JSON')
    .action(async (opts: RetentionOpts & { cluster: string; wait?: boolean; json?: boolean }) => {
      const input = retention(opts);
      await withClient(opts.cluster, async ({ config, cluster, client }) => {
        const workflowId = `etcd-snapshot-${cluster}-now-${Date.now()}`;
        const handle = await client.workflow.start(etcdSnapshot, {
          taskQueue: config.temporal.taskQueue,
          workflowId,
          args: [{ cluster, ...input }],
          workflowExecutionTimeout: '2 hours',
        });
        if (!opts.wait) {
          if (opts.json) printJson({ workflowId, runId: handle.firstExecutionRunId });
          else process.stdout.write(`${workflowId}\n`);
          return;
        }
        let r;
        try {
          r = await handle.result();
        } catch (err) {
          if (err instanceof WorkflowFailedError)
            throw new FailedOutcome(
              `error: snapshot of ${cluster} failed (workflow ${workflowId}): ${rootMessage(err)}`,
            );
          throw err;
        }
        if (opts.json) {
          return printJson({
            workflowId,
            cluster,
            key: r.key,
            revision: r.revision,
            hash: r.etcdHash,
            sha256: r.sha256,
            size: r.size,
            takenAt: r.takenAt,
            member: r.member,
            etcdVersion: r.etcdVersion,
            pruned: r.pruned,
            pruneError: r.pruneError,
            cleanupError: r.cleanupError,
            timings: r.timings,
          });
        }
        process.stdout.write(
          `${cluster}: s3://${config.objectStore.bucket}/${r.key}\n` +
            `  revision ${r.revision}, etcd hash ${r.etcdHash}, ${r.size} bytes, sha256 ${r.sha256}\n` +
            `  from member ${r.member} (etcd ${r.etcdVersion}) at ${r.takenAt}; took ${formatDuration(Object.values(r.timings).reduce((a, b) => a + b, 0))}\n` +
            (r.pruned.length ? `  pruned ${r.pruned.length}: ${r.pruned.join(', ')}\n` : '') +
            (r.pruneError ? `  ! retention failed: ${r.pruneError}\n` : '') +
            (r.cleanupError ? `  ! ${r.cleanupError}\n` : ''),
        );
      });
    });

  cmd
    .command('list')
    .description(
      "Verified snapshots of a cluster in the bucket, newest first, and the newest one's age against an RPO target. " +
        "The target is --tier's RPO, else the strictest tier with an RPO above zero in config targets (default tiers: e-commerce, 5m): " +
        'an RPO of 0 cannot be met by periodic snapshots. Read through the worker; exit 0 either way (scripts: .rpo.over in --json)',
    )
    .requiredOption('--cluster <name>', 'cluster')
    .option('--tier <tier>', 'workload tier whose RPO to judge against')
    .option('--json', 'print JSON')
    .action(async (opts: { cluster: string; tier?: string; json?: boolean }) => {
      await withClient(opts.cluster, async ({ config, cluster, client }) => {
        const target = rpoTarget(config, opts.tier);
        const snapshots: SnapshotRef[] = await client.workflow.execute(listEtcdSnapshots, {
          taskQueue: config.temporal.taskQueue,
          workflowId: `etcd-snapshot-list-${cluster}-${Date.now()}`,
          args: [{ cluster }],
          workflowExecutionTimeout: '2 minutes',
        });
        const now = Date.now();
        const newest = snapshots[0];
        const newestAgeMs = newest ? now - Date.parse(newest.takenAt) : undefined;
        const over = target ? newestAgeMs === undefined || newestAgeMs > target.rpoMs : false;
        if (opts.json) {
          return printJson({
            cluster,
            bucket: config.objectStore.bucket,
            rpo: target ? { tier: target.tier, targetMs: target.rpoMs, newestAgeMs: newestAgeMs ?? null, over } : null,
            snapshots,
          });
        }
        const age = newestAgeMs === undefined ? 'no verified snapshot' : `newest is ${formatDuration(newestAgeMs)} old`;
        const verdict = target
          ? `${over ? 'OVER' : 'within'} the ${target.tier} RPO of ${formatDuration(target.rpoMs)}`
          : 'no RPO target above zero';
        process.stdout.write(
          `${cluster}: ${snapshots.length} verified snapshot(s) in s3://${config.objectStore.bucket}; ${age} — ${verdict}${over ? ' !' : ''}\n`,
        );
        if (!snapshots.length) return;
        const rows = [['KEY', 'TAKEN', 'AGE', 'REVISION', 'SIZE', 'MEMBER', 'ETCD']];
        for (const s of snapshots) {
          rows.push([
            s.key,
            s.takenAt,
            formatDuration(now - Date.parse(s.takenAt)),
            String(s.revision),
            String(s.size),
            s.member,
            s.etcdVersion,
          ]);
        }
        process.stdout.write(`${table(rows)}\n`);
      });
    });

  cmd
    .command('schedule')
    .description(
      `Create or update the cluster's snapshot schedule (Temporal Schedule etcd-snapshot-<cluster>): overlap SKIP ` +
        `(a run still going when the next is due is skipped, like a CronJob's concurrencyPolicy: Forbid), catch-up window ${CATCHUP_WINDOW}`,
    )
    .requiredOption('--cluster <name>', 'cluster to snapshot')
    .option(
      '--every <duration>',
      `interval, at least ${formatDuration(MIN_EVERY_MS)} (default: config snapshots.every)`,
    )
    .option('--cron <expr>', "cron expression (UTC), e.g. '*/15 * * * *'; instead of --every")
    .option('--keep <n>', 'keep the newest N verified snapshots (default: config snapshots.keep on the worker)')
    .option(
      '--max-age <duration>',
      'also delete snapshots older than this (default: config snapshots.maxAge on the worker)',
    )
    .option('--json', 'print the schedule as JSON')
    .action(async (opts: RetentionOpts & { cluster: string; every?: string; cron?: string; json?: boolean }) => {
      const input = retention(opts);
      await withClient(opts.cluster, async ({ config, cluster, client }) => {
        const { spec, summary } = specFrom(opts, config);
        const id = snapshotScheduleId(cluster);
        const action = {
          type: 'startWorkflow' as const,
          workflowType: etcdSnapshot,
          workflowId: `etcd-snapshot-${cluster}`,
          taskQueue: config.temporal.taskQueue,
          args: [{ cluster, ...input }] as [EtcdSnapshotInput],
          workflowExecutionTimeout: '2 hours',
        };
        const policies = { overlap: 'SKIP' as const, catchupWindow: CATCHUP_WINDOW, pauseOnFailure: false };
        let verb = 'created';
        try {
          await client.schedule.create({
            scheduleId: id,
            spec,
            action,
            policies,
            state: { note: `drctl: etcd snapshots of ${cluster}, ${summary}` },
          });
        } catch (err) {
          if (!(err instanceof ScheduleAlreadyRunning)) throw invalidCron(err, opts.cron);
          verb = 'updated';
          await client.schedule
            .getHandle(id)
            .update((prev) => ({ ...prev, spec, action, policies }))
            .catch((e: unknown) => {
              throw invalidCron(e, opts.cron);
            });
        }
        const { d } = await scheduleOf(client, cluster);
        if (opts.json) return printJson({ ...describeJson(d), result: verb });
        process.stdout.write(
          `${verb} schedule ${id}: ${specSummary(d.spec)}, overlap ${d.policies.overlap}, catch-up ${formatDuration(d.policies.catchupWindow)}` +
            `${d.state.paused ? ', PAUSED' : ''}; next ${d.info.nextActionTimes[0]?.toISOString() ?? '-'}\n`,
        );
      });
    });

  cmd
    .command('describe')
    .description("Show the cluster's snapshot schedule: times, policies, paused, next and recent runs")
    .requiredOption('--cluster <name>', 'cluster')
    .option('--json', 'print JSON')
    .action(async (opts: { cluster: string; json?: boolean }) => {
      await withClient(opts.cluster, async ({ cluster, client }) => {
        const { d } = await scheduleOf(client, cluster);
        const j = describeJson(d);
        if (opts.json) return printJson(j);
        process.stdout.write(
          [
            `${j.scheduleId}: ${j.schedule}${j.paused ? ' — PAUSED' : ''}`,
            `  overlap ${j.overlap}, catch-up window ${formatDuration(j.catchupWindowMs)}, pause on failure ${j.pauseOnFailure ? 'yes' : 'no'}`,
            `  runs ${j.workflowType} on task queue ${j.taskQueue} with ${JSON.stringify(j.args)}`,
            ...(j.note ? [`  note: ${j.note}`] : []),
            `  next: ${j.nextActionTimes.slice(0, 3).join(', ') || '-'}`,
            `  taken ${j.numActionsTaken}, skipped (overlap) ${j.numActionsSkippedOverlap}; running: ${j.runningActions.join(', ') || '-'}`,
            ...j.recentActions.slice(-5).map((a) => `  recent: ${a.takenAt} ${a.workflowId}`),
          ].join('\n') + '\n',
        );
      });
    });

  for (const [name, what] of [
    ['pause', 'Pause'],
    ['unpause', 'Resume'],
  ] as const) {
    cmd
      .command(name)
      .description(`${what} the cluster's snapshot schedule`)
      .requiredOption('--cluster <name>', 'cluster')
      .option('--note <text>', 'why (shown by describe)')
      .action(async (opts: { cluster: string; note?: string }) => {
        await withClient(opts.cluster, async ({ cluster, client }) => {
          const { id } = await scheduleOf(client, cluster);
          const note = opts.note ?? `${name}d with drctl by ${whoami()}`;
          if (name === 'pause') await client.schedule.getHandle(id).pause(note);
          else await client.schedule.getHandle(id).unpause(note);
          process.stdout.write(`${id}: ${name}d\n`);
        });
      });
  }

  cmd
    .command('delete')
    .description("Delete the cluster's snapshot schedule (snapshots already off-site stay)")
    .requiredOption('--cluster <name>', 'cluster')
    .action(async (opts: { cluster: string }) => {
      await withClient(opts.cluster, async ({ cluster, client }) => {
        const { id } = await scheduleOf(client, cluster);
        await client.schedule.getHandle(id).delete();
        process.stdout.write(`${id}: deleted\n`);
      });
    });

  cmd
    .command('schedules')
    .description('Every etcd snapshot schedule in the namespace')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withClient(undefined, async ({ client }) => {
        const out = [];
        for await (const s of client.schedule.list()) {
          if (!s.scheduleId.startsWith('etcd-snapshot-')) continue;
          try {
            out.push(describeJson(await client.schedule.getHandle(s.scheduleId).describe()));
          } catch (err) {
            // Listing is eventually consistent: a schedule deleted a moment ago may still be listed.
            if (!(err instanceof ScheduleNotFoundError)) throw err;
          }
        }
        if (opts.json) return printJson(out);
        const rows = [['SCHEDULE', 'WHEN', 'PAUSED', 'NEXT', 'TAKEN']];
        for (const s of out)
          rows.push([
            s.scheduleId,
            s.schedule,
            s.paused ? 'yes' : 'no',
            s.nextActionTimes[0] ?? '-',
            String(s.numActionsTaken),
          ]);
        process.stdout.write(`${table(rows)}\n`);
      });
    });
}

/** The server is the judge of cron syntax: the SDK raises its "Invalid schedule spec" as a TypeError. */
function invalidCron(err: unknown, cron: string | undefined): unknown {
  if (cron !== undefined && err instanceof TypeError)
    return new UsageError(`--cron: the server rejects '${cron}': ${err.message}`);
  return err;
}
