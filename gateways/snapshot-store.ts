// SnapshotStore: the bucket as the snapshot and restore runbooks see it. Only what drctl signed is
// a snapshot (common/snapshots.ts: the manifest); everything else under a cluster's prefix is
// reported as ignored, and refused as a restore source. The keys never leave the worker.
import { FailureType, failure } from '../common/errors.ts';
import {
  dataKeyOf,
  type IgnoredObject,
  isManifestKey,
  manifestJson,
  manifestKeyOf,
  newestFirst,
  parseManifest,
  snapshotPrefix,
  type ListedSnapshot,
  type SnapshotListing,
  type SnapshotRef,
  type UnsignedSnapshotRef,
} from '../common/snapshots.ts';
import {
  dataKeyOfProof,
  isProofKey,
  parseProof,
  proofJson,
  proofKeyOf,
  type RestoreProof,
  summaryOf,
  type UnsignedProof,
} from '../common/snapshot-proof.ts';
import {
  BUNDLE_FORMAT,
  type BundleContent,
  type BundleManifest,
  bundleKeyOf,
  bundleManifestJson,
  bundleManifestKeyOf,
  bundleSummaryOf,
  isBundleKey,
  parseBundleManifest,
  snapshotKeyOfBundle,
  type UnsignedBundleManifest,
} from '../common/cp-bundle.ts';
import { type ObjectStore, readText } from './s3.ts';
import type { SnapshotKeys } from './snapshot-crypto.ts';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';

const sha256Of = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A bundle's files are a few dozen KiB; anything much larger is not drctl's. */
const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;

/** What the snapshot store needs of the bucket (an ObjectStore; an in-memory one in unit tests). */
export type Bucket = Pick<ObjectStore, 'bucket' | 'list' | 'get' | 'head' | 'put' | 'delete'>;

/** A manifest is a few hundred bytes; anything much larger is not one of drctl's. */
const MAX_MANIFEST_BYTES = 64 * 1024;

export class SnapshotStore {
  constructor(
    readonly bucket: Bucket,
    readonly keys: SnapshotKeys,
    private readonly prefix: string,
  ) {}

  prefixOf(cluster: string): string {
    return snapshotPrefix(this.prefix, cluster);
  }

  private where(key: string) {
    return `s3://${this.bucket.bucket}/${key}`;
  }

  /**
   * The manifest of `dataKey` as signed, or why it is not one. Undefined: there is none. `listedSize`:
   * its size from a listing (saves asking for it).
   */
  async readManifest(dataKey: string, listedSize?: number): Promise<SnapshotRef | { problem: string } | undefined> {
    const mkey = manifestKeyOf(dataKey);
    const size = listedSize ?? (await this.bucket.head(mkey))?.size;
    if (size === undefined) return undefined;
    if (size > MAX_MANIFEST_BYTES) return { problem: `manifest of ${size} bytes: not drctl's` };
    const text = await readText(await this.bucket.get(mkey), MAX_MANIFEST_BYTES);
    if (text === undefined) return { problem: `manifest over ${MAX_MANIFEST_BYTES} bytes: not drctl's` };
    return parseManifest(text);
  }

  /**
   * Why the manifest `m` found next to `dataKey` (an object of `size` bytes) is not a usable
   * snapshot of `cluster`; undefined when it is: signed by this worker's key, for exactly that
   * object, of that cluster, the object's size as signed, encrypted with this worker's key.
   */
  problemOf(m: SnapshotRef, cluster: string, dataKey: string, size: number | undefined): string | undefined {
    const bad = this.keys.verify(m);
    if (bad) return bad;
    if (m.key !== dataKey) return `its manifest is signed for another object (${m.key})`;
    if (m.cluster !== cluster) return `a snapshot of cluster '${m.cluster}', not '${cluster}'`;
    if (size === undefined) return 'a signed manifest whose snapshot object is gone';
    if (size !== m.storedSize) return `the object is ${size} bytes, its signed manifest says ${m.storedSize}`;
    if (m.encryptionKeyId !== this.keys.encryptionKeyId)
      return `encrypted with another key (id ${m.encryptionKeyId}), not this worker's snapshots.encryptionKey (id ${this.keys.encryptionKeyId})`;
    return undefined;
  }

