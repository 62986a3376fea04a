// The shapes every runbook shares: its status (the `status` query, the memo a run keeps on the
// server, `drctl status`), its steps, the go/no-go decisions and the search attributes the Web UI
// filters on. Pure code: workflows, the CLI and tests import this.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Sinks } from '@temporalio/workflow';

/** Every runbook drctl runs, by its workflow type. */
export const RUNBOOKS = {
  clusterHealth: 'cluster-health',
  clusterRebuild: 'cluster-rebuild',
  etcdLatency: 'etcd-latency',
  etcdTune: 'etcd-tune',
  etcdRecover: 'etcd-recover',
  etcdRejoin: 'etcd-rejoin',
  etcdSnapshot: 'etcd-snapshot',
  etcdRestore: 'etcd-restore',
  siteFailover: 'site-failover',
  healthWatch: 'health-watch',
  drDrill: 'drill',
  fenceOnReturn: 'fence-on-return',
  namespaceRestore: 'namespace-restore',
  readinessAudit: 'audit',
  protectNamespaces: 'protect-namespaces',
} as const;
export type WorkflowType = keyof typeof RUNBOOKS;
export type RunbookName = (typeof RUNBOOKS)[WorkflowType];

export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

/** One step as `drctl status`, the memo and the drill report show it. */
export interface Step {
  step: string;
  state: StepState;
  startedAt?: string;
  endedAt?: string;
  seconds?: number;
  /** One line: what the step found or did, or the activity's own message when it failed. */
  detail?: string;
  /** Per-item progress (a node, a check, an undo): 'running', 'done', or what happened to it. */
  items: Record<string, string>;
}

/** Every phase a run can be in, in the order a run meets them. */
export const PHASES = [
  'running',
  'waiting-approval',
  'compensating',
  'cleaning-up',
  'waiting-signoff',
  'completed',
  'dry-run',
  'aborted',
  'compensated',
  'rolled-forward',
  'needs-attention',
  'failed',
] as const;
export type Phase = (typeof PHASES)[number];

/** Phases after which the run changes nothing more (a drill waiting for sign-off is not one): the last seven. */
export const FINAL_PHASES: readonly Phase[] = PHASES.slice(PHASES.indexOf('completed'));

/** An undo that could not finish: what it was, why, and what a human must check now. */
export interface Attention {
  undo: string;
  error: string;
  check: string;
}

export interface Decision {
  by: string;
  reason?: string;
}

export interface DecisionRecord extends Decision {
  approve: boolean;
  /** What was decided: the gate's approve/reject, or a report's sign-off. */
  decision?: 'approve' | 'reject' | 'signoff';
  at: string;
  accepted: boolean;
  why?: string;
  /** The signing key's SHA256 fingerprint, verified by the worker (absent: unsigned or refused). */
  fingerprint?: string;
  /** sha256 of the evidence the decision was signed over (the gate's `evidenceDigest`). */
  evidence?: string;
  /** Accepted without a signature because the worker's config had approvals.unsigned: allow. */
  unsigned?: boolean;
}

/** "alice (SHA256:abc…)", or "alice (UNSIGNED)" when approvals.unsigned: allow let it in. */
export function signerText(d: Pick<DecisionRecord, 'by' | 'unsigned' | 'fingerprint'>): string {
  return `${d.by} (${d.unsigned ? 'UNSIGNED' : (d.fingerprint ?? 'unverified')})`;
}

/** What a gate shows before it waits: what to sign over, and who asked (proven or not). */
export interface GateInfo {
  /** sha256 of canonicalJson(status.evidence): a decision is signed over this. */
  evidenceDigest: string;
  /** approvals.unsigned: allow was on: anyone could be anyone (reports say so in red). */
  unsignedAllowed: boolean;
  /** The requester, proven by a signed request (name and key fingerprint). */
  requester?: { by: string; fingerprint: string };
  /** Why the requester is not proven (then the two-person rule needs two approvers). */
  requesterUnproven?: string;
  /** Approvals from different people needed to open the gate. */
  approvalsNeeded: number;
}

