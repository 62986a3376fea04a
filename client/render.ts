// How `drctl` shows a run: the status of every runbook (one header, its evidence, one step table,
// decisions, what needs attention), the one-line transitions printed while following a run without
// a terminal, and when a followed run is over. Pure: the unit tests feed it fixture statuses.
import type { FenceOnReturnStatus } from '../workflows/fence-on-return.ts';
import type { WatchState } from '../workflows/health-watch.ts';
import type { ProtectEvidence } from '../common/audit.ts';
import { type DrillReport, type DrillStatus, failureCause, notMeasured } from '../common/drill.ts';
import { formatDuration } from '../common/duration.ts';
import type { CheckResult, FailoverEvidence } from '../common/failover.ts';
import type { NamespaceRestoreEvidence } from '../common/namespace-restore.ts';
import type { RestoreEvidence, RestorePlan } from '../common/restore.ts';
import type { RecoverEvidence, RejoinEvidence } from '../common/etcd-recover.ts';
import type { RebuildEvidence } from '../common/rebuild.ts';
import { FINAL_PHASES, type RunbookStatus, signerText, type Step, type WorkflowType } from '../common/runbook.ts';
import { table } from './output.ts';

/** The health watch's own fields next to the common ones (its `status` query). */
/** The health watch's own state (workflows/health-watch.ts `WatchStatus`). */
export interface WatchExtras {
  watch?: WatchState;
}

/** Every runbook's status with the fields only some runbooks add. */
export type AnyStatus = RunbookStatus &
  WatchExtras &
  Partial<Pick<FenceOnReturnStatus, 'returnWatch'>> & {
    plan?: RestorePlan;
    checks?: CheckResult[];
    report?: DrillReport;
  };

/** Where a shown status came from: the run itself (a worker answered) or the server's memo of it. */
export interface Shown {
  status: AnyStatus;
  source: 'worker' | 'server';
  /** Server only: when the run last updated its memo. */
  asOf?: string;
  /** The execution's status on the server (RUNNING, COMPLETED, CANCELED, TERMINATED, …), when known. */
  execution?: string;
}

const DETAIL_WIDTH = 110;

/** The step that holds a runbook's undos. */
export const compensationStep = (type: WorkflowType) => (type === 'drDrill' ? 'cleanup' : 'compensate');

export function serverNote(asOf: string | undefined): string {
  return `no worker answered the status query; showing what the server holds (as of ${asOf ?? 'unknown'})`;
}

/** "3.1 s" below a minute, else as durations are written elsewhere ("2m5s"). */
export function secondsText(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : formatDuration(seconds * 1000);
}

