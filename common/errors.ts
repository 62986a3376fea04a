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
  QuorumNotReached = 'QuorumNotReached',
  VerificationFailed = 'VerificationFailed',
  DnsError = 'DnsError',
  VeleroError = 'VeleroError',
  BackupTooOld = 'BackupTooOld',
  FailoverRefused = 'FailoverRefused',
  /** The SSH login may not run commands as root on a node (no root login, no NOPASSWD sudo). */
  MissingPrivilege = 'MissingPrivilege',
  /** A runbook failed after changing things, and its undo put everything back. */
  Compensated = 'Compensated',
  /** A runbook failed and an undo could not finish: a human must check what its message names. */
  NeedsAttention = 'NeedsAttention',
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
  FailureType.VerificationFailed,
  FailureType.BackupTooOld,
  FailureType.FailoverRefused,
  FailureType.MissingPrivilege,
  FailureType.Compensated,
  FailureType.NeedsAttention,
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
