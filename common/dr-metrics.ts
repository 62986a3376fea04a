// The DR state drctl's worker exports to Prometheus, derived from what it observed (the off-site
// bucket, each site's Velero, DNS, Temporal). Pure: the worker's collector (worker/metrics.ts)
// gathers the observations, this turns them into samples, the tests check both. Ages are of the
// data (a snapshot's takenAt, a backup's start: what a restore would bring back), so an age over a
// tier's RPO target is a breach.
import { type DrillReport, failureCause } from './drill.ts';
import type { ListedSnapshot } from './snapshots.ts';

/** One gauge drctl exports: its name, help text and label names. */
export interface MetricDef {
  name: string;
  help: string;
  labels: readonly string[];
}

const def = (name: string, labels: readonly string[], help: string): MetricDef => ({ name, labels, help });

/** Every DR gauge, in the order `/metrics` lists them (the runbook counters are in worker/metrics.ts). */
export const DR_GAUGES = {
  snapshotAge: def(
    'drctl_etcd_snapshot_age_seconds',
    ['cluster'],
    'Age of the newest verified etcd snapshot in the off-site bucket (+Inf when there is none)',
  ),
  snapshotRestorableAge: def(
    'drctl_etcd_snapshot_restorable_age_seconds',
    ['cluster'],
    'Age of the newest snapshot proven restorable by a test-restore (+Inf when none is)',
  ),
  snapshotRestorableSize: def(
    'drctl_etcd_snapshot_restorable_size_bytes',
    ['cluster'],
    'Size of the newest snapshot proven restorable',
  ),
  snapshotRestorableRevision: def(
    'drctl_etcd_snapshot_restorable_revision',
    ['cluster'],
    'etcd revision of the newest snapshot proven restorable',
  ),
  snapshotNewestProof: def(
    'drctl_etcd_snapshot_newest_proof',
    ['cluster', 'verdict'],
    '1 for the newest snapshot test-restore verdict: restorable, unrestorable or untested',
  ),
  snapshotCount: def('drctl_etcd_snapshots_kept', ['cluster'], 'Verified snapshots kept in the off-site bucket'),
  snapshotLastRunSuccess: def(
    'drctl_etcd_snapshot_last_run_success',
    ['cluster'],
    '1 when the last finished snapshot run completed, 0 when it failed',
  ),
  snapshotLastRunTimestamp: def(
    'drctl_etcd_snapshot_last_run_timestamp_seconds',
    ['cluster'],
    'When the last finished snapshot run ended (Unix seconds)',
  ),
  snapshotInterval: def(
    'drctl_etcd_snapshot_interval_seconds',
    ['cluster'],
    "Expected time between snapshots: the schedule's, else the config's snapshots.every",
  ),
  snapshotSchedule: def(
    'drctl_etcd_snapshot_schedule',
    ['cluster', 'state'],
    '1 for the state of the cluster snapshot schedule: active, paused or missing',
  ),
  backupAge: def(
    'drctl_velero_backup_age_seconds',
    ['site', 'namespaces', 'tier'],
    'Age of the data in the newest Completed Velero backup of the namespaces, as the DR site sees it (+Inf when none)',
  ),
  rpoTarget: def('drctl_rpo_target_seconds', ['tier'], 'RPO target of the tier'),
  rpoBreached: def(
    'drctl_rpo_breached',
    ['site', 'namespaces', 'tier'],
    "1 when the newest backup the DR site could restore is older than the tier's RPO target",
  ),
  drillLastEnd: def(
    'drctl_drill_last_end_timestamp_seconds',
    ['plan'],
    "When the plan's last drill ended (Unix seconds; 0 when it never ran)",
  ),
  drillLastPassed: def('drctl_drill_last_passed', ['plan'], "1 when the plan's last drill passed, 0 when not"),
  drillLastCause: def(
    'drctl_drill_last_failing_check',
    ['plan', 'check'],
    "1 for the check that failed the plan's last drill first (its report leads with it and what to do)",
  ),
  drillLastRto: def('drctl_drill_last_rto_seconds', ['plan', 'tier'], 'RTO the last drill measured, per tier'),
  drillLastRpo: def('drctl_drill_last_rpo_seconds', ['plan', 'tier'], 'RPO the last drill measured, per tier'),
  dnsRecordSite: def(
    'drctl_dns_record_site',
    ['record', 'site'],
    "1 for the site an app record points at (site 'none': no record; 'unknown': an address of no site)",
  ),
  healthWatchRunning: def(
    'drctl_health_watch_running',
    [],
    '1 while a health watch (the automatic failover trigger) runs, 0 when none does',
  ),
  auditCheck: def(
    'drctl_audit_check',
    ['check', 'target', 'result'],
    '1 for each row of the newest readiness audit, by its result: pass, warn or fail (drctl audit)',
  ),
  collectUp: def(
    'drctl_collect_up',
    ['source'],
    '1 when the last collection from the source succeeded; 0 when it failed (its metrics are missing)',
  ),
} as const satisfies Record<string, MetricDef>;
export type GaugeKey = keyof typeof DR_GAUGES;

