// Snapshot encryption and signing without a lab: the stream format (gateways/snapshot-crypto.ts)
// round trip over chunk boundaries and its refusal of every truncation and tampering, the signed
// manifest (tampered fields, another key, unsigned), the keys read by reference, the bucket as the
// snapshot and restore activities see it (an in-memory bucket; planted and mis-signed objects),
// and the restore refusing an unsigned snapshot before any node is touched.
import { createHash, randomBytes } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createRestoreActivities } from '../../activities/restore.ts';
import { createSnapshotActivities } from '../../activities/snapshot.ts';
import { FailureType } from '../../common/errors.ts';
import { bundleKeyOf, bundleManifestKeyOf } from '../../common/cp-bundle.ts';
import { pickLatest, proofJson, proofKeyOf } from '../../common/snapshot-proof.ts';
import { planRestore } from '../../common/restore.ts';
import {
  ENCRYPTION_FORMAT,
  manifestJson,
  manifestKeyOf,
  parseManifest,
  type SnapshotMeta,
  snapshotKey,
  snapshotPrefix,
  type SnapshotRef,
} from '../../common/snapshots.ts';
import type { Gateways } from '../../gateways/index.ts';
import { CHUNK, ciphertextSize, HEADER_BYTES, keyId, readKey, SnapshotKeys } from '../../gateways/snapshot-crypto.ts';
import { SnapshotStore } from '../../gateways/snapshot-store.ts';
import { localShell } from './support/local-shell.ts';
import { MemoryBucket } from './support/memory-bucket.ts';