  /**
   * The restore proof of `ref` (common/snapshot-proof.ts), or why the object there is not one.
   * Undefined: none was made.
   */
  async readProof(
    ref: Pick<SnapshotRef, 'key' | 'storedSha256'>,
    listedSize?: number,
  ): Promise<RestoreProof | { problem: string } | undefined> {
    const pkey = proofKeyOf(ref.key);
    const size = listedSize ?? (await this.bucket.head(pkey))?.size;
    if (size === undefined) return undefined;
    if (size > MAX_MANIFEST_BYTES) return { problem: `proof of ${size} bytes: not drctl's` };
    const text = await readText(await this.bucket.get(pkey), MAX_MANIFEST_BYTES);
    const p = text === undefined ? { problem: 'proof too large' } : parseProof(text);
    if ('problem' in p) return p;
    const bad = this.keys.verifyProof(p);
    if (bad) return { problem: bad };
    if (p.key !== ref.key || p.storedSha256 !== ref.storedSha256)
      return { problem: 'the proof is of another object (key or stored sha256 differ)' };
    return p;
  }

  /** Signs the proof and writes it next to its snapshot; read back and checked. */
  async writeProof(p: Omit<UnsignedProof, 'signingKeyId'>): Promise<RestoreProof> {
    const proof = this.keys.signProof(p);
    await this.bucket.put(proofKeyOf(p.key), proofJson(proof), {}, undefined);
    const back = await this.readProof(proof);
    if (!back || 'problem' in back || back.signature !== proof.signature)
      throw failure(
        FailureType.ObjectStoreError,
        `${this.where(proofKeyOf(p.key))}: the proof just written reads back wrong (${back && 'problem' in back ? back.problem : 'missing'})`,
      );
    return proof;
  }

  /** The cluster's signed snapshots, newest first (each with its restore proof), and every other object under its prefix with why it was passed over. */
  async list(cluster: string): Promise<SnapshotListing> {
    const objects = await this.bucket.list(this.prefixOf(cluster));
    const sizes = new Map(objects.map((o) => [o.key, o.size]));
    const manifests = objects.filter((o) => isManifestKey(o.key));
    const snapshots: ListedSnapshot[] = [];
    const ignored: IgnoredObject[] = [];
    const seen = new Set<string>();
    // A few at a time: a long retention list should not open a connection per object.
    for (let i = 0; i < manifests.length; i += 8) {
      const batch = await Promise.all(
        manifests.slice(i, i + 8).map(async (o) => {
          const dataKey = dataKeyOf(o.key);
          // Gone since the listing (retention at work): as if never listed.
          const m = await this.readManifest(dataKey, o.size).catch((err: unknown) => {
            if ((err as { type?: string }).type === FailureType.ObjectStoreError && /NoSuchKey/.test(String(err)))
              return undefined;
            throw err;
          });
          return { dataKey, m };
        }),
      );
      for (const { dataKey, m } of batch) {
        seen.add(dataKey);
        seen.add(manifestKeyOf(dataKey));
        if (!m) continue;
        const problem = 'problem' in m ? m.problem : this.problemOf(m, cluster, dataKey, sizes.get(dataKey));
        if (problem) ignored.push({ key: sizes.has(dataKey) ? dataKey : manifestKeyOf(dataKey), why: problem });
        else snapshots.push(m as SnapshotRef);
      }
    }
    // Each snapshot's proof, when one was made; a proof that does not verify is reported, never used.
    await Promise.all(
      snapshots.map(async (s) => {
        const size = sizes.get(proofKeyOf(s.key));
        if (size === undefined) return;
        seen.add(proofKeyOf(s.key));
        const p = await this.readProof(s, size);
        if (p && 'problem' in p) ignored.push({ key: proofKeyOf(s.key), why: p.problem });
        else if (p) s.proof = summaryOf(p);
      }),
    );
    // Each snapshot's control-plane bundle (common/cp-bundle.ts); one that does not verify is reported.
    await Promise.all(
      snapshots.map(async (s) => {
        const size = sizes.get(bundleManifestKeyOf(s.key));
        if (size === undefined) return;
        seen.add(bundleManifestKeyOf(s.key));
        if (sizes.has(bundleKeyOf(s.key))) seen.add(bundleKeyOf(s.key));
        const b = await this.readBundleManifest(s.key, size, sizes.get(bundleKeyOf(s.key)) ?? null);
        if (b && 'problem' in b) ignored.push({ key: bundleManifestKeyOf(s.key), why: b.problem });
        else if (b) s.bundle = bundleSummaryOf(b);
      }),
    );
    for (const o of objects)
      if (!seen.has(o.key))
        ignored.push({
          key: o.key,
          why: isProofKey(o.key)
            ? `a restore proof of ${dataKeyOfProof(o.key)}, which is not a snapshot`
            : isBundleKey(o.key)
              ? `a control-plane bundle of ${snapshotKeyOfBundle(o.key)}, which is not a snapshot, or whose manifest is gone`
              : 'unsigned: no drctl manifest next to it',
        });
    snapshots.sort(newestFirst);
    ignored.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { snapshots, ignored };
  }

