// The etcd snapshot runbook against the running lab: real etcd 3.5 (site-a) and 3.6 (site-b, etcdutl
// only) over SSH, real MinIO, the real Temporal dev server. One in-process worker on a task queue
// of its own, writing under an object prefix of its own, so nothing here touches the lab worker's
// queue or the snapshots another test (or a person) relies on.
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createActivities } from '../activities/index.ts';
import { createSnapshotActivities, type VerifiedSnapshot } from '../activities/snapshot.ts';
import { formatDuration } from '../common/duration.ts';
import { FailureType } from '../common/errors.ts';
import {
  ENCRYPTION_FORMAT,
  manifestKeyOf,
  snapshotKey,
  snapshotPrefix,
  type ListedSnapshot,
  type SnapshotRef,
} from '../common/snapshots.ts';
import { loadConfig } from '../config/load.ts';
import { planRestore, runTag } from '../common/restore.ts';
import { bundleKeyOf, bundleManifestKeyOf, requiredItems } from '../common/cp-bundle.ts';
import { proofKeyOf } from '../common/snapshot-proof.ts';
import { ciphertextSize } from '../gateways/snapshot-crypto.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { temporalConnectConfig } from '../config/temporal.ts';
import { EtcdSnapshotTools } from '../gateways/etcd.ts';
import { shq } from '../gateways/ssh.ts';
import { paths } from '../lab/topology.ts';
import { createGateways, type Gateways } from '../worker/gateways.ts';
import { createWorker, type DrctlWorker } from '../worker/worker.ts';
import { ensureLabHealthy, putKeys, workflows } from './support/lab.ts';
import { type EtcdSnapshotResult, etcdSnapshot, listEtcdSnapshots, statusQuery } from '../workflows/etcd-snapshot.ts';

const stamp = `${Date.now().toString(36)}${process.pid.toString(36)}`;
const taskQueue = `test-snapshot-${stamp}`;
const prefix = `test-snapshot-${stamp}/`;
/** A second name for site-b's nodes, so schedule tests own their schedule id (etcd-snapshot-<alias>). */
const alias = `snaptest-${stamp}`;

let config: DrctlConfig;
let gw: Gateways;
let drctl: DrctlWorker;
let running: Promise<void>;
let client: Client;
let cliDir: string;
let cliConfig: string;
/** Set by a test: the worker's takeSnapshot then damages the file it just took, before verify sees it. */
let damageAfterTake: ((path: string) => string) | undefined;
const measured: string[] = [];

beforeAll(async () => {
  // Both clusters' members healthy and sshd on every node: snapshots are taken on a follower.
  await ensureLabHealthy();
  const lab = loadConfig(paths.config).config;
  const siteB = lab.sites.find((s) => s.cluster.name === 'site-b')!;
  config = {
    ...lab,
    temporal: { ...lab.temporal, taskQueue },
    objectStore: { ...lab.objectStore, prefix },
    sites: [...lab.sites, { ...siteB, name: alias, role: 'dr', cluster: { ...siteB.cluster, name: alias } }],
  };
  gw = createGateways(config);
  const activities = createActivities(gw);
  drctl = await createWorker(config, {
    ...(await workflows()),
    activities: {
      ...activities,
      async takeSnapshot(input: Parameters<typeof activities.takeSnapshot>[0]) {
        const r = await activities.takeSnapshot(input);
        if (damageAfterTake) await gw.shell(input.cluster, input.node).exec(damageAfterTake(r.path), { check: true });
        return r;
      },
    },
  });
  running = drctl.worker.run();
  const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
  client = new Client({ connection: await Connection.connect(connectionOptions), namespace });

  // The CLI's config: the lab's, on this test's task queue, with the alias site, and with object
  // store credentials that do not exist — the CLI must never need them (the worker reads the bucket).
  const yaml = parse(readFileSync(paths.config, 'utf8')) as {
    temporal: { taskQueue: string };
    sites: { name: string; cluster: { name: string } }[];
    objectStore: { credentials: unknown };
  };
  yaml.temporal.taskQueue = taskQueue;
  const b = structuredClone(yaml.sites.find((s) => s.name === 'site-b')!);
  b.name = alias;
  b.cluster.name = alias;
  (b as { role?: string }).role = 'dr';
  yaml.sites.push(b);
  yaml.objectStore.credentials = { file: '/nonexistent/drctl-cli-has-no-s3-credentials.yaml' };
  cliDir = mkdtempSync(join(tmpdir(), 'drctl-snapshot-test-'));
  cliConfig = join(cliDir, 'drctl.yaml');
  writeFileSync(cliConfig, stringify(yaml));
});