function stepSeconds(s: Omit<Step, 'items'>): number | undefined {
  if (s.seconds !== undefined) return s.seconds;
  if (s.startedAt && s.endedAt) return (Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000;
  return undefined;
}

/** How long a step took, or for the running one how long it has been running (as of `now`). */
export function took(s: Omit<Step, 'items'>, now: number): string {
  const secs = stepSeconds(s);
  if (secs !== undefined) return secondsText(secs);
  if (s.state === 'running' && s.startedAt) return `${secondsText(Math.max(0, now - Date.parse(s.startedAt)) / 1000)}…`;
  return '';
}

const oneLine = (s: string) => (s.split('\n')[0] ?? '').slice(0, DETAIL_WIDTH);

function itemsText(items: Record<string, string> | undefined): string {
  return Object.entries(items ?? {})
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ');
}

export function stepTable(steps: (Step | Omit<Step, 'items'>)[], now: number): string {
  const rows = [['STEP', 'STATE', 'TOOK', 'DETAIL']];
  for (const s of steps) {
    const items = 'items' in s ? itemsText(s.items) : '';
    rows.push([s.step, s.state, took(s, now), oneLine([s.detail, items].filter(Boolean).join(' — '))]);
  }
  return table(rows);
}

export function gateHelp(workflowId: string, url: string | null): string[] {
  return [
    `  go/no-go by an approver (not the requester), signed with the approver's SSH key:`,
    `    CLI:    drctl approve ${workflowId} --reason TEXT [--key ~/.ssh/id_ed25519]   (or: drctl reject …)`,
    `    Web UI: drctl approve ${workflowId} --sign-only prints a JSON decision; paste it as the input of`,
    `            Signal 'approve' (or 'reject') at ${url ?? '(set temporal.webUi in the config)'}`,
  ];
}

/** What the gate binds a decision to, and how sure the requester's identity is. */
export function gateLines(st: Pick<RunbookStatus, 'gate' | 'requestedBy'>): string[] {
  const g = st.gate;
  if (!g) return [];
  return [
    ...(g.unsignedAllowed
      ? [
          'UNSIGNED DECISIONS ALLOWED (approvals.unsigned: allow): an unsigned {"by": ...} is believed; anyone can be anyone',
        ]
      : []),
    `evidence sha256 ${g.evidenceDigest} (decisions are signed over it)`,
    g.requester
      ? `requested by ${g.requester.by}, proven by key ${g.requester.fingerprint}`
      : `requester ${st.requestedBy ?? '?'} not proven (${g.requesterUnproven ?? 'unsigned'}): ${g.approvalsNeeded} approvers needed`,
  ];
}

function evidenceLines(type: WorkflowType, st: AnyStatus): string[] {
  const lines: string[] = [];
  if (type === 'etcdRestore' && st.evidence) {
    const e = st.evidence as RestoreEvidence;
    lines.push(
      `snapshot ${e.snapshotKey}: revision ${e.revision}, hash ${e.etcdHash}, ${formatDuration(e.snapshotAgeSeconds * 1000)} old` +
        `${e.writesLost !== undefined ? `; ${e.writesLost} writes since it will be lost` : ''}; --bump-revision ${e.bumpRevision ?? 'n/a'}`,
    );
    if (st.phase === 'waiting-approval')
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
  }
  if (type === 'siteFailover' && st.evidence) {
    const e = st.evidence as FailoverEvidence;
    lines.push(
      `backup ${e.backup?.name ?? '-'}: ${e.backup ? formatDuration(e.backup.ageSeconds * 1000) : '-'} old (RPO target ${formatDuration(e.rpoTargetSeconds * 1000)}); namespaces ${e.namespaces.join(', ')}`,
    );
    for (const r of e.records)
      lines.push(`DNS ${r.name}: ${r.from.join(',') || '(none)'} → ${r.to.join(',')} (ttl ${r.ttl} s)`);
    for (const w of e.warnings) lines.push(`warning: ${w}`);
    if (st.phase === 'waiting-approval')
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
  }
  if (type === 'protectNamespaces' && st.evidence) {
    const e = st.evidence as ProtectEvidence;
    lines.push(
      `at ${e.site} (${e.cluster}): creates ${e.creates.join(', ') || 'nothing (policy and binding exist)'}; labels ${e.labels.join(', ') || 'nothing'}`,
    );
    if (e.already.length) lines.push(`already labelled (left as they are): ${e.already.join(', ')}`);
    if (e.missing.length) lines.push(`not present (not protected): ${e.missing.join(', ')}`);
    if (st.phase === 'waiting-approval')
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
  }
  if (type === 'namespaceRestore' && st.evidence) {
    const e = st.evidence as NamespaceRestoreEvidence;
    lines.push(
      `backup ${e.backup.name} started ${e.backup.startedAt}: ${formatDuration(e.changesLostSeconds * 1000)} of changes before ${e.before} are lost${e.rpoTargetSeconds !== undefined ? ` (RPO target ${formatDuration(e.rpoTargetSeconds * 1000)})` : ''}`,
      `restores into ${e.site}: ${e.present.map((p) => `${p.namespace} (${p.phase})`).join(', ')}; ${Object.entries(
        e.contents,
      )
        .map(([k, n]) => `${n} ${k.split('/').pop()}`)
        .join(', ')}`,
      e.policy,
    );
    for (const v of e.volumes) lines.push(`volume ${v.name} (${v.phase}) keeps the data of ${v.claim}: bound again`);
    for (const w of e.warnings) lines.push(`warning: ${w}`);
    if (st.phase === 'waiting-approval')
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
  }
  if (type === 'drDrill' && st.evidence) {
    const e = st.evidence as NonNullable<DrillStatus['evidence']>;
    lines.push(
      `restore ${e.backup?.name ?? '(no backup)'}${e.backup ? ` (${formatDuration(e.backup.ageSeconds * 1000)} old)` : ''} into ${e.to}; namespaces ${e.namespaces.join(', ')}`,
    );
    lines.push(
      `drill record ${e.record}: ${e.recordBefore.join(',') || '(none)'} → ${e.recordDuring.join(',')} (production records untouched)`,
    );
    if (e.etcdSnapshot) lines.push(`etcd restore drill on ${e.to} from ${e.etcdSnapshot}`);
    for (const w of e.warnings) lines.push(`warning: ${w}`);
    if (st.phase === 'waiting-approval')
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
  }
  if (type === 'etcdRecover' && st.evidence) {
    const e = st.evidence as RecoverEvidence;
    const keep = e.survivors.find((m) => m.node === e.plan.keep);
    lines.push(
      `keep ${e.plan.keep}'s data: revision ${e.plan.revisionKept}, raft index ${e.plan.raftIndexKept}${keep?.walWrittenAt ? `, last write received ${keep.walWrittenAt}` : ''}; add back wiped: ${e.plan.addBack.join(', ') || 'none'}`,
      `dropped: ${e.plan.dropped.map((d) => `${d.node} (${d.fence === 'attestation' ? 'host does not answer: needs an attestation' : d.fence})`).join(', ')}`,
      e.newestSnapshot
        ? `newest off-site snapshot ${e.newestSnapshot.key} (${e.newestSnapshot.takenAt}, revision ${e.newestSnapshot.revision}): a restore from it would lose ${e.revisionsBeyondSnapshot} revisions these survivors hold`
        : 'no off-site snapshot of this cluster',
    );
    if (st.phase === 'waiting-approval') {
      if (e.attestationNeeded.length)
        lines.push(
          `approve only with --attest "<how ${e.attestationNeeded.join(', ')} are fenced>" (e.g. "site A is powered off"): an approval without it is refused`,
        );
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
    }
  }
  if (type === 'etcdRejoin' && st.evidence) {
    const e = st.evidence as RejoinEvidence;
    lines.push(
      `${e.node} joins ${e.members.join(', ')} through ${e.via}, wiped: its data now (revision ${e.returning.revision ?? '?'}) is moved aside, never started again`,
    );
    if (st.phase === 'waiting-approval')
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
  }
  if (type === 'clusterRebuild' && st.evidence) {
    const e = st.evidence as RebuildEvidence;
    lines.push(
      `snapshot ${e.snapshotKey}: revision ${e.revision}, ${formatDuration(e.snapshotAgeSeconds * 1000)} old (the control plane comes back as it was then)`,
      `control-plane bundle from ${e.bundle.fromNode} at ${e.bundle.takenAt}: ${e.bundle.items} items (${e.bundle.names.join(', ')})`,
      ...e.hosts.map(
        (h) =>
          `${h.node} at ${h.address}: new host ${h.hostname}, kubeadm ${h.kubeadm}, kubelet ${h.kubelet}, ${h.images} images`,
      ),
      ...e.passedOver.map((p) => `passed over: ${p}`),
    );
    if (st.phase === 'waiting-approval')
      lines.push(`approvers: ${e.approvers.join(', ')}; decision due by ${e.approvalDeadline}`);
  }
  if (type === 'fenceOnReturn' && st.returnWatch) {
    const w = st.returnWatch;
    lines.push(
      `${w.site}: ${w.attempts} look(s) since ${w.since}; traffic on ${w.servingSite}; started by ${w.startedBy}${w.supersededBy ? `; superseded by ${w.supersededBy}` : ''}`,
    );
    if (w.lastDetail) lines.push(`last look: ${w.lastDetail}`);
  }
  if (type === 'healthWatch') {
    for (const [site, h] of Object.entries(st.watch?.sites ?? {}))
      lines.push(
        `${site}${st.watch?.serving === site ? ' (serving)' : ''}: ${h.up ? 'up' : 'DOWN'} since ${h.since ?? '-'}, fail/ok streak ${h.failures}/${h.successes}${h.lastDetail ? ` — ${h.lastDetail}` : ''}`,
      );
  }
  return lines;
}

function trailerLines(workflowId: string, type: WorkflowType, st: AnyStatus): string[] {
  const lines: string[] = [];
  for (const c of st.checks ?? []) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.check}: ${c.detail}`);
  for (const e of (st.watch?.events ?? []).slice(-10)) lines.push(`  ${e.at} ${e.site} ${e.state}: ${e.detail}`);
  for (const f of st.watch?.failovers ?? [])
    lines.push(`  failover ${f.from} → ${f.to} started ${f.at}: ${f.workflowId}`);
  if (type === 'drDrill' && st.report) {
    lines.push(drillSummary(st.report));
    if (st.phase === 'waiting-signoff')
      lines.push(
        `sign it off: drctl drill sign ${workflowId} --comment TEXT (Web UI: paste the JSON of --sign-only into Signal 'signoff')`,
      );
  }
  return lines;
}

export function renderDecisions(st: Pick<RunbookStatus, 'decisions'>): string[] {
  return (st.decisions ?? []).map(
    (d) =>
      `  ${d.decision ?? (d.approve ? 'approve' : 'reject')} by ${d.by ? signerText(d) : '(unknown)'} at ${d.at}` +
      `${d.evidence ? ` over ${d.evidence.slice(0, 12)}…` : ''}: ${d.accepted ? 'ACCEPTED' : `refused (${d.why})`}${d.reason ? ` — ${d.reason}` : ''}`,
  );
}

export function renderAttention(st: Pick<RunbookStatus, 'attention' | 'rolledForward'>): string[] {
  const forward = st.rolledForward ? [`ROLLED FORWARD (kept, not undone): ${st.rolledForward}`] : [];
  if (!st.attention?.length) return forward;
  return [
    ...forward,
    `NEEDS ATTENTION: ${st.attention.length} undo(s) could not finish; check by hand:`,
    ...st.attention.map((a) => `  ${a.undo}: ${oneLine(a.error)}\n    check: ${a.check}`),
  ];
}

/** The whole status: header, evidence, step table (the running step's elapsed time as of `now`), decisions. */
export function renderStatus(
  workflowId: string,
  type: WorkflowType,
  shown: Shown,
  opts: { now?: number; url?: string | null } = {},
): string {
  const st = shown.status;
  const now = opts.now ?? Date.now();
  const closed = shown.execution && shown.execution !== 'RUNNING' ? ` [${shown.execution.toLowerCase()}]` : '';
  const who = st.requestedBy ? `, requested by ${st.requestedBy}` : '';
  const lines = [`${workflowId}: ${st.phase.toUpperCase()}${closed} — ${st.title}${who}`];
  if (shown.source === 'server') lines.push(serverNote(shown.asOf));
  lines.push(...evidenceLines(type, st));
  lines.push(...gateLines(st));
  if (st.waitingFor) lines.push(`waiting for ${st.waitingFor}`);
  if (st.phase === 'waiting-approval') lines.push(...gateHelp(workflowId, opts.url ?? null));
  if (st.steps.length) lines.push(stepTable(st.steps, now));
  lines.push(...renderDecisions(st), ...trailerLines(workflowId, type, st), ...renderAttention(st));
  if (st.error) lines.push(`error: ${st.error}`);
  return lines.join('\n');
}

/** "12:01:05" in local time: transition lines are read next to the operator's own clock. */
export const clockTime = (at: string | number | Date) => new Date(at).toTimeString().slice(0, 8);

/**
 * What changed between two looks at a run, one line each: the phase, each step that started or
 * ended, each undo of the compensation step. Without a previous look, everything already under way.
 */
export function transitions(
  type: WorkflowType,
  prev: AnyStatus | undefined,
  next: AnyStatus,
  opts: { now?: number; clock?: (at: string | number) => string } = {},
): string[] {
  const now = opts.now ?? Date.now();
  const clock = opts.clock ?? clockTime;
  const lines: string[] = [];
  if (prev?.phase !== next.phase && (prev || next.phase !== 'running')) {
    const why = next.phase === 'waiting-approval' || next.phase === 'waiting-signoff' ? next.waitingFor : next.error;
    lines.push(`[${clock(now)}] ${next.phase}${why ? ` — ${oneLine(why)}` : ''}`);
  }
  const before = new Map((prev?.steps ?? []).map((s) => [s.step, s]));
  const undos = compensationStep(type);
  for (const s of next.steps) {
    const was = before.get(s.step);
    if (was?.state !== s.state && s.state !== 'pending') {
      if (s.state === 'running') lines.push(`[${clock(s.startedAt ?? now)}] ${s.step}: running`);
      else {
        const secs = stepSeconds(s);
        const detail = s.detail ? ` — ${oneLine(s.detail)}` : '';
        lines.push(
          `[${clock(s.endedAt ?? now)}] ${s.step}: ${s.state}${secs === undefined ? '' : ` (${secondsText(secs)})`}${detail}`,
        );
      }
    }
    if (s.step === undos) {
      for (const [item, v] of Object.entries(s.items ?? {}))
        if (was?.items?.[item] !== v) lines.push(`[${clock(now)}] ${s.step} › ${item}: ${oneLine(v)}`);
    }
  }
  return lines;
}

/** Whether following can stop: the run changes nothing more (a drill: or only waits for its sign-off). */
export function settled(type: WorkflowType, st: Pick<RunbookStatus, 'phase'>): boolean {
  return FINAL_PHASES.includes(st.phase) || (type === 'drDrill' && st.phase === 'waiting-signoff');
}

/** Why a settled run counts as a failure (exit 1), or undefined when it succeeded. */
export function failureOf(workflowId: string, type: WorkflowType, st: AnyStatus): string | undefined {
  if (type === 'drDrill' && st.report && st.report.outcome !== 'passed')
    return `${workflowId}: drill ${st.report.outcome}`;
  if (st.phase === 'completed' || st.phase === 'dry-run' || st.phase === 'waiting-signoff') return undefined;
  return `${workflowId}: ${st.phase}${st.error ? `: ${errorLines(st.error)}` : ''}`;
}

/**
 * A run's error for the person who started it: its first line, then (a refusal's list: what each
 * node or check said) the rest indented, at most 20 lines.
 */
function errorLines(error: string): string {
  const [first = '', ...rest] = error.split('\n').filter((l) => l.trim());
  const shown = rest.slice(0, 20).map((l) => `  ${l}`);
  if (rest.length > 20) shown.push(`  … ${rest.length - 20} more (drctl status --json)`);
  return [first, ...shown].join('\n');
}

export function drillSummary(r: DrillReport): string {
  const lines = [
    `drill ${r.plan} (${r.workflowId}): ${r.outcome.toUpperCase()}; ${r.from} → ${r.to}, ${r.startedAt} → ${r.endedAt}`,
  ];
  // A failed drill leads with its cause and what to do; a figure it could not measure says why.
  const cause = r.cause ?? failureCause(r);
  if (cause) lines.push(`  WHY: ${cause.check}: ${cause.detail}`, `  DO: ${cause.action}`);
  for (const t of r.tiers) {
    const rto = t.rtoSeconds === undefined ? notMeasured(r, 'rto') : `${t.rtoSeconds.toFixed(1)} s`;
    const rpo = t.rpoSeconds === undefined ? notMeasured(r, 'rpo') : `${t.rpoSeconds} s`;
    lines.push(
      `  ${t.tier}: RTO ${rto} / ${formatDuration(t.rtoTargetSeconds * 1000)} ${t.rtoMet ? 'met' : 'MISSED'}, RPO ${rpo} / ${formatDuration(t.rpoTargetSeconds * 1000)} ${t.rpoMet ? 'met' : 'MISSED'}`,
    );
  }
  for (const v of r.verdicts) lines.push(`  ${v.ok ? 'PASS' : 'FAIL'} ${v.criterion}: ${v.detail}`);
  for (const f of r.failures) lines.push(`  failure: ${f.split('\n')[0]}`);
  lines.push(
    `  approvals: ${
      r.approvals
        .filter((a) => a.accepted)
        .map((a) => `${a.approve ? 'go' : 'no-go'} by ${signerText(a)}`)
        .join(', ') || 'none'
    }; sign-off: ${r.signOff ? `${signerText(r.signOff)}${r.signOff.comment ? ` (${r.signOff.comment})` : ''}` : 'pending'}`,
  );
  if (r.location)
    lines.push(
      `  report: s3://${r.location.bucket}/${r.location.html} (and report.json); drctl drill report ${r.workflowId} --out report.html`,
    );
  return lines.join('\n');
}
