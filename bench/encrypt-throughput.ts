// Micro benchmark, no lab: what the snapshot encryption costs on this machine's CPU, in-process,
// through the same stream stages drctl's upload and restore use (activities/support.ts meter,
// gateways/snapshot-crypto.ts), with no network in the way:
//
//   plain:    source → sha256 → sink                                   (the upload before encryption)
//   encrypt:  source → sha256 → encrypt → sha256 of the ciphertext → sink   (drctl's upload now)
//   decrypt:  ciphertext → sha256 → decrypt → sha256 → sink           (drctl's distribute step)
//
// The source hands out 32 KiB pieces (what an SSH channel delivers) of incompressible bytes.
// Target: encrypt >= 0.8 x plain would be met with room to spare if the pipeline's ~100 MB/s were
// CPU-bound on these stages; the figure that counts is bench/snapshot-pipeline.ts on the lab.
// BENCH_MIB (default 512) per path, BENCH_RUNS (default 3) rounds, interleaved.
//
//   npx tsx bench/encrypt-throughput.ts
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { meter } from '../activities/support.ts';
import { SnapshotKeys } from '../gateways/snapshot-crypto.ts';

const MIB = Number(process.env.BENCH_MIB ?? 512);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PIECE = 32 * 1024;
const pool = randomBytes(8 * 1024 * 1024);
const keys = new SnapshotKeys(randomBytes(32), randomBytes(32));

function source(bytes: number): Readable {
  let sent = 0;
  return new Readable({
    highWaterMark: 1024 * 1024,
    read() {
      if (sent >= bytes) return void this.push(null);
      const off = sent % pool.length;
      const n = Math.min(PIECE, bytes - sent, pool.length - off);
      sent += n;
      this.push(pool.subarray(off, off + n));
    },
  });
}

/** Keeps the ciphertext when asked to (the decrypt path reads it back), else discards it. */
function sink(keep?: Buffer[]): Writable {
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _enc, cb) {
      keep?.push(chunk);
      cb();
    },
  });
}

/** Wall-clock ms, and this process's CPU ms (user + system): on a shared machine the CPU is the steadier figure. */
async function timed(fn: () => Promise<void>): Promise<{ ms: number; cpuMs: number }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
}

const bytes = MIB * 1024 * 1024;
const rows: { run: number; path: string; mbPerS: number; cpuMsPerMB: number }[] = [];
const row = (run: number, path: string, t: { ms: number; cpuMs: number }) => ({
  run,
  path,
  mbPerS: bytes / 1e6 / (t.ms / 1000),
  cpuMsPerMB: t.cpuMs / (bytes / 1e6),
});
for (let run = 1; run <= RUNS; run++) {
  const plainT = await timed(() => pipeline(source(bytes), meter(() => undefined).stream, sink()));
  const kept: Buffer[] = [];
  const encT = await timed(() =>
    pipeline(
      source(bytes),
      meter(() => undefined).stream,
      keys.encryptStream(),
      meter(() => undefined).stream,
      sink(kept), // the decrypt path reads it back
    ),
  );
  const cipher = Buffer.concat(kept);
  kept.length = 0;
  const plainOut = meter(() => undefined);
  const decT = await timed(() =>
    pipeline(
      Readable.from(
        (function* () {
          for (let o = 0; o < cipher.length; o += PIECE) yield cipher.subarray(o, o + PIECE);
        })(),
      ),
      meter(() => undefined).stream,
      keys.decryptStream(),
      plainOut.stream,
      sink(),
    ),
  );
  if (plainOut.bytes() !== bytes) throw new Error(`decrypted ${plainOut.bytes()} bytes, not ${bytes}`);
  rows.push(
    row(run, 'plain (sha256)', plainT),
    row(run, 'encrypt (sha256, AES-256-GCM, sha256)', encT),
    row(run, 'decrypt (sha256, AES-256-GCM, sha256)', decT),
  );
}
console.log(`${MIB} MiB per path, ${RUNS} round(s), MB = 10^6 bytes, Node ${process.versions.node}\n`);
for (const r of rows)
  console.log(
    `round ${r.run}  ${r.path.padEnd(40)} ${r.mbPerS.toFixed(0).padStart(6)} MB/s  ${r.cpuMsPerMB.toFixed(2).padStart(6)} CPU ms/MB`,
  );
const of = (p: string, k: 'mbPerS' | 'cpuMsPerMB') => rows.filter((r) => r.path.startsWith(p)).map((r) => r[k]);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpu = (p: string) => median(of(p, 'cpuMsPerMB'));
console.log(
  `\nmedian MB/s: plain ${median(of('plain', 'mbPerS')).toFixed(0)}, encrypt ${median(of('encrypt', 'mbPerS')).toFixed(0)}, decrypt ${median(of('decrypt', 'mbPerS')).toFixed(0)}\n` +
    `median CPU ms per MB: plain ${cpu('plain').toFixed(2)}, encrypt ${cpu('encrypt').toFixed(2)}, decrypt ${cpu('decrypt').toFixed(2)}; ` +
    `encryption adds ${(cpu('encrypt') - cpu('plain')).toFixed(2)} CPU ms per MB: at 100 MB/s, ${((cpu('encrypt') - cpu('plain')) * 10).toFixed(0)} % of one core`,
);