afterAll(async () => {
  try {
    await client?.schedule
      .getHandle(`etcd-snapshot-${alias}`)
      .delete()
      .catch(() => undefined);
    if (gw) {
      const store = gw.store();
      for (const o of await store.list(prefix)) await store.delete(o.key);
      for (const cluster of ['site-a', 'site-b']) {
        for (const n of gw.cluster(cluster).nodes)
          await gw
            .shell(cluster, n.name)
            .exec(`rm -f ${shq(config.snapshots.nodeDir)}/test-snapshot-${stamp}-*`)
            .catch(() => undefined);
      }
    }
  } finally {
    drctl?.worker.shutdown();
    await running?.catch(() => undefined);
    drctl?.gateways.close();
    await drctl?.connection.close();
    gw?.close();
    await client?.connection.close();
    if (cliDir) rmSync(cliDir, { recursive: true, force: true });
    if (measured.length) process.stdout.write(`\n[snapshot measurements]\n${measured.join('\n')}\n`);
  }
});

/** Writes keys through etcdctl on the cluster's first node; returns the revision after the last write. */
async function writeKeys(cluster: string, n: number): Promise<number> {
  return putKeys(
    gw,
    cluster,
    Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`/drctl-test/snapshot/${stamp}/${i}`, `v${i}-${Date.now()}`]),
    ),
  );
}

async function snapshot(cluster: string, extra: { keep?: number; maxAgeMs?: number } = {}) {
  const handle = await client.workflow.start(etcdSnapshot, {
    taskQueue,
    workflowId: `test-snapshot-${cluster}-${stamp}-${Date.now()}`,
    args: [{ cluster, ...extra }],
  });
  return { handle, result: await handle.result() };
}

async function listed(cluster: string): Promise<ListedSnapshot[]> {
  const listing = await client.workflow.execute(listEtcdSnapshots, {
    taskQueue,
    workflowId: `test-snapshot-list-${stamp}-${Date.now()}`,
    args: [{ cluster }],
  });
  return listing.snapshots;
}

async function sha256OfObject(key: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of await gw.store().get(key)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

async function objectBytes(key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of await gw.store().get(key)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Activities run outside a worker; their expected failures need not be logged with stacks. */
const mockEnv = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });

const nodeFile = (cluster: string, runId: string) => `${config.snapshots.nodeDir}/${cluster}-${runId}.db`;

async function nodeFileExists(cluster: string, node: string, path: string): Promise<boolean> {
  return (await gw.shell(cluster, node).exec(`test -e ${shq(path)} || test -e ${shq(`${path}.part`)}`)).code === 0;
}