const tmp = mkdtempSync(join(tmpdir(), 'drctl-snapshot-crypto-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TAG = 16;
const SEALED = CHUNK + TAG;
const newKeys = () => new SnapshotKeys(randomBytes(32), randomBytes(32));
const keys = newKeys();

/** Deterministic bytes (a seeded xorshift), so a failure reproduces. */
function bytesOf(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** `data` handed out in pieces of varying, odd sizes (1 byte to ~200 KiB): chunk boundaries fall anywhere. */
function pieces(data: Buffer, seed = 7): Readable {
  const sizes = bytesOf(4096, seed);
  return Readable.from(
    (function* () {
      let off = 0;
      for (let i = 0; off < data.length; i++) {
        const s = sizes[i % sizes.length]!;
        const n = s % 3 === 0 ? 1 + s : s % 3 === 1 ? 1 + s * 97 : 1 + s * 811;
        yield data.subarray(off, off + n);
        off += n;
      }
    })(),
  );
}

async function collect(...streams: (NodeJS.ReadableStream | NodeJS.ReadWriteStream)[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    ...(streams as [Readable]),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

const encrypt = (plain: Buffer, k = keys) => collect(pieces(plain), k.encryptStream());
const decrypt = (cipher: Buffer, k = keys) => collect(pieces(cipher, 11), k.decryptStream('test object'));

/** The decryption's outcome: its error, and whether the stream ever ended cleanly. */
async function decryptOutcome(
  cipher: Buffer,
  k = keys,
): Promise<{ error?: { type?: string; message: string }; ended: boolean }> {
  const d = k.decryptStream('test object');
  let ended = false;
  d.on('end', () => (ended = true));
  const error = await collect(pieces(cipher, 13), d).then(
    () => undefined,
    (e: unknown) => e as { type?: string; message: string },
  );
  return { error, ended };
}

const SECRET_MARKER = Buffer.from('k8s\x00\n\x02v1\x12\x06Secret'); // how etcd stores a Secret's kind
const BOLT_MAGIC = Buffer.from([0xed, 0x0c, 0xdc, 0xed]); // a bbolt db page's magic (etcd's snapshot)

describe('the encrypted stream format', () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 5, 5 * 1024 * 1024 + 123])(
    'round trip of %i bytes, fed and read in odd-sized pieces; the ciphertext is the documented size',
    async (n) => {
      const plain = bytesOf(n, n + 3);
      const cipher = await encrypt(plain);
      expect(cipher.length).toBe(ciphertextSize(n));
      expect(cipher.subarray(0, 16).toString('ascii')).toBe('drctl-snapshot/1');
      expect(cipher.subarray(16, 24).toString('hex')).toBe(keys.encryptionKeyId);
      expect((await decrypt(cipher)).equals(plain)).toBe(true);
    },
  );

  it('a multi-MB snapshot-like plaintext: nothing of it shows in the ciphertext, and each encryption differs', async () => {
    const plain = Buffer.concat(
      Array.from({ length: 200 }, (_, i) => Buffer.concat([BOLT_MAGIC, SECRET_MARKER, bytesOf(40_000, i + 1)])),
    );
    const a = await encrypt(plain);
    const b = await encrypt(plain);
    for (const c of [a, b]) {
      expect(c.indexOf(SECRET_MARKER)).toBe(-1);
      expect(c.indexOf(BOLT_MAGIC)).toBe(-1);
    }
    expect(a.equals(b)).toBe(false); // a salt (and so a key) of its own per object
    expect((await decrypt(a)).equals(plain)).toBe(true);
    expect((await decrypt(b)).equals(plain)).toBe(true);
  });

  it('streams both ways: output comes before the input ends, and memory stays at a chunk or so', async () => {
    const e = keys.encryptStream();
    const out: Buffer[] = [];
    e.on('data', (c: Buffer) => out.push(c));
    e.write(bytesOf(CHUNK * 4 + 1));
    await new Promise((r) => setImmediate(r));
    // The header and four sealed chunks are out; the fifth (1 byte) may be the final one: held.
    expect(Buffer.concat(out).length).toBe(HEADER_BYTES + 4 * SEALED);
    expect(e.writableLength + e.readableLength).toBeLessThan(2 * SEALED);
    e.end();
    await new Promise((r) => e.on('end', r));
    const cipher = Buffer.concat(out);
    const d = keys.decryptStream();
    const plain: Buffer[] = [];
    d.on('data', (c: Buffer) => plain.push(c));
    d.write(cipher.subarray(0, HEADER_BYTES + 3 * SEALED));
    await new Promise((r) => setImmediate(r));
    // Two chunks are known to be inner ones (a third follows); the third could be the last: held.
    expect(Buffer.concat(plain).length).toBe(2 * CHUNK);
  });

  /** A ciphertext of five full chunks and a short one: 6 chunks, the last 100 bytes. */
  const six = async () => encrypt(bytesOf(5 * CHUNK + 100, 99));

  it.each([
    ['nothing at all', () => 0],
    ['inside the header', () => HEADER_BYTES - 1],
    ['right after the header', () => HEADER_BYTES],
    ['inside chunk 0', () => HEADER_BYTES + 1000],
    ['exactly after chunk 0 (a chunk boundary)', () => HEADER_BYTES + SEALED],
    ['exactly after chunk 4: the short final chunk dropped whole', () => HEADER_BYTES + 5 * SEALED],
    ['inside the final chunk', (len: number) => len - 50],
    ['one byte short', (len: number) => len - 1],
    ['without the final tag', (len: number) => len - TAG],
  ])('truncated %s: an error (SnapshotCorrupt), never a clean end', async (_what, cut) => {
    const cipher = await six();
    const { error, ended } = await decryptOutcome(cipher.subarray(0, cut(cipher.length)));
    expect(ended).toBe(false);
    expect(error).toMatchObject({ type: FailureType.SnapshotCorrupt });
    expect(error!.message).toMatch(/^test object: /);
  });

  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b);
    c[at]! ^= 0x01;
    return c;
  };
  it.each([
    ['the magic', (c: Buffer) => flip(c, 3), /not a drctl encrypted snapshot/],
    ['the salt', (c: Buffer) => flip(c, 40), /chunk 0 does not authenticate/],
    ['chunk 0', (c: Buffer) => flip(c, HEADER_BYTES + 10), /chunk 0 does not authenticate/],
    ['chunk 3', (c: Buffer) => flip(c, HEADER_BYTES + 3 * SEALED + 12345), /chunk 3 does not authenticate/],
    ["chunk 2's tag", (c: Buffer) => flip(c, HEADER_BYTES + 3 * SEALED - 1), /chunk 2 does not authenticate/],
    ['the final chunk', (c: Buffer) => flip(c, c.length - 30), /chunk 5 \(the last\) does not authenticate/],
    [
      'chunks 1 and 2 swapped',
      (c: Buffer) =>
        Buffer.concat([
          c.subarray(0, HEADER_BYTES + SEALED),
          c.subarray(HEADER_BYTES + 2 * SEALED, HEADER_BYTES + 3 * SEALED),
          c.subarray(HEADER_BYTES + SEALED, HEADER_BYTES + 2 * SEALED),
          c.subarray(HEADER_BYTES + 3 * SEALED),
        ]),
      /chunk 1 does not authenticate/,
    ],
    [
      'chunk 1 repeated',
      (c: Buffer) => Buffer.concat([c.subarray(0, HEADER_BYTES + 2 * SEALED), c.subarray(HEADER_BYTES + SEALED)]),
      /chunk 2 does not authenticate/,
    ],
    ['one byte appended', (c: Buffer) => Buffer.concat([c, Buffer.from([0])]), /does not authenticate/],
    [
      'the final chunk appended again',
      (c: Buffer) => Buffer.concat([c, c.subarray(HEADER_BYTES + 5 * SEALED)]),
      /chunk 5 \(the last\) does not authenticate/,
    ],
  ])('tampered (%s): an error, never a clean end', async (_what, tamper, message) => {
    const { error, ended } = await decryptOutcome(tamper(await six()));
    expect(ended).toBe(false);
    expect(error).toMatchObject({ type: FailureType.SnapshotCorrupt });
    expect(error!.message).toMatch(message);
  });

  it('another key: refused by its id (PreflightFailed), and one that forges our id fails at chunk 0', async () => {
    const other = newKeys();
    const cipher = await six();
    const wrong = await decryptOutcome(cipher, other);
    expect(wrong.ended).toBe(false);
    expect(wrong.error).toMatchObject({ type: FailureType.PreflightFailed });
    expect(wrong.error!.message).toContain(`encrypted with key id ${keys.encryptionKeyId}`);
    expect(wrong.error!.message).toContain(`(id ${other.encryptionKeyId})`);

    const forged = Buffer.from(cipher);
    Buffer.from(other.encryptionKeyId, 'hex').copy(forged, 16);
    const f = await decryptOutcome(forged, other);
    expect(f.error).toMatchObject({ type: FailureType.SnapshotCorrupt });
    expect(f.error!.message).toMatch(/chunk 0 does not authenticate/);
  });
});

