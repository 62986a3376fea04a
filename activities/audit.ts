// The readiness audit's eyes (common/audit.ts judges): each site's Velero schedules and storage
// location, its snapshot schedule, its namespace protection and who may delete namespaces; DNS
// TTLs; the drills' reports. Then the fix the audit offers: namespace protection, installed and
// removed only as this run made it.
import { CronExpressionParser } from 'cron-parser';
import {
  type AuditObservations,
  type AuditReport,
  auditReport,
  auditReportKey,
  MANAGED_BY,
  PROTECTED_LABEL,
  PROTECTION_POLICY,
  protectionBinding,
  protectionPolicy,
  type VeleroScheduleInfo,
} from '../common/audit.ts';
import { parseDuration } from '../common/duration.ts';
import { FailureType, failure } from '../common/errors.ts';
import type { Gateways } from '../gateways/index.ts';
import type { VeleroObject } from '../gateways/velero.ts';
import { lastDrillReport, observed, protectedSets, snapshotSchedule } from './dr-state.ts';
import { done, notYet, pollUntil } from './support.ts';

const hostOf = (u: string | undefined) => {
  try {
    return u ? new URL(u).hostname : undefined;
  } catch {
    return undefined;
  }
};

/** Seconds between a cron's next two runs (Velero also takes `@every 5m`). */
export function cronIntervalSeconds(cron: string, from = new Date()): number | undefined {
  const every = cron.match(/^@every\s+(\S+)$/);
  if (every) {
    const ms = parseDuration(every[1]!);
    return ms === undefined ? undefined : ms / 1000;
  }
  try {
    const it = CronExpressionParser.parse(cron, { currentDate: from, tz: 'UTC' });
    const [a, b] = [it.next().getTime(), it.next().getTime()];
    return (b - a) / 1000;
  } catch {
    return undefined;
  }
}

export function veleroSchedule(o: VeleroObject): VeleroScheduleInfo {
  const spec = (o.spec ?? {}) as {
    schedule?: string;
    paused?: boolean;
    template?: {
      includedNamespaces?: string[];
      defaultVolumesToFsBackup?: boolean;
      snapshotVolumes?: boolean;
      ttl?: string;
    };
  };
  const cron = spec.schedule ?? '';
  const ttl = spec.template?.ttl
    ? parseDuration(spec.template.ttl) // Go's form, 168h0m0s
    : undefined;
  return {
    name: o.metadata.name,
    cron,
    paused: spec.paused === true,
    includedNamespaces: spec.template?.includedNamespaces ?? ['*'],
    intervalSeconds: cronIntervalSeconds(cron),
    fsBackup: spec.template?.defaultVolumesToFsBackup === true,
    // Velero's default for snapshotVolumes (unset) is to snapshot when a VolumeSnapshotLocation exists.
    snapshotVolumes: spec.template?.snapshotVolumes === true,
    // Velero's default ttl is 720h; one it cannot parse is left out (no row), never guessed.
    ttlSeconds: !spec.template?.ttl ? 30 * 86_400 : ttl === undefined ? undefined : ttl / 1000,
  };
}

