// The DR drill contract: what `drctl drill run` and a drill Schedule send, the evidence report the
// workflow writes, and the pure judgements (per-tier RTO/RPO verdicts, success criteria) the
// workflow, the CLI and the tests share. Pure code: workflows import it.
import type { BackupRef, CheckResult } from './failover.ts';
import type { DecisionRecord, GateInfo, RunbookStatus, Step } from './runbook.ts';
import type { Signed } from './signed.ts';

export const DRILL_STEPS = [
  'lease',
  'preflight',
  'approval',
  'recheck',
  'etcd-restore',
  'restore',
  'verify',
  'switch-drill-record',
  'measure',
  'cleanup',
  'report',
  'sign-off',
  'signed-report',
] as const;
export type DrillStep = (typeof DRILL_STEPS)[number];

/** The seed's success criteria, plus the targets; a plan picks which of them decide its verdict. */
export const DRILL_CRITERIA = [
  'backup-present',
  'restore-complete',
  'pods-match-source',
  'app-serves',
  'rpo-met',
  'rto-met',
  'etcd-restore',
  'cleanup',
] as const;
export type DrillCriterion = (typeof DRILL_CRITERIA)[number];

export interface DrillInput {
  /** Plan name from the config's drills section. */
  plan: string;
  /** A person, or `schedule:<id>` for a scheduled drill (then any approver may approve it). */
  requestedBy: string;
  reason?: string;
  approvalTimeoutMs?: number;
  /** The requester's signed request (`drctl drill run` signs it with their key). */
  request?: Signed;
}

/** A plan as the worker resolved it from its config (no credentials: safe for history). */
export interface DrillPlan {
  name: string;
  from: string;
  to: string;
  /** The DR site's cluster (what an etcd restore drill restores). */
  toCluster: string;
  workloads: { tier: string; namespaces: string[] }[];
  record: { name: string; ttl: number };
  criteria: DrillCriterion[];
  etcdRestore: boolean;
  approvalTimeoutMs: number;
  signoffTimeoutMs: number;
  verifyTimeoutMs: number;
  approvers: string[];
  twoPersonRule: boolean;
  targets: Record<string, { rpoSeconds: number; rtoSeconds: number }>;
  webUi?: string;
}

export interface DrillPreflight {
  plan: DrillPlan;
  namespaces: string[];
  drReady: CheckResult[];
  backup?: BackupRef;
  /** Namespaces of the plan that already exist at the DR site: a drill there would touch live objects. */
  existingAtTarget: string[];
  /** The drill record before the drill (restored afterwards), and where the DR site's app lives. */
  recordBefore: string[];
  toAddress: string;
  /** Deployments at the source site (name → replicas); undefined when its API is unreachable. */
  sourceWorkloads?: Record<string, number>;
  sourceDetail: string;
  /** The DR cluster's newest off-site etcd snapshot, when the plan restores etcd too. */
  etcdSnapshot?: { key: string; takenAt: string };
  /** Production DNS records that point at the DR site: it serves traffic (after a failover). */
  servingRecords?: string[];
}

export interface TierResult {
  tier: string;
  namespaces: string[];
  rpoSeconds?: number;
  rpoTargetSeconds: number;
  rtoSeconds?: number;
  rtoTargetSeconds: number;
  rpoMet: boolean;
  rtoMet: boolean;
}

export interface Verdict {
  criterion: DrillCriterion;
  ok: boolean;
  detail: string;
}

export interface SignOff {
  by: string;
  comment?: string;
  at: string;
  /** The signer's key, verified by the worker; absent only when approvals.unsigned: allow let it in. */
  fingerprint?: string;
  /** sha256 of the report the sign-off was signed over. */
  evidence?: string;
  unsigned?: boolean;
}

export type DrillOutcome = 'passed' | 'failed' | 'cancelled';