// ---- signing ----

const META: SnapshotMeta = {
  cluster: 'site-b',
  member: 'cp2',
  revision: 4242,
  etcdHash: 123456789,
  totalKey: 900,
  totalSize: 2_000_000,
  sha256: 'a'.repeat(64),
  size: 2_097_184,
  etcdVersion: '3.6.16',
  takenAt: '2026-12-02T10:00:00.000Z',
};
const KEY = snapshotKey('drctl/', 'site-b', new Date(META.takenAt), META.revision);
const signed = (k = keys) =>
  k.sign({
    ...META,
    key: KEY,
    storedSha256: 'b'.repeat(64),
    storedSize: 2_097_700,
    encryption: ENCRYPTION_FORMAT,
    encryptionKeyId: k.encryptionKeyId,
  });

describe('the signed manifest', () => {
  it('verifies as signed, and survives its JSON (the manifest object) unchanged', () => {
    const ref = signed();
    expect(ref.signingKeyId).toBe(keys.signingKeyId);
    expect(ref.signature).toMatch(/^[0-9a-f]{64}$/);
    expect(keys.verify(ref)).toBeUndefined();
    const back = parseManifest(manifestJson(ref));
    expect(back).toEqual(ref);
    expect(keys.verify(back as SnapshotRef)).toBeUndefined();
  });

  it.each([
    ['sha256', { sha256: 'c'.repeat(64) }],
    ['the stored sha256', { storedSha256: 'c'.repeat(64) }],
    ['the stored size', { storedSize: 1 }],
    ['the size', { size: 2_097_185 }],
    ['the revision', { revision: 4243 }],
    ['the cluster', { cluster: 'site-a' }],
    ['the object key', { key: KEY.replace('rev4242', 'rev9999') }],
    ['the time', { takenAt: '2027-01-01T00:00:00.000Z' }],
    ['the etcd hash', { etcdHash: 1 }],
    ['the encryption key id', { encryptionKeyId: '0'.repeat(16) }],
  ])('tampered %s: does not verify', (_what, change) => {
    expect(keys.verify({ ...signed(), ...change })).toMatch(/does not verify/);
  });

  it('signed with another key: named as such; with our key id forged in: does not verify; unsigned: unsigned', () => {
    const other = newKeys();
    expect(keys.verify(signed(other))).toBe(
      `signed with another key (id ${other.signingKeyId}), not this worker's snapshots.signingKey (id ${keys.signingKeyId})`,
    );
    expect(keys.verify({ ...signed(other), signingKeyId: keys.signingKeyId })).toMatch(/does not verify/);
    const unsigned: Partial<SnapshotRef> = signed();
    delete unsigned.signature;
    expect(keys.verify(unsigned as SnapshotRef)).toBe('unsigned: no signature');
    expect(keys.verify({ ...signed(), signature: '' })).toBe('unsigned: no signature');
    expect(parseManifest(manifestJson({ ...signed(), signature: '' }))).toEqual({
      problem: 'unsigned: the manifest has no signature',
    });
  });

  it('parses only a complete manifest of the known format', () => {
    const j = JSON.parse(manifestJson(signed())) as Record<string, unknown>;
    expect(parseManifest('not json')).toEqual({ problem: 'manifest is not JSON' });
    expect(parseManifest(JSON.stringify({ ...j, format: 'x' }))).toMatchObject({
      problem: expect.stringMatching(/format/),
    });
    expect(parseManifest(JSON.stringify({ ...j, revision: '4242' }))).toEqual({
      problem: 'manifest field revision is missing or not a number',
    });
    expect(parseManifest(JSON.stringify({ ...j, encryption: 'none' }))).toEqual({
      problem: 'unknown encryption "none"',
    });
    // Extra fields are not signed, so they are dropped, never trusted.
    expect(parseManifest(JSON.stringify({ ...j, restoreTo: 'elsewhere' }))).not.toHaveProperty('restoreTo');
  });
});

// ---- keys, by reference ----

