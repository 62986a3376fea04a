// An in-memory stand-in for the ObjectStore (gateways/s3.ts), for SnapshotStore and the snapshot
// activities without a bucket: objects are byte arrays, `put` drains its body as a stream, `get`
// hands one out in pieces, as S3 does.
import { Readable } from 'node:stream';
import { FailureType, failure } from '../../../common/errors.ts';
import type { ObjectInfo } from '../../../gateways/s3.ts';
import type { Bucket } from '../../../gateways/snapshot-store.ts';

export class MemoryBucket implements Bucket {
  readonly bucket = 'mem';
  readonly objects = new Map<string, { body: Buffer; metadata: Record<string, string> }>();
  /** Every call, in order ("get k", "put k", …): what the code under test did to the bucket. */
  readonly calls: string[] = [];

  async put(
    key: string,
    body: Readable | Buffer | string,
    metadata: Record<string, string> = {},
    onProgress?: (loaded: number) => void,
  ): Promise<string> {
    this.calls.push(`put ${key}`);
    let bytes: Buffer;
    if (typeof body === 'string' || Buffer.isBuffer(body)) bytes = Buffer.from(body);
    else {
      const parts: Buffer[] = [];
      let n = 0;
      for await (const c of body) {
        parts.push(c as Buffer);
        n += (c as Buffer).length;
        onProgress?.(n);
      }
      bytes = Buffer.concat(parts);
    }
    this.objects.set(key, { body: bytes, metadata });
    return '"etag"';
  }

  async get(key: string): Promise<Readable> {
    this.calls.push(`get ${key}`);
    const o = this.objects.get(key);
    if (!o) throw failure(FailureType.ObjectStoreError, `s3://mem: get ${key}: NoSuchKey`);
    const piece = 48 * 1024 + 7; // not a multiple of anything the format uses
    return Readable.from(
      (function* () {
        for (let i = 0; i < o.body.length; i += piece) yield o.body.subarray(i, i + piece);
      })(),
    );
  }

  async head(key: string): Promise<{ size: number; metadata: Record<string, string> } | undefined> {
    this.calls.push(`head ${key}`);
    const o = this.objects.get(key);
    return o ? { size: o.body.length, metadata: o.metadata } : undefined;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    this.calls.push(`list ${prefix}`);
    return [...this.objects]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, o]) => ({ key, size: o.body.length }));
  }

  async delete(key: string): Promise<void> {
    this.calls.push(`delete ${key}`);
    this.objects.delete(key);
  }
}