export function createAuditActivities(gw: Gateways) {
  return {
    /** Looks at everything the audit judges (read-only) and judges it. */
    async auditReadiness(): Promise<AuditReport> {
      const config = gw.config;
      const sets = protectedSets(config);
      const sites = await Promise.all(
        config.sites.map(async (s) => {
          const kube = gw.kube(s.cluster.name);
          const velero = gw.velero(s.name);
          const served = [...new Set(sets.filter((p) => p.from === s.name).flatMap((p) => p.namespaces))];
          const [storageHost, veleroSchedules, snap, protection, deleters, server] = await Promise.all([
            observed(`velero/${s.name} storage location`, async () => {
              const bsl = await velero.get('backupstoragelocations', s.velero.storageLocation);
              return hostOf((bsl?.spec as { config?: { s3Url?: string } } | undefined)?.config?.s3Url);
            }),
            observed(`velero/${s.name} schedules`, async () => (await velero.list('schedules')).map(veleroSchedule)),
            observed(`snapshot-schedule/${s.cluster.name}`, () => snapshotSchedule(gw, s.cluster.name)),
            observed(`namespace protection/${s.cluster.name}`, async () => {
              const p = await kube.admissionPolicy(PROTECTION_POLICY);
              const labelled = Object.fromEntries(
                await Promise.all(
                  served.map(async (ns) => [
                    ns,
                    (await kube.namespace(ns))?.labels[PROTECTED_LABEL.key] === PROTECTED_LABEL.value,
                  ]),
                ),
              ) as Record<string, boolean>;
              return { policy: !!p.policy, binding: !!p.binding, labelled };
            }),
            observed(`rbac/${s.cluster.name}`, () => kube.namespaceDeleters()),
            Promise.resolve(hostOf(kube.server)),
          ]);
          const hosts = [
            ...s.cluster.nodes.flatMap((n) => [
              n.ssh.host,
              ...(n.ssh.jump ? [n.ssh.jump.host] : []),
              hostOf(n.etcd.clientUrl),
              hostOf(n.etcd.peerUrl),
            ]),
            server,
            s.appAddress,
          ].filter((h): h is string => !!h && h !== 'localhost' && !h.startsWith('127.0.0.'));
          return {
            site: s.name,
            cluster: s.cluster.name,
            hosts: [...new Set(hosts)],
            storageHost,
            veleroSchedules,
            snapshotSchedule: snap,
            protection,
            deleters,
          };
        }),
      );
      const o: AuditObservations = {
        now: Date.now(),
        offsiteHost: hostOf(config.objectStore.endpoint) ?? config.objectStore.endpoint,
        sites,
        records: await Promise.all(
          (config.dns?.records ?? []).map(async (r) => ({
            name: r.name,
            ttl: await observed('dns', async () => (await gw.dns().getA(r.name))?.ttl),
          })),
        ),
        drills: await Promise.all(
          config.drills.map(async (d) => ({
            plan: d.name,
            last: await observed(`drills/${d.name}`, () => lastDrillReport(gw, d.name)),
          })),
        ),
        protectedSets: sets.map((p) => ({
          from: p.from,
          namespaces: p.namespaces,
          tier: p.tier,
          rpoSeconds: (config.targets[p.tier]?.rpo ?? 0) / 1000,
        })),
        snapshotRetention: {
          keep: config.snapshots.keep,
          everySeconds: config.snapshots.every / 1000,
          ...(config.snapshots.maxAge ? { maxAgeSeconds: config.snapshots.maxAge / 1000 } : {}),
        },
      };
      return auditReport(o);
    },

    /** Keeps the report in the off-site bucket (the worker's metrics show the newest one). */
    async writeAuditReport(input: { report: AuditReport }): Promise<{ key: string }> {
      const key = auditReportKey(gw.config.objectStore.prefix, input.report.at);
      await gw.store().put(key, `${JSON.stringify(input.report, null, 2)}\n`, {
        pass: String(input.report.counts.pass),
        warn: String(input.report.counts.warn),
        fail: String(input.report.counts.fail),
      });
      return { key };
    },

    /** What protecting the site's served namespaces would change (read-only). */
    async protectionPreflight(input: { site: string }): Promise<{
      cluster: string;
      namespaces: { name: string; exists: boolean; labelled: boolean }[];
      policy: boolean;
      binding: boolean;
    }> {
      const s = gw.site(input.site);
      const kube = gw.kube(s.cluster.name);
      const served = [
        ...new Set(
          protectedSets(gw.config)
            .filter((p) => p.from === input.site)
            .flatMap((p) => p.namespaces),
        ),
      ];
      if (!served.length)
        throw failure(
          FailureType.PreflightFailed,
          `no namespace set is served from ${input.site} (failover.namespaces and drills[].workloads name them)`,
        );
      const p = await kube.admissionPolicy(PROTECTION_POLICY);
      const namespaces = await Promise.all(
        served.map(async (name) => {
          const n = await kube.namespace(name);
          return { name, exists: !!n, labelled: n?.labels[PROTECTED_LABEL.key] === PROTECTED_LABEL.value };
        }),
      );
      return { cluster: s.cluster.name, namespaces, policy: !!p.policy, binding: !!p.binding };
    },

    /** Creates the policy and its binding; says which of them this call created. */
    async installProtectionPolicy(input: { site: string }): Promise<{ policy: boolean; binding: boolean }> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      const r = await kube.createAdmissionPolicy(protectionPolicy(), protectionBinding());
      return { policy: r.policy === 'created', binding: r.binding === 'created' };
    },

    /** Undo: removes the policy and binding, only when the run created them (`created`). */
    async removeProtectionPolicy(input: { site: string; created: { policy: boolean; binding: boolean } }) {
      if (!input.created.policy && !input.created.binding) return;
      // And only what carries drctl's label: one a person made meanwhile under this name stays.
      const kube = gw.kube(gw.site(input.site).cluster.name);
      const now = await kube.admissionPolicy(PROTECTION_POLICY);
      const ours = (labels?: Record<string, string>) => labels?.[MANAGED_BY] === 'drctl';
      await kube.deleteAdmissionPolicy(PROTECTION_POLICY, {
        policy: input.created.policy && ours(now.policy),
        binding: input.created.binding && ours(now.binding),
      });
    },

    async labelProtected(input: { site: string; namespaces: string[] }): Promise<void> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      for (const ns of input.namespaces)
        await kube.labelNamespace(ns, { [PROTECTED_LABEL.key]: PROTECTED_LABEL.value });
    },

    /** Undo: removes the label from the namespaces this run labelled. */
    async unlabelProtected(input: { site: string; namespaces: string[] }): Promise<void> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      for (const ns of input.namespaces) await kube.unlabelNamespace(ns, [PROTECTED_LABEL.key]);
    },

    /**
     * Proves the protection: a server-side dry-run delete of each protected namespace is denied by
     * the policy (the API server evaluates admission for dry runs; nothing is deleted).
     */
    async verifyProtection(input: { site: string; namespaces: string[] }): Promise<Record<string, string>> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      // An API server takes a moment to load a new policy (seen on the lab: the first dry run, made
      // right after the create, was allowed): wait for the denial, then report it.
      return pollUntil(
        { what: `the API server to deny deleting ${input.namespaces.join(', ')}`, timeoutMs: 60_000, every: 1000 },
        async () => {
          const out: Record<string, string> = {};
          const allowed: string[] = [];
          for (const ns of input.namespaces) {
            const r = await kube.dryRunDeleteNamespace(ns);
            if (r.allowed) allowed.push(ns);
            else out[ns] = `delete denied: ${r.message.slice(0, 400)}`;
          }
          return allowed.length ? notYet(`a dry-run delete is still allowed: ${allowed.join(', ')}`) : done(out);
        },
      );
    },
  };
}