describe('keys by reference', () => {
  const file = (name: string, text: string) => {
    const p = join(tmp, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const problem = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e as { type?: string; message: string };
    }
    throw new Error('no error');
  };

  it('reads a base64 key from a file (surrounding whitespace ignored) or from an environment variable', () => {
    const k = randomBytes(32);
    expect(readKey({ file: file('good.key', `${k.toString('base64')}\n`) }, 'snapshots.encryptionKey').equals(k)).toBe(
      true,
    );
    process.env.DRCTL_TEST_SNAPSHOT_KEY = k.toString('base64url');
    try {
      expect(readKey({ env: 'DRCTL_TEST_SNAPSHOT_KEY' }, 'snapshots.signingKey').equals(k)).toBe(true);
    } finally {
      delete process.env.DRCTL_TEST_SNAPSHOT_KEY;
    }
  });

  it.each([
    [
      'a missing file',
      () => readKey({ file: join(tmp, 'nope.key') }, 'snapshots.encryptionKey'),
      `snapshots.encryptionKey: ${join(tmp, 'nope.key')}: no such file on the worker`,
    ],
    [
      'a 16-byte key',
      () => readKey({ file: file('short.key', randomBytes(16).toString('base64')) }, 'snapshots.encryptionKey'),
      /^snapshots\.encryptionKey: \S+short\.key does not hold a base64 32-byte key \(it decodes to 16 bytes\); make one with `openssl rand -base64 32 > FILE`$/,
    ],
    [
      'a 64-byte key',
      () => readKey({ file: file('long.key', randomBytes(64).toString('base64')) }, 'snapshots.signingKey'),
      /it decodes to 64 bytes/,
    ],
    [
      'raw bytes, not base64',
      () => readKey({ file: file('raw.key', 'x!'.repeat(16)) }, 'snapshots.signingKey'),
      /does not hold a base64 32-byte key \(not base64\)/,
    ],
    [
      'an unset variable',
      () => readKey({ env: 'DRCTL_TEST_UNSET_KEY' }, 'snapshots.signingKey'),
      'snapshots.signingKey: environment variable DRCTL_TEST_UNSET_KEY is not set on the worker',
    ],
    [
      'the same key for both',
      () => {
        const p = file('same.key', randomBytes(32).toString('base64'));
        return SnapshotKeys.load({
          encryptionKey: { file: p },
          signingKey: { file: file('same2.key', readFileSync(p, 'utf8')) },
        });
      },
      'snapshots.signingKey: holds the same key as snapshots.encryptionKey; use a key of its own',
    ],
  ])('%s: a PreflightFailed naming the field and where it looked', (_what, f, message) => {
    const e = problem(f);
    expect(e.type).toBe(FailureType.PreflightFailed);
    if (typeof message === 'string') expect(e.message).toBe(message);
    else expect(e.message).toMatch(message);
  });

  it('never shows the key: not in an error, not in JSON, not in inspect', () => {
    const secret = randomBytes(16);
    const e = problem(() => readKey({ file: file('leak.key', secret.toString('base64')) }, 'snapshots.encryptionKey'));
    expect(e.message).not.toContain(secret.toString('base64'));
    const enc = randomBytes(32);
    const sig = randomBytes(32);
    const k = new SnapshotKeys(enc, sig);
    const shown = `${JSON.stringify(k)} ${inspect(k, { showHidden: true, depth: 5 })} ${String(k)}`;
    for (const key of [enc, sig])
      for (const form of [key.toString('base64'), key.toString('hex')]) expect(shown).not.toContain(form);
    expect(JSON.parse(JSON.stringify(k))).toEqual({ encryptionKeyId: keyId(enc), signingKeyId: keyId(sig) });
  });
});

// ---- the bucket, as the runbooks see it ----

const PREFIX = 'drctl/';

/**
 * Gateways with an in-memory bucket and this file's keys. Any other gateway (a node's shell, its
 * etcd, its restore steps, the cluster's API) is recorded in `touched` and refused, unless `with`
 * provides it: a test that expects no node to be touched asserts `touched` is empty.
 */
function fakeGateways(bucket: MemoryBucket, with_: Partial<Gateways> = {}, k = keys) {
  const touched: string[] = [];
  const snapshots = new SnapshotStore(bucket, k, PREFIX);
  const config = {
    objectStore: { prefix: PREFIX, bucket: bucket.bucket },
    snapshots: { keep: 20 },
    restore: { keepMovedAside: 7 * 86_400_000 },
  };
  const gw = new Proxy({} as Gateways, {
    get(_t, prop: string) {
      if (prop in with_) return with_[prop as keyof Gateways];
      if (prop === 'config') return config;
      if (prop === 'snapshots') return () => snapshots;
      if (prop === 'store') return () => bucket;
      if (prop === 'cluster') return (c: string) => ({ name: c, nodes: [] });
      if (prop === 'then') return undefined;
      return (...args: unknown[]) => {
        touched.push(`${prop}(${args.map((a) => JSON.stringify(a)).join(', ')})`);
        throw new Error(`touched ${prop}`);
      };
    },
  });
  return { gw, touched, snapshots };
}

