// The DR readiness audit: the seed's "Common Mistakes" table checked against the live setup, one
// row per check and target, each pass/warn/fail with what was seen and how to fix it. Pure: the
// audit activity (activities/audit.ts) observes, this judges; `drctl audit`, the daily Schedule's
// report in the bucket and the worker's drctl_audit_check gauge all show these rows.
import type { DrillReport } from './drill.ts';
import type { Signed } from './signed.ts';
import type { Observed } from './dr-metrics.ts';
import { formatDuration } from './duration.ts';

export const AUDIT_CHECKS = [
  'backup-domain',
  'dns-ttl',
  'drill-recency',
  'pv-backups',
  'backup-methods',
  'backup-interval',
  'snapshot-retention',
  'namespace-protection',
  'namespace-deleters',
] as const;
export type AuditCheck = (typeof AUDIT_CHECKS)[number];
export type AuditResult = 'pass' | 'warn' | 'fail';

export interface AuditRow {
  check: AuditCheck;
  /** What the row is about: a site, a record, a plan, a namespace set. */
  target: string;
  result: AuditResult;
  /** What was seen, in one line. */
  seen: string;
  /** How to fix it (a warn or a fail). */
  fix?: string;
}

export interface AuditReport {
  kind: 'drctl.audit/v1';
  at: string;
  rows: AuditRow[];
  counts: Record<AuditResult, number>;
}

/** The label a namespace carries to be protected against deletion, and the policy that enforces it. */
export const PROTECTED_LABEL = { key: 'protected', value: 'true' } as const;
export const PROTECTION_POLICY = 'drctl-protect-namespaces';
/** The label on what drctl creates in a cluster: its undo removes only objects that carry it. */
export const MANAGED_BY = 'app.kubernetes.io/managed-by';

/** A ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) that denies deleting a protected namespace. */
export function protectionPolicy() {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: PROTECTION_POLICY, labels: { [MANAGED_BY]: 'drctl' } },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['namespaces'] }],
      },
      validations: [
        {
          expression: `!has(oldObject.metadata.labels) || !('${PROTECTED_LABEL.key}' in oldObject.metadata.labels) || oldObject.metadata.labels['${PROTECTED_LABEL.key}'] != '${PROTECTED_LABEL.value}'`,
          messageExpression: `'namespace ' + oldObject.metadata.name + ' is labelled ${PROTECTED_LABEL.key}=${PROTECTED_LABEL.value}: remove the label first (drctl audit, namespace-protection)'`,
          reason: 'Forbidden',
        },
      ],
    },
  };
}

export function protectionBinding() {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: PROTECTION_POLICY, labels: { [MANAGED_BY]: 'drctl' } },
    spec: { policyName: PROTECTION_POLICY, validationActions: ['Deny'] },
  };
}

export interface VeleroScheduleInfo {
  name: string;
  cron: string;
  paused: boolean;
  includedNamespaces: string[];
  /** The time between two runs, from the cron (undefined when it cannot be read). */
  intervalSeconds?: number;
  fsBackup: boolean;
  snapshotVolumes: boolean;
  /** The template's ttl: how long each backup is kept. */
  ttlSeconds?: number;
}

export interface SiteAudit {
  site: string;
  cluster: string;
  /** Hosts of the site's failure domain: its nodes, API server, etcd URLs, app address. */
  hosts: string[];
  /** The host of the site's Velero backup storage location (undefined when unknown). */
  storageHost: Observed<string | undefined>;
  veleroSchedules: Observed<VeleroScheduleInfo[]>;
  snapshotSchedule: Observed<{ paused: boolean; intervalSeconds?: number } | undefined>;
  protection: Observed<{ policy: boolean; binding: boolean; labelled: Record<string, boolean> }>;
  /** Subjects bound to a role that may delete namespaces (kind:name, namespace/name for service accounts). */
  deleters: Observed<string[]>;
}