describe('etcdSnapshot runbook', () => {
  // site-b first: it is never restored under us (another engineer restores site-a now and then).
  it.each([
    { cluster: 'site-b', version: /^3\.6\./ },
    { cluster: 'site-a', version: /^3\.5\./ },
  ])(
    "$cluster: a follower's snapshot, verified, off-site with the contract's metadata; the node file is gone",
    async ({ cluster, version }) => {
      const revisionAfterWrites = await writeKeys(cluster, 5);
      const t0 = Date.now();
      const { handle, result: r } = await snapshot(cluster);
      const took = Date.now() - t0;

      expect(r.revision).toBeGreaterThanOrEqual(revisionAfterWrites);
      expect(r.key).toBe(snapshotKey(prefix, cluster, new Date(r.takenAt), r.revision));
      expect(r.pruned).toEqual([]);

      // The snapshot: a signed manifest per common/snapshots.ts (read as the restore reads it), an
      // object that hashes to what the manifest signed.
      const head = await gw.store().head(r.key);
      expect(head).toBeDefined();
      expect(await gw.store().head(manifestKeyOf(r.key))).toBeDefined();
      const meta = await gw.snapshots().resolve(cluster, r.key);
      // A kubeadm node: no etcd tool on its PATH; the version is the running member's (its image's).
      const path = await gw.shell(cluster, r.node).exec('command -v etcd etcdctl etcdutl');
      expect(path.stdout.trim()).toBe('');
      const installed = (await gw.etcd(cluster, r.node).status()).version;
      const keys = gw.snapshots().keys;
      expect(meta).toEqual({
        key: r.key,
        cluster,
        member: gw.node(cluster, r.node).etcd.memberName,
        revision: r.revision,
        etcdHash: r.etcdHash,
        totalKey: expect.any(Number) as number,
        totalSize: expect.any(Number) as number,
        sha256: r.sha256,
        size: r.size,
        etcdVersion: installed,
        takenAt: r.takenAt,
        storedSha256: r.storedSha256,
        storedSize: r.storedSize,
        encryption: ENCRYPTION_FORMAT,
        encryptionKeyId: keys.encryptionKeyId,
        signingKeyId: keys.signingKeyId,
        signature: expect.stringMatching(/^[0-9a-f]{64}$/) as string,
      });
      expect(meta.etcdVersion).toMatch(version);
      expect(meta.totalKey).toBeGreaterThan(5);
      expect(head!.size).toBe(r.storedSize);
      expect(r.storedSize).toBe(ciphertextSize(r.size));
      const back = await sha256OfObject(r.key);
      expect(back).toEqual({ sha256: r.storedSha256, size: r.storedSize });

      // Proven restorable: the off-site object fetched back, restored and served by a throwaway etcd
      // of the cluster's minor version on the worker, answering the snapshot's revision.
      expect(r.proof).toMatchObject({
        verdict: 'restorable',
        revision: r.revision,
        etcdVersion: expect.stringMatching(version),
      });
      expect((r.proof as { keys: number }).keys).toBeGreaterThan(5);
      expect(await gw.store().head(proofKeyOf(r.key))).toBeDefined();
      expect((await listed(cluster)).find((x) => x.key === r.key)).toMatchObject({ proof: { verdict: 'restorable' } });

      // The control-plane bundle next to it: complete, every file as on the node (read back and
      // decrypted as a rebuild reads it), and no key, nor a key's hash, in the run's history.
      const nodes = gw.cluster(cluster).nodes.map((n) => n.name);
      expect(r.bundle).toMatchObject({ complete: true, fromNode: r.node, items: requiredItems(nodes).length });
      const bundle = await gw.snapshots().readBundle(r.key);
      const onNode = await gw
        .shell(cluster, r.node)
        .exec('cd /etc/kubernetes/pki && sha256sum ca.key sa.key etcd/ca.key', { check: true });
      const nodeSums = Object.fromEntries(
        onNode.stdout
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/))
          .map(([sum, f]) => [`pki/${f}`, sum]),
      );
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      for (const [name, sum] of Object.entries(nodeSums)) expect(sha(bundle.files.get(name)!), name).toBe(sum);
      expect(bundle.files.get('kubeadm/ClusterConfiguration')!.toString()).toContain('kind: ClusterConfiguration');
      for (const n of nodes)
        expect(bundle.files.get(`kubelet/${n}/config.yaml`)!.toString()).toContain('KubeletConfiguration');
      const history = JSON.stringify(await handle.fetchHistory());
      expect(history).not.toContain('PRIVATE KEY');
      for (const sum of Object.values(nodeSums)) expect(history).not.toContain(sum);
      expect((await listed(cluster)).find((x) => x.key === r.key)?.bundle).toMatchObject({ complete: true });

      // A follower was chosen (spare the leader).
      const st = await gw.etcd(cluster, r.node).status();
      expect(st.leader).not.toBe(st.memberId);

      // The node-local file is removed.
      expect(await nodeFileExists(cluster, r.node, nodeFile(cluster, handle.firstExecutionRunId))).toBe(false);
      expect((await handle.query(statusQuery)).phase).toBe('completed');
      measured.push(
        `${cluster}: ${r.size} bytes, revision ${r.revision}, ${took} ms end to end; steps ${JSON.stringify(r.timings)}`,
      );
    },
  );

  it('the stored object is not a plain etcd snapshot (no bbolt magic, no plaintext Secret marker), yet it restores', async () => {
    const cluster = 'site-b';
    const marker = `SECRET-MARKER-${stamp}`;
    await putKeys(gw, cluster, { [`/drctl-test/snapshot/${stamp}/secret`]: marker });
    const { result: r } = await snapshot(cluster);

    // What is stored: drctl's format, none of the snapshot's bytes.
    const stored = await objectBytes(r.key);
    expect(stored.subarray(0, 16).toString('ascii')).toBe('drctl-snapshot/1');
    const BOLT = 0xed0cdaed; // a bbolt meta page's magic, at byte 16 of its first two pages
    expect(stored.readUInt32LE(16)).not.toBe(BOLT);
    expect(stored.readUInt32LE(4096 + 16)).not.toBe(BOLT);
    expect(stored.indexOf(marker)).toBe(-1);
    expect(stored.indexOf('/registry/secrets/')).toBe(-1);
    // ...while the same bytes decrypted are the etcd snapshot the node verified, marker and all.
    const plain: Buffer[] = [];
    for await (const c of (await gw.store().get(r.key)).pipe(gw.snapshots().keys.decryptStream()))
      plain.push(c as Buffer);
    const db = Buffer.concat(plain);
    expect(createHash('sha256').update(db).digest('hex')).toBe(r.sha256);
    expect(db.readUInt32LE(16)).toBe(BOLT);
    expect(db.indexOf(marker)).toBeGreaterThan(-1);
    expect(db.indexOf('/registry/secrets/')).toBeGreaterThan(-1);

    // It restores: the restore's own distribute step stages it on a node (decrypted, both hashes
    // and `snapshot status` checked), and the plan's own `etcdutl snapshot restore` turns it into a
    // data dir, written to the run's scratch dir (never the live one).
    const acts = createActivities(gw);
    const env = mockEnv();
    const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A) =>
      env.run(fn, ...args) as Promise<R>;
    const node = gw.cluster(cluster).nodes.find((n) => n.name !== r.node)!.name;
    const shape = await run(acts.describeCluster, cluster);
    const preflight = await run(acts.restorePreflightNode, { cluster, node });
    const ref = await run(acts.resolveSnapshot, { cluster, snapshot: r.key });
    const runId = randomUUID();
    const plan = planRestore({ shape, snapshot: ref, runId, preflight: [preflight] }).nodes.find(
      (n) => n.node === node,
    )!;
    expect(plan.workDir).toMatch(new RegExp(`/drctl-restore-${runTag(runId)}$`));
    const shell = gw.shell(cluster, node);
    try {
      const staged = await run(acts.stageSnapshot, { cluster, node, plan, snapshot: ref });
      expect(staged).toMatchObject({ sha256: r.sha256, revision: r.revision, skipped: false });
      const restored = await shell.exec(plan.restoreCommand, { timeoutMs: 5 * 60_000 });
      expect(restored.code, restored.stderr).toBe(0);
      const scratch = plan.scratchDir ?? `${plan.workDir}/restored`;
      const found = await shell.exec(`grep -c ${shq(marker)} ${shq(`${scratch}/member/snap/db`)}`, { check: true });
      expect(Number(found.stdout.trim())).toBeGreaterThan(0);
    } finally {
      await shell.exec(`rm -rf ${shq(plan.workDir)}`, { check: true });
    }
  });

  it('retention: keep=2 leaves the newest two; max age deletes the rest but never the newest; foreign objects are left alone', async () => {
    const cluster = 'site-b';
    const foreign = `${snapshotPrefix(prefix, cluster)}not-a-snapshot.db`;
    await gw.store().put(foreign, 'no metadata: not a verified snapshot');
    const results: EtcdSnapshotResult[] = [];
    for (let i = 0; i < 3; i++) {
      await writeKeys(cluster, 1); // a new revision each time, so each run has its own key
      results.push((await snapshot(cluster, { keep: 2 })).result);
    }
    const [r1, r2, r3] = results as [EtcdSnapshotResult, EtcdSnapshotResult, EtcdSnapshotResult];
    expect(new Set(results.map((r) => r.key)).size).toBe(3);
    expect(r3.pruned).toContain(r1.key);
    expect((await listed(cluster)).map((s) => s.key)).toEqual([r3.key, r2.key]);
    expect(await gw.store().head(r1.key)).toBeUndefined();
    expect(await gw.store().head(foreign)).toBeDefined();

    // maxAge = 1 ms: everything but the newest is too old, and the newest itself is older than
    // 1 ms by the time prune runs — it must survive anyway.
    await writeKeys(cluster, 1);
    const { result: r4 } = await snapshot(cluster, { keep: 10, maxAgeMs: 1 });
    expect(r4.pruned.sort()).toEqual([r2.key, r3.key].sort());
    expect((await listed(cluster)).map((s) => s.key)).toEqual([r4.key]);
    const objects = (await gw.store().list(snapshotPrefix(prefix, cluster))).map((o) => o.key).sort();
    // The newest, its manifest, its restore proof and its control-plane bundle; the pruned ones'
    // bundles went with them; the foreign object left alone.
    expect(objects).toEqual(
      [
        foreign,
        r4.key,
        manifestKeyOf(r4.key),
        proofKeyOf(r4.key),
        bundleKeyOf(r4.key),
        bundleManifestKeyOf(r4.key),
      ].sort(),
    );

    // The activity on its own: nothing left to prune, the newest stays.
    const env = mockEnv();
    expect(await env.run(createSnapshotActivities(gw).pruneSnapshots, { cluster, keep: 1, maxAgeMs: 1 })).toEqual([]);
  });
});