/** Uploads `plain` as a node's verified snapshot file through the real upload activity. */
async function upload(bucket: MemoryBucket, plain: Buffer, meta: Partial<SnapshotMeta> = {}, k = keys) {
  const m: SnapshotMeta = {
    ...META,
    ...meta,
    sha256: createHash('sha256').update(plain).digest('hex'),
    size: plain.length,
  };
  const reads: string[] = [];
  const { gw } = fakeGateways(
    bucket,
    {
      shell: () =>
        ({
          readStream: async (path: string) => (reads.push(path), pieces(plain, 5)),
        }) as unknown as ReturnType<Gateways['shell']>,
    },
    k,
  );
  const { skipped, ...ref } = await createSnapshotActivities(gw).uploadSnapshot({
    cluster: m.cluster,
    node: 'cp2',
    path: '/x.db',
    meta: m,
  });
  return { ref, skipped, reads, meta: m };
}

/** A fake etcd snapshot file: bbolt's magic and a Secret in it. */
const snapshotFile = (n = 3 * 1024 * 1024 + 77, seed = 5) =>
  Buffer.concat([BOLT_MAGIC, SECRET_MARKER, Buffer.from('password=hunter2'), bytesOf(n, seed)]);

describe('upload: encrypted on the worker, then signed', () => {
  it('stores no plaintext, signs what it stored, and decrypts back to the node file; an identical retry is skipped', async () => {
    const bucket = new MemoryBucket();
    const plain = snapshotFile();
    const first = await upload(bucket, plain);
    const { ref, reads } = first;
    expect(reads).toEqual(['/x.db']);
    expect(ref).toMatchObject({ key: KEY, encryption: ENCRYPTION_FORMAT });
    expect(first.skipped).toBe(false);
    const stored = bucket.objects.get(KEY)!.body;
    expect(stored.indexOf(SECRET_MARKER)).toBe(-1);
    expect(stored.indexOf(BOLT_MAGIC)).toBe(-1);
    expect(stored.indexOf(Buffer.from('hunter2'))).toBe(-1);
    expect(ref.storedSize).toBe(stored.length);
    expect(ref.storedSha256).toBe(createHash('sha256').update(stored).digest('hex'));
    expect(ref.sha256).toBe(createHash('sha256').update(plain).digest('hex'));
    // The manifest is written last (the commit), and verifies.
    expect(bucket.calls.filter((c) => c.startsWith('put '))).toEqual([`put ${KEY}`, `put ${manifestKeyOf(KEY)}`]);
    const m = parseManifest(bucket.objects.get(manifestKeyOf(KEY))!.body.toString()) as SnapshotRef;
    expect(keys.verify(m)).toBeUndefined();
    expect((await collect(pieces(stored), keys.decryptStream())).equals(plain)).toBe(true);

    const again = await upload(bucket, plain);
    expect(again.skipped).toBe(true);
    expect(again.ref).toEqual(ref);
    expect(again.reads).toEqual([]);
  });

  it('bytes that are not the verified ones: SnapshotCorrupt, nothing left in the bucket', async () => {
    const bucket = new MemoryBucket();
    const plain = snapshotFile(200_000);
    const m = { ...META, sha256: 'f'.repeat(64), size: plain.length };
    const { gw } = fakeGateways(bucket, {
      shell: () => ({ readStream: async () => pieces(plain) }) as unknown as ReturnType<Gateways['shell']>,
    });
    const err = await createSnapshotActivities(gw)
      .uploadSnapshot({ cluster: 'site-b', node: 'cp2', path: '/x.db', meta: m })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ type: FailureType.SnapshotCorrupt });
    expect([...bucket.objects.keys()]).toEqual([]);
  });
});

