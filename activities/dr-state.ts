// Readers of the DR state that the audit and the worker's metrics share: which namespace sets the
// tiers protect, a plan's newest drill report, a cluster's snapshot schedule. Read-only.
import { type AuditReport, auditPrefix } from '../common/audit.ts';
import { type DrillReport, drillReportsPrefix } from '../common/drill.ts';
import { snapshotScheduleId } from '../common/snapshots.ts';
import type { DrctlConfig } from '../config/schema.ts';
import type { Gateways } from '../gateways/index.ts';

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

export async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** The plan's newest drill report in the off-site bucket (the bucket outlives Temporal's retention). */
export async function lastDrillReport(gw: Gateways, plan: string): Promise<DrillReport | undefined> {
  const store = gw.store();
  const prefix = drillReportsPrefix(gw.config.objectStore.prefix, plan);
  const reports = (await store.list(prefix))
    .filter((o) => o.key.endsWith('/report.json'))
    .sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0));
  if (!reports[0]) return undefined;
  return JSON.parse(await text(await store.get(reports[0].key))) as DrillReport;
}

/** The cluster's snapshot schedule (undefined: none). */
export const snapshotSchedule = (gw: Gateways, cluster: string) => gw.temporal().schedule(snapshotScheduleId(cluster));

/** The cluster's newest finished snapshot run. */
export const lastSnapshotRun = (gw: Gateways, cluster: string) =>
  gw.temporal().lastClosed(`WorkflowType = 'etcdSnapshot' AND DrctlCluster = '${cluster.replace(/'/g, '')}'`);

/** The newest readiness audit report in the off-site bucket (drctl audit, its daily Schedule). */
export async function lastAuditReport(gw: Gateways): Promise<AuditReport | undefined> {
  const store = gw.store();
  const reports = (await store.list(auditPrefix(gw.config.objectStore.prefix)))
    .filter((o) => o.key.endsWith('.json'))
    .sort((a, b) => (a.key < b.key ? 1 : -1));
  if (!reports[0]) return undefined;
  return JSON.parse(await text(await store.get(reports[0].key))) as AuditReport;
}