export interface AuditObservations {
  now: number;
  offsiteHost: string;
  sites: SiteAudit[];
  records: { name: string; ttl: Observed<number | undefined> }[];
  drills: { plan: string; last: Observed<DrillReport | undefined> }[];
  /** Namespace sets production serves from: which site backs them up, their tier's RPO. */
  protectedSets: { from: string; namespaces: string[]; tier: string; rpoSeconds: number }[];
  snapshotRetention: { keep: number; everySeconds: number; maxAgeSeconds?: number };
}

const DAY = 86_400;
export const LIMITS = { ttlSeconds: 60, drillDays: 92, retentionDays: 7 } as const;
const dur = (s: number) => formatDuration(s * 1000);

/** Subjects that are Kubernetes itself or the backup tool, expected to be able to delete namespaces. */
export function systemSubject(s: string): boolean {
  return (
    /^Group:system:(masters|serviceaccounts:kube-system)$/.test(s) ||
    /^User:system:(kube-controller-manager|kube-scheduler|apiserver|admin)$/.test(s) ||
    /^ServiceAccount:(kube-system|velero)\//.test(s) ||
    /^User:kubernetes-admin$/.test(s) ||
    /^Group:kubeadm:cluster-admins$/.test(s)
  );
}

/** Same host, or the same IPv4 /24 (the rack or site network heuristic; the README says so). */
export function sameDomain(a: string, b: string): boolean {
  if (a === b) return true;
  const v4 = /^(\d+\.\d+\.\d+)\.\d+$/;
  const [ma, mb] = [a.match(v4), b.match(v4)];
  return !!ma && !!mb && ma[1] === mb[1] && !a.startsWith('127.');
}

