// The worker's snapshot keys: the encryption key and the signing key, read by reference from the
// worker's config (a file or an environment variable of the worker; never inline, never in a
// workflow's input, history or a log line), and what is done with them: a snapshot is encrypted
// on its way from the node to the bucket, decrypted on its way from the bucket to the nodes, and
// what drctl verified is signed (common/snapshots.ts: the manifest).
//
// Why not age (the `age-encryption` npm package, typage)? It is on the registry (0.3.1) and
// streams (WHATWG streams), but its payload cipher is @noble/ciphers' pure-JavaScript
// ChaCha20-Poly1305: measured on this 2-core machine, 86 MB/s for encryption alone on one core,
// against 1175 MB/s for OpenSSL's AES-256-GCM (AES-NI) through node:crypto in 64 KiB chunks. The
// upload runs at 70-100 MB/s on 2 shared cores (bench/README.md), so age would have cost it about
// half its throughput. The payload below is age's STREAM construction with OpenSSL's AES-GCM.
//
// FORMAT "drctl-stream/aes-256-gcm/v1" (ENCRYPTION_FORMAT), one object:
//
//   header  56 bytes   "drctl-snapshot/1" (16 ASCII bytes: magic and version)
//                      || key id (8 bytes: the first 8 bytes of keyId() of the encryption key)
//                      || salt (32 random bytes, new for every object)
//   chunks             the plaintext cut into 64 KiB chunks, each sealed on its own:
//                        AES-256-GCM(K, nonce_i, aad = header)(chunk_i) = ciphertext_i || tag_i (16 bytes)
//                      every chunk is 64 KiB but the final one, which is shorter or just as
//                      long; it is empty only when the whole plaintext is (then it is the only one)
//
//   K       = HKDF-SHA256(ikm = the 32-byte key, salt = salt, info = "drctl-snapshot/1 payload", 32 bytes):
//             a key of its own per object, so counter nonces never repeat under one key
//   nonce_i = i as an 11-byte big-endian counter || 0x01 for the final chunk, else 0x00
//
// So a chunk that is changed, dropped, repeated, moved or cut short fails its tag; a truncation at
// a chunk boundary fails because the new last chunk was not sealed as the final one; bytes after
// the final chunk fail because the final chunk is then read as an inner one; a changed header
// fails every tag (it is the AAD, and the salt makes K). Decryption streams: each chunk is passed on
// only once its tag verified, and a stream that does not verify to its end ends in an error, never
// in a clean end: its consumer (the restore's staging) keeps what it wrote only after a clean end.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { FailureType, failure } from '../common/errors.ts';
import { signedText, type SnapshotRef, type UnsignedSnapshotRef } from '../common/snapshots.ts';
import { proofSignedText, type RestoreProof, type UnsignedProof } from '../common/snapshot-proof.ts';
import { bundleSignedText, type BundleManifest, type UnsignedBundleManifest } from '../common/cp-bundle.ts';
import type { KeyRef, SnapshotsConfig } from '../config/schema.ts';

export const KEY_BYTES = 32;
/** Plaintext bytes per chunk (age's too). */
export const CHUNK = 64 * 1024;
const TAG = 16;
const SEALED = CHUNK + TAG;
const MAGIC = Buffer.from('drctl-snapshot/1', 'ascii');
const KEY_ID_BYTES = 8;
const SALT_BYTES = 32;
export const HEADER_BYTES = MAGIC.length + KEY_ID_BYTES + SALT_BYTES;
const PAYLOAD_INFO = Buffer.from('drctl-snapshot/1 payload');
/** 2^48 chunks of 64 KiB: 16 EiB. The nonce has room for 2^88; a JS number counts exactly to 2^53. */
const MAX_CHUNKS = 2 ** 48;

/** The bytes the format adds to a plaintext of `size` bytes. */
export function ciphertextSize(size: number): number {
  return HEADER_BYTES + size + TAG * Math.max(1, Math.ceil(size / CHUNK));
}

