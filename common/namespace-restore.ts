// The namespace restore contract (the seed's question 2: `kubectl delete namespace production` at
// 10:42, the last backup at 10:00): what `drctl restore namespace` sends, what the run reports, and
// the pure decisions the workflow, the activities and the tests share. Pure code.
import type { BackupRef, CheckResult } from './failover.ts';
import type { DecisionRecord, RunbookStatus } from './runbook.ts';
import type { Signed } from './signed.ts';

export const NAMESPACE_RESTORE_STEPS = [
  'lease',
  'preflight',
  'approval',
  'release-volumes',
  'restore',
  'verify',
  'report',
] as const;

/**
 * Velero's existing-resources policy for a restore in place. `none` (Velero's default): what exists
 * is left as it is and reported as a warning. After an accidental deletion whatever exists again
 * (recreated by a person or a GitOps controller since) is newer than the backup; `update` would roll
 * it back to the backup's version.
 */
export const IN_PLACE_POLICY = 'none' as const;
export const IN_PLACE_POLICY_WHY =
  "Velero existingResourcePolicy 'none': what exists now is newer than the backup and is left as it is; only what is missing is created";

/** Namespaces a restore in place never touches: the cluster's own and Velero's. */
export function systemNamespace(ns: string, veleroNamespace = 'velero'): boolean {
  return ns.startsWith('kube-') || ns === 'default' || ns === veleroNamespace;
}

export interface NamespaceRestoreInput {
  site: string;
  namespaces: string[];
  /** When the namespaces were lost (ISO); the backup restored is the newest Completed before it. Default: the run's start. */
  before?: string;
  requestedBy: string;
  reason?: string;
  approvalTimeoutMs?: number;
  /** The requester's signed request (`drctl restore namespace` signs it with their key). */
  request?: Signed;
}

/** A Retain PersistentVolume whose claim was deleted with its namespace: its data is still there. */
export interface RetainedVolume {
  name: string;
  claim: string;
  phase: string;
  /** The deleted claim's uid the volume still names: while set, the restored claim cannot bind it. */
  staleUid?: string;
}

export interface NamespaceRestorePreflight {
  site: string;
  namespaces: string[];
  before: string;
  drReady: CheckResult[];
  /** Each namespace now: absent, Active (what exists is kept), Terminating (refused). */
  present: { namespace: string; phase: string; createdAt?: string }[];
  backup?: BackupRef & { startedAt: string };
  /** What the backup holds of the namespaces, per resource type. */
  contents: Record<string, number>;
  volumes: RetainedVolume[];
  /** The app records pointing at the site: the app must answer through them afterwards. */
  records: string[];
  siteAddress?: string;
  rpoTargetSeconds?: number;
  tier?: string;
  warnings: string[];
}

export interface NamespaceRestoreEvidence {
  site: string;
  namespaces: string[];
  backup: BackupRef & { startedAt: string };
  before: string;
  /** Changes made between the backup's start and `before` are lost: the restore's RPO. */
  changesLostSeconds: number;
  rpoTargetSeconds?: number;
  contents: Record<string, number>;
  present: { namespace: string; phase: string }[];
  volumes: RetainedVolume[];
  policy: string;
  records: string[];
  warnings: string[];
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface NamespaceRestoreStatus extends RunbookStatus<NamespaceRestoreEvidence> {
  site: string;
  checks?: CheckResult[];
}

export interface NamespaceRestoreReport {
  outcome: 'completed';
  site: string;
  namespaces: string[];
  backup: BackupRef & { startedAt: string };
  restoreName: string;
  before: string;
  rpoSeconds: number;
  rpoTargetSeconds?: number;
  rpoMet?: boolean;
  /** From the start of the run to the app verified (approval wait included, reported apart). */
  rtoSeconds: number;
  approvalWaitSeconds: number;
  volumesRebound: string[];
  itemsRestored?: number;
  checks: CheckResult[];
  steps: { step: string; seconds: number }[];
  approval?: DecisionRecord;
  warnings: string[];
}

/**
 * The backups a restore of `namespaces` lost at `before` may use, newest first: Completed, finished
 * by then (one still running at the loss may hold half of it), in the site's location, holding the
 * namespaces. The restore takes the first whose contents hold every namespace (holds).
 */
export function backupsBefore<
  B extends {
    phase: string;
    completedAt?: string;
    startedAt?: string;
    storageLocation?: string;
    includedNamespaces: string[];
  },
>(backups: B[], namespaces: string[], location: string, before: number): B[] {
  return backups
    .filter((b) => b.phase === 'Completed' && b.completedAt && Date.parse(b.completedAt) <= before)
    .filter((b) => (b.storageLocation ?? location) === location)
    .filter((b) => b.includedNamespaces.includes('*') || namespaces.every((ns) => b.includedNamespaces.includes(ns)))
    .sort((a, b) => Date.parse(b.startedAt ?? b.completedAt!) - Date.parse(a.startedAt ?? a.completedAt!));
}

/** Whether a backup's resource list holds every namespace (a backup taken after the deletion does not). */
export function holds(list: Record<string, string[]>, namespaces: string[]): boolean {
  return namespaces.every((ns) => (list['v1/Namespace'] ?? []).includes(ns));
}

/** Changes lost: from the backup's start (what it may miss) to the loss. Never negative. */
export function changesLostSeconds(backupStartedAt: string, before: string): number {
  return Math.max(0, Math.round((Date.parse(before) - Date.parse(backupStartedAt)) / 1000));
}

/** What a backup's resource list ("v1/Secret": ["ns/name", ...]) holds of `namespaces`, per type. */
export function contentsOf(list: Record<string, string[]>, namespaces: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [type, items] of Object.entries(list)) {
    const n = items.filter((i) =>
      type === 'v1/Namespace' ? namespaces.includes(i) : namespaces.some((ns) => i.startsWith(`${ns}/`)),
    ).length;
    if (n) out[type] = n;
  }
  return out;
}
