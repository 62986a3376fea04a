// etcd snapshot activities: pick a member, `snapshot save` on its node, verify it there, stream it
// off-site (encrypted on the worker, then signed: gateways/snapshot-store.ts), prune. Every one looks before it acts, so a retry (or a new worker after a crash)
// reuses what an earlier attempt finished instead of doing it twice.
import { createHash } from 'node:crypto';
import { pipeline, type Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { FailureType, failure, rootMessage } from '../common/errors.ts';
import { log } from '../common/log.ts';
import {
  ENCRYPTION_FORMAT,
  manifestKeyOf,
  type SnapshotListing,
  type SnapshotMeta,
  snapshotKey,
  retentionProblem,
  type SnapshotRef,
} from '../common/snapshots.ts';
import {
  BUNDLE_FORMAT,
  BUNDLE_KUBELET,
  BUNDLE_PKI,
  type BundleContent,
  type BundleItem,
  bundleSummaryOf,
  type BundleSummary,
  CLUSTER_CONFIGURATION,
  KUBEADM_PATHS,
  requiredItems,
} from '../common/cp-bundle.ts';
import { minorOf, pickLatest, type ProofSummary, summaryOf } from '../common/snapshot-proof.ts';
import { EtcdSnapshotTools } from '../gateways/etcd.ts';
import type { Gateways } from '../gateways/index.ts';
import { serveFromScratch, type ScratchAnswer, Unrestorable } from '../gateways/scratch-etcd.ts';
import { ciphertextSize } from '../gateways/snapshot-crypto.ts';
import { checkRoot, type RemoteShell, shq } from '../gateways/ssh.ts';
import { activitySignal, heartbeat, heartbeating, meter } from './support.ts';

interface NodeRef {
  cluster: string;
  node: string;
}

/** What `snapshot status` and the file itself say; takenAt comes from takeSnapshot. */
export type VerifiedSnapshot = Omit<SnapshotMeta, 'takenAt'>;

export interface SnapshotMember {
  node: string;
  member: string;
  leader: boolean;
  revision: number;
}

const sameSnapshot = (a: SnapshotMeta, b: SnapshotMeta) =>
  a.cluster === b.cluster &&
  a.sha256 === b.sha256 &&
  a.size === b.size &&
  a.revision === b.revision &&
  a.etcdHash === b.etcdHash;

export function createSnapshotActivities(gw: Gateways) {
  /**
   * The cluster's snapshots: only those drctl signed (gateways/snapshot-store.ts), newest first.
   * Every other object under its prefix is reported, in the listing and the worker's log.
   */
  async function signedSnapshots(cluster: string): Promise<SnapshotListing> {
    const listing = await gw.snapshots().list(cluster);
    for (const i of listing.ignored) log.warn({ cluster, key: i.key, why: i.why }, 'not a signed snapshot: ignored');
    return listing;
  }

  /**
   * `snapshot save` appends the sha256 of the db to the file (size % 512 == 32), and restore checks
   * it; `snapshot status` does not (measured: a flipped byte in a free page passes status on 3.5
   * and 3.6). Checking it here keeps a file that restore would refuse from ever being uploaded.
   */
  async function checkIntegrityHash(input: NodeRef & { path: string }, size: number) {
    const where = `${input.cluster}/${input.node}: ${input.path}`;
    if (size % 512 !== 32)
      throw failure(
        FailureType.SnapshotCorrupt,
        `${where}: ${size} bytes, no integrity hash appended (not written by \`snapshot save\`, or truncated)`,
      );
    const p = shq(input.path);
    const r = await gw
      .shell(input.cluster, input.node)
      .exec(`head -c ${size - 32} ${p} | sha256sum | cut -c1-64 && tail -c 32 ${p} | od -An -v -tx1 | tr -d ' \\n'`, {
        timeoutMs: 10 * 60_000,
        check: true,
      });
    const [computed = '', appended = ''] = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim());
    if (!/^[0-9a-f]{64}$/.test(computed) || computed !== appended) {
      throw failure(
        FailureType.SnapshotCorrupt,
        `${where}: integrity hash mismatch: the db hashes to ${computed}, the appended hash is ${appended}`,
      );
    }
  }

  async function verify(input: NodeRef & { path: string }): Promise<VerifiedSnapshot> {
    const tools = new EtcdSnapshotTools(gw.shell(input.cluster, input.node), gw.node(input.cluster, input.node));
    const st = await tools.status(input.path);
    const { etcdVersion } = await tools.restoreTool();
    if (!(st.size > 0) || !(st.revision > 0)) {
      throw failure(
        FailureType.SnapshotCorrupt,
        `${input.cluster}/${input.node}: ${input.path} is not a usable snapshot (size ${st.size}, revision ${st.revision})`,
      );
    }
    await checkIntegrityHash(input, st.size);
    return {
      cluster: input.cluster,
      member: gw.node(input.cluster, input.node).etcd.memberName,
      revision: st.revision,
      etcdHash: st.hash,
      totalKey: st.totalKey,
      totalSize: st.totalSize,
      sha256: st.sha256,
      size: st.size,
      etcdVersion,
    };
  }

  /**
   * The files at `paths` on a node (only those that are there: a missing one is named in `missing`),
   * each with its mode. Contents are read over their own channel (`cat`), never through a command's
   * output: a failing command's message quotes its output, and these are private keys.
   */
  async function readFiles(
    shell: RemoteShell,
    paths: string[],
  ): Promise<{ files: { path: string; mode: string; data: Buffer }[]; missing: { path: string; why: string }[] }> {
    const r = await shell.exec(
      paths.map((p) => `if [ -f ${shq(p)} ]; then stat -c '%a' ${shq(p)}; else echo missing; fi`).join('; '),
      { timeoutMs: 60_000, check: true },
    );
    const modes = r.stdout.trim().split('\n');
    const files: { path: string; mode: string; data: Buffer }[] = [];
    const missing: { path: string; why: string }[] = [];
    for (const [i, path] of paths.entries()) {
      const mode = modes[i]?.trim() ?? 'missing';
      if (!/^[0-7]{3,4}$/.test(mode)) missing.push({ path, why: `no such file on ${shell.target.label}` });
      else files.push({ path, mode, data: await buffer(await shell.readStream(path)) });
    }
    return { files, missing };
  }

  return {
    /**
     * The control-plane bundle of snapshot `key` (common/cp-bundle.ts): the CAs and the
     * service-account key pair and the kubeadm ClusterConfiguration read on `node` (the snapshot's
     * node), every node's kubelet config, encrypted on the worker and stored next to the snapshot
     * with its signed manifest. Looks first: a verified bundle already there for this snapshot is
     * returned as it is. A file or node that cannot be read is recorded as missing (the bundle is
     * then incomplete, and `snapshot list` says it is not enough for a rebuild). Returns only the
     * summary: no content or hash of a key enters the workflow's history.
     */
    async storeControlPlaneBundle(input: NodeRef & { key: string }): Promise<BundleSummary> {
      const snaps = gw.snapshots();
      const before = await snaps.readBundleManifest(input.key).catch(() => undefined);
      if (before && !('problem' in before)) return bundleSummaryOf(before);
      const nodes = gw.cluster(input.cluster).nodes.map((n) => n.name);
      const pkiDir = KUBEADM_PATHS.pki;
      const files: BundleContent['files'] = [];
      const items: BundleItem[] = [];
      const missing: { name: string; why: string }[] = [];
      const add = (name: string, node: string, source: string, mode: string, data: Buffer) => {
        files.push({ name, node, source, mode, data: data.toString('base64') });
        items.push({
          name,
          node,
          source,
          mode,
          sha256: createHash('sha256').update(data).digest('hex'),
          size: data.length,
        });
      };

      const shell = gw.shell(input.cluster, input.node);
      const pki = await readFiles(
        shell,
        BUNDLE_PKI.map((f) => `${pkiDir}/${f}`),
      );
      for (const f of pki.files) add(`pki/${f.path.slice(pkiDir.length + 1)}`, input.node, f.path, f.mode, f.data);
      for (const m of pki.missing) missing.push({ name: `pki/${m.path.slice(pkiDir.length + 1)}`, why: m.why });

      const cc = await shell.exec(
        `kubectl --kubeconfig=${shq(KUBEADM_PATHS.adminKubeconfig)} -n kube-system get configmap kubeadm-config -o 'jsonpath={.data.ClusterConfiguration}'`,
        { timeoutMs: 60_000 },
      );
      if (cc.code === 0 && cc.stdout.includes('kind: ClusterConfiguration'))
        add(CLUSTER_CONFIGURATION, input.node, 'configmap kube-system/kubeadm-config', '644', Buffer.from(cc.stdout));
      else
        missing.push({
          name: CLUSTER_CONFIGURATION,
          why: `kube-system/kubeadm-config not read on ${input.node}: ${(cc.stderr || cc.stdout || `exit ${cc.code}`).trim().slice(-300)}`,
        });

      const kubeletDir = KUBEADM_PATHS.kubelet;
      await Promise.all(
        nodes.map(async (n) => {
          try {
            const k = await readFiles(
              gw.shell(input.cluster, n),
              BUNDLE_KUBELET.map((f) => `${kubeletDir}/${f}`),
            );
            for (const f of k.files)
              add(`kubelet/${n}/${f.path.slice(kubeletDir.length + 1)}`, n, f.path, f.mode, f.data);
            for (const m of k.missing)
              missing.push({ name: `kubelet/${n}/${m.path.slice(kubeletDir.length + 1)}`, why: m.why });
          } catch (err) {
            for (const f of BUNDLE_KUBELET) missing.push({ name: `kubelet/${n}/${f}`, why: rootMessage(err) });
          }
        }),
      );
      const order = requiredItems(nodes);
      const rank = (name: string) => (order.indexOf(name) + order.length + 1) % (order.length + 1);
      items.sort((a, b) => rank(a.name) - rank(b.name));
      missing.sort((a, b) => rank(a.name) - rank(b.name));
      const manifest = await snaps.writeBundle(
        { format: BUNDLE_FORMAT, key: input.key, files },
        {
          key: input.key,
          cluster: input.cluster,
          fromNode: input.node,
          nodes,
          takenAt: new Date().toISOString(),
          items,
          missing,
        },
      );
      return bundleSummaryOf(manifest);
    },

    /** A healthy member, a follower if there is one: `snapshot save` streams the whole db, so spare the leader. */
    async pickSnapshotMember(cluster: string): Promise<SnapshotMember> {
      const nodes = gw.cluster(cluster).nodes;
      // A wrong host key or a missing privilege is a config fix: named on its own if nothing else can go.
      const privilege: unknown[] = [];
      const seen = await Promise.all(
        nodes.map(async (n) => {
          try {
            await checkRoot(gw.shell(cluster, n.name));
            const etcd = gw.etcd(cluster, n.name);
            if (!(await etcd.health()).health) return { node: n.name, problem: 'unhealthy' };
            const st = await etcd.status();
            return {
              node: n.name,
              member: n.etcd.memberName,
              leader: st.leader === st.memberId,
              revision: st.revision,
            };
          } catch (err) {
            const type = (err as { type?: string }).type;
            if (type === FailureType.HostKeyMismatch || type === FailureType.MissingPrivilege) privilege.push(err);
            return { node: n.name, problem: (err as Error).message };
          }
        }),
      );
      const healthy = seen.filter((s): s is SnapshotMember => 'member' in s);
      // Among followers, the most caught-up one; config order breaks ties so the choice is stable.
      const pick = [...healthy].sort((a, b) => Number(a.leader) - Number(b.leader) || b.revision - a.revision)[0];
      if (!pick && privilege.length) throw privilege[0];
      if (!pick) {
        throw failure(
          FailureType.EtcdUnhealthy,
          `${cluster}: no healthy etcd member to snapshot (${seen.map((s) => `${s.node}: ${'problem' in s ? s.problem : 'ok'}`).join('; ')})`,
        );
      }
      return pick;
    },

    /**
     * `snapshot save` into `<nodeDir>/<cluster>-<runId>.db` on the node. A file left by an earlier
     * attempt of the same run is reused if it verifies, else deleted and taken again.
     */
    async takeSnapshot(
      input: NodeRef & { runId: string },
    ): Promise<{ path: string; takenAt: string; reused: boolean }> {
      const shell = gw.shell(input.cluster, input.node);
      const node = gw.node(input.cluster, input.node);
      const tools = new EtcdSnapshotTools(shell, node);
      const path = `${gw.config.snapshots.nodeDir}/${input.cluster}-${input.runId}.db`;
      if ((await shell.exec(`test -f ${shq(path)}`)).code === 0) {
        try {
          await heartbeating('verify earlier attempt', verify({ ...input, path }));
          // The earlier attempt's save finished when the file was last written.
          const mtime = await shell.exec(`stat -c %.3Y ${shq(path)}`, { check: true });
          return {
            path,
            takenAt: new Date(Math.round(Number(mtime.stdout.trim()) * 1000)).toISOString(),
            reused: true,
          };
        } catch (err) {
          if ((err as { type?: string }).type !== FailureType.SnapshotCorrupt) throw err;
          await shell.exec(`rm -f ${shq(path)}`, { check: true });
        }
      }
      // A linearizable read on this member first: it returns only once the member has applied
      // everything committed so far, so a follower's snapshot is not behind writes that preceded us.
      await gw.etcd(input.cluster, input.node).barrier();
      const takenAt = new Date().toISOString();
      try {
        await heartbeating('snapshot save', tools.save(path));
      } catch (err) {
        // etcdctl writes <path>.part and renames on success; leave nothing half-written behind.
        await shell.exec(`rm -f ${shq(path)} ${shq(`${path}.part`)}`).catch(() => undefined);
        throw err;
      }
      return { path, takenAt, reused: false };
    },

    /** `snapshot status` and sha256 on the node; a snapshot that fails this is never uploaded (SnapshotCorrupt). */
    async verifySnapshot(input: NodeRef & { path: string }): Promise<VerifiedSnapshot> {
      return heartbeating('snapshot status', verify(input));
    },

    /**
     * Streams the node's file (`cat` over an SSH exec channel) through the worker into the bucket
     * (multipart): hashed as read (the sha256 verified on the node), encrypted with the worker's
     * key (gateways/snapshot-crypto.ts: 64 KiB chunks, never the whole file), hashed again as
     * stored; no copy in memory or on the worker's disk, and no plaintext leaves the worker. Then
     * the signed manifest is written: from then on it is a snapshot. Bytes that are not the
     * verified ones: SnapshotCorrupt, the object deleted. Skips a snapshot already committed for
     * exactly this verified file.
     */
    async uploadSnapshot(
      input: NodeRef & { path: string; meta: SnapshotMeta },
    ): Promise<SnapshotRef & { skipped: boolean }> {
      const { meta } = input;
      const snaps = gw.snapshots();
      const store = snaps.bucket;
      const key = snapshotKey(gw.config.objectStore.prefix, input.cluster, new Date(meta.takenAt), meta.revision);
      const label = `${input.cluster}/${input.node}`;

      // The manifest is written only once the upload was checked: a valid one is a finished upload.
      const existing = await snaps.readManifest(key).catch(() => undefined);
      if (existing && !('problem' in existing) && sameSnapshot(existing, meta)) {
        const data = await store.head(key);
        if (!snaps.problemOf(existing, input.cluster, key, data?.size)) return { ...existing, skipped: true };
      }
      // Whatever is there is not a finished upload of this file: un-commit it before overwriting.
      await store.delete(manifestKeyOf(key));

      const source = await gw.shell(input.cluster, input.node).readStream(input.path);
      const plain = meter((bytes) => heartbeat({ phase: 'read', bytes, of: meta.size }));
      const stored = meter(() => undefined, 60_000);
      // pipeline() forwards a read error (the remote `cat` failing) or an encryption error into the
      // body: the upload fails.
      pipeline(source, plain.stream, snaps.keys.encryptStream(), stored.stream, () => undefined);
      const onCancel = () => stored.stream.destroy(new Error('activity cancelled'));
      const signal = activitySignal();
      signal?.addEventListener('abort', onCancel, { once: true });
      try {
        await store.put(key, stored.stream, { 'drctl-encryption': ENCRYPTION_FORMAT }, (loaded) =>
          heartbeat({ phase: 'upload', bytes: loaded, of: ciphertextSize(meta.size) }),
        );
      } finally {
        signal?.removeEventListener('abort', onCancel);
        source.destroy();
      }

      const streamed = plain.digest();
      if (streamed !== meta.sha256 || plain.bytes() !== meta.size) {
        await store.delete(key);
        throw failure(
          FailureType.SnapshotCorrupt,
          `${label}: ${input.path} streamed ${plain.bytes()} bytes hashing to ${streamed}, but verified as ${meta.size} bytes ${meta.sha256}: changed after verification; object deleted`,
        );
      }
      const head = await store.head(key);
      if (!head || head.size !== stored.bytes()) {
        if (head) await store.delete(key);
        throw failure(
          FailureType.ObjectStoreError,
          `s3://${store.bucket}/${key}: after upload the object is ${head ? `${head.size} bytes` : 'missing'}; ${stored.bytes()} bytes were sent`,
        );
      }
      const ref = await snaps.commit({
        ...meta,
        key,
        storedSha256: stored.digest(),
        storedSize: stored.bytes(),
        encryption: ENCRYPTION_FORMAT,
        encryptionKeyId: snaps.keys.encryptionKeyId,
      });
      return { ...ref, skipped: false };
    },

    /**
     * Keeps the newest `keep` verified snapshots and deletes the rest, plus any older than
     * `maxAgeMs` (object and manifest); the newest one is never deleted. Objects drctl did not sign
     * are left alone.
     */
    async pruneSnapshots(input: { cluster: string; keep?: number; maxAgeMs?: number }): Promise<string[]> {
      const keep = input.keep ?? gw.config.snapshots.keep;
      const maxAgeMs = input.maxAgeMs ?? gw.config.snapshots.maxAge;
      // Refused before the bucket is read: nothing is deleted, and no retry can make it right.
      const bad = retentionProblem({ keep, maxAgeMs });
      if (bad) throw failure(FailureType.PreflightFailed, bad);
      const { snapshots } = await signedSnapshots(input.cluster);
      const now = Date.now();
      // Never the newest snapshot, nor the newest proven restorable ('latest' for a restore).
      const latest = pickLatest(snapshots).pick?.key;
      const doomed = snapshots.filter(
        (r, i) =>
          i > 0 &&
          r.key !== latest &&
          (i >= keep || (maxAgeMs !== undefined && now - Date.parse(r.takenAt) > maxAgeMs)),
      );
      for (const r of doomed) {
        await gw.snapshots().remove(r.key);
        heartbeat({ deleted: r.key });
      }
      return doomed.map((r) => r.key);
    },

    /** Idempotent: a file that is already gone is fine. */
    async removeNodeSnapshot(input: NodeRef & { path: string }): Promise<void> {
      await gw
        .shell(input.cluster, input.node)
        .exec(`rm -f ${shq(input.path)} ${shq(`${input.path}.part`)}`, { timeoutMs: 60_000, check: true });
    },

    /**
     * Proves the off-site snapshot `key` restorable (common/snapshot-proof.ts): fetched back, its
     * stored bytes' sha256 checked, decrypted, restored with etcdutl of the cluster's etcd minor
     * version (`snapshots.prove.etcd`) and served by a throwaway etcd on the worker, which must
     * answer the signed revision and hold Kubernetes' kube-system namespace. The verdict is written
     * next to the snapshot, signed. Looks first: a proof already there is returned as it is. A
     * snapshot that does not restore is marked unrestorable (never 'latest' again) and fails the
     * activity (SnapshotCorrupt); a worker-side problem (no binary, a full disk) marks nothing.
     */
    async proveSnapshot(input: { cluster: string; key: string }): Promise<ProofSummary | { untested: string }> {
      const prove = gw.config.snapshots.prove;
      if (!prove) return { untested: "snapshots.prove is not configured in the worker's config" };
      const snaps = gw.snapshots();
      const ref = await snaps.resolve(input.cluster, input.key);
      const before = await snaps.readProof(ref);
      const refuse = (p: ProofSummary) =>
        failure(
          FailureType.SnapshotCorrupt,
          `${ref.key} does not restore (proven ${p.provedAt} with etcd ${p.etcdVersion}): ${p.detail}; marked unrestorable, never offered as 'latest'`,
          p,
          true,
        );
      if (before && !('problem' in before)) {
        if (before.verdict === 'unrestorable') throw refuse(summaryOf(before));
        return summaryOf(before);
      }
      const minor = minorOf(ref.etcdVersion);
      const binDir = prove.etcd[minor];
      if (!binDir)
        throw failure(
          FailureType.PreflightFailed,
          `snapshots.prove.etcd has no binaries for etcd ${minor} (the snapshot's version ${ref.etcdVersion}); it has ${Object.keys(prove.etcd).join(', ') || 'none'}`,
        );
      const started = Date.now();
      const stored = meter((bytes) => heartbeat({ bytes }));
      let answer: ScratchAnswer | undefined;
      let problem: string | undefined;
      try {
        const plain = snaps.keys.decryptStream(ref.key);
        const fetching = pipeline(await snaps.bucket.get(ref.key), stored.stream, plain, () => undefined);
        answer = await serveFromScratch({
          plain: fetching as unknown as Readable,
          expect: { sha256: ref.sha256, size: ref.size },
          binDir,
          scratchDir: prove.scratchDir,
          timeoutMs: prove.timeout,
          onProgress: (step) => heartbeat({ step }),
        });
        const storedSha256 = stored.digest();
        if (storedSha256 !== ref.storedSha256)
          problem = `the stored object hashes to ${storedSha256}, not the signed ${ref.storedSha256}`;
        else if (answer.revision !== ref.revision)
          problem = `the restored etcd answers revision ${answer.revision}, not the snapshot's ${ref.revision}`;
        else if (!answer.kubernetes)
          problem = `the restored etcd (revision ${answer.revision}, ${answer.keys} keys) has no /registry/namespaces/kube-system: not a Kubernetes cluster's data`;
      } catch (err) {
        const type = (err as { type?: string }).type;
        if (!(err instanceof Unrestorable) && type !== FailureType.SnapshotCorrupt) throw err;
        problem = (err as Error).message;
      }
      const proof = await snaps.writeProof({
        key: ref.key,
        storedSha256: ref.storedSha256,
        verdict: problem ? 'unrestorable' : 'restorable',
        revision: answer?.revision ?? 0,
        keys: answer?.keys ?? 0,
        etcdVersion: answer?.etcdVersion ?? minor,
        provedAt: new Date().toISOString(),
        seconds: Math.round((Date.now() - started) / 100) / 10,
        detail:
          problem ?? `restored and served: revision ${answer!.revision}, ${answer!.keys} keys, kube-system present`,
      });
      if (problem) throw refuse(summaryOf(proof));
      return summaryOf(proof);
    },

    /**
     * The cluster's signed snapshots, newest first (the restore runbook's 'latest' is the first),
     * and every other object under its prefix with why it is not one.
     */
    async listSnapshots(cluster: string): Promise<SnapshotListing> {
      gw.cluster(cluster);
      return signedSnapshots(cluster);
    },
  };
}
