// The off-site snapshot contract, shared by the snapshot and restore runbooks: where a snapshot
// lives in the bucket, and the signed manifest that makes it one. Pure code: workflows import this
// too (the signing itself, with the worker's key, is gateways/snapshot-crypto.ts).
//
// A snapshot is two objects:
//   <prefix>snapshots/<cluster>/<time>-rev<revision>.db.enc                the etcd snapshot, encrypted
//                                                                         on the worker (format:
//                                                                         gateways/snapshot-crypto.ts)
//   <prefix>snapshots/<cluster>/<time>-rev<revision>.db.enc.manifest.json what drctl verified, signed
// The manifest is written last, once the upload is checked: it is the commit. Whatever has no
// manifest whose signature verifies with the worker's signing key is not a snapshot, whatever its
// name or S3 metadata says (anyone who can write to the bucket can write those).

import type { BundleSummary } from './cp-bundle.ts';
import type { ProofSummary } from './snapshot-proof.ts';

/** What was verified on the node: the etcd snapshot file itself (the plaintext). */
export interface SnapshotMeta {
  cluster: string;
  /** etcd member the snapshot was taken from. */
  member: string;
  revision: number;
  /** etcd's hash from `snapshot status`. */
  etcdHash: number;
  totalKey: number;
  totalSize: number;
  /** sha256 of the etcd snapshot file (the plaintext, as on the node and as staged for a restore). */
  sha256: string;
  /** Bytes of the etcd snapshot file. */
  size: number;
  etcdVersion: string;
  /** ISO-8601. */
  takenAt: string;
}

/** The encrypted payload format (gateways/snapshot-crypto.ts). */
export const ENCRYPTION_FORMAT = 'drctl-stream/aes-256-gcm/v1';
export const MANIFEST_FORMAT = 'drctl-snapshot-manifest/v1';

/** A snapshot in the bucket: what was verified, what is stored, and the signature over both. */
export interface SnapshotRef extends SnapshotMeta {
  /** The object holding the encrypted snapshot. */
  key: string;
  /** sha256 of the object's bytes (the ciphertext, as stored). */
  storedSha256: string;
  storedSize: number;
  encryption: typeof ENCRYPTION_FORMAT;
  /** Which encryption key (its id, never the key): gateways/snapshot-crypto.ts keyId(). */
  encryptionKeyId: string;
  /** Which signing key signed this manifest. */
  signingKeyId: string;
  /** HMAC-SHA256 (hex) with the signing key over signedText(). */
  signature: string;
}

export type UnsignedSnapshotRef = Omit<SnapshotRef, 'signature'>;

/** An object under a cluster's prefix that is not a usable snapshot, and why. */
export interface IgnoredObject {
  key: string;
  why: string;
}

/** A snapshot as listed: with its restore proof, when one was made (common/snapshot-proof.ts). */
export type ListedSnapshot = SnapshotRef & { proof?: ProofSummary; bundle?: BundleSummary };

export interface SnapshotListing {
  /** Signed, verified, decryptable with the worker's key: newest first. */
  snapshots: ListedSnapshot[];
  /** Everything else under the prefix (unsigned, mis-signed, incomplete), reported, never used. */
  ignored: IgnoredObject[];
}

/** The Temporal Schedule that snapshots a cluster (`drctl snapshot schedule`). */
export const snapshotScheduleId = (cluster: string) => `etcd-snapshot-${cluster}`;

/** Below this, scheduled snapshots would overlap their own upload on a real cluster. */
export const MIN_SNAPSHOT_EVERY_MS = 60_000;

/**
 * Why a retention input is refused, or undefined. The CLI, the snapshot workflow and the prune
 * activity all ask: `keep` below 1 or a `maxAgeMs` of 0 would delete every snapshot but the newest.
 */
export function retentionProblem(r: { keep?: unknown; maxAgeMs?: unknown }): string | undefined {
  if (r.keep !== undefined && !(Number.isInteger(r.keep) && (r.keep as number) >= 1))
    return `keep must be an integer >= 1 (got ${String(r.keep)})`;
  if (r.maxAgeMs !== undefined && !(Number.isFinite(r.maxAgeMs) && (r.maxAgeMs as number) > 0))
    return `maxAgeMs must be above 0 (got ${String(r.maxAgeMs)}): it would delete every snapshot but the newest`;
  return undefined;
}

