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
  /** A failed or cancelled drill: the check that failed first and what to do about it (failureCause). */
  cause?: FailureCause;
}

/** Why a drill did not pass, in one place: the root check, what it saw, what to do. */
export interface FailureCause {
  /** The failing check (a DR-site check, a criterion, or the step that stopped the drill). */
  check: string;
  detail: string;
  action: string;
}

type Where = Pick<DrillReport, 'to' | 'from' | 'record'>;

/**
 * What to do about a failing DR-site check, by its name (activities/site-checks.ts, activities/dns.ts),
 * in the order causes lead: the site itself, then cluster DNS, then the app's own objects, then DNS.
 */
const CHECK_ACTIONS: [RegExp, (r: Where) => string][] = [
  [/API server ready$/, (r) => `${r.to}'s API server does not answer: \`drctl cluster check\` on its cluster`],
  [
    /nodes Ready$/,
    (r) => `nodes at ${r.to} are not Ready (\`kubectl get nodes\` there): the restored pods have nowhere to run`,
  ],
  [
    /Velero sees BackupStorageLocation/,
    (r) =>
      `${r.to}'s Velero cannot read the backup location: \`velero backup-location get\` there (credentials, bucket, network)`,
  ],
  [
    /^cluster DNS/,
    (r) =>
      `CoreDNS at ${r.to} is not available, so the restored apps cannot resolve names: \`kubectl -n kube-system get deploy,pods -l k8s-app=kube-dns\` at ${r.to}; fix it, then run the drill again`,
  ],
  [
    /deployments available$/,
    (r) =>
      `restored deployments did not become available at ${r.to}: \`kubectl describe deploy\` and their pods there (images, quotas, config naming ${r.from})`,
  ],
  [/endpointslices populated$/, (r) => `services at ${r.to} have no ready endpoints: their pods are not Ready`],
  [
    /pvcs bound$/,
    (r) => `claims at ${r.to} did not bind: a storage class or volume the backup expects is missing there`,
  ],
  [
    /secrets and configmaps/,
    (r) => `the restore at ${r.to} lacks objects the backup holds: \`velero restore describe --details\` there`,
  ],
  [/no pending pods$/, (r) => `pods at ${r.to} cannot be scheduled: capacity, node selectors or taints there`],
  [/^app endpoint/, (r) => `the app's health endpoint at ${r.to} does not answer: its ingress or service there`],
  [/^DNS /, (r) => `the drill record did not move: the DNS API and the authoritative server (\`dig ${r.record}\`)`],
  [
    /^app answers through/,
    (r) => `the app does not answer through ${r.record}: DNS resolves, the request fails at ${r.to}`,
  ],
];
const rank = (check: string) => {
  const i = CHECK_ACTIONS.findIndex(([re]) => re.test(check));
  return i < 0 ? CHECK_ACTIONS.length : i;
};
const checkAction = (check: string, r: Where) => CHECK_ACTIONS.find(([re]) => re.test(check))?.[1](r);

const CRITERION_ACTIONS: Record<DrillCriterion, (r: Where) => string> = {
  'backup-present': (r) =>
    `no Completed Velero backup of the namespaces is visible at ${r.to}: the schedule at ${r.from} and both sites' backup locations`,
  'restore-complete': (r) =>
    `the Velero restore at ${r.to} did not complete cleanly: \`velero restore describe --details\` there`,
  'pods-match-source': (r) =>
    `the deployments at ${r.to} differ from ${r.from}'s: the restore's warnings and the pods there`,
  'app-serves': (r) =>
    `the app did not answer through ${r.record}: the checks above it, then DNS and the app at ${r.to}`,
  'rpo-met': () => `backups are older than the tier's RPO target: run the Velero schedule more often`,
  'rto-met': () => `the recovery took longer than the tier's RTO target: the timeline shows which step took the time`,
  'etcd-restore': (r) => `the etcd restore drill of ${r.to}'s cluster failed: \`drctl status\` on its workflow`,
  cleanup: (r) => `the drill left something at ${r.to} or in DNS: the cleanup step's items say what`,
};

/**
 * Why a drill did not pass, leading every rendering of a failed report: the first DR-site check
 * that failed (the root cause: CoreDNS down fails the app, which fails the RTO), else the step that
 * stopped the drill, else the first failed criterion. Undefined for a drill that passed.
 */
