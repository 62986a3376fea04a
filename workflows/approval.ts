// The go/no-go gate every destructive runbook waits at: approve/reject signals (the Web UI's Signal
// button, input as JSON) and the CLI's `decide` update, which refuses an unlisted approver or a
// self-approval at once. Approvers come from the worker's config; the two-person rule keeps the
// requester from approving their own run.
import { ApplicationFailure, condition, defineSignal, defineUpdate, setHandler } from '@temporalio/workflow';
import { FailureType } from '../common/errors.ts';
import type { Decision, DecisionRecord } from '../common/restore.ts';

/** Web UI: Signal → `approve`, input `{"by": "alice", "reason": "site A lost"}`. */
export const approveSignal = defineSignal<[Decision]>('approve');
/** Web UI: Signal → `reject`, input `{"by": "alice", "reason": "wrong snapshot"}`. */
export const rejectSignal = defineSignal<[Decision]>('reject');
/** CLI: the same decision, but validated up front so a refused approver gets an error at once. */
export const decideUpdate = defineUpdate<DecisionRecord, [Decision & { approve: boolean }]>('decide');

export interface GateState {
  phase: string;
  decisions: DecisionRecord[];
}

/** Waits for an allowlisted approver's decision; the requester cannot approve under the two-person rule. */
export async function waitForDecision(
  status: GateState,
  policy: { approvers: string[]; twoPersonRule: boolean },
  requestedBy: string,
  timeoutMs: number,
  what = 'run',
): Promise<DecisionRecord> {
  let decision: DecisionRecord | undefined;
  const refusal = (d: Decision & { approve: boolean }): string | undefined => {
    if (!d || typeof d.by !== 'string' || !d.by) return 'a decision needs {"by": "<approver>"}';
    if (status.phase !== 'waiting-approval') return `not waiting for approval (phase: ${status.phase})`;
    if (!policy.approvers.includes(d.by))
      return `${d.by} is not an approver (allowlist: ${policy.approvers.join(', ')})`;
    if (d.approve && policy.twoPersonRule && d.by === requestedBy)
      return `two-person rule: ${d.by} requested this ${what} and cannot approve it`;
    return undefined;
  };
  const consider = (d: Decision & { approve: boolean }): DecisionRecord => {
    const why = refusal(d);
    const rec: DecisionRecord = {
      by: d?.by ?? '',
      reason: d?.reason,
      approve: d.approve,
      at: new Date().toISOString(),
      accepted: !why && !decision,
      why,
    };
    status.decisions.push(rec);
    if (rec.accepted) decision = rec;
    return rec;
  };
  // Waiting before the handlers exist: a decision buffered before the gate (a parent approving
  // its child runbook) is judged as one made at the gate.
  status.phase = 'waiting-approval';
  setHandler(approveSignal, (d) => void consider({ ...d, approve: true }), {
    description: 'Go: open the gate. Input {"by": "<approver on the allowlist>", "reason": "..."}',
  });
  setHandler(rejectSignal, (d) => void consider({ ...d, approve: false }), {
    description: 'No-go: abort with nothing changed. Input {"by": "<approver>", "reason": "..."}',
  });
  setHandler(decideUpdate, (d) => consider(d), {
    description: "The CLI's approve/reject: refused at once unless the approver may decide",
    validator: (d) => {
      const why = refusal(d);
      if (why) throw new Error(why);
    },
  });
  const decided = await condition(() => decision !== undefined, timeoutMs);
  if (!decided) {
    status.phase = 'aborted';
    throw ApplicationFailure.create({
      type: FailureType.ApprovalTimedOut,
      nonRetryable: true,
      message: `no approval within ${Math.round(timeoutMs / 1000)} s; nothing was changed`,
    });
  }
  return decision!;
}
