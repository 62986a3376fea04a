// The off-site snapshot contract, shared by the snapshot and restore runbooks: where a snapshot
// lives in the bucket and the metadata stored with it. Pure code: workflows import this too.

export interface SnapshotMeta {
  cluster: string;
  /** etcd member the snapshot was taken from. */
  member: string;
  revision: number;
  /** etcd's hash from `snapshot status`. */
  etcdHash: number;
  totalKey: number;
  totalSize: number;
  sha256: string;
  size: number;
  etcdVersion: string;
  /** ISO-8601. */
  takenAt: string;
}

export interface SnapshotRef extends SnapshotMeta {
  key: string;
}

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

/** Keys sort by time: `<prefix>snapshots/<cluster>/20261124T160102Z-rev1234.db`. */
export function snapshotKey(prefix: string, cluster: string, takenAt: Date, revision: number): string {
  const ts = takenAt
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${snapshotPrefix(prefix, cluster)}${ts}-rev${revision}.db`;
}

/** S3 user metadata is lower-case string pairs. */
export function toObjectMetadata(m: SnapshotMeta): Record<string, string> {
  return {
    cluster: m.cluster,
    member: m.member,
    revision: String(m.revision),
    'etcd-hash': String(m.etcdHash),
    'total-key': String(m.totalKey),
    'total-size': String(m.totalSize),
    sha256: m.sha256,
    size: String(m.size),
    'etcd-version': m.etcdVersion,
    'taken-at': m.takenAt,
  };
}

export function fromObjectMetadata(md: Record<string, string>): SnapshotMeta | undefined {
  const num = (k: string) => (md[k] === undefined ? NaN : Number(md[k]));
  const m: SnapshotMeta = {
    cluster: md.cluster ?? '',
    member: md.member ?? '',
    revision: num('revision'),
    etcdHash: num('etcd-hash'),
    totalKey: num('total-key'),
    totalSize: num('total-size'),
    sha256: md.sha256 ?? '',
    size: num('size'),
    etcdVersion: md['etcd-version'] ?? '',
    takenAt: md['taken-at'] ?? '',
  };
  const complete =
    m.cluster && m.sha256.length === 64 && Number.isFinite(m.revision) && Number.isFinite(m.size) && m.takenAt;
  return complete ? m : undefined;
}