export interface Sample {
  gauge: GaugeKey;
  labels: Record<string, string>;
  value: number;
}

/** A source of observations, or why it could not be read (its metrics are then left out). */
export type Observed<T> = { ok: true; value: T } | { ok: false; error: string };

export interface ClusterObservation {
  cluster: string;
  snapshots: Observed<ListedSnapshot[]>;
  /** The newest finished snapshot run (Temporal). */
  lastRun: Observed<{ phase: string; endedAt: number } | undefined>;
  /** The snapshot schedule (Temporal), or undefined when there is none. */
  schedule: Observed<{ paused: boolean; intervalSeconds?: number } | undefined>;
  /** config snapshots.every, for a cluster without a schedule. */
  configuredEverySeconds: number;
}

/** A namespace set a tier protects (the failover's, a drill workload's) and the DR site that restores it. */
export interface BackupObservation {
  site: string;
  namespaces: string[];
  tier: string;
  rpoTargetSeconds: number;
  /** The newest Completed backup holding every namespace, at the DR site's storage location. */
  newest: Observed<{ name: string; startedAt: string } | undefined>;
}

export interface Observations {
  now: number;
  clusters: ClusterObservation[];
  backups: BackupObservation[];
  drills: { plan: string; last: Observed<DrillReport | undefined> }[];
  dns: { record: string; addresses: Observed<string[]> }[];
  /** Every site's app address, to name the site a record points at. */
  appAddresses: { site: string; address: string }[];
  /** Undefined: no failover configured, so no health watch is expected. */
  healthWatch?: Observed<boolean>;
  targets: Record<string, { rpoSeconds: number }>;
  /** The newest readiness audit's rows (drctl audit, its daily Schedule), from the bucket. */
  audit?: Observed<{ check: string; target: string; result: string }[] | undefined>;
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;
const ageOf = (now: number, iso: string) => Math.max(0, seconds(now - Date.parse(iso)));

/** The samples for a collection; a source that failed adds `collect_up 0` and none of its own. */
export function drSamples(o: Observations): Sample[] {
  const out: Sample[] = [];
  const add = (gauge: GaugeKey, labels: Record<string, string>, value: number) => out.push({ gauge, labels, value });
  const up = (source: string, r: Observed<unknown>) => add('collectUp', { source }, r.ok ? 1 : 0);

  for (const c of o.clusters) {
    const cluster = c.cluster;
    up(`snapshots/${cluster}`, c.snapshots);
    if (c.snapshots.ok) {
      const list = c.snapshots.value;
      const newest = list[0];
      const proven = list.find((s) => s.proof?.verdict === 'restorable');
      add('snapshotCount', { cluster }, list.length);
      add('snapshotAge', { cluster }, newest ? ageOf(o.now, newest.takenAt) : Infinity);
      add('snapshotRestorableAge', { cluster }, proven ? ageOf(o.now, proven.takenAt) : Infinity);
      if (proven) {
        add('snapshotRestorableSize', { cluster }, proven.size);
        add('snapshotRestorableRevision', { cluster }, proven.revision);
      }
      if (newest) add('snapshotNewestProof', { cluster, verdict: newest.proof?.verdict ?? 'untested' }, 1);
    }
    up(`snapshot-runs/${cluster}`, c.lastRun);
    if (c.lastRun.ok && c.lastRun.value) {
      add('snapshotLastRunSuccess', { cluster }, c.lastRun.value.phase === 'completed' ? 1 : 0);
      add('snapshotLastRunTimestamp', { cluster }, seconds(c.lastRun.value.endedAt));
    }
    up(`snapshot-schedule/${cluster}`, c.schedule);
    if (c.schedule.ok) {
      const s = c.schedule.value;
      add('snapshotSchedule', { cluster, state: !s ? 'missing' : s.paused ? 'paused' : 'active' }, 1);
      add('snapshotInterval', { cluster }, s?.intervalSeconds ?? c.configuredEverySeconds);
    }
  }

  for (const tier of [...new Set(o.backups.map((b) => b.tier))].sort())
    add('rpoTarget', { tier }, o.targets[tier]?.rpoSeconds ?? NaN);
  for (const b of o.backups) {
    const labels = { site: b.site, namespaces: b.namespaces.join(','), tier: b.tier };
    up(`velero/${b.site}`, b.newest);
    if (!b.newest.ok) continue;
    const age = b.newest.value ? ageOf(o.now, b.newest.value.startedAt) : Infinity;
    add('backupAge', labels, age);
    add('rpoBreached', labels, age > b.rpoTargetSeconds ? 1 : 0);
  }

  for (const d of o.drills) {
    up(`drills/${d.plan}`, d.last);
    if (!d.last.ok) continue;
    const r = d.last.value;
    add('drillLastEnd', { plan: d.plan }, r ? seconds(Date.parse(r.endedAt)) : 0);
    if (!r) continue;
    add('drillLastPassed', { plan: d.plan }, r.outcome === 'passed' ? 1 : 0);
    const cause = r.outcome === 'passed' ? undefined : (r.cause ?? failureCause(r));
    if (cause) add('drillLastCause', { plan: d.plan, check: cause.check }, 1);
    for (const t of r.tiers) {
      if (t.rtoSeconds !== undefined) add('drillLastRto', { plan: d.plan, tier: t.tier }, t.rtoSeconds);
      if (t.rpoSeconds !== undefined) add('drillLastRpo', { plan: d.plan, tier: t.tier }, t.rpoSeconds);
    }
  }

  up('dns', o.dns.every((d) => d.addresses.ok) ? { ok: true, value: 0 } : { ok: false, error: '' });
  for (const d of o.dns) {
    if (!d.addresses.ok) continue;
    add('dnsRecordSite', { record: d.record, site: recordSite(d.addresses.value, o.appAddresses) }, 1);
  }

  if (o.audit) {
    up('audit', o.audit);
    if (o.audit.ok)
      for (const r of o.audit.value ?? []) add('auditCheck', { check: r.check, target: r.target, result: r.result }, 1);
  }
  if (o.healthWatch) {
    up('health-watch', o.healthWatch);
    if (o.healthWatch.ok) add('healthWatchRunning', {}, o.healthWatch.value ? 1 : 0);
  }
  return out;
}

/** The site whose app address a record answers; 'none' without an address, 'unknown' for another one. */
export function recordSite(addresses: string[], sites: { site: string; address: string }[]): string {
  if (!addresses.length) return 'none';
  const named = [...new Set(addresses.map((a) => sites.find((s) => s.address === a)?.site ?? 'unknown'))];
  return named.length === 1 ? named[0]! : 'unknown';
}

/** The time between a schedule's next two actions (works for intervals and calendars alike). */
export function intervalOf(nextActionTimes: Date[]): number | undefined {
  const [a, b] = nextActionTimes;
  return a && b ? Math.round((b.getTime() - a.getTime()) / 1000) : undefined;
}
