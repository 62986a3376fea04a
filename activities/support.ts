// Small pieces every long activity uses: heartbeats, waiting, hashing a stream on its way.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { Context } from '@temporalio/activity';
import { FailureType, failure } from '../common/errors.ts';

/** The running activity's context; undefined outside one (benchmarks and tests call activities directly). */
function context(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export function heartbeat(details?: unknown) {
  try {
    context()?.heartbeat(details);
  } catch {
    // A heartbeat is a progress report; failing to send one must not fail the work.
  }
}

/** Aborts when the activity is cancelled (a heartbeat delivers the cancel); undefined outside an activity. */
export function activitySignal(): AbortSignal | undefined {
  return context()?.cancellationSignal;
}

/** Waits `ms`; inside an activity it throws CancelledFailure as soon as the activity is cancelled. */
function pause(ms: number): Promise<void> {
  const ctx = context();
  return ctx ? ctx.sleep(ms) : new Promise((r) => setTimeout(r, ms));
}

/** A single remote command can run for minutes (`snapshot save` of a large db): keep heartbeating meanwhile. */
export async function heartbeating<T>(what: string, work: Promise<T>): Promise<T> {
  const timer = setInterval(() => heartbeat({ phase: what }), 5_000);
  try {
    heartbeat({ phase: what });
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/** One look of a poll: the value once what it waits for holds, else what it saw instead. */
export type Look<T, S> = { done: true; value: T } | { done: false; seen: S };
export const done = <T>(value: T) => ({ done: true, value }) as const;
export const notYet = <S>(seen: S) => ({ done: false, seen }) as const;

export type PollOptions<T, S> = {
  /** What is waited for, as the Timeout message names it: "site-a's kube-apiserver to be ready". */
  what: string;
  /** Milliseconds between looks. */
  every: number;
  /** The heartbeat's details from what a look saw (default: what it saw). */
  heartbeat?: (seen: S) => unknown;
  /** Instead of the Timeout failure: a verdict from the last look (or a failure of another type). */
  onTimeout?: (seen: S) => T;
} & ({ timeoutMs: number } | { deadline: number });

const describe = (seen: unknown) => (typeof seen === 'string' ? seen : JSON.stringify(seen));

/**
 * Looks until `look` says done, heartbeating what each look saw and pausing `every` ms between
 * looks (a cancelled activity stops at the pause). Past the deadline: a Timeout failure naming
 * what was waited for and what the last look saw, unless `onTimeout` says otherwise.
 */
export async function pollUntil<T, S>(opts: PollOptions<T, S>, look: () => Promise<Look<T, S>>): Promise<T> {
  const start = Date.now();
  const deadline = 'deadline' in opts ? opts.deadline : start + opts.timeoutMs;
  for (;;) {
    const r = await look();
    if (r.done) return r.value;
    if (Date.now() > deadline) {
      if (opts.onTimeout) return opts.onTimeout(r.seen);
      throw failure(
        FailureType.Timeout,
        `gave up waiting for ${opts.what} after ${Math.round((deadline - start) / 1000)} s: ${describe(r.seen)}`,
      );
    }
    heartbeat(opts.heartbeat ? opts.heartbeat(r.seen) : r.seen);
    await pause(opts.every);
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
