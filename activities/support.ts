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

/** Hashes and counts bytes as they stream past, without keeping them. */
export function meter(onBytes: (total: number) => void) {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      onBytes(bytes);
      cb(null, chunk);
    },
  });
  return { stream, bytes: () => bytes, digest: () => hash.digest('hex') };
}
