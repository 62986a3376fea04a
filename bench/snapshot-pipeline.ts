// Benchmark: the snapshot pipeline's upload with a ~1 GB etcd snapshot of site-b.
//
//   drctl:    the uploadSnapshot activity (SSH read stream → streaming sha256 → encryption on the
//             worker, AES-256-GCM in 64 KiB chunks (gateways/snapshot-crypto.ts) → sha256 of the
//             ciphertext → lib-storage multipart Upload, CRC32 part checksums → the signed
//             manifest) running in a `drctl worker` PROCESS this script spawns on its own task
//             queue; its RSS (/proc/<pid>/status VmRSS) is sampled every 100 ms: before, peak
//             during, VmHWM. drctl always encrypts: this is the encrypted upload.
//   baseline: `ssh root@node cat FILE` (system OpenSSH) piped into a plain lib-storage Upload (same
//             part size and queue, the SDK's default CRC32 part checksums), in a fresh Node
//             process: the plain pipeline. Also two variants: with drctl's streaming sha256 (to
//             tell transport from hashing), and with all drctl does to the bytes (sha256,
//             drctl's encryption, sha256 of the ciphertext: to tell encryption's cost alone).
// All upload the same node-local file (taken and verified by drctl's own take/verify activities in
// the same worker). MB/s are of the snapshot (the plaintext) on every path. Targets: drctl
// (encrypted) MB/s >= 0.8 x baseline (plain) MB/s; baseline+encrypt >= 0.8 x baseline; RSS growth
// <= 150 MB. BENCH_RUNS (default 2) rounds, each drctl → baseline → baseline+sha256 →
// baseline+encrypt. site-b only.
//
//   npx tsx bench/snapshot-pipeline.ts
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { parse, stringify } from 'yaml';
import type { SnapshotMember, VerifiedSnapshot } from '../activities/snapshot.ts';
import { manifestKeyOf, type SnapshotMeta, type SnapshotRef } from '../common/snapshots.ts';
import { temporalConnectConfig } from '../config/temporal.ts';
import { createGateways } from '../worker/gateways.ts';
import type { BenchActivityInput } from './lib/bench-workflows.ts';
import { knownHostsFile } from './lib/openssh.ts';
import { type ProbeResult, transportProbe } from './lib/transport-probe.ts';
import {
  activitySpans,
  benchConfig,
  CLUSTER,
  countPrefix,
  deleteCompactDefrag,
  drctlClusterCheck,
  fill,
  median,
  REPO,
  RESULTS_DIR,
  say,
  secs,
  siteHealthy,
  sleep,
  stamp,
  table,
  temporalClient,
  writeResults,
} from './lib/common.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const MIN_KEYS = Number(process.env.BENCH_MIN_KEYS ?? 500);
const RAW_BYTES = 786_432; // base64 → 1 MiB values
const PARALLEL = 4;
const PREFIX = '/bench-snap/';
// drctl's ObjectStore.put (gateways/s3.ts): the baseline uses the same.
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 4;
/** The transport diagnostic reads this much of the file per path (0 = skip it). */
const PROBE_BYTES = Number(process.env.BENCH_PROBE_MIB ?? 64) * 1024 * 1024;

const ts = stamp();
const taskQueue = `bench-snap-${Date.now()}`;
const wfQueue = `${taskQueue}-wf`;
const tmp = join(RESULTS_DIR, `.tmp-snapshot-pipeline-${ts}`);
const { path: labConfigPath, config } = benchConfig(taskQueue);
const gw = createGateways(config);

// ---------------------------------------------------------------------------------------------
// memory sampling

