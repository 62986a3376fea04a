// A check, not a lab benchmark: the snapshot store's stream path against a real S3 server, with
// no lab. It starts its own standalone MinIO and etcd 3.6 (the lab's binaries in ~/.cache/drctl,
// from lab/install.sh) on 127.0.99.1, each with a temp dir of its own, and stops both at the end.
//
//   1 etcd: keys (one a Secret-like marker) and ~BENCH_MB MB of filler; `etcdctl snapshot save`
//   2 drctl's uploadSnapshot activity (the node's `cat` replaced by reading the local file) into
//     MinIO: sha256 → encryption → sha256 → multipart upload (8 MiB parts), then the signed manifest
//   3 list: that snapshot; an unsigned object planted next to it is ignored
//   4 the object in MinIO: drctl's header, no bbolt magic, no marker
//   5 GET → decrypt → a file: sha256 as signed; `etcdutl snapshot status` and `snapshot restore`
//     accept it; the restored db holds the marker
//   6 the object with one byte flipped: decryption refuses it (SnapshotCorrupt)
//   7 upload throughput, BENCH_RUNS (default 3) interleaved rounds: the plain pipeline (the file →
//     sha256 → multipart put) against drctl's encrypted upload, MB/s and CPU ms/MB of this process.
//     Disk → MinIO on one machine: CPU-bound, so encryption weighs more here than behind SSH.
//
//   npx tsx bench/snapshot-store-minio.ts
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline as pipe } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSnapshotActivities } from '../activities/snapshot.ts';
import { meter } from '../activities/support.ts';
import { FailureType } from '../common/errors.ts';
import { type SnapshotMeta, snapshotKey, snapshotPrefix } from '../common/snapshots.ts';
import type { ObjectStoreConfig } from '../config/schema.ts';
import type { Gateways } from '../gateways/index.ts';
import { ObjectStore } from '../gateways/s3.ts';
import { SnapshotKeys } from '../gateways/snapshot-crypto.ts';
import { SnapshotStore } from '../gateways/snapshot-store.ts';
import { bin } from '../lab/topology.ts';

const IP = '127.0.99.1';
const MB = Number(process.env.BENCH_MB ?? 96);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const ETCD = bin.etcdVersionDir('v3.6.16');
const tmp = mkdtempSync(join(tmpdir(), 'drctl-snapshot-store-minio-'));
const children: ChildProcess[] = [];
const say = (m: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);
const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`CHECK FAILED: ${what}`);
  say(`ok: ${what}`);
};

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: string): ChildProcess {
  const out = createWriteStream(join(tmp, log));
  const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  c.stdout!.pipe(out);
  c.stderr!.pipe(out);
  children.push(c);
  return c;
}

async function waitFor(what: string, probe: () => Promise<boolean>, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what} not up after ${ms / 1000} s (logs in ${tmp})`);
}

async function stopAll() {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([gone, sleep(10_000).then(() => c.kill('SIGKILL'))]);
  }
}

const etcdctl = (args: string[], input?: Buffer) =>
  execFileSync(join(ETCD, 'etcdctl'), [`--endpoints=http://${IP}:23790`, ...args], {
    input,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'ignore'],
  }).toString();

/** Gateways for the snapshot activities: the real bucket and store; the node's file is local. */
function gateways(store: SnapshotStore, file: string): Gateways {
  return new Proxy({} as Gateways, {
    get(_t, prop: string) {
      if (prop === 'config') return { objectStore: { prefix: 'drctl/' }, snapshots: { keep: 20 } };
      if (prop === 'snapshots') return () => store;
      if (prop === 'store') return () => store.bucket;
      if (prop === 'shell')
        return () => ({ readStream: async () => createReadStream(file, { highWaterMark: 32 * 1024 }) });
      if (prop === 'then') return undefined;
      throw new Error(`not in this check: gateways.${prop}`);
    },
  });
}