  /**
   * One snapshot by its key (the object's, or its manifest's), checked as list() checks it. An
   * unsigned or mis-signed one: SnapshotUntrusted; one of another cluster or missing:
   * SnapshotNotFound; its object not the size signed: SnapshotCorrupt; encrypted with another key:
   * PreflightFailed (the worker needs that key).
   */
  async resolve(cluster: string, requested: string): Promise<SnapshotRef> {
    const key = isManifestKey(requested) ? dataKeyOf(requested) : requested;
    const [m, data] = await Promise.all([this.readManifest(key), this.bucket.head(key)]);
    if (!m && !data)
      throw failure(FailureType.SnapshotNotFound, `snapshot ${key} not found in s3://${this.bucket.bucket}`);
    if (!m)
      throw failure(
        FailureType.SnapshotUntrusted,
        `${this.where(key)}: unsigned (no drctl manifest ${manifestKeyOf(key)}): drctl restores only snapshots it signed`,
      );
    if ('problem' in m) throw failure(FailureType.SnapshotUntrusted, `${this.where(key)}: ${m.problem}`);
    const bad = this.keys.verify(m);
    if (bad) throw failure(FailureType.SnapshotUntrusted, `${this.where(key)}: ${bad}`);
    if (m.key !== key)
      throw failure(
        FailureType.SnapshotUntrusted,
        `${this.where(key)}: its manifest is signed for another object (${m.key})`,
      );
    if (m.cluster !== cluster)
      throw failure(FailureType.SnapshotNotFound, `${key} is a snapshot of cluster '${m.cluster}', not '${cluster}'`);
    if (!data) throw failure(FailureType.SnapshotNotFound, `${this.where(key)}: signed, but the object is gone`);
    const problem = this.problemOf(m, cluster, key, data.size);
    if (problem)
      throw failure(
        m.encryptionKeyId === this.keys.encryptionKeyId ? FailureType.SnapshotCorrupt : FailureType.PreflightFailed,
        `${this.where(key)}: ${problem}`,
      );
    return m;
  }

  /**
   * A ref handed back in (from workflow history): still signed by this worker's key, and
   * decryptable with its encryption key? SnapshotUntrusted if not (e.g. a restore started before
   * snapshots were signed).
   */
  checkRef(ref: SnapshotRef): void {
    const bad = this.keys.verify(ref);
    if (bad) throw failure(FailureType.SnapshotUntrusted, `${this.where(ref.key)}: ${bad}`);
    if (ref.encryptionKeyId !== this.keys.encryptionKeyId)
      throw failure(
        FailureType.PreflightFailed,
        `${this.where(ref.key)}: encrypted with key id ${ref.encryptionKeyId}, not this worker's snapshots.encryptionKey (id ${this.keys.encryptionKeyId})`,
      );
  }