describe('every snapshot proven restorable', () => {
  it("a signed snapshot whose data does not restore is marked unrestorable, fails its proof, and is never 'latest'", async () => {
    const cluster = 'site-b';
    const { result: good } = await snapshot(cluster);
    expect(good.proof).toMatchObject({ verdict: 'restorable' });
    // What the lab saw twice: a newest snapshot, signed, whose bytes are not an etcd database (here:
    // 64 KiB of noise, encrypted and signed with the worker's own keys, as a bug before upload would).
    const snaps = gw.snapshots();
    const plain = randomBytes(64 * 1024);
    const chunks: Buffer[] = [];
    const enc = snaps.keys.encryptStream();
    enc.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve, reject) => {
      enc.on('end', resolve);
      enc.on('error', reject);
      enc.end(plain);
    });
    const stored = Buffer.concat(chunks);
    const takenAt = new Date(Date.parse(good.takenAt) + 1000);
    const key = snapshotKey(prefix, cluster, takenAt, good.revision + 1);
    await gw.store().put(key, stored);
    await snaps.commit({
      key,
      cluster,
      member: good.member,
      revision: good.revision + 1,
      etcdHash: good.etcdHash,
      totalKey: 10,
      totalSize: plain.length,
      sha256: createHash('sha256').update(plain).digest('hex'),
      size: plain.length,
      etcdVersion: good.etcdVersion,
      takenAt: takenAt.toISOString(),
      storedSha256: createHash('sha256').update(stored).digest('hex'),
      storedSize: stored.length,
      encryption: ENCRYPTION_FORMAT,
      encryptionKeyId: snaps.keys.encryptionKeyId,
    });
    const acts = createSnapshotActivities(gw);
    // Before its proof it is the newest signed one, and untested.
    const first = (await listed(cluster))[0]!;
    expect(first.key).toBe(key);
    expect(first.proof).toBeUndefined();
    const err = await mockEnv()
      .run(acts.proveSnapshot, { cluster, key })
      .then(
        () => undefined,
        (e: unknown) => e as { type?: string; message: string },
      );
    expect(err).toMatchObject({
      type: FailureType.SnapshotCorrupt,
      message: expect.stringMatching(/does not restore .*etcdutl snapshot restore/),
    });
    // Marked: listed as unrestorable, passed over for 'latest', refused by name.
    const after = await listed(cluster);
    expect(after[0]).toMatchObject({ key, proof: { verdict: 'unrestorable' } });
    const restore = createActivities(gw);
    const latest = (await mockEnv().run(restore.resolveSnapshot, { cluster, snapshot: 'latest' })) as SnapshotRef;
    expect(latest.key).toBe(good.key);
    await expect(mockEnv().run(restore.resolveSnapshot, { cluster, snapshot: key })).rejects.toMatchObject({
      type: FailureType.SnapshotCorrupt,
    });
    // Looking before it acts: a second proof of the same object reads the verdict, runs nothing.
    const t0 = Date.now();
    await expect(mockEnv().run(acts.proveSnapshot, { cluster, key })).rejects.toMatchObject({
      type: FailureType.SnapshotCorrupt,
    });
    expect(Date.now() - t0).toBeLessThan(2000);
    measured.push(`restore proof of ${cluster} (${good.size} bytes): ${JSON.stringify(good.timings)}`);
  });
});

