// Small pieces every long activity uses.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { Context } from '@temporalio/activity';

export function heartbeat(details?: unknown) {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Not inside an activity (unit use): nothing to report to.
  }
}

/**
 * Hashes and counts bytes as they stream past, without keeping them. `onBytes` (a heartbeat) runs
 * at most every `everyMs`: called per chunk it cost a payload encoding per 32 KiB, tens of
 * thousands per snapshot (bench/snapshot-pipeline.ts).
 */
export function meter(onBytes: (total: number) => void, everyMs = 500) {
  const hash = createHash('sha256');
  let bytes = 0;
  let last = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      const now = Date.now();
      if (now - last >= everyMs) {
        last = now;
        onBytes(bytes);
      }
      cb(null, chunk);
    },
  });
  return { stream, bytes: () => bytes, digest: () => hash.digest('hex') };
}