  /** Signs `r` and writes its manifest: from here on the object is a snapshot. Read back and checked. */
  async commit(r: Omit<UnsignedSnapshotRef, 'signingKeyId'>): Promise<SnapshotRef> {
    const ref = this.keys.sign(r);
    await this.bucket.put(manifestKeyOf(ref.key), manifestJson(ref), {}, undefined);
    const back = await this.readManifest(ref.key);
    const problem = !back ? 'missing' : 'problem' in back ? back.problem : this.keys.verify(back);
    if (problem || (back as SnapshotRef).signature !== ref.signature)
      throw failure(
        FailureType.ObjectStoreError,
        `${this.where(manifestKeyOf(ref.key))}: the manifest just written reads back wrong (${problem ?? 'another signature'})`,
      );
    return ref;
  }

  /** Un-commits first (the manifest), then deletes the object: never a manifest without its object. */
  async remove(key: string): Promise<void> {
    await this.bucket.delete(manifestKeyOf(key));
    await this.bucket.delete(key);
    await this.bucket.delete(proofKeyOf(key));
    await this.bucket.delete(bundleManifestKeyOf(key));
    await this.bucket.delete(bundleKeyOf(key));
  }

  /**
   * The signed manifest of snapshot `key`'s control-plane bundle, or why it is not one; undefined:
   * there is none. Checked: this worker's signature, for this snapshot, encrypted with this
   * worker's key, the encrypted object there and of the size signed. `listedSize`/`dataSize`: from a
   * listing (null: the listing has no bundle object).
   */
  async readBundleManifest(
    key: string,
    listedSize?: number,
    dataSize?: number | null,
  ): Promise<BundleManifest | { problem: string } | undefined> {
    const mkey = bundleManifestKeyOf(key);
    const size = listedSize ?? (await this.bucket.head(mkey))?.size;
    if (size === undefined) return undefined;
    if (size > MAX_MANIFEST_BYTES) return { problem: `bundle manifest of ${size} bytes: not drctl's` };
    const text = await readText(await this.bucket.get(mkey), MAX_MANIFEST_BYTES);
    const m = text === undefined ? { problem: 'bundle manifest too large' } : parseBundleManifest(text);
    if ('problem' in m) return m;
    const bad = this.keys.verifyBundle(m);
    if (bad) return { problem: bad };
    if (m.key !== key) return { problem: `the bundle manifest is signed for another snapshot (${m.key})` };
    if (m.encryptionKeyId !== this.keys.encryptionKeyId)
      return { problem: `the bundle is encrypted with another key (id ${m.encryptionKeyId})` };
    const stored = dataSize === undefined ? (await this.bucket.head(bundleKeyOf(key)))?.size : (dataSize ?? undefined);
    if (stored === undefined) return { problem: 'a signed bundle manifest whose bundle object is gone' };
    if (stored !== m.storedSize)
      return { problem: `the bundle object is ${stored} bytes, its signed manifest says ${m.storedSize}` };
    return m;
  }

  /**
   * Encrypts `content` with the worker's key, stores it next to its snapshot, then its signed
   * manifest (the commit), read back and checked. The plaintext never leaves this process.
   */
  async writeBundle(
    content: BundleContent,
    manifest: Omit<UnsignedBundleManifest, 'storedSha256' | 'storedSize' | 'encryptionKeyId' | 'signingKeyId'>,
  ): Promise<BundleManifest> {
    const plain = Buffer.from(JSON.stringify(content));
    const sealed = await buffer(Readable.from([plain]).pipe(this.keys.encryptStream()));
    await this.bucket.delete(bundleManifestKeyOf(content.key));
    await this.bucket.put(bundleKeyOf(content.key), sealed, {}, undefined);
    const signed = this.keys.signBundle({
      ...manifest,
      storedSha256: sha256Of(sealed),
      storedSize: sealed.length,
      encryptionKeyId: this.keys.encryptionKeyId,
    });
    await this.bucket.put(bundleManifestKeyOf(content.key), bundleManifestJson(signed), {}, undefined);
    const back = await this.readBundleManifest(content.key);
    if (!back || 'problem' in back || back.signature !== signed.signature)
      throw failure(
        FailureType.ObjectStoreError,
        `${this.where(bundleManifestKeyOf(content.key))}: the bundle manifest just written reads back wrong (${back && 'problem' in back ? back.problem : 'missing or another signature'})`,
      );
    return signed;
  }