describe('activities look before they act', () => {
  it('take reuses its own verified file and retakes a damaged one; upload skips an identical object and rejects bytes that changed', async () => {
    const cluster = 'site-b';
    const acts = createSnapshotActivities(gw);
    const env = mockEnv();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A) =>
      env.run(fn, ...args) as Promise<R>;

    const member = await run(acts.pickSnapshotMember, cluster);
    expect(member.leader).toBe(false);
    const { node } = member;
    const runId = `${stamp}-idem`;
    try {
      const first = await run(acts.takeSnapshot, { cluster, node, runId });
      expect(first).toMatchObject({ path: nodeFile(cluster, runId), reused: false });
      const again = await run(acts.takeSnapshot, { cluster, node, runId });
      expect(again).toMatchObject({ path: first.path, reused: true });
      expect(Math.abs(Date.parse(again.takenAt) - Date.parse(first.takenAt))).toBeLessThan(5_000);

      await gw.shell(cluster, node).exec(`truncate -s 65536 ${shq(first.path)}`, { check: true });
      const retaken = await run(acts.takeSnapshot, { cluster, node, runId });
      expect(retaken.reused).toBe(false);

      const verified = await run(acts.verifySnapshot, { cluster, node, path: retaken.path });
      const meta = { ...verified, takenAt: retaken.takenAt };
      const up1 = await run(acts.uploadSnapshot, { cluster, node, path: retaken.path, meta });
      expect(up1).toMatchObject({
        skipped: false,
        sha256: verified.sha256,
        key: snapshotKey(prefix, cluster, new Date(retaken.takenAt), verified.revision),
      });
      expect(
        beats.some(
          (b) =>
            (b as { phase?: string; bytes?: number }).phase === 'upload' &&
            (b as { bytes: number }).bytes === ciphertextSize(verified.size),
        ),
      ).toBe(true);
      const up2 = await run(acts.uploadSnapshot, { cluster, node, path: retaken.path, meta });
      expect(up2).toMatchObject({ skipped: true, key: up1.key });

      // Metadata claiming other bytes (the file changed after verify): the upload is refused and removed.
      const other = {
        ...meta,
        takenAt: new Date(Date.parse(meta.takenAt) + 7_000).toISOString(),
        sha256: 'f'.repeat(64),
      };
      const err = await run(acts.uploadSnapshot, { cluster, node, path: retaken.path, meta: other }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ type: FailureType.SnapshotCorrupt, nonRetryable: true });
      expect(
        await gw.store().head(snapshotKey(prefix, cluster, new Date(other.takenAt), other.revision)),
      ).toBeUndefined();
      expect(await sha256OfObject(up1.key)).toEqual({ sha256: up1.storedSha256, size: up1.storedSize });
    } finally {
      await run(acts.removeNodeSnapshot, { cluster, node, path: nodeFile(cluster, runId) });
    }
    expect(await nodeFileExists(cluster, node, nodeFile(cluster, runId))).toBe(false);
  });
});