export function auditRows(o: AuditObservations): AuditRow[] {
  const rows: AuditRow[] = [];
  const row = (r: AuditRow) => rows.push(r);
  const unknown = (check: AuditCheck, target: string, error: string) =>
    row({
      check,
      target,
      result: 'warn',
      seen: `could not look: ${error}`,
      fix: 'make the source reachable from the worker',
    });

  // Backups in the failure domain of the cluster they protect.
  for (const s of o.sites) {
    const stores: [string, Observed<string | undefined>][] = [
      ['off-site bucket', { ok: true, value: o.offsiteHost }],
      ['Velero storage location', s.storageHost],
    ];
    for (const [what, host] of stores) {
      const target = `${s.site} ${what}`;
      if (!host.ok) unknown('backup-domain', target, host.error);
      else if (host.value === undefined)
        row({ check: 'backup-domain', target, result: 'warn', seen: `no URL to judge (${what})` });
      else {
        const near = s.hosts.find((h) => sameDomain(h, host.value!));
        row(
          near
            ? {
                check: 'backup-domain',
                target,
                result: 'fail',
                seen: `${host.value} is in ${s.site}'s failure domain (next to ${near}): a fire takes the cluster and its backups`,
                fix: `keep ${s.site}'s backups at another site or a cloud bucket`,
              }
            : { check: 'backup-domain', target, result: 'pass', seen: `${host.value}, outside ${s.site}` },
        );
      }
    }
  }

  // DNS TTL of the app records.
  for (const r of o.records) {
    if (!r.ttl.ok) unknown('dns-ttl', r.name, r.ttl.error);
    else if (r.ttl.value === undefined)
      row({
        check: 'dns-ttl',
        target: r.name,
        result: 'fail',
        seen: 'no A record',
        fix: 'create it (lab: drctl lab up)',
      });
    else
      row(
        r.ttl.value > LIMITS.ttlSeconds
          ? {
              check: 'dns-ttl',
              target: r.name,
              result: 'fail',
              seen: `TTL ${r.ttl.value} s: clients keep the dead site's address that long after a failover`,
              fix: `lower it to ${LIMITS.ttlSeconds} s or less, a TTL ahead of any planned failover`,
            }
          : { check: 'dns-ttl', target: r.name, result: 'pass', seen: `TTL ${r.ttl.value} s` },
      );
  }

  // A DR drill (a restore, proven) in the last quarter.
  if (!o.drills.length)
    row({
      check: 'drill-recency',
      target: '(no plan)',
      result: 'fail',
      seen: 'no drill plan in the config: restores are never tested',
      fix: 'add a plan under drills: and run `drctl drill run`',
    });
  for (const d of o.drills) {
    if (!d.last.ok) {
      unknown('drill-recency', d.plan, d.last.error);
      continue;
    }
    const r = d.last.value;
    const ageDays = r ? (o.now - Date.parse(r.endedAt)) / 1000 / DAY : undefined;
    const fix = `drctl drill run --plan ${d.plan}`;
    if (!r) row({ check: 'drill-recency', target: d.plan, result: 'fail', seen: 'never drilled', fix });
    else if (ageDays! > LIMITS.drillDays)
      row({
        check: 'drill-recency',
        target: d.plan,
        result: 'fail',
        seen: `last drill ${Math.floor(ageDays!)} days ago (over ${LIMITS.drillDays})`,
        fix,
      });
    else if (r.outcome !== 'passed')
      row({
        check: 'drill-recency',
        target: d.plan,
        result: 'fail',
        seen: `last drill ${r.outcome}, ${Math.floor(ageDays!)} days ago`,
        fix: `fix what its report leads with, then ${fix}`,
      });
    else
      row({ check: 'drill-recency', target: d.plan, result: 'pass', seen: `passed ${Math.floor(ageDays!)} days ago` });
  }

  // Per protected set: a Velero schedule covers it, often enough, with its volumes' data.
  for (const set of o.protectedSets) {
    const target = `${set.from}: ${set.namespaces.join(',')}`;
    const site = o.sites.find((s) => s.site === set.from);
    if (!site) continue;
    if (!site.veleroSchedules.ok) {
      unknown('backup-interval', target, site.veleroSchedules.error);
      unknown('pv-backups', target, site.veleroSchedules.error);
      continue;
    }
    const covering = site.veleroSchedules.value.filter(
      (v) =>
        !v.paused &&
        set.namespaces.every((ns) => v.includedNamespaces.includes(ns) || v.includedNamespaces.includes('*')),
    );
    if (!covering.length) {
      const fix = `a Velero Schedule at ${set.from} including ${set.namespaces.join(', ')}`;
      row({ check: 'backup-interval', target, result: 'fail', seen: 'no running Velero schedule backs it up', fix });
      row({ check: 'pv-backups', target, result: 'fail', seen: 'no running Velero schedule backs it up', fix });
      continue;
    }
    const intervals = covering.map((v) => v.intervalSeconds).filter((x): x is number => x !== undefined);
    const every = intervals.length ? Math.min(...intervals) : undefined;
    if (every === undefined)
      row({
        check: 'backup-interval',
        target,
        result: 'warn',
        seen: `cannot read the interval of ${covering.map((v) => `'${v.cron}'`).join(', ')}`,
      });
    else
      row(
        set.rpoSeconds > 0 && every > set.rpoSeconds
          ? {
              check: 'backup-interval',
              target,
              result: 'fail',
              seen: `backed up every ${dur(every)}, over the ${set.tier} RPO of ${dur(set.rpoSeconds)}`,
              fix: `run the Velero schedule at least every ${dur(set.rpoSeconds)}`,
            }
          : set.rpoSeconds === 0
            ? {
                check: 'backup-interval',
                target,
                result: 'warn',
                seen: `tier ${set.tier} has an RPO of 0: no periodic backup meets it (synchronous replication does)`,
              }
            : {
                check: 'backup-interval',
                target,
                result: 'pass',
                seen: `every ${dur(every)} (${set.tier} RPO ${dur(set.rpoSeconds)})`,
              },
      );
    const withData = covering.filter((v) => v.fsBackup || v.snapshotVolumes);
    row(
      withData.length
        ? {
            check: 'pv-backups',
            target,
            result: 'pass',
            seen: `${withData.map((v) => v.name).join(', ')}: ${withData[0]!.fsBackup ? 'file-system backup' : 'volume snapshots'}`,
          }
        : {
            check: 'pv-backups',
            target,
            result: 'fail',
            seen: `${covering.map((v) => v.name).join(', ')} back up objects only: PersistentVolume data is not in the backups`,
            fix: 'set defaultVolumesToFsBackup: true (node agent) or snapshotVolumes: true (a VolumeSnapshotLocation)',
          },
    );
    // Velero's retention.
    const ttls = covering.map((v) => v.ttlSeconds).filter((x): x is number => x !== undefined);
    if (ttls.length) {
      const ttl = Math.max(...ttls);
      row(
        ttl < LIMITS.retentionDays * DAY
          ? {
              check: 'snapshot-retention',
              target: `${target} (Velero)`,
              result: 'fail',
              seen: `backups kept ${dur(ttl)}: a problem found after that has no good backup left`,
              fix: `a ttl of at least ${LIMITS.retentionDays} days (168h)`,
            }
          : {
              check: 'snapshot-retention',
              target: `${target} (Velero)`,
              result: 'pass',
              seen: `backups kept ${dur(ttl)}`,
            },
      );
    }
  }

  // Two backup methods per cluster: Velero (objects) and etcd snapshots (the control plane).
  const primary = new Set(o.protectedSets.map((p) => p.from));
  for (const s of o.sites) {
    if (!s.snapshotSchedule.ok) {
      unknown('backup-methods', s.cluster, s.snapshotSchedule.error);
      continue;
    }
    const snap = s.snapshotSchedule.value;
    const velero = s.veleroSchedules.ok ? s.veleroSchedules.value.filter((v) => !v.paused) : undefined;
    const missing = [
      ...(!snap ? ['no etcd snapshot schedule'] : snap.paused ? ['the etcd snapshot schedule is paused'] : []),
      ...(primary.has(s.site) && velero && !velero.length ? ['no running Velero schedule'] : []),
    ];
    row(
      missing.length
        ? {
            check: 'backup-methods',
            target: s.cluster,
            result: 'fail',
            seen: missing.join('; '),
            fix: !snap
              ? `drctl snapshot schedule --cluster ${s.cluster}`
              : snap.paused
                ? `drctl snapshot schedule unpause --cluster ${s.cluster}`
                : 'a Velero Schedule for the namespaces it serves',
          }
        : {
            check: 'backup-methods',
            target: s.cluster,
            result: 'pass',
            seen: `etcd snapshots every ${snap?.intervalSeconds ? dur(snap.intervalSeconds) : '?'}${velero?.length ? ` + Velero (${velero.map((v) => v.name).join(', ')})` : ''}`,
          },
    );
    // etcd snapshot retention: keep N at the schedule's interval, or maxAge.
    const every = snap?.intervalSeconds ?? o.snapshotRetention.everySeconds;
    const kept = Math.min(
      o.snapshotRetention.keep * every,
      o.snapshotRetention.maxAgeSeconds ?? Number.POSITIVE_INFINITY,
    );
    row(
      kept < LIMITS.retentionDays * DAY
        ? {
            check: 'snapshot-retention',
            target: `${s.cluster} (etcd)`,
            result: 'fail',
            seen: `snapshots cover ${dur(kept)} (keep ${o.snapshotRetention.keep} every ${dur(every)}${o.snapshotRetention.maxAgeSeconds ? `, maxAge ${dur(o.snapshotRetention.maxAgeSeconds)}` : ''})`,
            fix: `snapshots.keep of at least ${Math.ceil((LIMITS.retentionDays * DAY) / every)} at that interval`,
          }
        : {
            check: 'snapshot-retention',
            target: `${s.cluster} (etcd)`,
            result: 'pass',
            seen: `snapshots cover ${dur(kept)}`,
          },
    );
  }

  // Namespaces production serves from, protected against deletion; who may delete namespaces.
  for (const s of o.sites) {
    const served = [...new Set(o.protectedSets.filter((p) => p.from === s.site).flatMap((p) => p.namespaces))];
    if (served.length) {
      if (!s.protection.ok) unknown('namespace-protection', s.cluster, s.protection.error);
      else {
        const p = s.protection.value;
        const bare = served.filter((ns) => !p.labelled[ns]);
        const problems = [
          ...(!p.policy ? [`no ValidatingAdmissionPolicy ${PROTECTION_POLICY}`] : []),
          ...(!p.binding ? [`no binding of ${PROTECTION_POLICY}`] : []),
          ...(bare.length ? [`not labelled ${PROTECTED_LABEL.key}=${PROTECTED_LABEL.value}: ${bare.join(', ')}`] : []),
        ];
        row(
          problems.length
            ? {
                check: 'namespace-protection',
                target: s.cluster,
                result: 'fail',
                seen: `${problems.join('; ')}: one \`kubectl delete namespace\` loses them`,
                fix: `drctl audit --fix protect-namespaces --site ${s.site}`,
              }
            : {
                check: 'namespace-protection',
                target: s.cluster,
                result: 'pass',
                seen: `${served.join(', ')} protected by ${PROTECTION_POLICY}`,
              },
        );
      }
    }
    if (!s.deleters.ok) unknown('namespace-deleters', s.cluster, s.deleters.error);
    else {
      const people = s.deleters.value.filter((x) => !systemSubject(x));
      row(
        people.length
          ? {
              check: 'namespace-deleters',
              target: s.cluster,
              result: 'warn',
              seen: `may delete namespaces: ${people.join(', ')}`,
              fix: 'bind them to roles without delete on namespaces; keep cluster-admin for break-glass',
            }
          : {
              check: 'namespace-deleters',
              target: s.cluster,
              result: 'pass',
              seen: 'only Kubernetes itself, cluster admins and Velero may delete namespaces',
            },
      );
    }
  }
  return rows;
}