/** The `status` query of every runbook; runbooks add their own fields (plan, checks, report). */
export interface RunbookStatus<E = unknown> {
  runbook: RunbookName;
  /** One line for a person: "etcd restore of site-a from snapshot …". */
  title: string;
  phase: Phase;
  requestedBy?: string;
  sites: string[];
  cluster?: string;
  steps: Step[];
  decisions: DecisionRecord[];
  approval?: DecisionRecord;
  /** Every approval that opened the gate (two when the two-person rule had no proven requester). */
  approvals?: DecisionRecord[];
  gate?: GateInfo;
  evidence?: E;
  /** What the run waits for while it waits for a person. */
  waitingFor?: string;
  /** Why the run failed: the root cause's own message. */
  error?: string;
  /** Set with phase `needs-attention`: the undos that could not finish. */
  attention?: Attention[];
  /**
   * Why the run stopped undoing and kept what is left (phase `rolled-forward`, or `needs-attention`
   * when the roll-forward itself could not finish): a failover whose target already serves.
   */
  rolledForward?: string;
}

/** What a run keeps in its memo (readable from the server when no worker answers the query). */
export type StatusMemo = Pick<
  RunbookStatus,
  'runbook' | 'title' | 'phase' | 'waitingFor' | 'error' | 'attention' | 'rolledForward'
> & {
  steps: Omit<Step, 'items'>[];
};
export const STATUS_MEMO_KEY = 'drctlStatus';

/** Search attributes every run upserts, registered by the lab's Temporal server at start. */
export const SEARCH_ATTRIBUTES = {
  runbook: 'DrctlRunbook',
  sites: 'DrctlSites',
  cluster: 'DrctlCluster',
  phase: 'DrctlPhase',
  requestedBy: 'DrctlRequestedBy',
} as const;
/** The same attributes as typed keys, for reading them (the CLI) and upserting them (the kernel). */
export const SEARCH_KEYS = {
  runbook: defineSearchAttributeKey(SEARCH_ATTRIBUTES.runbook, SearchAttributeType.KEYWORD),
  sites: defineSearchAttributeKey(SEARCH_ATTRIBUTES.sites, SearchAttributeType.KEYWORD_LIST),
  cluster: defineSearchAttributeKey(SEARCH_ATTRIBUTES.cluster, SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey(SEARCH_ATTRIBUTES.phase, SearchAttributeType.KEYWORD),
  requestedBy: defineSearchAttributeKey(SEARCH_ATTRIBUTES.requestedBy, SearchAttributeType.KEYWORD),
};

/** What a run starts with (the CLI, a schedule, a parent run); the run keeps its phase up to date. */
export function startSearchAttributes(runbook: RunbookName, requestedBy?: string) {
  return [
    { key: SEARCH_KEYS.runbook, value: runbook },
    { key: SEARCH_KEYS.phase, value: 'running' },
    ...(requestedBy ? [{ key: SEARCH_KEYS.requestedBy, value: requestedBy }] : []),
  ];
}

/** `temporal server start-dev --search-attribute NAME=TYPE` for each of them. */
export const SEARCH_ATTRIBUTE_TYPES: Record<(typeof SEARCH_ATTRIBUTES)[keyof typeof SEARCH_ATTRIBUTES], string> = {
  DrctlRunbook: 'Keyword',
  DrctlSites: 'KeywordList',
  DrctlCluster: 'Keyword',
  DrctlPhase: 'Keyword',
  DrctlRequestedBy: 'Keyword',
};

export function memoOf(s: RunbookStatus): StatusMemo {
  return {
    runbook: s.runbook,
    title: s.title,
    phase: s.phase,
    waitingFor: s.waitingFor,
    error: s.error,
    attention: s.attention,
    rolledForward: s.rolledForward,
    steps: s.steps.map(({ items: _items, ...rest }) => rest),
  };
}

/** A run reached a final phase: what the worker counts (drctl_runbook_runs_total, drctl_runbook_duration_seconds). */
export interface RunEnded {
  runbook: RunbookName;
  phase: Phase;
  /** From the run's start to its final phase (a wait at the gate included). */
  seconds: number;
}

/** What workflows report to the worker they run on; not during replay, so a run is counted once, by the worker whose task ended it. */
export interface DrctlSinks extends Sinks {
  drctlMetrics: { runEnded(ev: RunEnded): void };
}
