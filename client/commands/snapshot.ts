// `drctl snapshot …`: run the snapshot runbook now, list what is off-site (through the worker: the
// bucket's credentials never reach the CLI), and manage the per-cluster Temporal Schedule.
import type { Client, ScheduleSpec } from '@temporalio/client';
import type { Command } from 'commander';
import type { BundleSummary } from '../../common/cp-bundle.ts';
import { pickLatest } from '../../common/snapshot-proof.ts';
import { formatDuration, parseDuration } from '../../common/duration.ts';
import { UsageError } from '../../common/errors.ts';
import { MIN_SNAPSHOT_EVERY_MS, type SnapshotListing, snapshotScheduleId } from '../../common/snapshots.ts';
import { findCluster } from '../../config/load.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import {
  type EtcdSnapshotInput,
  type EtcdSnapshotResult,
  etcdSnapshot,
  listEtcdSnapshots,
} from '../../workflows/etcd-snapshot.ts';
import { positiveDuration, positiveInt } from '../flags.ts';
import { printJson, table } from '../output.ts';
import { afterStart, startRun } from '../runbook-kit.ts';
import { checkCron, printSchedule, registerScheduleVerbs, type ScheduleKind, upsertSchedule } from '../schedules.ts';
import { withTemporal } from '../temporal.ts';

const CATCHUP_WINDOW = '1 minute';

interface RetentionOpts {
  keep?: string;
  maxAge?: string;
}

function retention(opts: RetentionOpts): Pick<EtcdSnapshotInput, 'keep' | 'maxAgeMs'> {
  const out: Pick<EtcdSnapshotInput, 'keep' | 'maxAgeMs'> = {};
  if (opts.keep !== undefined) out.keep = positiveInt('--keep', opts.keep);
  if (opts.maxAge !== undefined) out.maxAgeMs = positiveDuration('--max-age', opts.maxAge, '7d, 36h');
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
  maxAgeMs: number | undefined,
): { spec: ScheduleSpec; summary: string } {
  if (opts.every !== undefined && opts.cron !== undefined)
    throw new UsageError('--every and --cron: give one or the other, not both');
  if (opts.cron !== undefined) {
    const cron = checkCron(opts.cron);
    return { spec: { cronExpressions: [cron] }, summary: `cron '${cron}'` };
  }
  // config snapshots.every is at least MIN_SNAPSHOT_EVERY_MS already (the schema).
  const every = opts.every === undefined ? config.snapshots.every : parseDuration(opts.every);
  if (every === undefined) throw new UsageError(`--every: expected a duration like 15m, 1h (got '${opts.every}')`);
  if (every < MIN_SNAPSHOT_EVERY_MS)
    throw new UsageError(`--every: at least ${formatDuration(MIN_SNAPSHOT_EVERY_MS)} (got '${opts.every}')`);
  // Retention shorter than the interval: each run would delete every snapshot but its own.
  const maxAge = maxAgeMs ?? config.snapshots.maxAge;
  if (maxAge !== undefined && maxAge <= every)
    throw new UsageError(
      `${maxAgeMs !== undefined ? '--max-age' : '--every'}: the max age (${formatDuration(maxAge)}) must be longer than the interval (${formatDuration(every)}), else each run deletes every snapshot but the newest`,
    );
  return { spec: { intervals: [{ every }] }, summary: `every ${formatDuration(every)}` };
}

