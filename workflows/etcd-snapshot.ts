// Runbook: etcd snapshot, off-site.
//   1 pick a healthy member (a follower: spare the leader)  2 take: `snapshot save` on its node
//   3 verify: `snapshot status` + sha256 there  4 upload: stream it to the bucket, hash checked,
//     encrypted on the worker, then its signed manifest (only signed snapshots are restore sources)
//   5 remove the node-local file — always, even when 3 or 4 failed or the run was cancelled
//   bundle: the control-plane bundle next to it (the CAs, the service-account keys, the kubeadm
//     ClusterConfiguration, each node's kubelet config: common/cp-bundle.ts), what a rebuild on new
//     hardware needs besides etcd's data; encrypted on the worker, never in this history
//   6 prove: the off-site copy restored and served by a throwaway etcd (else marked unrestorable)
//   7 prune: keep the newest N (and none older than max age; never the newest, nor the newest proven).
// A snapshot that fails verification is never uploaded, so it can never be a restore source.
import type { RunbookStatus } from '../common/runbook.ts';
import { CancellationScope, log, patched, workflowInfo, defineQuery } from '@temporalio/workflow';
import { FailureType, rootMessage } from '../common/errors.ts';
import type { BundleSummary } from '../common/cp-bundle.ts';
import type { ProofSummary } from '../common/snapshot-proof.ts';
import { retentionProblem, type SnapshotListing, type SnapshotRef } from '../common/snapshots.ts';
import { quick, long } from './activity-options.ts';
import { refuse, Runbook } from './runbook.ts';

/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<RunbookStatus>('status');

export interface EtcdSnapshotInput {
  cluster: string;
  /** Keep the newest N verified snapshots (default: the worker's `snapshots.keep`). */
  keep?: number;
  /** Also delete snapshots older than this (default: the worker's `snapshots.maxAge`). */
  maxAgeMs?: number;
}

export interface EtcdSnapshotResult {
  cluster: string;
  key: string;
  member: string;
  node: string;
  revision: number;
  etcdHash: number;
  /** sha256 and size of the etcd snapshot file (as verified on the node; what a restore stages). */
  sha256: string;
  size: number;
  /** sha256 and size of the object as stored (encrypted). */
  storedSha256: string;
  storedSize: number;
  encryption: string;
  etcdVersion: string;
  takenAt: string;
  /** Keys deleted by retention. */
  pruned: string[];
  /** Proven restorable (common/snapshot-proof.ts), or why it stays untested. */
  proof?: ProofSummary | { untested: string };
  /** The control-plane bundle stored with it (what a rebuild needs besides etcd's data). */
  bundle?: BundleSummary;
  /**
   * The bundle could not be stored: the snapshot still counts for a restore, not for a rebuild
   * (`snapshot list` says so).
   */
  bundleError?: string;
  /** Retention is housekeeping: if it fails, the snapshot still counts and the error is reported here. */
  pruneError?: string;
  /** The node-local file could not be removed (the snapshot itself is off-site). */
  cleanupError?: string;
  /** Milliseconds per step. */
  timings: Record<string, number>;
}

export const SNAPSHOT_STEPS = ['pick', 'take', 'verify', 'upload', 'cleanup', 'bundle', 'prove', 'prune'] as const;