  /**
   * Snapshot `key`'s control-plane bundle, decrypted and checked file by file against its signed
   * manifest. None, or one that does not verify: SnapshotNotFound / SnapshotCorrupt /
   * SnapshotUntrusted. The files stay in this process (a rebuild writes them to the nodes).
   */
  async readBundle(key: string): Promise<{ manifest: BundleManifest; files: Map<string, Buffer> }> {
    const m = await this.readBundleManifest(key);
    if (!m)
      throw failure(
        FailureType.SnapshotNotFound,
        `${this.where(key)}: no control-plane bundle (${bundleManifestKeyOf(key)}): not enough for a rebuild`,
      );
    if ('problem' in m)
      throw failure(FailureType.SnapshotUntrusted, `${this.where(bundleManifestKeyOf(key))}: ${m.problem}`);
    const body = await this.bucket.get(bundleKeyOf(key));
    const stored: Buffer[] = [];
    let n = 0;
    for await (const c of body) {
      n += (c as Buffer).length;
      if (n > MAX_BUNDLE_BYTES) {
        body.destroy();
        throw failure(FailureType.SnapshotCorrupt, `${this.where(bundleKeyOf(key))}: over ${MAX_BUNDLE_BYTES} bytes`);
      }
      stored.push(c as Buffer);
    }
    const sealed = Buffer.concat(stored);
    if (sha256Of(sealed) !== m.storedSha256)
      throw failure(
        FailureType.SnapshotCorrupt,
        `${this.where(bundleKeyOf(key))}: hashes to ${sha256Of(sealed)}, not the signed ${m.storedSha256}`,
      );
    const plain = await buffer(Readable.from([sealed]).pipe(this.keys.decryptStream('control-plane bundle')));
    let content: unknown;
    try {
      content = JSON.parse(plain.toString('utf8'));
    } catch {
      content = undefined;
    }
    const problem = bundleContentProblem(m, content);
    if (problem) throw failure(FailureType.SnapshotCorrupt, `${this.where(bundleKeyOf(key))}: ${problem}`);
    const files = new Map<string, Buffer>(
      (content as BundleContent).files.map((f) => [f.name, Buffer.from(f.data, 'base64')]),
    );
    return { manifest: m, files };
  }
}

/**
 * Why `content` (decrypted) is not exactly what `m` signed, or undefined: every item present once,
 * of its size and sha256, nothing else.
 */
function bundleContentProblem(m: BundleManifest, content: unknown): string | undefined {
  const c = content as Partial<BundleContent> | undefined;
  if (!c || c.format !== BUNDLE_FORMAT || !Array.isArray(c.files))
    return `the decrypted bundle is not a ${BUNDLE_FORMAT}`;
  if (c.key !== m.key) return `the decrypted bundle is of ${String(c.key)}, not ${m.key}`;
  if (c.files.length !== m.items.length)
    return `the decrypted bundle has ${c.files.length} files, its manifest ${m.items.length}`;
  for (const item of m.items) {
    const f = c.files.find((x) => x.name === item.name);
    if (!f || typeof f.data !== 'string') return `${item.name}: in the manifest, not in the bundle`;
    const bytes = Buffer.from(f.data, 'base64');
    if (bytes.length !== item.size || sha256Of(bytes) !== item.sha256)
      return `${item.name}: ${bytes.length} bytes that do not hash to the manifest's sha256`;
  }
  return undefined;
}