export function registerSnapshotCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;
  /** Config, the cluster's canonical name (a site name works too) and a client, closed afterwards. */
  const withCluster = <T>(
    clusterOpt: string,
    fn: (ctx: { config: DrctlConfig; cluster: string; client: Client }) => Promise<T>,
    check: (config: DrctlConfig) => void = () => undefined,
  ): Promise<T> => {
    let cluster = '';
    return withTemporal(
      cfgPath(),
      (s) => fn({ ...s, cluster }),
      (config) => {
        cluster = findCluster(config, clusterOpt).cluster.name;
        check(config);
      },
    );
  };

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
    .option('--wait', 'follow the run to its end and print the snapshot')
    .option('--json', 'print JSON: { workflowId, runId, runbook, url } (with --wait also status and result)')
    .action(async (opts: RetentionOpts & { cluster: string; wait?: boolean; json?: boolean }) => {
      const input = retention(opts);
      await withCluster(opts.cluster, async (s) => {
        const started = await startRun(s, etcdSnapshot, {
          taskQueue: s.config.temporal.taskQueue,
          workflowId: `etcd-snapshot-${s.cluster}-now-${Date.now()}`,
          args: [{ cluster: s.cluster, ...input }],
          workflowExecutionTimeout: '2 hours',
        });
        await afterStart<EtcdSnapshotResult>(s, started, {
          ...opts,
          human: (r) =>
            `${s.cluster}: s3://${s.config.objectStore.bucket}/${r.key}\n` +
            `  revision ${r.revision}, etcd hash ${r.etcdHash}, ${r.size} bytes, sha256 ${r.sha256}\n` +
            `  from member ${r.member} (etcd ${r.etcdVersion}) at ${r.takenAt}; took ${formatDuration(Object.values(r.timings).reduce((a, b) => a + b, 0))}\n` +
            (r.bundle || r.bundleError
              ? `  control-plane bundle: ${r.bundleError ? `NOT STORED (${r.bundleError}): not enough for a rebuild` : bundleCell(r.bundle)}\n`
              : '') +
            (r.pruned.length ? `  pruned ${r.pruned.length}: ${r.pruned.join(', ')}\n` : '') +
            (r.pruneError ? `  ! retention failed: ${r.pruneError}\n` : '') +
            (r.cleanupError ? `  ! ${r.cleanupError}\n` : ''),
        });
      });
    });

  cmd
    .command('list')
    .description(
      "Verified (signed) snapshots of a cluster in the bucket, newest first, and the newest one's age against an RPO target; " +
        'objects under its prefix that drctl did not sign are listed as ignored, with why. ' +
        "The target is --tier's RPO, else the strictest tier with an RPO above zero in config targets (default tiers: e-commerce, 5m): " +
        'an RPO of 0 cannot be met by periodic snapshots. Read through the worker; exit 0 either way (scripts: .rpo.over in --json)',
    )
    .requiredOption('--cluster <name>', 'cluster')
    .option('--tier <tier>', 'workload tier whose RPO to judge against')
    .option('--json', 'print JSON')
    .action(async (opts: { cluster: string; tier?: string; json?: boolean }) => {
      let target: ReturnType<typeof rpoTarget>;
      await withCluster(
        opts.cluster,
        async ({ config, cluster, client }) => {
          const { snapshots, ignored }: SnapshotListing = await client.workflow.execute(listEtcdSnapshots, {
            taskQueue: config.temporal.taskQueue,
            workflowId: `etcd-snapshot-list-${cluster}-${Date.now()}`,
            args: [{ cluster }],
            workflowExecutionTimeout: '2 minutes',
          });
          const now = Date.now();
          // The RPO counts from what a restore would use: the newest proven restorable.
          const { pick: newest, untested } = pickLatest(snapshots);
          const newestAgeMs = newest ? now - Date.parse(newest.takenAt) : undefined;
          const over = target ? newestAgeMs === undefined || newestAgeMs > target.rpoMs : false;
          if (opts.json) {
            return printJson({
              cluster,
              bucket: config.objectStore.bucket,
              rpo: target
                ? { tier: target.tier, targetMs: target.rpoMs, newestAgeMs: newestAgeMs ?? null, over }
                : null,
              latest: newest ? { key: newest.key, proven: !untested } : null,
              snapshots,
              ignored,
            });
          }
          const age =
            newestAgeMs === undefined
              ? 'no restorable snapshot'
              : `'latest' is ${formatDuration(newestAgeMs)} old${untested ? ' and NOT proven restorable' : ''}`;
          const verdict = target
            ? `${over ? 'OVER' : 'within'} the ${target.tier} RPO of ${formatDuration(target.rpoMs)}`
            : 'no RPO target above zero';
          process.stdout.write(
            `${cluster}: ${snapshots.length} verified snapshot(s) in s3://${config.objectStore.bucket}; ${age} — ${verdict}${over ? ' !' : ''}\n`,
          );
          // Not drctl's, or not drctl's any more: never listed as a snapshot, never restored.
          if (ignored.length) {
            process.stdout.write(`! ${ignored.length} object(s) ignored (not signed by this worker's key):\n`);
            for (const i of ignored) process.stdout.write(`  ${i.key}: ${i.why}\n`);
          }
          if (!snapshots.length) return;
          const rows = [
            ['KEY', 'TAKEN', 'AGE', 'REVISION', 'SIZE', 'MEMBER', 'ETCD', 'RESTORE TEST', 'REBUILD BUNDLE'],
          ];
          for (const s of snapshots) {
            rows.push([
              `${s.key}${s.key === newest?.key ? ' (latest)' : ''}`,
              s.takenAt,
              formatDuration(now - Date.parse(s.takenAt)),
              String(s.revision),
              String(s.size),
              s.member,
              s.etcdVersion,
              !s.proof
                ? 'untested'
                : s.proof.verdict === 'restorable'
                  ? `restorable (${s.proof.keys} keys, ${s.proof.provedAt})`
                  : `UNRESTORABLE: ${s.proof.detail}`,
              bundleCell(s.bundle),
            ]);
          }
          process.stdout.write(`${table(rows)}\n`);
          const noRebuild = snapshots.filter((s) => !s.bundle?.complete).length;
          if (noRebuild)
            process.stdout.write(
              `! ${noRebuild} snapshot(s) without a complete control-plane bundle: enough for a restore on the same nodes, not for \`drctl cluster rebuild\` on new hardware\n`,
            );
        },
        (config) => void (target = rpoTarget(config, opts.tier)),
      );
    });

  const schedule = cmd
    .command('schedule')
    .description(
      `The cluster's snapshot schedule (Temporal Schedule etcd-snapshot-<cluster>): set (the default verb), describe, pause, unpause, trigger, delete, list`,
    );
  schedule
    .command('set', { isDefault: true })
    .description(
      `Create or update the cluster's snapshot schedule: overlap SKIP (a run still going when the next is due is skipped, ` +
        `like a CronJob's concurrencyPolicy: Forbid), catch-up window ${CATCHUP_WINDOW}`,
    )
    .requiredOption('--cluster <name>', 'cluster to snapshot')
    .option(
      '--every <duration>',
      `interval, at least ${formatDuration(MIN_SNAPSHOT_EVERY_MS)} (default: config snapshots.every)`,
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
      let when: ReturnType<typeof specFrom>;
      await withCluster(
        opts.cluster,
        async ({ config, cluster, client }) => {
          const { result, description } = await upsertSchedule(client, snapshotScheduleId(cluster), {
            spec: when.spec,
            cron: opts.cron,
            catchupWindow: CATCHUP_WINDOW,
            note: `drctl: etcd snapshots of ${cluster}, ${when.summary}`,
            action: {
              type: 'startWorkflow',
              workflowType: etcdSnapshot,
              workflowId: `etcd-snapshot-${cluster}`,
              taskQueue: config.temporal.taskQueue,
              args: [{ cluster, ...input }],
              workflowExecutionTimeout: '2 hours',
            },
          });
          printSchedule(result, description, opts.json);
        },
        (config) => void (when = specFrom(opts, config, input.maxAgeMs)),
      );
    });

  const kind: ScheduleKind = {
    noun: 'snapshot',
    workflowType: 'etcdSnapshot',
    flag: '--cluster <name>',
    key: 'cluster',
    idOf: (config, cluster) => snapshotScheduleId(findCluster(config, cluster).cluster.name),
  };
  registerScheduleVerbs(schedule, kind, cfgPath);
  // The spellings before `snapshot schedule <verb>`.
  registerScheduleVerbs(cmd, kind, cfgPath, { hidden: true, rename: { list: 'schedules' } });
}

/** The REBUILD BUNDLE column: a snapshot without a complete bundle is not enough for a rebuild. */
export function bundleCell(b: BundleSummary | undefined): string {
  if (!b) return 'NONE: not enough for a rebuild';
  if (!b.complete) return `INCOMPLETE: ${b.missing.join('; ')}`;
  return `complete (${b.items} items from ${b.fromNode})`;
}
