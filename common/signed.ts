// Signed approvals: what a person signs with their own SSH key, and what the worker checks.
// Pure code (workflows import the types and `parseSigned`): the signing and the check run outside
// workflows (gateways/ssh-signatures.ts, activities/approval.ts).
//
// The scheme is OpenSSH's `ssh-keygen -Y sign/verify` (SSHSIG, the format Git uses for signed
// commits) over `canonicalJson(claims)`, in the namespace SIGNATURE_NAMESPACE, checked against an
// allowed_signers file built from the worker's config (`approvals.signers`). A signature binds:
// - a decision (approve, reject, sign-off) to one run (workflow id AND run id: a signature for
//   another run, or an earlier run under the same id, is refused), to the sha256 of the evidence
//   the approver saw (`drctl status` shows it; the gate refuses any other), and to an expiry;
// - a request (starting a runbook) to the workflow id, the runbook and the sha256 of its input,
//   so the two-person rule compares two proven identities.

/** ssh-keygen -Y's namespace: a drctl signature cannot pass as a Git commit's or a file's. */
export const SIGNATURE_NAMESPACE = 'drctl-approval@v1';
/** The longest validity the worker accepts (a signature is a decision made now, not a standing one). */
export const MAX_VALIDITY_MS = 24 * 3_600_000;

export type DecisionKind = 'approve' | 'reject' | 'signoff';

export interface DecisionClaims {
  v: 1;
  kind: 'decision';
  decision: DecisionKind;
  workflowId: string;
  runId: string;
  /** sha256 (hex) of canonicalJson(the evidence the approver saw). */
  evidence: string;
  by: string;
  reason?: string;
  /** ISO time after which the worker refuses it. */
  notAfter: string;
}

export interface RequestClaims {
  v: 1;
  kind: 'request';
  runbook: string;
  workflowId: string;
  /** sha256 (hex) of canonicalJson(the run's input without its `request`). */
  input: string;
  by: string;
  notAfter: string;
}

export type Claims = DecisionClaims | RequestClaims;

/** What `drctl approve --sign-only` prints and the Web UI's Signal takes as input. */
export interface Signed<C extends Claims = Claims> {
  claims: C;
  /** The armored SSHSIG (`-----BEGIN SSH SIGNATURE-----` …). */
  signature: string;
}

/** A signature the worker checked: who, with which key, over what. */
export interface VerifiedSigner {
  by: string;
  /** The key's SHA256 fingerprint, as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

/** JSON with sorted keys and no whitespace: the bytes that are signed. `undefined` fields are left out. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonicalJson: non-finite number');
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * Parses what a person sent (a signal's input from the Web UI, an update's from the CLI): a Signed
 * message, or a reason it is not one. It checks shape only; `verify…` checks the signature.
 */
export function parseSigned(x: unknown): { ok: true; signed: Signed } | { ok: false; why: string; by?: string } {
  if (typeof x === 'string') {
    try {
      x = JSON.parse(x);
    } catch {
      return { ok: false, why: 'not JSON: paste the whole output of `drctl approve --sign-only`' };
    }
  }
  if (!x || typeof x !== 'object') return { ok: false, why: 'expected {"claims": {...}, "signature": "..."}' };
  const o = x as Record<string, unknown>;
  const claimedBy = typeof o.by === 'string' ? o.by : undefined;
  if (!('signature' in o) || !('claims' in o))
    return {
      ok: false,
      by: claimedBy,
      why: 'unsigned: a decision must be signed (`drctl approve <id> --sign-only` prints one to paste here)',
    };
  const c = o.claims as Record<string, unknown> | null;
  if (typeof o.signature !== 'string' || !o.signature.includes('BEGIN SSH SIGNATURE'))
    return { ok: false, why: 'signature: expected an armored SSH signature (-----BEGIN SSH SIGNATURE-----)' };
  if (!c || typeof c !== 'object' || c.v !== 1 || (c.kind !== 'decision' && c.kind !== 'request'))
    return { ok: false, why: 'claims: expected {"v": 1, "kind": "decision" | "request", ...}' };
  for (const f of c.kind === 'decision'
    ? ['decision', 'workflowId', 'runId', 'evidence', 'by', 'notAfter']
    : ['runbook', 'workflowId', 'input', 'by', 'notAfter'])
    if (typeof c[f] !== 'string' || !c[f]) return { ok: false, why: `claims.${f}: expected a non-empty string` };
  if (c.kind === 'decision' && !['approve', 'reject', 'signoff'].includes(c.decision as string))
    return { ok: false, why: "claims.decision: expected 'approve', 'reject' or 'signoff'" };
  if (Number.isNaN(Date.parse(c.notAfter as string)))
    return { ok: false, why: 'claims.notAfter: expected an ISO time' };
  return { ok: true, signed: { claims: c as unknown as Claims, signature: o.signature } };
}

/** What a decision must match, besides a good signature by an allowlisted key. */
export interface DecisionExpectation {
  decision: DecisionKind;
  workflowId: string;
  runId: string;
  evidence: string;
}

/** Why signed claims do not fit this run and moment (undefined when they fit). Pure. */
export function claimsMismatch(c: Claims, want: DecisionExpectation, nowMs: number): string | undefined {
  if (c.kind !== 'decision') return 'this is a signed request, not a decision';
  if (c.decision !== want.decision) return `signed a ${c.decision}, sent as a ${want.decision}`;
  if (c.workflowId !== want.workflowId) return `signed for workflow ${c.workflowId}, not this one`;
  if (c.runId !== want.runId) return `signed for run ${c.runId} of ${c.workflowId}, not this run (${want.runId})`;
  if (c.evidence !== want.evidence)
    return `signed over evidence ${c.evidence.slice(0, 12)}…, but this gate's evidence is ${want.evidence.slice(0, 12)}… (re-read it with drctl status)`;
  return expired(c, nowMs);
}

export function expired(c: Claims, nowMs: number): string | undefined {
  const until = Date.parse(c.notAfter);
  if (until < nowMs) return `expired at ${c.notAfter}`;
  if (until - nowMs > MAX_VALIDITY_MS) return `valid until ${c.notAfter}: longer than the 24 h the worker accepts`;
  return undefined;
}