describe('list and resolve: only what this worker signed', () => {
  /** A bucket with two real snapshots and everything an attacker with write access could plant. */
  async function planted() {
    const bucket = new MemoryBucket();
    const old = await upload(bucket, snapshotFile(100_000, 1), { takenAt: '2026-12-01T10:00:00.000Z', revision: 100 });
    const good = await upload(bucket, snapshotFile(100_000, 2), { takenAt: '2026-12-02T10:00:00.000Z', revision: 200 });
    const prefix = snapshotPrefix(PREFIX, 'site-b');
    const key = (t: string, rev: number) => snapshotKey(PREFIX, 'site-b', new Date(t), rev);
    // Newer than both, by name and by claimed time: each must be passed over.
    const unsigned = key('2026-12-03T00:00:00Z', 300);
    bucket.objects.set(unsigned, {
      body: snapshotFile(1000, 3),
      metadata: { sha256: 'a'.repeat(64), 'taken-at': '2027-01-01T00:00:00Z' },
    });
    const forged = key('2026-12-03T01:00:00Z', 301);
    const attacker = newKeys();
    const forgedRef = attacker.sign({ ...good.ref, key: forged, takenAt: '2026-12-03T01:00:00.000Z', revision: 301 });
    bucket.objects.set(forged, { body: bucket.objects.get(good.ref.key)!.body, metadata: {} });
    bucket.objects.set(manifestKeyOf(forged), {
      body: Buffer.from(manifestJson({ ...forgedRef, signingKeyId: keys.signingKeyId })),
      metadata: {},
    });
    const tampered = key('2026-12-03T02:00:00Z', 302);
    bucket.objects.set(tampered, { body: bucket.objects.get(good.ref.key)!.body, metadata: {} });
    bucket.objects.set(manifestKeyOf(tampered), {
      body: Buffer.from(manifestJson({ ...good.ref, key: tampered, takenAt: '2026-12-03T02:00:00.000Z' })),
      metadata: {},
    });
    const copied = key('2026-12-03T03:00:00Z', 303); // a valid manifest, under another name
    bucket.objects.set(copied, { body: bucket.objects.get(good.ref.key)!.body, metadata: {} });
    bucket.objects.set(manifestKeyOf(copied), {
      body: bucket.objects.get(manifestKeyOf(good.ref.key))!.body,
      metadata: {},
    });
    const foreign = `${prefix}notes.txt`;
    bucket.objects.set(foreign, { body: Buffer.from('hello'), metadata: {} });
    return { bucket, old: old.ref, good: good.ref, unsigned, forged, tampered, copied, foreign };
  }

  it('list: the signed snapshots newest first; every planted object ignored, with why', async () => {
    const p = await planted();
    const { gw } = fakeGateways(p.bucket);
    const listing = await createSnapshotActivities(gw).listSnapshots('site-b');
    expect(listing.snapshots.map((s) => s.key)).toEqual([p.good.key, p.old.key]);
    expect(Object.fromEntries(listing.ignored.map((i) => [i.key, i.why]))).toEqual({
      [p.unsigned]: 'unsigned: no drctl manifest next to it',
      [p.forged]: 'the signature does not verify: changed after drctl signed it, or not signed by drctl',
      [p.tampered]: 'the signature does not verify: changed after drctl signed it, or not signed by drctl',
      [p.copied]: `its manifest is signed for another object (${p.good.key})`,
      [p.foreign]: 'unsigned: no drctl manifest next to it',
    });
  });

  /** A restore proof of `ref` as proveSnapshot writes it, signed by `by` (default: this worker's keys). */
  const proveAs = (bucket: MemoryBucket, ref: SnapshotRef, verdict: 'restorable' | 'unrestorable', by = keys) => {
    const proof = by.signProof({
      key: ref.key,
      storedSha256: ref.storedSha256,
      verdict,
      revision: verdict === 'restorable' ? ref.revision : 0,
      keys: verdict === 'restorable' ? 42 : 0,
      etcdVersion: '3.6.16',
      provedAt: '2026-12-03T10:00:00.000Z',
      seconds: 3.2,
      detail: verdict === 'restorable' ? 'restored and served' : 'etcdutl snapshot restore: invalid database',
    });
    bucket.objects.set(proofKeyOf(ref.key), { body: Buffer.from(proofJson(proof)), metadata: {} });
  };

  it("restore proofs: 'latest' is the newest proven restorable, never one proven unrestorable; forged proofs count as none", async () => {
    const p = await planted();
    const { gw } = fakeGateways(p.bucket);
    const restore = createRestoreActivities(gw);
    // Untested both: the newest.
    expect((await restore.resolveSnapshot({ cluster: 'site-b', snapshot: 'latest' })).key).toBe(p.good.key);
    // The newest proven unrestorable: passed over, and refused by name.
    proveAs(p.bucket, p.good, 'unrestorable');
    expect((await restore.resolveSnapshot({ cluster: 'site-b', snapshot: 'latest' })).key).toBe(p.old.key);
    await expect(restore.resolveSnapshot({ cluster: 'site-b', snapshot: p.good.key })).rejects.toMatchObject({
      type: FailureType.SnapshotCorrupt,
      message: expect.stringMatching(/was proven unrestorable .*invalid database/),
    });
    const listing = await createSnapshotActivities(gw).listSnapshots('site-b');
    expect(listing.snapshots.map((s) => s.proof?.verdict)).toEqual(['unrestorable', undefined]);
    expect(pickLatest(listing.snapshots).pick?.key).toBe(p.old.key);
    // A proof forged with another key (an attacker marking the good one restorable) is ignored.
    proveAs(p.bucket, p.good, 'restorable', newKeys());
    const again = await createSnapshotActivities(gw).listSnapshots('site-b');
    expect(again.snapshots[0]!.proof).toBeUndefined();
    expect(again.ignored).toContainEqual({
      key: proofKeyOf(p.good.key),
      why: "the proof's signature does not verify with this worker's snapshots.signingKey",
    });
    // Retention never deletes the newest proven restorable, however many newer ones there are.
    proveAs(p.bucket, p.good, 'unrestorable');
    proveAs(p.bucket, p.old, 'restorable');
    expect(await createSnapshotActivities(gw).pruneSnapshots({ cluster: 'site-b', keep: 1 })).toEqual([]);
    // Every snapshot proven unrestorable: 'latest' is refused, naming why.
    proveAs(p.bucket, p.old, 'unrestorable');
    await expect(restore.resolveSnapshot({ cluster: 'site-b', snapshot: 'latest' })).rejects.toMatchObject({
      type: FailureType.SnapshotCorrupt,
      message: expect.stringMatching(/every signed snapshot of cluster 'site-b' \(2\) was proven unrestorable/),
    });
  });

  it("'latest' passes over the planted objects: the newest snapshot this worker signed; no node is touched", async () => {
    const p = await planted();
    const { gw, touched } = fakeGateways(p.bucket);
    const ref = await createRestoreActivities(gw).resolveSnapshot({ cluster: 'site-b', snapshot: 'latest' });
    expect(ref).toEqual(p.good);
    expect(touched).toEqual([]);
  });

  it('a planted key is refused (SnapshotUntrusted) before any node is touched; a missing one is SnapshotNotFound', async () => {
    const p = await planted();
    const { gw, touched } = fakeGateways(p.bucket);
    const acts = createRestoreActivities(gw);
    for (const [key, why] of [
      [p.unsigned, /unsigned \(no drctl manifest \S+\.manifest\.json\): drctl restores only snapshots it signed$/],
      [p.forged, /the signature does not verify/],
      [p.tampered, /the signature does not verify/],
      [p.copied, /its manifest is signed for another object/],
      [p.foreign, /unsigned/],
    ] as const) {
      const err = await acts.resolveSnapshot({ cluster: 'site-b', snapshot: key }).catch((e: unknown) => e);
      expect(err, key).toMatchObject({ type: FailureType.SnapshotUntrusted, nonRetryable: true });
      expect((err as Error).message, key).toMatch(why);
    }
    const missing = await acts
      .resolveSnapshot({ cluster: 'site-b', snapshot: `${snapshotPrefix(PREFIX, 'site-b')}x.db.enc` })
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ type: FailureType.SnapshotNotFound });
    const other = await acts.resolveSnapshot({ cluster: 'site-a', snapshot: p.good.key }).catch((e: unknown) => e);
    expect(other).toMatchObject({
      type: FailureType.SnapshotNotFound,
      message: `${p.good.key} is a snapshot of cluster 'site-b', not 'site-a'`,
    });
    expect(await acts.resolveSnapshot({ cluster: 'site-b', snapshot: p.good.key })).toEqual(p.good);
    expect(touched).toEqual([]);
  });

  it("'latest' with nothing signed: SnapshotNotFound that names what was ignored", async () => {
    const bucket = new MemoryBucket();
    bucket.objects.set(`${snapshotPrefix(PREFIX, 'site-b')}planted.db`, { body: Buffer.from('x'), metadata: {} });
    const { gw, touched } = fakeGateways(bucket);
    const err = await createRestoreActivities(gw)
      .resolveSnapshot({ cluster: 'site-b', snapshot: 'latest' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ type: FailureType.SnapshotNotFound });
    expect((err as Error).message).toMatch(
      /no signed snapshot of cluster 'site-b' .*; 1 object\(s\) ignored: \S+planted\.db: unsigned/,
    );
    expect(touched).toEqual([]);
  });

  it('retention deletes a snapshot manifest first, and leaves what it did not sign alone', async () => {
    const p = await planted();
    const { gw } = fakeGateways(p.bucket);
    const pruned = await createSnapshotActivities(gw).pruneSnapshots({ cluster: 'site-b', keep: 1 });
    expect(pruned).toEqual([p.old.key]);
    const deletes = p.bucket.calls.filter((c) => c.startsWith('delete '));
    // The manifest first (un-committed), then the object, then its restore proof and its
    // control-plane bundle (manifest first), if any.
    expect(deletes.slice(-5)).toEqual([
      `delete ${manifestKeyOf(p.old.key)}`,
      `delete ${p.old.key}`,
      `delete ${proofKeyOf(p.old.key)}`,
      `delete ${bundleManifestKeyOf(p.old.key)}`,
      `delete ${bundleKeyOf(p.old.key)}`,
    ]);
    for (const k of [p.unsigned, p.forged, p.tampered, p.copied, p.foreign, p.good.key])
      expect(p.bucket.objects.has(k), k).toBe(true);
  });
});

