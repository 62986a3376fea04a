// The CLI's side of signed approvals: it signs, with the person's own SSH key, the request that
// starts a run and every decision at a gate; the worker verifies (activities/approval.ts). The key
// is --key, else $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519; who signs is the name the worker's
// config lists for that key (approvals.signers), so nobody types whose decision it is.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { parseDuration } from '../common/duration.ts';
import { UsageError } from '../common/errors.ts';
import type { GateInfo, RunbookName } from '../common/runbook.ts';
import { type DecisionKind, MAX_VALIDITY_MS, type RequestClaims, type Signed } from '../common/signed.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { digestOf, keyWords, publicKeyOf, signClaims } from '../gateways/ssh-signatures.ts';
import { STATUS_QUERY } from './runbook-kit.ts';
import { whoami } from './temporal.ts';

/** A decision is valid this long unless --valid says otherwise. */
export const DEFAULT_VALIDITY = '15m';

/** The signing key: --key, $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519 when it exists. */
export function signingKey(flag?: string): { path: string; explicit: boolean } | undefined {
  const explicit = flag ?? process.env.DRCTL_SIGNING_KEY;
  if (explicit) {
    if (!existsSync(explicit)) throw new UsageError(`--key: no such key file: ${explicit}`);
    return { path: explicit, explicit: true };
  }
  const dflt = join(homedir(), '.ssh', 'id_ed25519');
  return existsSync(dflt) ? { path: dflt, explicit: false } : undefined;
}

/** Whose key this is, per the config's approvals.signers; undefined when nobody's. */
export async function principalOf(config: DrctlConfig, keyPath: string): Promise<string | undefined> {
  const pub = await publicKeyOf(keyPath).catch((err: Error) => {
    throw new UsageError(`--key: ${err.message}`);
  });
  for (const [who, keys] of Object.entries(config.approvals.signers))
    if (keys.some((k) => keyWords(k) === pub)) return who;
  return undefined;
}

export function validityMs(flag: string | undefined): number {
  const ms = parseDuration(flag ?? DEFAULT_VALIDITY);
  if (ms === undefined || ms <= 0 || ms > MAX_VALIDITY_MS)
    throw new UsageError(`--valid: expected a duration from 1s to 24h, like 15m (got '${flag}')`);
  return ms;
}

/**
 * Signs a run's request: the input gets `requestedBy` = the key's owner and `request`, the
 * signature over the workflow id, the runbook and the input. Without a key of a listed signer the
 * input goes unsigned (returned as is, with why): the gate then needs two approvers.
 */
export async function signRequest<I extends { requestedBy: string }>(
  config: DrctlConfig,
  r: { runbook: RunbookName; workflowId: string; input: I; key?: string; as?: string },
): Promise<{ input: I & { request?: Signed }; unsigned?: string }> {
  const key = signingKey(r.key);
  if (!key) return { input: r.input, unsigned: 'no signing key (--key, $DRCTL_SIGNING_KEY or ~/.ssh/id_ed25519)' };
  const by = await principalOf(config, key.path);
  if (!by) {
    if (key.explicit) throw new UsageError(`--key: ${key.path} is nobody's key in the config's approvals.signers`);
    return { input: r.input, unsigned: `${key.path} is nobody's key in approvals.signers` };
  }
  if (r.as !== undefined && r.as !== by)
    throw new UsageError(`--as ${r.as}: the signing key ${key.path} is ${by}'s (drop --as, or use your own key)`);
  const input = { ...r.input, requestedBy: by };
  const claims: RequestClaims = {
    v: 1,
    kind: 'request',
    runbook: r.runbook,
    workflowId: r.workflowId,
    input: digestOf(input),
    by,
    notAfter: new Date(Date.now() + 10 * 60_000).toISOString(),
  };
  return { input: { ...input, request: await signClaims(claims, key.path) } };
}

/**
 * The input a start command sends: signed by the requester's key when there is one (then
 * `requestedBy` is the key's owner), else `--as` (or the login name), unsigned, with a warning.
 */
export async function requestInput<I extends object>(
  config: DrctlConfig,
  r: { runbook: RunbookName; workflowId: string; input: I; key?: string; as?: string },
): Promise<I & { requestedBy: string; request?: Signed }> {
  const out = await signRequest(config, { ...r, input: { ...r.input, requestedBy: r.as ?? whoami() } });
  if (out.unsigned)
    process.stderr.write(
      `warning: the request is not signed (${out.unsigned}); the two-person rule will need two approvers\n`,
    );
  return out.input;
}

/**
 * Signs a decision on a run waiting for one: bound to its workflow id and run id, to the sha256
 * of the evidence `drctl status` shows (recomputed here from that evidence: a gate whose evidence
 * differs from what it displays is refused), and valid for `validMs`.
 */
export async function signDecision(
  client: Client,
  config: DrctlConfig,
  d: { workflowId: string; decision: DecisionKind; reason?: string; key?: string; validMs: number },
): Promise<Signed> {
  const key = signingKey(d.key);
  if (!key)
    throw new UsageError(
      '--key: a decision is signed with your SSH key (--key, $DRCTL_SIGNING_KEY or ~/.ssh/id_ed25519)',
    );
  const by = await principalOf(config, key.path);
  if (!by) throw new UsageError(`--key: ${key.path} is nobody's key in the config's approvals.signers`);
  const handle = client.workflow.getHandle(d.workflowId);
  const desc = await handle.describe();
  const status = await client.workflow
    .getHandle(d.workflowId, desc.runId)
    .query<{ gate?: GateInfo; evidence?: unknown; report?: unknown; phase: string }>(STATUS_QUERY);
  let evidence: string;
  if (d.decision === 'signoff') {
    if (status.phase !== 'waiting-signoff')
      throw new UsageError(`${d.workflowId}: not waiting for sign-off (${status.phase})`);
    evidence = digestOf(status.report);
  } else {
    if (status.phase !== 'waiting-approval' || !status.gate)
      throw new UsageError(
        `${d.workflowId}: not waiting at its gate (${status.phase})${
          status.phase === 'running'
            ? `: its gate comes after the preflight; decide once \`drctl status ${d.workflowId}\` shows its evidence`
            : ''
        }`,
      );
    evidence = digestOf(status.evidence ?? null);
    if (evidence !== status.gate.evidenceDigest)
      throw new UsageError(
        `${d.workflowId}: the gate's evidence digest ${status.gate.evidenceDigest.slice(0, 12)}… is not that of the evidence it shows (${evidence.slice(0, 12)}…): not signing`,
      );
  }
  return signClaims(
    {
      v: 1,
      kind: 'decision',
      decision: d.decision,
      workflowId: d.workflowId,
      runId: desc.runId,
      evidence,
      by,
      reason: d.reason,
      notAfter: new Date(Date.now() + d.validMs).toISOString(),
    },
    key.path,
  );
}
