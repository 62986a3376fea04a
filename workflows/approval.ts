// The go/no-go gate's messages: approve/reject signals (the Web UI's Signal button, input as JSON)
// and the CLI's `decide` update, which refuses an unlisted approver or a self-approval at once.
// The gate itself is a step of the runbook kernel (runbook.ts: `gate`).
import { defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Decision, DecisionRecord } from '../common/runbook.ts';

/** Web UI: Signal → `approve`, input `{"by": "alice", "reason": "site A lost"}`. */
export const approveSignal = defineSignal<[Decision]>('approve');
/** Web UI: Signal → `reject`, input `{"by": "alice", "reason": "wrong snapshot"}`. */
export const rejectSignal = defineSignal<[Decision]>('reject');
/** CLI: the same decision, but validated up front so a refused approver gets an error at once. */
export const decideUpdate = defineUpdate<DecisionRecord, [Decision & { approve: boolean }]>('decide');
