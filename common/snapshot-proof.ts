// A snapshot proven restorable (or not): after upload, the off-site object is fetched, decrypted,
// restored into a scratch directory with etcdutl of the cluster's etcd minor version and served by a
// throwaway etcd on the worker, which must answer the snapshot's revision and hold Kubernetes' keys.
// The verdict is a third object next to the snapshot, signed with the manifest's key:
//   <key>.proof.json   { format, key, storedSha256, verdict, revision, keys, etcdVersion, provedAt, seconds, detail, signingKeyId, signature }
// An unsigned or mis-signed proof counts as none. 'latest' is the newest snapshot proven restorable
// (else the newest untested one, said so); one proven unrestorable is never a restore source.
// Pure code: workflows, the CLI and the store use it.

export const PROOF_FORMAT = 'drctl-restore-proof/v1';
export const PROOF_SUFFIX = '.proof.json';
export const proofKeyOf = (key: string) => `${key}${PROOF_SUFFIX}`;
export const isProofKey = (key: string) => key.endsWith(PROOF_SUFFIX);
export const dataKeyOfProof = (proofKey: string) => proofKey.slice(0, -PROOF_SUFFIX.length);

export type ProofVerdict = 'restorable' | 'unrestorable';

export interface RestoreProof {
  /** The snapshot object, and its stored bytes' sha256: the proof is of exactly that object. */
  key: string;
  storedSha256: string;
  verdict: ProofVerdict;
  /** What the throwaway etcd answered (0 when it never answered). */
  revision: number;
  /** Keys at that revision (a range over the whole keyspace, count only). */
  keys: number;
  /** The etcd binary that restored and served it. */
  etcdVersion: string;
  provedAt: string;
  seconds: number;
  /** Unrestorable: why; restorable: what was checked. */
  detail: string;
  signingKeyId: string;
  signature: string;
}
export type UnsignedProof = Omit<RestoreProof, 'signature'>;

const FIELDS = [
  'key',
  'storedSha256',
  'verdict',
  'revision',
  'keys',
  'etcdVersion',
  'provedAt',
  'seconds',
  'detail',
  'signingKeyId',
] as const satisfies readonly (keyof UnsignedProof)[];
const NUMBERS = new Set<string>(['revision', 'keys', 'seconds']);

/** The text the proof's signature is over (as the manifest's: format, then [name, value] pairs in order). */
export function proofSignedText(p: UnsignedProof): string {
  return `${PROOF_FORMAT}\n${JSON.stringify(FIELDS.map((f) => [f, p[f]]))}`;
}

export function proofJson(p: RestoreProof): string {
  return `${JSON.stringify({ format: PROOF_FORMAT, ...Object.fromEntries(FIELDS.map((f) => [f, p[f]])), signature: p.signature }, null, 2)}\n`;
}

/** The proof's fields, each of its type, or why not (the signature is checked with the key). */
export function parseProof(text: string): RestoreProof | { problem: string } {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { problem: 'proof is not JSON' };
  }
  if (typeof o !== 'object' || o === null || o.format !== PROOF_FORMAT) return { problem: `not a ${PROOF_FORMAT}` };
  for (const f of FIELDS) {
    const v = o[f];
    const ok = NUMBERS.has(f) ? typeof v === 'number' && Number.isFinite(v) && v >= 0 : typeof v === 'string';
    if (!ok) return { problem: `proof field ${f} is missing or not a ${NUMBERS.has(f) ? 'number' : 'string'}` };
  }
  if (o.verdict !== 'restorable' && o.verdict !== 'unrestorable')
    return { problem: `proof verdict ${JSON.stringify(o.verdict)}` };
  if (typeof o.signature !== 'string' || !/^[0-9a-f]{64}$/.test(o.signature)) return { problem: 'unsigned proof' };
  return Object.fromEntries([...FIELDS, 'signature'].map((f) => [f, o[f]])) as unknown as RestoreProof;
}

/** What `snapshot list` and the restore show of a proof. */
export interface ProofSummary {
  verdict: ProofVerdict;
  revision: number;
  keys: number;
  etcdVersion: string;
  provedAt: string;
  detail: string;
}

export const summaryOf = (p: RestoreProof): ProofSummary => ({
  verdict: p.verdict,
  revision: p.revision,
  keys: p.keys,
  etcdVersion: p.etcdVersion,
  provedAt: p.provedAt,
  detail: p.detail,
});

/**
 * 'latest' among snapshots listed newest first: the newest proven restorable; when none is, the
 * newest not proven unrestorable (untested: taken before proofs, or without `snapshots.prove`),
 * and `untested` says so. A snapshot proven unrestorable is never picked.
 */
export function pickLatest<S extends { proof?: ProofSummary }>(
  snapshots: S[],
): { pick?: S; untested: boolean; passedOver: S[] } {
  const proven = snapshots.findIndex((s) => s.proof?.verdict === 'restorable');
  if (proven >= 0)
    return {
      pick: snapshots[proven],
      untested: false,
      passedOver: snapshots.slice(0, proven),
    };
  const i = snapshots.findIndex((s) => s.proof?.verdict !== 'unrestorable');
  return {
    pick: i >= 0 ? snapshots[i] : undefined,
    untested: i >= 0,
    passedOver: snapshots.slice(0, i < 0 ? snapshots.length : i),
  };
}

/** The etcd minor version ("3.5") of a version string ("3.5.35"). */
export const minorOf = (version: string) => version.split('.').slice(0, 2).join('.');
