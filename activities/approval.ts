// Approvals the worker can prove: every decision (and the request that started a run) is checked
// against the public keys in the worker's config (approvals.signers) with `ssh-keygen -Y verify`.
// The workflow keeps the verdicts in its status and history; keys never leave the worker's config.
import type { DecisionExpectation, VerifiedSigner } from '../common/signed.ts';
import { claimsMismatch, expired, parseSigned } from '../common/signed.ts';
import type { Gateways } from '../gateways/index.ts';
import { digestOf, verifyClaims } from '../gateways/ssh-signatures.ts';

/** A decision's verdict: who (proven, or `unsigned` when the config allows that), or why refused. */
export type DecisionVerdict =
  | { ok: true; signer: VerifiedSigner; unsigned?: false; reason?: string }
  | { ok: true; by: string; unsigned: true; reason?: string }
  | { ok: false; why: string; by?: string };

/** What the gate knows before it waits: the evidence's digest, the mode, and the proven requester. */
export interface GateOpening {
  evidenceDigest: string;
  /** approvals.unsigned: allow. Reports say so in red. */
  unsignedAllowed: boolean;
  /** The requester, proven by a signed request; or why it is not proven. */
  requester: { ok: true; signer: VerifiedSigner } | { ok: false; why: string };
}

export function createApprovalActivities(gw: Gateways) {
  const signers = () => gw.config.approvals.signers;
  const unsignedAllowed = () => gw.config.approvals.unsigned === 'allow';

  return {
    /** sha256 of canonicalJson(value): what a sign-off is signed over (the report). */
    async digestEvidence(input: { evidence: unknown }): Promise<string> {
      return digestOf(input.evidence);
    },

    /**
     * Before a gate waits: the digest of the evidence it shows (what a decision must be signed
     * over) and the requester's identity from the run's signed request, if it has one.
     */
    async openGate(input: {
      evidence: unknown;
      runbook: string;
      workflowId: string;
      request?: unknown;
      /** The run's input without `request`: what the request's `input` digest binds. */
      runInput?: unknown;
      /** When the run started: a request is valid if it was when the run started (the gate may come much later). */
      startedAtMs: number;
    }): Promise<GateOpening> {
      const evidenceDigest = digestOf(input.evidence);
      let requester: GateOpening['requester'] = { ok: false, why: 'the request is not signed' };
      if (input.request !== undefined) {
        const p = parseSigned(input.request);
        if (!p.ok) requester = { ok: false, why: `request: ${p.why}` };
        else if (p.signed.claims.kind !== 'request') requester = { ok: false, why: 'request: signed a decision' };
        else {
          const c = p.signed.claims;
          const want = digestOf(input.runInput);
          const why =
            c.runbook !== input.runbook
              ? `request signed for a ${c.runbook}, not a ${input.runbook}`
              : c.workflowId !== input.workflowId
                ? `request signed for workflow ${c.workflowId}, not ${input.workflowId}`
                : c.input !== want
                  ? 'request signed over another input than this run has'
                  : expired(c, input.startedAtMs);
          if (why) requester = { ok: false, why };
          else {
            const v = await verifyClaims(p.signed, signers());
            requester = v.ok ? v : { ok: false, why: `request: ${v.why}` };
          }
        }
      }
      return { evidenceDigest, unsignedAllowed: unsignedAllowed(), requester };
    },

    /**
     * One decision a person sent (signal or update): a signed decision by an allowlisted key,
     * bound to this run, this decision, this evidence and not expired; else refused, with why.
     */
    async verifyDecision(input: { sent: unknown; expect: DecisionExpectation }): Promise<DecisionVerdict> {
      const p = parseSigned(input.sent);
      if (!p.ok) {
        if (unsignedAllowed() && p.by) {
          const reason = (input.sent as { reason?: unknown }).reason;
          return { ok: true, by: p.by, unsigned: true, reason: typeof reason === 'string' ? reason : undefined };
        }
        return { ok: false, why: p.why, by: p.by };
      }
      const c = p.signed.claims;
      const mismatch = claimsMismatch(c, input.expect, Date.now());
      if (mismatch) return { ok: false, why: mismatch, by: c.by };
      const v = await verifyClaims(p.signed, signers());
      if (!v.ok) return { ok: false, why: v.why, by: c.by };
      return { ok: true, signer: v.signer, reason: c.kind === 'decision' ? c.reason : undefined };
    },
  };
}
