// Readers of the DR state that the audit and the worker's metrics share: which namespace sets the
// tiers protect, a plan's newest drill report, a cluster's snapshot schedule. Read-only.
import { type AuditReport, auditPrefix } from '../common/audit.ts';
import { type DrillReport, drillReportsPrefix } from '../common/drill.ts';
import { snapshotScheduleId } from '../common/snapshots.ts';
import type { DrctlConfig } from '../config/schema.ts';
import type { Observed } from '../common/dr-metrics.ts';
import { rootMessage } from '../common/errors.ts';
import { log } from '../common/log.ts';
import type { Gateways } from '../gateways/index.ts';
import { readText } from '../gateways/s3.ts';

export interface ProtectedSet {
  /** The site that serves (and backs up) the namespaces. */
  from: string;
  /** The DR site that would restore them. */
  to: string;
  namespaces: string[];
  tier: string;
}

/** The namespace sets the tiers protect: the failover's and each drill workload's. */
export function protectedSets(config: DrctlConfig): ProtectedSet[] {
  const out = new Map<string, ProtectedSet>();
  const add = (from: string, to: string, namespaces: string[], tier: string) => {
    const ns = [...namespaces].sort();
    out.set(`${from}|${to}|${ns.join(',')}|${tier}`, { from, to, namespaces: ns, tier });
  };
  const primary = config.sites.find((s) => s.role === 'primary')?.name;
  if (config.failover && primary)
    for (const s of config.sites.filter((x) => x.role !== 'primary'))
      add(primary, s.name, config.failover.namespaces, config.failover.tier);
  for (const d of config.drills) for (const w of d.workloads) add(d.from, d.to, w.namespaces, w.tier);
  return [...out.values()];
}

/** Reports are kilobytes; a bigger object under their prefix is not one of drctl's. */
const MAX_REPORT_BYTES = 16 * 1024 * 1024;

/** The JSON object at `key` in the bucket. */
async function readJson<T>(gw: Gateways, key: string): Promise<T> {
  const text = await readText(await gw.store().get(key), MAX_REPORT_BYTES);
  if (text === undefined) throw new Error(`${key}: over ${MAX_REPORT_BYTES} bytes, not a drctl report`);
  return JSON.parse(text) as T;
}

/** How long one source may take before it counts as unreadable. */
const SOURCE_TIMEOUT_MS = 15_000;

/**
 * A source's answer, or why it could not be read (logged), never after SOURCE_TIMEOUT_MS: the
 * audit and the metrics report an unreadable source as such, never a guess.
 */
export async function observed<T>(what: string, p: () => Promise<T>): Promise<Observed<T>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const value = await Promise.race([
      p(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${SOURCE_TIMEOUT_MS / 1000} s`)), SOURCE_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, value };
  } catch (err) {
    const error = rootMessage(err).slice(0, 300);
    log.warn({ source: what, err: error }, 'a DR source could not be read');
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

/** The plan's newest drill report in the off-site bucket (the bucket outlives Temporal's retention). */
export async function lastDrillReport(gw: Gateways, plan: string): Promise<DrillReport | undefined> {
  const prefix = drillReportsPrefix(gw.config.objectStore.prefix, plan);
  const reports = (await gw.store().list(prefix))
    .filter((o) => o.key.endsWith('/report.json'))
    .sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0));
  if (!reports[0]) return undefined;
  return readJson<DrillReport>(gw, reports[0].key);
}

/** The cluster's snapshot schedule (undefined: none). */
export const snapshotSchedule = (gw: Gateways, cluster: string) => gw.temporal().schedule(snapshotScheduleId(cluster));

/** The cluster's newest finished snapshot run. */
export const lastSnapshotRun = (gw: Gateways, cluster: string) =>
  gw.temporal().lastClosed(`WorkflowType = 'etcdSnapshot' AND DrctlCluster = '${cluster.replace(/'/g, '')}'`);

/** The newest readiness audit report in the off-site bucket (drctl audit, its daily Schedule). */
export async function lastAuditReport(gw: Gateways): Promise<AuditReport | undefined> {
  const reports = (await gw.store().list(auditPrefix(gw.config.objectStore.prefix)))
    .filter((o) => o.key.endsWith('.json'))
    .sort((a, b) => (a.key < b.key ? 1 : -1));
  if (!reports[0]) return undefined;
  return readJson<AuditReport>(gw, reports[0].key);
}
