// The site failover contract: what `drctl failover|failback` sends, what the workflow reports, and
// the pure decisions (RPO policy, DNS safety) the workflow and the tests share. Pure code.
import type { Decision, DecisionRecord, RunbookStatus } from './runbook.ts';
import type { Signed } from './signed.ts';

export const FAILOVER_STEPS = [
  'preflight',
  'backup-source',
  'approval',
  'fence-primary',
  'restore',
  'verify',
  'switch-dns',
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
 * Where DNS goes when a failover is undone. The rule: never leave the record pointing at no healthy
 * site. Back to the old site if it answers (or if neither does: nothing better exists); otherwise
 * stay on the new one if that one answers.
 */
export function dnsOnUndo(oldHealthy: boolean, newHealthy: boolean): 'revert' | 'keep' {
  return !oldHealthy && newHealthy ? 'keep' : 'revert';
}