export interface DrillReport {
  kind: 'drctl.drill-report/v1';
  plan: string;
  workflowId: string;
  runId: string;
  outcome: DrillOutcome;
  requestedBy: string;
  reason?: string;
  from: string;
  to: string;
  record: string;
  namespaces: string[];
  startedAt: string;
  endedAt: string;
  /** RTO clock: from the go (approval) to the app answering through the drill record. */
  clockStartedAt?: string;
  servingAt?: string;
  approvalWaitSeconds?: number;
  backup?: BackupRef;
  tiers: TierResult[];
  verdicts: Verdict[];
  checks: CheckResult[];
  timeline: Step[];
  approvals: DecisionRecord[];
  /** What the gate bound decisions to, who asked (proven or not), and whether unsigned decisions were allowed. */
  gate?: GateInfo;
  signOff?: SignOff;
  failures: string[];
  compensations: { name: string; state: 'done' | 'failed'; detail?: string }[];
  etcd?: { cluster: string; workflowId: string; outcome: string; seconds?: number; snapshot?: string; detail?: string };
  /** Where the report lives in the off-site bucket. */
  location?: { bucket: string; json: string; html: string };
  warnings: string[];
}

export interface DrillEvidence {
  from: string;
  to: string;
  namespaces: string[];
  backup?: BackupRef;
  record: string;
  recordBefore: string[];
  recordDuring: string[];
  etcdSnapshot?: string;
  approvers: string[];
  approvalDeadline: string;
  warnings: string[];
}

export interface DrillStatus extends RunbookStatus<DrillEvidence> {
  plan: string;
  report?: DrillReport;
}

/** Per tier: the achieved RPO (the restored backup's age) and RTO (go → serving) against its targets. */
export function tierResults(
  plan: DrillPlan,
  rpoSeconds: number | undefined,
  rtoSeconds: number | undefined,
): TierResult[] {
  return plan.workloads.map((w) => {
    const t = plan.targets[w.tier]!;
    return {
      tier: w.tier,
      namespaces: w.namespaces,
      rpoSeconds,
      rpoTargetSeconds: t.rpoSeconds,
      rtoSeconds,
      rtoTargetSeconds: t.rtoSeconds,
      rpoMet: rpoSeconds !== undefined && rpoSeconds <= t.rpoSeconds,
      rtoMet: rtoSeconds !== undefined && rtoSeconds <= t.rtoSeconds,
    };
  });
}

/** Deployments at the DR site against the source: every source deployment there with as many available replicas. */
export function podsMatch(
  source: Record<string, number> | undefined,
  dr: { name: string; available: number }[],
): { ok: boolean; detail: string } {
  if (!source) return { ok: false, detail: 'source site unreachable: nothing to compare with' };
  const names = Object.keys(source).sort();
  if (!names.length) return { ok: false, detail: 'no deployments at the source' };
  const have = new Map(dr.map((d) => [d.name, d.available]));
  const off = names.filter((n) => (have.get(n) ?? -1) !== source[n]);
  const show = (n: string) => `${n} ${have.get(n) ?? 'missing'}/${source[n]}`;
  return off.length
    ? { ok: false, detail: `differs: ${off.map(show).join(', ')}` }
    : { ok: true, detail: names.map(show).join(', ') };
}

export interface DrillFacts {
  backup?: BackupRef;
  restore?: { phase: string; errors: number; itemsRestored?: number; totalItems?: number };
  podsMatch?: { ok: boolean; detail: string };
  appServes?: CheckResult;
  tiers: TierResult[];
  etcd?: DrillReport['etcd'];
  cleanup?: { ok: boolean; detail: string };
}