/** `<prefix>snapshots/<cluster>/` */
export const snapshotPrefix = (prefix: string, cluster: string) => `${prefix}snapshots/${cluster}/`;

/** Keys sort by time: `<prefix>snapshots/<cluster>/20261124T160102Z-rev1234.db.enc`. */
export function snapshotKey(prefix: string, cluster: string, takenAt: Date, revision: number): string {
  const ts = takenAt
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${snapshotPrefix(prefix, cluster)}${ts}-rev${revision}.db.enc`;
}

export const MANIFEST_SUFFIX = '.manifest.json';
export const manifestKeyOf = (key: string) => `${key}${MANIFEST_SUFFIX}`;
export const isManifestKey = (key: string) => key.endsWith(MANIFEST_SUFFIX);
export const dataKeyOf = (manifestKey: string) => manifestKey.slice(0, -MANIFEST_SUFFIX.length);

/** Every signed field, in the one order the signature covers them. */
const SIGNED_FIELDS = [
  'key',
  'cluster',
  'member',
  'revision',
  'etcdHash',
  'totalKey',
  'totalSize',
  'sha256',
  'size',
  'etcdVersion',
  'takenAt',
  'storedSha256',
  'storedSize',
  'encryption',
  'encryptionKeyId',
  'signingKeyId',
] as const satisfies readonly (keyof UnsignedSnapshotRef)[];

const NUMBER_FIELDS = new Set<string>(['revision', 'etcdHash', 'totalKey', 'totalSize', 'size', 'storedSize']);

/**
 * The exact text the signature is over: the format, then every field as a JSON array of
 * [name, value] pairs in a fixed order. Unambiguous whatever a value contains; built from the
 * parsed fields, never from the manifest's own text.
 */
export function signedText(r: UnsignedSnapshotRef): string {
  return `${MANIFEST_FORMAT}\n${JSON.stringify(SIGNED_FIELDS.map((f) => [f, r[f]]))}`;
}

/** The manifest object's body. */
export function manifestJson(r: SnapshotRef): string {
  const fields = Object.fromEntries(SIGNED_FIELDS.map((f) => [f, r[f]]));
  return `${JSON.stringify({ format: MANIFEST_FORMAT, ...fields, signature: r.signature }, null, 2)}\n`;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * A manifest's fields, each of its type, or why not. Says nothing about the signature: that is
 * checked with the key (gateways/snapshot-crypto.ts).
 */
export function parseManifest(text: string): SnapshotRef | { problem: string } {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return { problem: 'manifest is not JSON' };
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return { problem: 'manifest is not a JSON object' };
  const o = j as Record<string, unknown>;
  if (o.format !== MANIFEST_FORMAT)
    return { problem: `manifest format ${JSON.stringify(o.format)} is not ${MANIFEST_FORMAT}` };
  for (const f of SIGNED_FIELDS) {
    const v = o[f];
    const ok = NUMBER_FIELDS.has(f)
      ? typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
      : typeof v === 'string';
    if (!ok)
      return { problem: `manifest field ${f} is missing or not a ${NUMBER_FIELDS.has(f) ? 'number' : 'string'}` };
  }
  if (typeof o.signature !== 'string' || !HEX64.test(o.signature))
    return { problem: 'unsigned: the manifest has no signature' };
  if (o.encryption !== ENCRYPTION_FORMAT) return { problem: `unknown encryption ${JSON.stringify(o.encryption)}` };
  if (!HEX64.test(o.sha256 as string) || !HEX64.test(o.storedSha256 as string))
    return { problem: 'manifest sha256 is not 64 hex digits' };
  if (Number.isNaN(Date.parse(o.takenAt as string))) return { problem: 'manifest takenAt is not a time' };
  return Object.fromEntries([...SIGNED_FIELDS, 'signature'].map((f) => [f, o[f]])) as unknown as SnapshotRef;
}

/** Newest first (takenAt), then by key: the order `snapshot list` shows and 'latest' picks from. */
export function newestFirst(a: { takenAt: string; key: string }, b: { takenAt: string; key: string }): number {
  return Date.parse(b.takenAt) - Date.parse(a.takenAt) || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0);
}