function procStatus(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (f: string) => Number(s.match(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

class Sampler {
  readonly samples: { t: number; rss: number; hwm: number }[] = [];
  private timer?: NodeJS.Timeout;
  constructor(private readonly pid: number) {}
  start(everyMs = 100) {
    const tick = () => {
      const s = procStatus(this.pid);
      if (s) this.samples.push({ t: Date.now(), ...s });
    };
    tick();
    this.timer = setInterval(tick, everyMs);
    return this;
  }
  stop() {
    clearInterval(this.timer);
    const s = procStatus(this.pid);
    if (s) this.samples.push({ t: Date.now(), ...s });
    return this.samples;
  }
}

/** RSS of `pid` while idle for `ms`: the median of 100 ms samples. */
async function idleRss(pid: number, ms = 2_000) {
  const s = new Sampler(pid).start();
  await sleep(ms);
  const xs = s.stop();
  return { rss: median(xs.map((x) => x.rss)), hwm: xs[xs.length - 1]!.hwm };
}

// ---------------------------------------------------------------------------------------------
// the drctl worker process under test, and a workflow-only worker here

async function spawnDrctlWorker(): Promise<{ child: ChildProcess; logFile: string }> {
  const cfg = parse(readFileSync(labConfigPath, 'utf8')) as { temporal: { taskQueue: string } };
  cfg.temporal.taskQueue = taskQueue;
  const cfgFile = join(tmp, 'drctl.yaml');
  writeFileSync(cfgFile, stringify(cfg), { mode: 0o600 });
  const logFile = join(RESULTS_DIR, `snapshot-pipeline-${ts}-worker.log`);
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, ['bin/drctl.js', '--config', cfgFile, 'worker'], {
    cwd: REPO,
    env: { ...process.env, DRCTL_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      log.write(d);
      out += d.toString();
      if (out.includes('worker running')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) =>
      reject(new Error(`drctl worker exited (${code}) before it was ready: ${out.slice(-1000)}`)),
    );
    setTimeout(() => reject(new Error(`drctl worker not ready after 120 s: ${out.slice(-1000)}`)), 120_000);
  });
  await ready;
  return { child, logFile };
}

async function stopChild(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await gone;
  clearTimeout(t);
}

async function act<T>(
  client: Client,
  name: BenchActivityInput['name'],
  args: unknown[],
): Promise<{ value: T; ms: number; activityMs: number; workflowId: string }> {
  const workflowId = `bench-snap-${name}-${Date.now()}`;
  const t0 = Date.now();
  const value = (await client.workflow.execute('benchRunActivity', {
    taskQueue: wfQueue,
    workflowId,
    args: [{ activityTaskQueue: taskQueue, name, args } satisfies BenchActivityInput],
  })) as T;
  const ms = Date.now() - t0;
  const span = (await activitySpans(client, workflowId))[0];
  return { value, ms, activityMs: span ? span.closedAt - span.scheduledAt : NaN, workflowId };
}

// ---------------------------------------------------------------------------------------------
// measurements

const KINDS = ['drctl', 'baseline', 'baseline+sha256', 'baseline+encrypt'] as const;

interface UploadRun {
  kind: (typeof KINDS)[number];
  round: number;
  key: string;
  bytes: number;
  ms: number;
  mbPerS: number;
  /** drctl: end to end through Temporal (the activity's own span is `ms`). */
  e2eMs?: number;
  rssBefore: number;
  rssPeak: number;
  rssGrowth: number;
  hwmBefore?: number;
  hwmAfter: number;
}

async function measureDrctl(
  client: Client,
  workerPid: number,
  node: string,
  path: string,
  meta: SnapshotMeta,
  round: number,
): Promise<UploadRun> {
  // A distinct takenAt per round gives a distinct key, so each round really uploads (drctl skips an
  // object that already holds these bytes).
  const m = { ...meta, takenAt: new Date(Date.parse(meta.takenAt) + round * 1000).toISOString() };
  const before = await idleRss(workerPid);
  const sampler = new Sampler(workerPid).start(100);
  const r = await act<SnapshotRef & { skipped: boolean }>(client, 'uploadSnapshot', [
    { cluster: CLUSTER, node, path, meta: m },
  ]);
  const samples = sampler.stop();
  if (r.value.skipped) throw new Error(`drctl upload round ${round} was skipped (object already there)`);
  uploaded.push(r.value.key);
  const peak = Math.max(...samples.map((s) => s.rss));
  const run: UploadRun = {
    kind: 'drctl',
    round,
    key: r.value.key,
    bytes: r.value.size,
    ms: r.activityMs,
    e2eMs: r.ms,
    mbPerS: r.value.size / 1e6 / (r.activityMs / 1000),
    rssBefore: before.rss,
    rssPeak: peak,
    rssGrowth: peak - before.rss,
    hwmBefore: before.hwm,
    hwmAfter: samples[samples.length - 1]!.hwm,
  };
  await gw.snapshots().remove(r.value.key);
  uploaded.splice(uploaded.indexOf(r.value.key), 1);
  return run;
}

async function measureBaseline(
  node: string,
  path: string,
  knownHosts: string,
  round: number,
  kind: Exclude<UploadRun['kind'], 'drctl'>,
  expectSha: string,
): Promise<UploadRun> {
  const n = gw.node(CLUSTER, node);
  const sha256 = kind !== 'baseline';
  const key = `${config.objectStore.prefix}bench/snapshot-pipeline-${ts}/${kind.replace('+', '-')}-${round}.db`;
  uploaded.push(key);
  const creds = config.objectStore.credentials;
  if (!('file' in creds))
    throw new Error("the baseline reads object-store credentials from the config's credentials file");
  const args = {
    ssh: n.ssh,
    knownHosts,
    path,
    endpoint: config.objectStore.endpoint,
    region: config.objectStore.region,
    forcePathStyle: config.objectStore.forcePathStyle,
    bucket: config.objectStore.bucket,
    key,
    credentialsFile: creds.file,
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
    sha256,
    // Key references (the lab's key files), as the worker reads them: never the keys themselves.
    ...(kind === 'baseline+encrypt'
      ? { encrypt: { encryptionKey: config.snapshots.encryptionKey, signingKey: config.snapshots.signingKey } }
      : {}),
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/lib/bare-upload.ts', JSON.stringify(args)], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // The fresh process's own memory, for context (it starts at 0: "before" is its first sample).
  const sampler = new Sampler(child.pid!).start(100);
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
  const samples = sampler.stop();
  if (code !== 0) throw new Error(`baseline upload exited ${code}: ${err.slice(-1500)} ${out.slice(-500)}`);
  const res = JSON.parse(out.trim().split('\n').pop()!) as {
    bytes: number;
    ms: number;
    mbPerS: number;
    sha256?: string;
    maxRssBytes: number;
  };
  if (sha256 && res.sha256 !== expectSha)
    throw new Error(`baseline streamed sha256 ${res.sha256}, the node's file is ${expectSha}`);
  const rss = samples.map((s) => s.rss).filter((x) => x > 0);
  await gw.store().delete(key);
  uploaded.splice(uploaded.indexOf(key), 1);
  return {
    kind,
    round,
    key,
    bytes: res.bytes,
    ms: res.ms,
    mbPerS: res.mbPerS,
    rssBefore: rss[0] ?? NaN,
    rssPeak: Math.max(res.maxRssBytes, ...rss),
    rssGrowth: Math.max(res.maxRssBytes, ...rss) - (rss[0] ?? 0),
    hwmAfter: res.maxRssBytes,
  };
}

/** known_hosts for the node and its bastion, each key accepted only if it matches the pinned fingerprint. */
function knownHostsFor(node: string): string {
  return knownHostsFile(gw.node(CLUSTER, node).ssh, join(tmp, `known_hosts-${node}`));
}

// ---------------------------------------------------------------------------------------------

const uploaded: string[] = [];
let nodeFile: { node: string; path: string } | undefined;

async function main(): Promise<number> {
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  say(`config ${labConfigPath}; drctl worker process on task queue ${taskQueue}; ${RUNS} round(s); ${CLUSTER} only`);
  let client: Client | undefined;
  let drctlWorker: { child: ChildProcess; logFile: string } | undefined;
  let wf: { worker: Worker; running: Promise<void>; connection: NativeConnection } | undefined;
  let failed: Error | undefined;
  const runs: UploadRun[] = [];
  const probes: (ProbeResult & { round: number })[] = [];
  const info: Record<string, unknown> = {};
  try {
    const h = await siteHealthy(gw, 60_000);
    if (!h.ok) throw new Error(`${CLUSTER} not healthy before the benchmark: ${h.detail}`);
    drctlWorker = await spawnDrctlWorker();
    const pid = drctlWorker.child.pid!;
    info.workerPid = pid;
    info.workerRssAtReady = procStatus(pid);
    say(
      `drctl worker pid ${pid} ready (RSS ${((procStatus(pid)?.rss ?? 0) / 1e6).toFixed(0)} MB); log ${drctlWorker.logFile}`,
    );
    const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
    const connection = await NativeConnection.connect(connectionOptions);
    const worker = await Worker.create({
      connection,
      namespace,
      taskQueue: wfQueue,
      workflowsPath: fileURLToPath(new URL('./lib/bench-workflows.ts', import.meta.url)),
    });
    wf = { worker, running: worker.run(), connection };
    client = await temporalClient(config);

    if ((await countPrefix(gw, PREFIX)) > 0) {
      say(`leftover ${PREFIX} keys from an earlier run: deleting them first`);
      await deleteCompactDefrag(gw, [PREFIX]);
    }
    say(`fill: ${KEYS} x 1 MiB under ${PREFIX} (generated on cp1, ${PARALLEL} parallel batches)`);
    const f = await fill(gw, { prefix: PREFIX, count: KEYS, rawBytes: RAW_BYTES, parallel: PARALLEL });
    info.fill = f;
    say(
      `fill: ${f.keys} keys in ${secs(f.ms)} s; db ${(f.dbSize / 1e6).toFixed(0)} MB at revision ${f.revision}${f.ok ? '' : `; stopped early: ${f.error}`}`,
    );
    if (f.keys < MIN_KEYS) throw new Error(`fill: only ${f.keys} keys (< ${MIN_KEYS}): ${f.error ?? ''}`);

    // The file: drctl's own pick/take/verify, in the worker under test.
    const pick = await act<SnapshotMember>(client, 'pickSnapshotMember', [CLUSTER]);
    const node = pick.value.node;
    const take = await act<{ path: string; takenAt: string }>(client, 'takeSnapshot', [
      { cluster: CLUSTER, node, runId: `bench-${ts}` },
    ]);
    nodeFile = { node, path: take.value.path };
    say(`take: ${node}:${take.value.path} in ${secs(take.activityMs)} s`);
    const verify = await act<VerifiedSnapshot>(client, 'verifySnapshot', [
      { cluster: CLUSTER, node, path: take.value.path },
    ]);
    const meta: SnapshotMeta = { ...verify.value, takenAt: take.value.takenAt };
    info.snapshot = {
      node,
      path: take.value.path,
      size: meta.size,
      sha256: meta.sha256,
      revision: meta.revision,
      takeMs: take.activityMs,
      verifyMs: verify.activityMs,
    };
    say(
      `verify: ${(meta.size / 1e6).toFixed(0)} MB, sha256 ${meta.sha256.slice(0, 12)}…, in ${secs(verify.activityMs)} s`,
    );
    const knownHosts = knownHostsFor(node);

    for (let round = 1; round <= RUNS; round++) {
      const d = await measureDrctl(client, pid, node, take.value.path, meta, round);
      runs.push(d);
      say(
        `round ${round} drctl:            ${d.mbPerS.toFixed(1)} MB/s (${secs(d.ms)} s); RSS ${(d.rssBefore / 1e6).toFixed(0)} → peak ${(d.rssPeak / 1e6).toFixed(0)} MB (+${(d.rssGrowth / 1e6).toFixed(0)}), VmHWM ${(d.hwmAfter / 1e6).toFixed(0)} MB`,
      );
      for (const kind of ['baseline', 'baseline+sha256', 'baseline+encrypt'] as const) {
        const b = await measureBaseline(node, take.value.path, knownHosts, round, kind, meta.sha256);
        runs.push(b);
        say(`round ${round} ${`${kind}:`.padEnd(18)}${b.mbPerS.toFixed(1)} MB/s (${secs(b.ms)} s)`);
      }
      if (PROBE_BYTES > 0) {
        say(`round ${round} transport diagnostic: first ${PROBE_BYTES / 1024 / 1024} MiB of the file, no S3`);
        for (const p of await transportProbe(gw, node, take.value.path, PROBE_BYTES, knownHosts))
          probes.push({ round, ...p });
      }
    }
  } catch (err) {
    failed = err as Error;
    say(`MEASUREMENT FAILED: ${failed.stack ?? failed.message}`);
  }

  // Cleanup: the node-local file, the objects, the keys (compact + defrag), the workers, tmp.
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
    }
  };
  if (nodeFile) {
    const f = nodeFile;
    await attempt(`remove ${f.node}:${f.path}`, () =>
      gw.shell(CLUSTER, f.node).exec(`rm -f '${f.path}' '${f.path}.part'`, { check: true }),
    );
  }
  for (const key of [...uploaded])
    await attempt(`delete ${key}`, async () => {
      await gw.store().delete(manifestKeyOf(key));
      await gw.store().delete(key);
    });
  await attempt(`delete ${PREFIX}, compact, defrag`, async () => {
    const sizes = await deleteCompactDefrag(gw, [PREFIX]);
    info.afterCleanupDbSize = sizes;
    say(
      `cleanup: ${PREFIX} deleted, compacted, defragmented: db ${sizes.map((s) => `${s.node}=${(s.dbSize / 1e6).toFixed(1)} MB`).join(' ')}`,
    );
  });
  if (wf) {
    wf.worker.shutdown();
    await wf.running.catch(() => undefined);
    await wf.connection.close();
  }
  if (drctlWorker) await attempt('stop the drctl worker', () => stopChild(drctlWorker.child));
  await client?.connection.close();
  rmSync(tmp, { recursive: true, force: true });
  const health = await siteHealthy(gw, 60_000);
  const check = await drctlClusterCheck();
  say(`final: ${health.detail}; node bin/drctl.js cluster check --cluster ${CLUSTER} → exit ${check.code}`);
  gw.close();

  // Report.
  const of = (kind: UploadRun['kind']) => runs.filter((r) => r.kind === kind);
  const rounds = Array.from({ length: Math.max(0, ...runs.map((r) => r.round)) }, (_, i) => i + 1);
  const get = (kind: UploadRun['kind'], round: number) => runs.find((r) => r.kind === kind && r.round === round);
  const mb = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : (x / 1e6).toFixed(0));
  console.log(
    `\nSnapshot upload of a ${info.snapshot ? mb((info.snapshot as { size: number }).size) : '?'} MB etcd snapshot of ${CLUSTER} (MB = 10^6 bytes)\n`,
  );
  console.log(
    table(
      ['round', 'path', 'MB/s', 's', 'RSS before MB', 'RSS peak MB', 'growth MB', 'VmHWM after MB'],
      rounds.flatMap((r) =>
        KINDS.map((k) => {
          const x = get(k, r);
          return [
            String(r),
            k,
            x ? x.mbPerS.toFixed(1) : '-',
            secs(x?.ms),
            mb(x?.rssBefore),
            mb(x?.rssPeak),
            mb(x?.rssGrowth),
            mb(x?.hwmAfter),
          ];
        }),
      ),
    ),
  );
  console.log('\n(baseline RSS is the fresh process\'s own, from 0: its "growth" is its whole size)');
  if (probes.length) {
    console.log(
      `\ntransport diagnostic (not a target): ${PROBE_BYTES / 1024 / 1024} MiB of the same file read (or written) and discarded, no S3 — MB/s per round\n`,
    );
    const names = [...new Set(probes.map((p) => p.path))];
    console.log(
      table(
        ['path', ...rounds.map((r) => `round ${r}`)],
        names.map((nm) => [
          nm,
          ...rounds.map((r) => probes.find((p) => p.path === nm && p.round === r)?.mbPerS.toFixed(1) ?? '-'),
        ]),
      ),
    );
  }
  type Target = { verdict: string; detail: string };
  const targets: Record<string, Target> = {};
  // Each an encrypted path against the plain pipeline of the same round.
  for (const [name, kind] of [
    ['drctl (encrypted) MB/s >= 0.8 x baseline (plain)', 'drctl'],
    ['baseline+encrypt MB/s >= 0.8 x baseline (plain): the encryption alone', 'baseline+encrypt'],
  ] as const) {
    const pairs = rounds.map((r) => ({ r, d: get(kind, r), b: get('baseline', r) })).filter((p) => p.d && p.b);
    if (!pairs.length) continue;
    const ok = pairs.map((p) => p.d!.mbPerS >= 0.8 * p.b!.mbPerS);
    targets[name] = {
      verdict: ok.every(Boolean) ? 'PASS' : ok.some(Boolean) ? 'MIXED' : 'FAIL',
      detail: pairs
        .map(
          (p) =>
            `round ${p.r}: ${p.d!.mbPerS.toFixed(1)} vs 0.8 x ${p.b!.mbPerS.toFixed(1)} = ${(0.8 * p.b!.mbPerS).toFixed(1)} (ratio ${(p.d!.mbPerS / p.b!.mbPerS).toFixed(2)})`,
        )
        .join('; '),
    };
  }
  if (of('drctl').length) {
    const ok = of('drctl').map((d) => d.rssGrowth <= 150e6);
    targets['drctl worker RSS growth <= 150 MB'] = {
      verdict: ok.every(Boolean) ? 'PASS' : ok.some(Boolean) ? 'MIXED' : 'FAIL',
      detail: of('drctl')
        .map(
          (d) =>
            `round ${d.round}: +${mb(d.rssGrowth)} MB (${mb(d.rssBefore)} → ${mb(d.rssPeak)}; VmHWM ${mb(d.hwmBefore)} → ${mb(d.hwmAfter)})`,
        )
        .join('; '),
    };
  }
  console.log('\ntargets\n');
  for (const [name, t] of Object.entries(targets)) console.log(`${t.verdict.padEnd(5)} ${name}: ${t.detail}`);
  const file = writeResults('snapshot-pipeline', {
    cluster: CLUSTER,
    keys: KEYS,
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
    runs: RUNS,
    info,
    uploads: runs,
    transportProbe: probes,
    targets,
    failed: failed?.message,
    cleanupProblems: problems,
    finalHealth: health,
    finalClusterCheck: check,
  });
  console.log(`\nresults: ${file}`);
  if (problems.length) console.log(`cleanup problems:\n  ${problems.join('\n  ')}`);
  return failed || problems.length || !health.ok || check.code !== 0 ? 1 : 0;
}

process.exit(await main());