export function auditReport(o: AuditObservations): AuditReport {
  const rows = auditRows(o);
  const counts = { pass: 0, warn: 0, fail: 0 };
  for (const r of rows) counts[r.result]++;
  return { kind: 'drctl.audit/v1', at: new Date(o.now).toISOString(), rows, counts };
}

/** Where the audit's reports live in the off-site bucket (the newest is what the metrics show). */
export const auditReportKey = (prefix: string, at: string) => `${prefix}audits/${at.replace(/[:.]/g, '-')}.json`;
export const auditPrefix = (prefix: string) => `${prefix}audits/`;

/** `drctl audit` (and its daily Schedule): look, judge, keep the report in the bucket. */
export const AUDIT_STEPS = ['audit', 'record'] as const;
/** `drctl audit --fix protect-namespaces`: a gated change, undone in reverse on failure or cancel. */
export const PROTECT_STEPS = [
  'lease',
  'preflight',
  'approval',
  'install-policy',
  'label-namespaces',
  'verify',
] as const;

/** The Temporal Schedule that audits every day (`drctl audit schedule`). */
export const AUDIT_SCHEDULE_ID = 'drctl-audit';
export const DAILY = '0 5 * * *';

export interface ProtectInput {
  site: string;
  requestedBy: string;
  reason?: string;
  approvalTimeoutMs?: number;
  /** The requester's signed request. */
  request?: Signed;
}

export interface ProtectEvidence {
  site: string;
  cluster: string;
  policy: string;
  /** What the run will create or label (what exists already is left, and never removed by the undo). */
  creates: string[];
  labels: string[];
  already: string[];
  missing: string[];
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface ProtectResult {
  outcome: 'completed';
  site: string;
  created: { policy: boolean; binding: boolean };
  labelled: string[];
  verified: Record<string, string>;
}
