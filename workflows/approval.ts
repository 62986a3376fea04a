// The go/no-go gate's messages: approve/reject signals (the Web UI's Signal button, input the
// signed decision `drctl approve <id> --sign-only` prints) and the CLI's `decide` update, which
// answers at once with the worker's verdict. The gate itself is the kernel's (runbook.ts: `gate`).
import { defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DecisionRecord } from '../common/runbook.ts';
import type { Signed } from '../common/signed.ts';

/** Web UI: Signal → `approve`, input `{"claims": {...}, "signature": "-----BEGIN SSH SIGNATURE-----..."}`. */
export const approveSignal = defineSignal<[Signed | { by: string; reason?: string }]>('approve');
/** Web UI: Signal → `reject`, input: the signed rejection. */
export const rejectSignal = defineSignal<[Signed | { by: string; reason?: string }]>('reject');
/** CLI: the signed decision; the answer is the verdict, an error when refused. */
export const decideUpdate = defineUpdate<
  DecisionRecord,
  [{ approve: boolean; signed?: Signed; by?: string; reason?: string }]
>('decide');