describe('staging on a node: decrypted on the way, kept only when everything verified', () => {
  const plan = (ref: SnapshotRef, dir: string) =>
    planRestore({
      shape: {
        cluster: 'site-b',
        nodes: [
          {
            name: 'cp1',
            memberName: 'cp1',
            peerUrl: 'https://127.0.0.1:2380',
            clientUrl: 'https://127.0.0.1:2379',
            dataDir: join(dir, 'etcd'),
            apiserver: true,
          },
        ],
      },
      snapshot: ref,
      runId: '0190aaaa-bbbb-7ccc-8ddd-eeeeffff0002',
      preflight: [{ node: 'cp1', reachable: true, tool: 'etcdutl', supportsBumpRevision: true }],
    }).nodes[0]!;

  /** A node whose staging is a local file (.part, renamed on commit), and what was done on it. */
  function fakeNode(staged: string) {
    const done: string[] = [];
    const part = `${staged}.part`;
    const node = {
      pruneMovedAside: async () => (done.push('prune'), []),
      stagedPresent: async () => (done.push('present?'), existsSync(staged)),
      openStaging: async () => {
        done.push('open');
        mkdirSync(dirname(part), { recursive: true });
        return createWriteStream(part);
      },
      discardStaging: async () => (done.push('discard'), rmSync(part, { force: true })),
      commitStaging: async () => (done.push('commit'), renameSync(part, staged)),
    };
    return { node, done, part, staged };
  }

  /**
   * A fake etcdutl for the node-side check after the commit: `snapshot status` answers the signed
   * revision and hash; the sha256 of the staged file is then computed for real (sha256sum).
   */
  function fakeEtcdutl(dir: string): string {
    const path = join(dir, 'etcdutl');
    writeFileSync(
      path,
      [
        '#!/bin/bash',
        'case "$1" in',
        '  version) echo "etcdutl version: 3.6.16" ;;',
        `  snapshot) echo '{"hash":${META.etcdHash},"revision":${META.revision},"totalKey":${META.totalKey},"totalSize":${META.totalSize},"version":"3.6.0"}' ;;`,
        'esac',
      ].join('\n'),
      { mode: 0o755 },
    );
    return path;
  }

  async function stage(bucket: MemoryBucket, ref: SnapshotRef, dir: string) {
    const p = plan(ref, dir);
    const n = fakeNode(p.stagedSnapshot);
    const etcdutl = fakeEtcdutl(dir);
    const { gw, touched } = fakeGateways(bucket, {
      restoreNode: () => n.node as unknown as ReturnType<Gateways['restoreNode']>,
      shell: () => localShell(),
      node: () =>
        ({ name: 'cp1', etcd: { tools: { from: 'host', etcdctl: etcdutl, etcdutl } } }) as ReturnType<Gateways['node']>,
    });
    // Its result, or what it threw.
    const err = await createRestoreActivities(gw)
      .stageSnapshot({ cluster: 'site-b', node: 'cp1', plan: p, snapshot: ref })
      .catch((e: unknown) => e);
    return { err, ...n, touched };
  }

  it.each([
    [
      'one flipped byte',
      (b: Buffer) => ((b[b.length >> 1]! ^= 0x40), b),
      /does not authenticate: the object is corrupt, truncated or was tampered with$/,
    ],
    ['cut at a chunk boundary', (b: Buffer) => b.subarray(0, HEADER_BYTES + 10 * SEALED), /does not authenticate/],
    ['its last byte cut', (b: Buffer) => b.subarray(0, b.length - 1), /does not authenticate/],
  ])(
    'an object %s after it was signed: SnapshotCorrupt, and no staged file (the partial plaintext discarded)',
    async (_w, damage, message) => {
      const bucket = new MemoryBucket();
      const { ref } = await upload(bucket, snapshotFile());
      const o = bucket.objects.get(ref.key)!;
      o.body = damage(Buffer.from(o.body));
      const dir = mkdtempSync(join(tmp, 'stage-'));
      const { err, done, part, staged } = await stage(bucket, ref, dir);
      expect(err).toMatchObject({ type: FailureType.SnapshotCorrupt, nonRetryable: true });
      expect((err as Error).message).toMatch(new RegExp(`^${ref.key}: chunk \\d+`));
      expect((err as Error).message).toMatch(message);
      expect(done).toEqual(['prune', 'present?', 'open', 'discard']);
      expect(existsSync(part)).toBe(false);
      expect(existsSync(staged)).toBe(false);
    },
  );

  it('an unsigned ref (e.g. from a run started before signing): SnapshotUntrusted before the node is touched', async () => {
    const bucket = new MemoryBucket();
    const { ref } = await upload(bucket, snapshotFile(10_000));
    const dir = mkdtempSync(join(tmp, 'stage-'));
    for (const bad of [
      { ...ref, signature: '' },
      { ...ref, sha256: 'c'.repeat(64) },
    ]) {
      const { err, done, touched } = await stage(bucket, bad, dir);
      expect(err).toMatchObject({ type: FailureType.SnapshotUntrusted });
      expect(done).toEqual([]);
      expect(touched).toEqual([]);
    }
  });

  it('an intact object: the exact node file staged, committed, then checked on the node (sha256 and status)', async () => {
    const bucket = new MemoryBucket();
    const plain = snapshotFile();
    const { ref } = await upload(bucket, plain);
    const dir = mkdtempSync(join(tmp, 'stage-'));
    const { err, done, staged, touched } = await stage(bucket, ref, dir);
    expect(err).toEqual({ sha256: ref.sha256, revision: META.revision, skipped: false });
    expect(done).toEqual(['prune', 'present?', 'open', 'commit']);
    expect(readFileSync(staged).equals(plain)).toBe(true);
    expect(touched).toEqual([]);
    // Staged already and still verifying: kept (a retry after a worker died).
    const again = await stage(bucket, ref, dir);
    expect(again.err).toEqual({ sha256: ref.sha256, revision: META.revision, skipped: true });
  });
});