/** A key's public name (16 hex digits): which key, never the key. */
export function keyId(key: Buffer): string {
  return createHash('sha256')
    .update('drctl-snapshot-key-id/v1\0')
    .update(key)
    .digest('hex')
    .slice(0, KEY_ID_BYTES * 2);
}

/**
 * A 32-byte key from its reference: the file's or the variable's content, base64, surrounding
 * whitespace ignored. Every error names the config field and where it looked, never the content.
 */
export function readKey(ref: KeyRef, field: string): Buffer {
  let text: string | undefined;
  let where: string;
  if ('file' in ref) {
    where = ref.file;
    try {
      text = readFileSync(ref.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw failure(
        FailureType.PreflightFailed,
        `${field}: ${ref.file}: ${code === 'ENOENT' ? 'no such file' : `cannot read it (${code})`} on the worker`,
      );
    }
  } else {
    where = `environment variable ${ref.env}`;
    text = process.env[ref.env];
    if (!text) throw failure(FailureType.PreflightFailed, `${field}: ${where} is not set on the worker`);
  }
  const t = text.trim();
  const key = Buffer.from(t, 'base64');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t) || key.length !== KEY_BYTES)
    throw failure(
      FailureType.PreflightFailed,
      `${field}: ${where} does not hold a base64 ${KEY_BYTES}-byte key (${/^[A-Za-z0-9+/_-]+={0,2}$/.test(t) ? `it decodes to ${key.length} bytes` : 'not base64'}); make one with \`openssl rand -base64 ${KEY_BYTES} > FILE\``,
    );
  return key;
}

/** The worker's two snapshot keys. The key material is in private fields: no log line or JSON shows it. */
export class SnapshotKeys {
  readonly encryptionKeyId: string;
  readonly signingKeyId: string;
  readonly #encryption: Buffer;
  readonly #signing: KeyObject;

  constructor(encryption: Buffer, signing: Buffer) {
    if (encryption.length !== KEY_BYTES || signing.length !== KEY_BYTES)
      throw failure(FailureType.PreflightFailed, `snapshot keys must be ${KEY_BYTES} bytes`);
    if (encryption.equals(signing))
      throw failure(
        FailureType.PreflightFailed,
        'snapshots.signingKey: holds the same key as snapshots.encryptionKey; use a key of its own',
      );
    this.#encryption = Buffer.from(encryption);
    this.#signing = createSecretKey(Buffer.from(signing));
    this.encryptionKeyId = keyId(encryption);
    this.signingKeyId = keyId(signing);
  }

  static load(cfg: Pick<SnapshotsConfig, 'encryptionKey' | 'signingKey'>): SnapshotKeys {
    return new SnapshotKeys(
      readKey(cfg.encryptionKey, 'snapshots.encryptionKey'),
      readKey(cfg.signingKey, 'snapshots.signingKey'),
    );
  }

  toJSON() {
    return { encryptionKeyId: this.encryptionKeyId, signingKeyId: this.signingKeyId };
  }

  #mac(r: UnsignedSnapshotRef): Buffer {
    return createHmac('sha256', this.#signing).update(signedText(r)).digest();
  }