/** One verdict per criterion the plan names; a criterion whose step never ran fails ("not reached"). */
export function verdicts(criteria: DrillCriterion[], f: DrillFacts): Verdict[] {
  const notReached = 'not reached';
  const one = (criterion: DrillCriterion): Verdict => {
    switch (criterion) {
      case 'backup-present':
        return {
          criterion,
          ok: !!f.backup,
          detail: f.backup
            ? `${f.backup.name}, completed ${f.backup.completedAt}`
            : 'no completed backup covering the namespaces',
        };
      case 'restore-complete': {
        const r = f.restore;
        if (!r) return { criterion, ok: false, detail: notReached };
        const all = r.totalItems === undefined || r.itemsRestored === r.totalItems;
        return {
          criterion,
          ok: r.phase === 'Completed' && r.errors === 0 && all,
          detail: `${r.phase}, ${r.itemsRestored ?? '?'}/${r.totalItems ?? '?'} items, ${r.errors} error(s)`,
        };
      }
      case 'pods-match-source':
        return { criterion, ok: !!f.podsMatch?.ok, detail: f.podsMatch?.detail ?? notReached };
      case 'app-serves':
        return {
          criterion,
          ok: !!f.appServes?.ok,
          detail: f.appServes ? `${f.appServes.check}: ${f.appServes.detail}` : notReached,
        };
      case 'rpo-met':
        return {
          criterion,
          ok: f.tiers.length > 0 && f.tiers.every((t) => t.rpoMet),
          detail:
            f.tiers.map((t) => `${t.tier}: ${t.rpoSeconds ?? '?'} s / ${t.rpoTargetSeconds} s`).join('; ') ||
            notReached,
        };
      case 'rto-met':
        return {
          criterion,
          ok: f.tiers.length > 0 && f.tiers.every((t) => t.rtoMet),
          detail:
            f.tiers
              .map(
                (t) =>
                  `${t.tier}: ${t.rtoSeconds === undefined ? '?' : t.rtoSeconds.toFixed(1)} s / ${t.rtoTargetSeconds} s`,
              )
              .join('; ') || notReached,
        };
      case 'etcd-restore':
        return {
          criterion,
          ok: f.etcd?.outcome === 'completed',
          detail: f.etcd
            ? `${f.etcd.workflowId}: ${f.etcd.outcome}${f.etcd.detail ? ` (${f.etcd.detail})` : ''}`
            : notReached,
        };
      case 'cleanup':
        return { criterion, ok: !!f.cleanup?.ok, detail: f.cleanup?.detail ?? notReached };
    }
  };
  return criteria.map(one);
}

/** The Temporal Schedule that runs a drill plan (`drctl drill schedule`). */
export const drillScheduleId = (plan: string) => `drill-${plan}`;

/** Where a plan's drill reports live in the off-site bucket, one folder per run. */
export const drillReportsPrefix = (prefix: string, plan: string) => `${prefix}drills/${plan}/`;

export const drillReportKeys = (prefix: string, plan: string, workflowId: string) => {
  const base = `${drillReportsPrefix(prefix, plan)}${workflowId}`;
  return { json: `${base}/report.json`, html: `${base}/report.html` };
};

/**
 * What no longer holds, when the gate opens, of the preflight the go was given for (the gate may
 * have waited an hour): the DR site still ready, the plan's namespaces still absent there (else the
 * drill would restore over something live, and its cleanup would delete it), the drill record still
 * answering what it did (its cleanup puts that answer back), the backup still there. One line per
 * change; none means the drill may go on. Pure: the workflow and its tests.
 */
export function drillChanges(before: DrillPreflight, now: DrillPreflight): string[] {
  const { plan } = before;
  const out: string[] = [];
  for (const c of now.drReady.filter((x) => !x.ok))
    out.push(`DR site ${plan.to} not ready now: ${c.check}: ${c.detail}`);
  if (now.existingAtTarget.length)
    out.push(
      `${now.existingAtTarget.join(', ')} now exist(s) at ${plan.to}: is it serving? A drill restores only into namespaces that do not exist there`,
    );
  const was = [...before.recordBefore].sort().join(',');
  const is = [...now.recordBefore].sort().join(',');
  if (was !== is)
    out.push(
      `${plan.record.name} answered ${was || '(no record)'} at preflight, ${is || '(no record)'} now: the cleanup would put back an answer that is no longer current`,
    );
  if (before.backup && !now.backup)
    out.push(
      `no completed backup of ${before.namespaces.join(', ')} visible at ${plan.to} now (${before.backup.name} was)`,
    );
  return out;
}