export async function etcdSnapshot(input: EtcdSnapshotInput): Promise<EtcdSnapshotResult> {
  const { cluster } = input;
  const rb = new Runbook(
    { runbook: 'etcd-snapshot', title: `etcd snapshot of ${cluster}`, steps: SNAPSHOT_STEPS, cluster },
    {},
  );
  const { run } = rb;

  return rb.execute(
    async () => {
      const badRetention = retentionProblem(input);
      if (badRetention) throw refuse(FailureType.PreflightFailed, badRetention);
      // 1. Pick.
      const { node, member } = await run('pick', () => quick.pickSnapshotMember(cluster));
      log.info('snapshot member picked', { cluster, node, member });

      // 2. Take. The file name carries this run's id, so a retried take finds its own earlier file.
      const taken = await run('take', () => long.takeSnapshot({ cluster, node, runId: workflowInfo().runId }));
      let ref: SnapshotRef;
      let cleanupError: string | undefined;
      try {
        // 3. Verify on the node.
        const verified = await run('verify', () => long.verifySnapshot({ cluster, node, path: taken.path }));
        // 4. Upload.
        ref = await run('upload', () =>
          long.uploadSnapshot({ cluster, node, path: taken.path, meta: { ...verified, takenAt: taken.takenAt } }),
        );
      } finally {
        // 5. The node-local copy goes whatever happened (also when this run is cancelled). Failing to
        // remove it must neither hide why the run failed nor fail a snapshot that is safely off-site.
        try {
          await run('cleanup', () =>
            CancellationScope.nonCancellable(() => quick.removeNodeSnapshot({ cluster, node, path: taken.path })),
          );
        } catch (err) {
          cleanupError = `${node}: ${taken.path} not removed: ${rootMessage(err)}`;
          log.warn('node-local snapshot not removed', { cluster, node, path: taken.path, error: cleanupError });
        }
      }

      // Bundle: what a rebuild on new hardware needs besides etcd's data, read on the same node.
      //    Like retention, a failure here is reported and does not fail a snapshot that is off-site:
      //    it still serves a restore (`snapshot list` flags it as not enough for a rebuild).
      //    (Runs that passed this point before the step existed replay without it.)
      let bundle: BundleSummary | undefined;
      let bundleError: string | undefined;
      if (patched('control-plane-bundle'))
        try {
          bundle = await run('bundle', async (s) => {
            const b = await quick.storeControlPlaneBundle({ cluster, node, key: ref.key });
            s.detail = b.complete
              ? `${b.items} items from ${b.fromNode}, complete`
              : `INCOMPLETE, not enough for a rebuild: ${b.missing.join('; ')}`;
            return b;
          });
        } catch (err) {
          bundleError = rootMessage(err);
          log.warn('control-plane bundle not stored; the snapshot itself is off-site', {
            cluster,
            key: ref.key,
            error: bundleError,
          });
        }

      // 6. Prove it restorable: the off-site object fetched back, restored and served by a throwaway
      //    etcd on the worker (activities/snapshot.ts proveSnapshot). One that does not restore is
      //    marked so (never 'latest') and fails the run, before retention deletes anything.
      //    (Runs that passed this point before the step existed replay without it.)
      let proof: EtcdSnapshotResult['proof'];
      if (patched('prove-restorable'))
        proof = await run('prove', async (s) => {
          const p = await long.proveSnapshot({ cluster, key: ref.key });
          s.detail = 'untested' in p ? `untested: ${p.untested}` : p.detail;
          return p;
        });

      // 7. Prune: only after a verified snapshot is safely off-site.
      let pruned: string[] = [];
      let pruneError: string | undefined;
      try {
        pruned = await run('prune', () =>
          quick.pruneSnapshots({ cluster, keep: input.keep, maxAgeMs: input.maxAgeMs }),
        );
      } catch (err) {
        pruneError = rootMessage(err);
        log.warn('retention failed; the snapshot itself is off-site', { cluster, key: ref.key, error: pruneError });
      }
      return {
        cluster,
        key: ref.key,
        member: ref.member,
        node,
        revision: ref.revision,
        etcdHash: ref.etcdHash,
        sha256: ref.sha256,
        size: ref.size,
        storedSha256: ref.storedSha256,
        storedSize: ref.storedSize,
        encryption: ref.encryption,
        etcdVersion: ref.etcdVersion,
        takenAt: ref.takenAt,
        pruned,
        ...(proof ? { proof } : {}),
        ...(bundle ? { bundle } : {}),
        ...(bundleError ? { bundleError } : {}),
        ...(pruneError ? { pruneError } : {}),
        ...(cleanupError ? { cleanupError } : {}),
        timings: rb.timings(),
      };
    },
    (cause) => `snapshot of ${cluster} failed (${cause})`,
  );
}

/** `drctl snapshot list`: the bucket is read on the worker, where the credentials and keys are. */
export async function listEtcdSnapshots(input: { cluster: string }): Promise<SnapshotListing> {
  return quick.listSnapshots(input.cluster);
}