  /** The manifest's signature: HMAC-SHA256 over every field (common/snapshots.ts signedText). */
  sign(r: Omit<UnsignedSnapshotRef, 'signingKeyId'>): SnapshotRef {
    const unsigned = { ...r, signingKeyId: this.signingKeyId };
    return { ...unsigned, signature: this.#mac(unsigned).toString('hex') };
  }

  /** Why `r` is not signed by this key as it stands; undefined when it is. */
  verify(r: SnapshotRef): string | undefined {
    if (typeof r.signature !== 'string' || !/^[0-9a-f]{64}$/.test(r.signature)) return 'unsigned: no signature';
    const ok = timingSafeEqual(this.#mac(r), Buffer.from(r.signature, 'hex'));
    if (ok) return undefined;
    return r.signingKeyId === this.signingKeyId
      ? 'the signature does not verify: changed after drctl signed it, or not signed by drctl'
      : `signed with another key (id ${r.signingKeyId}), not this worker's snapshots.signingKey (id ${this.signingKeyId})`;
  }

  /** A restore proof's signature, with the manifest's key (common/snapshot-proof.ts). */
  signProof(p: Omit<UnsignedProof, 'signingKeyId'>): RestoreProof {
    const unsigned = { ...p, signingKeyId: this.signingKeyId };
    return { ...unsigned, signature: this.#proofMac(unsigned).toString('hex') };
  }

  /** Why the proof is not signed by this key as it stands; undefined when it is. */
  verifyProof(p: RestoreProof): string | undefined {
    if (!/^[0-9a-f]{64}$/.test(p.signature)) return 'unsigned proof';
    return timingSafeEqual(this.#proofMac(p), Buffer.from(p.signature, 'hex'))
      ? undefined
      : "the proof's signature does not verify with this worker's snapshots.signingKey";
  }

  #proofMac(p: UnsignedProof): Buffer {
    return createHmac('sha256', this.#signing).update(proofSignedText(p)).digest();
  }

  /** A control-plane bundle's manifest signature, with the manifest's key (common/cp-bundle.ts). */
  signBundle(m: Omit<UnsignedBundleManifest, 'signingKeyId'>): BundleManifest {
    const unsigned = { ...m, signingKeyId: this.signingKeyId };
    return { ...unsigned, signature: this.#bundleMac(unsigned).toString('hex') };
  }

  /** Why the bundle manifest is not signed by this key as it stands; undefined when it is. */
  verifyBundle(m: BundleManifest): string | undefined {
    if (!/^[0-9a-f]{64}$/.test(m.signature)) return 'unsigned bundle manifest';
    return timingSafeEqual(this.#bundleMac(m), Buffer.from(m.signature, 'hex'))
      ? undefined
      : "the bundle manifest's signature does not verify with this worker's snapshots.signingKey";
  }

  #bundleMac(m: UnsignedBundleManifest): Buffer {
    return createHmac('sha256', this.#signing).update(bundleSignedText(m)).digest();
  }

  /** Plaintext in, the format above out. */
  encryptStream(): Transform {
    return new Encryptor(this.#encryption, Buffer.from(this.encryptionKeyId, 'hex'));
  }

  /** The format above in, plaintext out; an error (SnapshotCorrupt) instead of an end if it does not verify. */
  decryptStream(label = 'encrypted snapshot'): Transform {
    return new Decryptor(this.#encryption, this.encryptionKeyId, label);
  }
}

function payloadKey(master: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, PAYLOAD_INFO, 32));
}

function nonceOf(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUIntBE(counter, 5, 6);
  n[11] = last ? 1 : 0;
  return n;
}

/**
 * Both directions cut their input into fixed units (a plaintext chunk, a sealed chunk) the same
 * way: a unit is processed only once a byte after it has arrived (only then is it not the final
 * one); a unit that lies whole inside an incoming buffer is used in place, the rest is gathered in
 * one reused buffer. Each output is pushed as the cipher returns it. (Concatenating instead cost
 * as much CPU as AES-GCM itself: measured with bench/encrypt-throughput.ts.)
 */
abstract class Chunker extends Transform {
  readonly #unit: number;
  readonly #acc: Buffer;
  #accLen = 0;

  constructor(unit: number) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    this.#unit = unit;
    this.#acc = Buffer.allocUnsafe(unit);
  }

  /** A whole unit (`last`: the final one; the final one may be shorter). */
  protected abstract unit(bytes: Buffer, last: boolean): void;

  /** Called with the input first: returns how many leading bytes it consumed (a header). */
  protected prefix(_chunk: Buffer): number {
    return 0;
  }

  protected held(): number {
    return this.#accLen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    try {
      const unit = this.#unit;
      let off = this.prefix(chunk);
      while (off < chunk.length) {
        if (this.#accLen === unit) {
          this.unit(this.#acc, false);
          this.#accLen = 0;
        }
        if (this.#accLen === 0 && chunk.length - off > unit) {
          this.unit(chunk.subarray(off, off + unit), false);
          off += unit;
          continue;
        }
        const n = Math.min(unit - this.#accLen, chunk.length - off);
        chunk.copy(this.#acc, this.#accLen, off, off + n);
        this.#accLen += n;
        off += n;
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  /** The held bytes as the final unit. */
  protected finalUnit() {
    this.unit(this.#acc.subarray(0, this.#accLen), true);
    this.#accLen = 0;
  }
}

class Encryptor extends Chunker {
  readonly #key: Buffer;
  readonly #header: Buffer;
  #started = false;
  #counter = 0;

  constructor(master: Buffer, id: Buffer) {
    super(CHUNK);
    const salt = randomBytes(SALT_BYTES);
    this.#header = Buffer.concat([MAGIC, id, salt]);
    this.#key = payloadKey(master, salt);
  }

  #start() {
    if (this.#started) return;
    this.#started = true;
    this.push(this.#header);
  }

  protected override prefix(): number {
    this.#start();
    return 0;
  }

  protected override unit(plain: Buffer, last: boolean) {
    if (this.#counter >= MAX_CHUNKS) throw new Error('snapshot too large for one encrypted stream');
    const c = createCipheriv('aes-256-gcm', this.#key, nonceOf(this.#counter++, last));
    c.setAAD(this.#header);
    const sealed = c.update(plain);
    c.final();
    if (sealed.length) this.push(sealed);
    this.push(c.getAuthTag());
  }

  override _flush(cb: TransformCallback) {
    try {
      this.#start();
      this.finalUnit();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

class Decryptor extends Chunker {
  readonly #master: Buffer;
  readonly #keyId: string;
  readonly #label: string;
  readonly #headerBuf = Buffer.alloc(HEADER_BYTES);
  #headerLen = 0;
  #key?: Buffer;
  #counter = 0;

  constructor(master: Buffer, id: string, label: string) {
    super(SEALED);
    this.#master = master;
    this.#keyId = id;
    this.#label = label;
  }

  #corrupt(why: string) {
    return failure(FailureType.SnapshotCorrupt, `${this.#label}: ${why}`);
  }

  protected override prefix(chunk: Buffer): number {
    if (this.#key) return 0;
    const n = Math.min(HEADER_BYTES - this.#headerLen, chunk.length);
    chunk.copy(this.#headerBuf, this.#headerLen, 0, n);
    this.#headerLen += n;
    if (this.#headerLen < HEADER_BYTES) return n;
    const h = this.#headerBuf;
    if (!h.subarray(0, MAGIC.length).equals(MAGIC))
      throw this.#corrupt(`not a drctl encrypted snapshot (no ${MAGIC.toString('ascii')} header)`);
    const id = h.subarray(MAGIC.length, MAGIC.length + KEY_ID_BYTES).toString('hex');
    if (id !== this.#keyId)
      throw failure(
        FailureType.PreflightFailed,
        `${this.#label}: encrypted with key id ${id}, not this worker's snapshots.encryptionKey (id ${this.#keyId})`,
      );
    this.#key = payloadKey(this.#master, h.subarray(MAGIC.length + KEY_ID_BYTES));
    return n;
  }

  protected override unit(sealed: Buffer, last: boolean) {
    const i = this.#counter++;
    const d = createDecipheriv('aes-256-gcm', this.#key!, nonceOf(i, last));
    d.setAAD(this.#headerBuf);
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    const plain = d.update(sealed.subarray(0, sealed.length - TAG));
    try {
      d.final();
    } catch {
      throw this.#corrupt(
        `chunk ${i}${last ? ' (the last)' : ''} does not authenticate: the object is corrupt, truncated or was tampered with`,
      );
    }
    // Passed on only now that its tag verified.
    if (plain.length) this.push(plain);
  }

  override _flush(cb: TransformCallback) {
    try {
      if (!this.#key) throw this.#corrupt(`truncated: ${this.#headerLen} bytes, less than its header`);
      const held = this.held();
      if (held < TAG)
        throw this.#corrupt(
          `truncated ${this.#counter === 0 ? 'right after its header' : `after chunk ${this.#counter - 1}`}`,
        );
      if (held === TAG && this.#counter > 0)
        throw this.#corrupt(`an empty final chunk after chunk ${this.#counter - 1} (truncated or not drctl's)`);
      this.finalUnit();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}
