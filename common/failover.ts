// The site failover contract: what `drctl failover|failback` sends, what the workflow reports, and
// the pure decisions (RPO policy, DNS safety) the workflow and the tests share. Pure code.
import type { Decision, DecisionRecord, RunbookStatus } from './runbook.ts';
import type { Signed } from './signed.ts';

export const FAILOVER_STEPS = [
  'lease',
  'preflight',
  'backup-source',
  'approval',
  'fence-primary',
  'restore',
  'verify',
  'switch-dns',
  'standby',
  'report',
] as const;
export type FailoverStep = (typeof FAILOVER_STEPS)[number];

export interface FailoverInput {
  /** Site losing (or giving back) the traffic. */
  from: string;
  /** Site taking it. */
  to: string;
  /** Defaults to the config's failover.namespaces. */
  namespaces?: string[];
  requestedBy: string;
  reason?: string;
  /** Failback: back up `from` first and restore that backup (instead of the newest existing one). */
  backupFirst?: boolean;
  approvalTimeoutMs?: number;
  /** When the disaster was declared (the health watch's first failed probe); RTO counts from here. */
  declaredAt?: string;
  /** The requester's signed request (`drctl failover` signs it with their key). */
  request?: Signed;
}

export interface CheckResult {
  check: string;
  ok: boolean;
  detail: string;
}

export interface BackupRef {
  name: string;
  completedAt: string;
  ageSeconds: number;
  itemsBackedUp?: number;
  includedNamespaces: string[];
}

export interface FailoverPreflight {
  tier: string;
  rpoTargetMs: number;
  rtoTargetMs: number;
  rpoPolicy: 'refuse' | 'warn';
  namespaces: string[];
  records: { name: string; ttl: number; addresses: string[] }[];
  fromAddress: string;
  toAddress: string;
  drReady: CheckResult[];
  storageLocation: { name: string; phase?: string; accessMode: string };
  backup?: BackupRef;
  /** Namespaces that already exist at the target (a restore does not overwrite them). */
  existingAtTarget: string[];
  primaryReachable: boolean;
  primaryDetail: string;
  /** How long the post-restore checks may wait; also how long an undo waits for the old primary to serve again. */
  verifyTimeoutMs?: number;
  warnings: string[];
}

export interface FailoverEvidence {
  backup?: BackupRef;
  expectedRpoSeconds?: number;
  rpoTargetSeconds: number;
  rtoTargetSeconds: number;
  namespaces: string[];
  records: { name: string; from: string[]; to: string[]; ttl: number }[];
  primaryReachable: boolean;
  warnings: string[];
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface FailoverStatus extends RunbookStatus<FailoverEvidence> {
  from: string;
  to: string;
  checks?: CheckResult[];
}

export interface FailoverReport {
  outcome: 'completed';
  from: string;
  to: string;
  backup: BackupRef;
  restoreName: string;
  startedAt: string;
  /** RTO counts from here: the disaster declaration if there was one, else the workflow start. */
  rtoFrom: string;
  servingAt: string;
  rtoSeconds: number;
  rpoSeconds: number;
  rtoTargetSeconds: number;
  rpoTargetSeconds: number;
  rtoMet: boolean;
  rpoMet: boolean;
  /** Waiting for the go/no-go, included in the RTO (a person decides), reported apart. */
  approvalWaitSeconds: number;
  steps: { step: string; seconds: number }[];
  checks: CheckResult[];
  approval?: DecisionRecord;
  warnings: string[];
}

export type { Decision, DecisionRecord };

/** Whether a backup this old may be restored under the tier's RPO target and policy. */
export function rpoVerdict(
  ageSeconds: number,
  rpoTargetMs: number,
  policy: 'refuse' | 'warn',
): { ok: boolean; refuse: boolean; message?: string } {
  const over = ageSeconds * 1000 > rpoTargetMs;
  if (!over) return { ok: true, refuse: false };
  const message = `newest backup is ${ageSeconds} s old, over the RPO target of ${Math.round(rpoTargetMs / 1000)} s`;
  return { ok: false, refuse: policy === 'refuse', message };
}

/**
 * Where DNS goes when a failover is undone after it moved the records, decided once the old
 * primary has been unfenced and given time to answer. The rule: DNS always ends on a site that
 * serves, and nothing DNS points at is deleted.
 * - `revert`: the old site answers: DNS back to it, then the rest is undone (the target's restore
 *   removed).
 * - `forward`: only the target answers: the run rolls forward instead (DNS stays on the target, the
 *   old primary is fenced again, nothing more is undone).
 * - `neither`: no site answers: rolled forward as well (the target's restore passed verification
 *   minutes ago; nothing is deleted), and the run ends needs-attention.
 */
export type DnsOnUndo = 'revert' | 'forward' | 'neither';

export function dnsOnUndo(oldServes: boolean, newServes: boolean): DnsOnUndo {
  if (oldServes) return 'revert';
  return newServes ? 'forward' : 'neither';
}

/** The one fence-on-return per site: a second failover away from it finds the first. */
export const fenceOnReturnId = (site: string) => `fence-on-return-${site}`;

/** What a failover hands the fence-on-return of a site it could not fence (unreachable). */
export interface FenceOnReturnInput {
  site: string;
  namespaces: string[];
  /** The failover's tag: what this fences, that failover's undo (or promotion) recognises. */
  tag: string;
  /** The failover that started it (its workflow id). */
  startedBy: string;
  /** Where the failover moved the traffic (the fence is for this site's sake). */
  servingSite: string;
  /** First wait between looks, doubled after each one up to `maxPollMs` (defaults 10 s, 5 min). */
  pollMs?: number;
  maxPollMs?: number;
  /** Looks per run before continue-as-new (default 150: about 1,500 history events). */
  looksPerRun?: number;
  /** Carried across continue-as-new. */
  state?: FenceOnReturnState;
}

export interface FenceOnReturnState {
  attempts: number;
  since: string;
  lastDetail?: string;
}

export interface FenceOnReturnResult {
  /** fenced: it answered and was fenced; serving: an app record points at it again (not fenced); superseded: a later failover or failback took over. */
  outcome: 'fenced' | 'serving' | 'superseded';
  site: string;
  attempts: number;
  fenced: string[];
  detail: string;
}

/** The signal a later failover or failback sends a fence-on-return it makes pointless. */
export interface Supersede {
  by: string;
  reason: string;
}
