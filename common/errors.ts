// Typed failures. Pure code: workflows import this too.
import { ApplicationFailure } from '@temporalio/common';

/** Bad input from a person (flags, config): the CLI prints the message and exits 2, no stack. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Every failure type drctl raises across the activity/workflow boundary. */
export enum FailureType {
  HostKeyMismatch = 'HostKeyMismatch',
  SshUnreachable = 'SshUnreachable',
  RemoteCommandFailed = 'RemoteCommandFailed',
  EtcdUnhealthy = 'EtcdUnhealthy',
  ObjectStoreError = 'ObjectStoreError',
  KubeApiError = 'KubeApiError',
  UnknownCluster = 'UnknownCluster',
  Timeout = 'Timeout',
  SnapshotCorrupt = 'SnapshotCorrupt',
  SnapshotNotFound = 'SnapshotNotFound',
  /**
   * An object in the bucket that drctl did not sign, or whose signature does not verify (planted,
   * tampered with, or signed with another key): never a restore source.
   */
  SnapshotUntrusted = 'SnapshotUntrusted',
  ClusterHasQuorum = 'ClusterHasQuorum',
  PreflightFailed = 'PreflightFailed',
  ApprovalRejected = 'ApprovalRejected',
  ApprovalTimedOut = 'ApprovalTimedOut',
  /** A decision the gate did not accept: unsigned, mis-signed, for another run or evidence, not allowed. */
  ApprovalRefused = 'ApprovalRefused',
  QuorumNotReached = 'QuorumNotReached',
  VerificationFailed = 'VerificationFailed',
  DnsError = 'DnsError',
  VeleroError = 'VeleroError',
  BackupTooOld = 'BackupTooOld',
  FailoverRefused = 'FailoverRefused',
  /** The SSH login may not run commands as root on a node (no root login, no NOPASSWD sudo). */
  MissingPrivilege = 'MissingPrivilege',
  /**
   * What the go/no-go was given for no longer holds when the gate opens (the cluster regained
   * quorum, the snapshot changed, a node is gone): the run aborts with nothing changed.
   */
  ChangedSinceApproval = 'ChangedSinceApproval',
  /** A runbook failed after changing things, and its undo put everything back. */
  Compensated = 'Compensated',
  /** A runbook failed and an undo could not finish: a human must check what its message names. */
  NeedsAttention = 'NeedsAttention',
  /** A runbook failed past its point of no return and finished its change instead of undoing it. */
  RolledForward = 'RolledForward',
  /** Another runbook holds the site (common/lease.ts): one runbook per site at a time. */
  LeaseHeld = 'LeaseHeld',
  /** Neither site of a failover answers as the app: no undo can put DNS on a site that serves. */
  NoSiteServes = 'NoSiteServes',
}

/**
 * Failures that no retry can fix: a wrong host key stays wrong, a refusal or a verdict stays the
 * same. The one list: failure() marks these non-retryable, and a workflow's retry policy passes it
 * as nonRetryableErrorTypes. Other types are retryable unless one instance says otherwise.
 */
export const NON_RETRYABLE_TYPES: readonly FailureType[] = [
  FailureType.HostKeyMismatch,
  FailureType.UnknownCluster,
  FailureType.SnapshotCorrupt,
  FailureType.SnapshotNotFound,
  FailureType.SnapshotUntrusted,
  FailureType.ClusterHasQuorum,
  FailureType.PreflightFailed,
  FailureType.ApprovalRejected,
  FailureType.ApprovalTimedOut,
  FailureType.ApprovalRefused,
  FailureType.VerificationFailed,
  FailureType.BackupTooOld,
  FailureType.FailoverRefused,
  FailureType.MissingPrivilege,
  FailureType.ChangedSinceApproval,
  FailureType.Compensated,
  FailureType.NeedsAttention,
  FailureType.RolledForward,
  FailureType.NoSiteServes,
  FailureType.LeaseHeld,
];

const NON_RETRYABLE = new Set(NON_RETRYABLE_TYPES);

/**
 * `nonRetryable` overrides the type's default for one instance: a Velero restore that ended Failed
 * is final (retrying finds the same Restore), while a VeleroError from an API call may pass.
 */
export function failure(
  type: FailureType,
  message: string,
  details?: unknown,
  nonRetryable = NON_RETRYABLE.has(type),
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable,
    details: details === undefined ? [] : [details],
  });
}

/** The innermost message of a failure chain: the activity's own, not "Activity task failed" around it. */
export function rootMessage(err: unknown): string {
  let e = err as Error & { cause?: unknown };
  while (e.cause instanceof Error) e = e.cause as Error & { cause?: unknown };
  return e.message;
}

/** The type of the innermost typed failure of a chain (an activity's own, inside "Activity task failed"). */
export function failureType(err: unknown): string | undefined {
  let type: string | undefined;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const t = (e as Error & { type?: unknown }).type;
    if (typeof t === 'string' && t) type = t;
  }
  return type;
}