export function failureCause(
  r: Pick<DrillReport, 'outcome' | 'checks' | 'verdicts' | 'failures' | 'timeline' | 'to' | 'from' | 'record'>,
): FailureCause | undefined {
  if (r.outcome === 'passed') return undefined;
  if (r.outcome === 'cancelled') {
    const at = r.timeline.find((x) => x.state === 'running' || x.state === 'failed')?.step;
    return {
      check: 'cancelled',
      detail: `the drill was cancelled${at ? ` during its ${at} step` : ''}, before it could pass`,
      action: 'nothing is wrong with the DR site that this drill found: run it again to the end',
    };
  }
  // The failing checks, from the report's list and from a step that gave up on them (its error
  // names them one "<check>: <detail>" a line); the one that leads is the deepest cause.
  const failing = [
    ...r.checks.filter((c) => !c.ok),
    ...r.failures.flatMap((f) =>
      f
        .split('\n')
        .slice(1)
        .map((line) => ({ at: line.indexOf(': '), line }))
        .filter(({ at, line }) => at > 0 && rank(line.slice(0, at)) < CHECK_ACTIONS.length)
        .map(({ at, line }) => ({ check: line.slice(0, at), ok: false, detail: line.slice(at + 2) })),
    ),
  ].sort((a, b) => rank(a.check) - rank(b.check));
  const check = failing[0];
  if (check)
    return { check: check.check, detail: check.detail, action: checkAction(check.check, r) ?? 'see the checks list' };
  const stopped = r.timeline.find((x) => x.state === 'failed' && x.step !== 'cleanup');
  if (stopped) {
    const detail = r.failures[0]?.split('\n')[0] ?? stopped.detail ?? 'failed';
    return { check: `step ${stopped.step}`, detail, action: `the ${stopped.step} step stopped the drill: ${detail}` };
  }
  const v = r.verdicts.find((x) => !x.ok);
  if (v) return { check: v.criterion, detail: v.detail, action: CRITERION_ACTIONS[v.criterion](r) };
  const f = r.failures[0];
  return { check: 'failure', detail: f?.split('\n')[0] ?? 'unknown', action: 'see the failures list' };
}

/** Why a figure of a tier is missing (a renderer prints this, never '?'). */
export function notMeasured(
  r: Pick<
    DrillReport,
    'backup' | 'record' | 'outcome' | 'checks' | 'verdicts' | 'failures' | 'timeline' | 'to' | 'from'
  >,
  figure: 'rto' | 'rpo',
): string {
  if (figure === 'rpo') return 'not measured: no completed backup to restore';
  if (r.outcome === 'cancelled') return 'not measured: cancelled before the app answered';
  const cause = failureCause(r);
  return `not measured: the app never answered through ${r.record}${cause ? ` (${cause.check}: ${cause.detail})` : ''}`;
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

/** Why a drill has no RTO, from what it got to (the verdicts' words; renderers use notMeasured). */
function rtoMissing(f: DrillFacts): string {
  if (!f.backup) return 'no backup to restore';
  if (!f.restore) return 'the restore never ran';
  if (!f.appServes) return 'the app was never reached: the drill stopped before the drill record was switched';
  return `the app did not answer: ${f.appServes.detail}`;
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
          detail:
            r.itemsRestored === undefined || r.totalItems === undefined
              ? `${r.phase}, ${r.errors} error(s) (Velero reported no item counts)`
              : `${r.phase}, ${r.itemsRestored}/${r.totalItems} items, ${r.errors} error(s)`,
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
            f.tiers
              .map((t) =>
                t.rpoSeconds === undefined
                  ? `${t.tier}: not measured (no completed backup to restore) / ${t.rpoTargetSeconds} s`
                  : `${t.tier}: ${t.rpoSeconds} s / ${t.rpoTargetSeconds} s`,
              )
              .join('; ') || notReached,
        };
      case 'rto-met':
        return {
          criterion,
          ok: f.tiers.length > 0 && f.tiers.every((t) => t.rtoMet),
          detail:
            f.tiers
              .map(
                (t) =>
                  `${t.tier}: ${t.rtoSeconds === undefined ? `not measured (${rtoMissing(f)})` : `${t.rtoSeconds.toFixed(1)} s`} / ${t.rtoTargetSeconds} s`,
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