async function main() {
  const user = 'drctl-check';
  const password = randomBytes(18).toString('base64url');
  say(`temp dir ${tmp}`);
  start(
    bin.minio,
    ['server', join(tmp, 'minio'), '--address', `${IP}:9000`, '--console-address', `${IP}:9001`, '--quiet'],
    { MINIO_ROOT_USER: user, MINIO_ROOT_PASSWORD: password },
    'minio.log',
  );
  start(
    join(ETCD, 'etcd'),
    [
      '--name=check',
      `--data-dir=${join(tmp, 'etcd')}`,
      `--listen-client-urls=http://${IP}:23790`,
      `--advertise-client-urls=http://${IP}:23790`,
      `--listen-peer-urls=http://${IP}:23800`,
      `--initial-advertise-peer-urls=http://${IP}:23800`,
      `--initial-cluster=check=http://${IP}:23800`,
    ],
    {},
    'etcd.log',
  );
  await waitFor('MinIO', async () => (await fetch(`http://${IP}:9000/minio/health/live`)).ok);
  await waitFor('etcd', async () => etcdctl(['endpoint', 'health']).includes('is healthy'));

  // 1. A real etcd snapshot with a marker in it.
  const marker = `SECRET-MARKER-${randomBytes(6).toString('hex')}`;
  etcdctl(['put', '/registry/secrets/default/db-password'], Buffer.from(marker));
  for (let i = 0; i < MB; i++) etcdctl(['put', `/filler/${i}`], Buffer.from(randomBytes(786_432).toString('base64')));
  const file = join(tmp, 'snapshot.db');
  etcdctl(['snapshot', 'save', file]);
  const status = JSON.parse(
    execFileSync(join(ETCD, 'etcdutl'), ['snapshot', 'status', file, '-w', 'json']).toString(),
  ) as { hash: number; revision: number; totalKey: number; totalSize: number };
  const plain = readFileSync(file);
  const meta: SnapshotMeta = {
    cluster: 'check',
    member: 'check',
    revision: status.revision,
    etcdHash: status.hash,
    totalKey: status.totalKey,
    totalSize: status.totalSize,
    sha256: createHash('sha256').update(plain).digest('hex'),
    size: plain.length,
    etcdVersion: '3.6.16',
    takenAt: new Date().toISOString(),
  };
  say(`etcd snapshot: ${(meta.size / 1e6).toFixed(1)} MB, revision ${meta.revision}`);

  // 2. Upload through drctl's activity.
  process.env.DRCTL_CHECK_S3_KEY = user;
  process.env.DRCTL_CHECK_S3_SECRET = password;
  const cfg = {
    endpoint: `http://${IP}:9000`,
    bucket: 'drctl-check',
    region: 'us-east-1',
    forcePathStyle: true,
    prefix: 'drctl/',
    credentials: { accessKeyIdEnv: 'DRCTL_CHECK_S3_KEY', secretAccessKeyEnv: 'DRCTL_CHECK_S3_SECRET' },
  } satisfies ObjectStoreConfig;
  const bucket = new ObjectStore(cfg);
  await bucket.ensureBucket();
  const keys = new SnapshotKeys(randomBytes(32), randomBytes(32));
  const store = new SnapshotStore(bucket, keys, cfg.prefix);
  const acts = createSnapshotActivities(gateways(store, file));
  const ref = await acts.uploadSnapshot({ cluster: 'check', node: 'n1', path: file, meta });
  check(
    !ref.skipped && ref.sha256 === meta.sha256,
    'uploaded through uploadSnapshot, the streamed sha256 the verified one',
  );

  // 3. Listed; a planted object ignored.
  const planted = snapshotKey(cfg.prefix, 'check', new Date(Date.now() + 3_600_000), meta.revision + 1);
  await bucket.put(planted, readFileSync(file), { sha256: meta.sha256 });
  const listing = await store.list('check');
  check(
    listing.snapshots.length === 1 && listing.snapshots[0]!.key === ref.key,
    'list: the signed snapshot, and only it',
  );
  check(
    listing.ignored.some((i) => i.key === planted && /unsigned/.test(i.why)),
    'list: the planted plain snapshot ignored as unsigned',
  );
  const untrusted = await store.resolve('check', planted).then(
    () => undefined,
    (e: unknown) => e as { type?: string },
  );
  check(untrusted?.type === FailureType.SnapshotUntrusted, 'resolve: the planted key refused (SnapshotUntrusted)');

  // 4. What MinIO holds.
  const stored: Buffer[] = [];
  for await (const c of await bucket.get(ref.key)) stored.push(c as Buffer);
  const obj = Buffer.concat(stored);
  check(obj.length === ref.storedSize, `the object is ${obj.length} bytes, as signed`);
  check(createHash('sha256').update(obj).digest('hex') === ref.storedSha256, "the object's sha256 is the signed one");
  check(obj.subarray(0, 16).toString() === 'drctl-snapshot/1', "the object starts with drctl's header");
  check(plain.readUInt32LE(16) === 0xed0cdaed && obj.readUInt32LE(16) !== 0xed0cdaed, 'no bbolt magic in the object');
  check(plain.indexOf(marker) >= 0 && obj.indexOf(marker) < 0, 'the marker is in the snapshot, not in the object');

  // 5. Back: GET → decrypt → file, as the restore's distribute step streams it.
  const back = join(tmp, 'back.db');
  const m = meter(() => undefined);
  await pipeline(await bucket.get(ref.key), keys.decryptStream(ref.key), m.stream, createWriteStream(back));
  check(m.digest() === meta.sha256 && m.bytes() === meta.size, 'decrypted back to the sha256 signed');
  const st = JSON.parse(execFileSync(join(ETCD, 'etcdutl'), ['snapshot', 'status', back, '-w', 'json']).toString()) as {
    revision: number;
    hash: number;
  };
  check(
    st.revision === meta.revision && st.hash === meta.etcdHash,
    '`etcdutl snapshot status` of it: revision and hash',
  );
  const restored = join(tmp, 'restored');
  execFileSync(join(ETCD, 'etcdutl'), ['snapshot', 'restore', back, `--data-dir=${restored}`], { stdio: 'ignore' });
  check(
    readFileSync(join(restored, 'member/snap/db')).indexOf(marker) >= 0,
    '`etcdutl snapshot restore` of it: the restored db holds the marker',
  );

  // 6. One flipped byte in the stored object.
  obj[obj.length >> 1]! ^= 0x01;
  await bucket.put(ref.key, obj);
  const err = await pipeline(
    await bucket.get(ref.key),
    keys.decryptStream(ref.key),
    createWriteStream(join(tmp, 'tampered.db')),
  ).then(
    () => undefined,
    (e: unknown) => e as { type?: string; message: string },
  );
  check(err?.type === FailureType.SnapshotCorrupt, `a flipped byte: ${err?.message}`);

  // 7. Throughput.
  const rows: { round: number; path: string; mbPerS: number; cpuMsPerMB: number }[] = [];
  const timed = async (fn: () => Promise<unknown>) => {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await fn();
    const c = process.cpuUsage(c0);
    const s = (performance.now() - t0) / 1000;
    return { mbPerS: meta.size / 1e6 / s, cpuMsPerMB: (c.user + c.system) / 1000 / (meta.size / 1e6) };
  };
  for (let round = 1; round <= RUNS; round++) {
    const plainKey = `${cfg.prefix}bench/plain-${round}.db`;
    rows.push({
      round,
      path: 'plain: file → sha256 → put',
      ...(await timed(async () => {
        const p = meter(() => undefined);
        pipe(createReadStream(file, { highWaterMark: 32 * 1024 }), p.stream, () => undefined);
        await bucket.put(plainKey, p.stream);
        if (p.digest() !== meta.sha256) throw new Error('plain upload: sha256 differs');
      })),
    });
    await bucket.delete(plainKey);
    const t = { ...meta, takenAt: new Date(Date.parse(meta.takenAt) + round * 1000).toISOString() };
    rows.push({
      round,
      path: 'drctl: sha256 → encrypt → sha256 → put → manifest',
      ...(await timed(() => acts.uploadSnapshot({ cluster: 'check', node: 'n1', path: file, meta: t }))),
    });
    await store.remove(snapshotKey(cfg.prefix, 'check', new Date(t.takenAt), t.revision));
  }
  for (const r of rows)
    say(
      `round ${r.round} ${r.path.padEnd(52)} ${r.mbPerS.toFixed(1).padStart(7)} MB/s ${r.cpuMsPerMB.toFixed(2)} CPU ms/MB`,
    );
  const med = (p: string) => {
    const xs = rows
      .filter((r) => r.path.startsWith(p))
      .map((r) => r.mbPerS)
      .sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  say(
    `median: plain ${med('plain').toFixed(1)} MB/s, drctl encrypted ${med('drctl').toFixed(1)} MB/s, ratio ${(med('drctl') / med('plain')).toFixed(2)}`,
  );

  for (const o of await bucket.list(snapshotPrefix(cfg.prefix, 'check'))) await bucket.delete(o.key);
  bucket.client.destroy();
  say(`snapshot file ${statSync(file).size} bytes; all checks passed`);
}

try {
  await main();
} finally {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