describe('a snapshot that fails verification is never uploaded', () => {
  it('verifySnapshot (activity): a truncated copy and a copy with one flipped byte raise SnapshotCorrupt; the intact file verifies', async () => {
    const cluster = 'site-b';
    const node = 'cp2';
    const shell = gw.shell(cluster, node);
    const dir = config.snapshots.nodeDir;
    const good = `${dir}/test-snapshot-${stamp}-good.db`;
    const truncated = `${dir}/test-snapshot-${stamp}-truncated.db`;
    const flipped = `${dir}/test-snapshot-${stamp}-flipped.db`;
    const { verifySnapshot } = createSnapshotActivities(gw);
    const env = mockEnv();
    try {
      await new EtcdSnapshotTools(shell, gw.node(cluster, node)).save(good);
      await shell.exec(
        `head -c 65536 ${good} > ${truncated} && cp ${good} ${flipped} && printf '\\377\\377\\377\\377' | dd of=${flipped} bs=1 seek=20000 conv=notrunc 2>/dev/null`,
        { check: true },
      );
      const ok: VerifiedSnapshot = await env.run(verifySnapshot, { cluster, node, path: good });
      const sha = (await shell.exec(`sha256sum ${good}`, { check: true })).stdout.slice(0, 64);
      expect(ok).toMatchObject({ cluster, member: 'cp2', sha256: sha });
      expect(ok.revision).toBeGreaterThan(0);
      for (const path of [truncated, flipped]) {
        const err = await env.run(verifySnapshot, { cluster, node, path }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, path).toMatchObject({ type: FailureType.SnapshotCorrupt, nonRetryable: true });
      }
    } finally {
      await shell.exec(`rm -f ${good} ${truncated} ${flipped}`);
    }
  });

  it('the runbook: a file damaged between take and verify fails the run (no retry), uploads nothing, and the node file is still removed', async () => {
    const cluster = 'site-b';
    const before = (await gw.store().list(snapshotPrefix(prefix, cluster))).map((o) => o.key).sort();
    damageAfterTake = (path) => `truncate -s 65536 ${shq(path)}`;
    const handle = await client.workflow.start(etcdSnapshot, {
      taskQueue,
      workflowId: `test-snapshot-corrupt-${stamp}`,
      args: [{ cluster }],
    });
    const err = await handle
      .result()
      .then(
        () => undefined,
        (e: unknown) => e,
      )
      .finally(() => (damageAfterTake = undefined));
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.cause).toMatchObject({ type: FailureType.SnapshotCorrupt });
    const st = await handle.query(statusQuery);
    expect(st.phase).toBe('failed');
    expect(st.steps.find((x) => x.step === 'verify')?.state).toBe('failed');
    expect(st.steps.find((x) => x.step === 'cleanup')?.state).toBe('done');

    // History: which activities ran; the failed one ran once (a retry is recorded as a later attempt).
    const scheduled = new Map<string, string>();
    const failed: { name: string; attempt: number }[] = [];
    const attempts = new Map<string, number>();
    for (const e of (await handle.fetchHistory()).events ?? []) {
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (name) scheduled.set(String(e.eventId), name);
      const started = e.activityTaskStartedEventAttributes;
      if (started) attempts.set(String(started.scheduledEventId), started.attempt ?? 0);
      const f = e.activityTaskFailedEventAttributes;
      if (f)
        failed.push({
          name: scheduled.get(String(f.scheduledEventId)) ?? '?',
          attempt: attempts.get(String(f.scheduledEventId)) ?? 0,
        });
    }
    expect([...scheduled.values()]).toEqual([
      'pickSnapshotMember',
      'takeSnapshot',
      'verifySnapshot',
      'removeNodeSnapshot',
    ]);
    expect(failed).toEqual([{ name: 'verifySnapshot', attempt: 1 }]);

    expect((await gw.store().list(snapshotPrefix(prefix, cluster))).map((o) => o.key).sort()).toEqual(before);
    for (const n of gw.cluster(cluster).nodes)
      expect(await nodeFileExists(cluster, n.name, nodeFile(cluster, handle.firstExecutionRunId))).toBe(false);
  });
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real CLI in a child process (async: the in-process worker must keep polling meanwhile). */
function cli(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/drctl.js', '--config', cliConfig, ...args],
      { encoding: 'utf8', timeout: 90_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('drctl snapshot (CLI)', () => {
  it('now --wait --json runs the runbook through the worker and prints its run, status and result (key, revision, hash, sha256, size, takenAt)', async () => {
    const r = await cli('snapshot', 'now', '--cluster', 'site-b', '--wait', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Every start command's --json shape; with --wait also the final status and the result.
    const started = JSON.parse(r.stdout) as {
      workflowId: string;
      runbook: string;
      status: { phase: string };
      result: {
        key: string;
        revision: number;
        etcdHash: number;
        sha256: string;
        size: number;
        storedSha256: string;
        storedSize: number;
        takenAt: string;
      };
    };
    expect(started).toMatchObject({ runbook: 'etcd-snapshot', status: { phase: 'completed' } });
    const out = started.result;
    expect(out.key.startsWith(snapshotPrefix(prefix, 'site-b'))).toBe(true);
    expect(out.revision).toBeGreaterThan(0);
    expect(out.etcdHash).toEqual(expect.any(Number));
    expect(out.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(out.takenAt)).toBeGreaterThan(Date.now() - 120_000);
    expect(await sha256OfObject(out.key)).toEqual({ sha256: out.storedSha256, size: out.storedSize });
  });

  it('now without --wait prints the workflow id; list shows snapshots newest first against the strictest RPO above zero', async () => {
    const started = await cli('snapshot', 'now', '--cluster', 'site-b', '--json');
    expect(started.code).toBe(0);
    const { workflowId } = JSON.parse(started.stdout) as { workflowId: string };
    expect(workflowId).toMatch(/^etcd-snapshot-site-b-/);
    const r = await client.workflow.getHandle<typeof etcdSnapshot>(workflowId).result();

    // An object planted under the cluster's prefix, named and dated as the newest snapshot.
    const planted = snapshotKey(prefix, 'site-b', new Date(Date.now() + 3_600_000), r.revision + 1);
    await gw.store().put(planted, 'not signed by drctl', { sha256: r.sha256, 'taken-at': new Date().toISOString() });
    const l = await cli('snapshot', 'list', '--cluster', 'site-b', '--json');
    expect(l.code).toBe(0);
    const list = JSON.parse(l.stdout) as {
      rpo: { tier: string; targetMs: number; newestAgeMs: number; over: boolean };
      snapshots: SnapshotRef[];
      ignored: { key: string; why: string }[];
    };
    expect(list.snapshots[0]!.key).toBe(r.key);
    expect(list.snapshots.map((x) => x.key)).not.toContain(planted);
    expect(list.ignored).toContainEqual({ key: planted, why: 'unsigned: no drctl manifest next to it' });
    const times = list.snapshots.map((s) => Date.parse(s.takenAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(list.rpo).toMatchObject({ tier: 'e-commerce', targetMs: 5 * 60_000, over: false });
    expect(list.rpo.newestAgeMs).toBeLessThan(5 * 60_000);

    // RPO 0 (payment) cannot be met by periodic snapshots: always flagged.
    const strict = JSON.parse(
      (await cli('snapshot', 'list', '--cluster', 'site-b', '--tier', 'payment', '--json')).stdout,
    ) as typeof list;
    expect(strict.rpo).toMatchObject({ tier: 'payment', targetMs: 0, over: true });
    const human = await cli('snapshot', 'list', '--cluster', 'site-b', '--tier', 'internal');
    expect(human.stdout).toContain(`within the internal RPO of ${formatDuration(3_600_000)}`);
    expect(human.stdout).toContain(r.key);
    expect(human.stdout).toMatch(/! \d+ object\(s\) ignored \(not signed by this worker's key\):/);
    expect(human.stdout).toContain(`  ${planted}: unsigned: no drctl manifest next to it`);
    await gw.store().delete(planted);
  });

  it('schedule: create (overlap SKIP, interval, 1 min catch-up) → describe → pause → unpause → update to cron → delete', async () => {
    const created = await cli('snapshot', 'schedule', '--cluster', alias, '--every', '24h', '--json');
    expect(created.stderr).toBe('');
    expect(JSON.parse(created.stdout)).toMatchObject({
      result: 'created',
      scheduleId: `etcd-snapshot-${alias}`,
      overlap: 'SKIP',
      intervalsMs: [86_400_000],
      catchupWindowMs: 60_000,
      paused: false,
      workflowType: 'etcdSnapshot',
      taskQueue,
      args: [{ cluster: alias }],
    });
    const describe = async () =>
      JSON.parse((await cli('snapshot', 'describe', '--cluster', alias, '--json')).stdout) as {
        paused: boolean;
        note?: string;
        schedule: string;
        intervalsMs: number[];
        overlap: string;
        args: unknown;
      };
    expect(await describe()).toMatchObject({ paused: false, overlap: 'SKIP', schedule: 'every 24h' });

    expect((await cli('snapshot', 'pause', '--cluster', alias, '--note', 'maintenance window')).code).toBe(0);
    expect(await describe()).toMatchObject({ paused: true, note: 'maintenance window' });
    expect((await cli('snapshot', 'unpause', '--cluster', alias)).code).toBe(0);
    expect((await describe()).paused).toBe(false);

    const updated = await cli(
      'snapshot',
      'schedule',
      '--cluster',
      alias,
      '--cron',
      '*/30 * * * *',
      '--keep',
      '5',
      '--json',
    );
    expect(JSON.parse(updated.stdout)).toMatchObject({
      result: 'updated',
      schedule: "cron '*/30 * * * *'",
      intervalsMs: [],
      overlap: 'SKIP',
      args: [{ cluster: alias, keep: 5 }],
    });
    const text = await cli('snapshot', 'describe', '--cluster', alias);
    expect(text.stdout).toContain("cron '*/30 * * * *'");
    expect(text.stdout).toContain('overlap SKIP');

    expect((await cli('snapshot', 'delete', '--cluster', alias)).code).toBe(0);
    const gone = await cli('snapshot', 'describe', '--cluster', alias);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`no snapshot schedule for cluster '${alias}'`);
  });

  it.each([
    [['schedule', '--cluster', alias, '--every', '15m', '--cron', '*/15 * * * *'], '--every and --cron'],
    [['schedule', '--cluster', alias, '--every', '15x'], '--every'],
    [['schedule', '--cluster', alias, '--every', '10s'], '--every'],
    [['schedule', '--cluster', alias, '--cron', 'whenever'], '--cron'],
    [['schedule', '--cluster', alias, '--cron', '99 * * * *'], '--cron'],
    [['now', '--cluster', 'site-z'], "unknown cluster 'site-z'"],
    [['now', '--cluster', 'site-b', '--keep', '0'], '--keep'],
    [['list', '--cluster', 'site-b', '--tier', 'gold'], '--tier'],
  ])('bad input exits 2 with one line naming it: %j', async (args, names) => {
    const r = await cli('snapshot', ...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(names);
    // Nothing was created by a rejected command.
    expect(
      await client.schedule
        .getHandle(`etcd-snapshot-${alias}`)
        .describe()
        .then(
          () => 'exists',
          () => 'absent',
        ),
    ).toBe('absent');
  });

  it('a missing required flag exits 2', async () => {
    const r = await cli('snapshot', 'now');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--cluster <name>'");
  });
});
