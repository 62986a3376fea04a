// etcd quorum-restore activities. Every one looks before it acts, so a retry — or a new worker
// after this one was killed mid-step — never does a destructive step twice. What each actually
// changed is appended to the node's journal (<workDir>/journal), which is also the evidence that
// no step ran twice. The node-side steps themselves are gateways/restore-node.ts; here they become
// the runbook's outcomes and failure types.
import { pipeline } from 'node:stream/promises';
import { FailureType, failure } from '../common/errors.ts';
import type { NodePlan, NodePreflight } from '../common/restore.ts';
import { log } from '../common/log.ts';
import { pickLatest } from '../common/snapshot-proof.ts';
import type { SnapshotRef } from '../common/snapshots.ts';
import { EtcdSnapshotTools } from '../gateways/etcd.ts';
import type { Gateways } from '../gateways/index.ts';
import { checkRoot } from '../gateways/ssh.ts';
import type { Component, NodeRefusal, Refusal, RestoreNode } from '../gateways/restore-node.ts';
import { done, heartbeat, heartbeating, meter, notYet, pollUntil } from './support.ts';

export type { Component };

interface NodeRef {
  cluster: string;
  node: string;
}

/**
 * What a node step that did not do its work means for the runbook: a state on the node a person
 * must resolve first (no retry changes it), a wait that ran out, or a restore command that failed.
 */
const REFUSED: Record<NodeRefusal, { type: FailureType; what?: string }> = {
  'both-manifests': { type: FailureType.PreflightFailed },
  'etcd-running': { type: FailureType.PreflightFailed },
  'not-moved-aside': { type: FailureType.PreflightFailed },
  'layout-changed': { type: FailureType.PreflightFailed },
  'timed-out': { type: FailureType.Timeout },
  'restore-failed': { type: FailureType.RemoteCommandFailed, what: 'restore failed: ' },
};

export function createRestoreActivities(gw: Gateways) {
  /** Settles a node step's result: its outcome when it did (or had done) its work, else its failure. */
  async function nodeStep<R extends { outcome: string } | Refusal<NodeRefusal>>(
    r: NodeRef,
    what: string,
    work: (node: RestoreNode) => Promise<R>,
  ): Promise<Exclude<R, { reason: string }>['outcome']> {
    const result = await heartbeating(what, work(gw.restoreNode(r.cluster, r.node)));
    if ('reason' in result) {
      const { type, what = '' } = REFUSED[result.outcome as NodeRefusal];
      throw failure(type, `${r.cluster}/${r.node}: ${what}${result.reason}`);
    }
    return result.outcome;
  }

  /**
   * The data dirs earlier restores moved aside on this node (full copies of etcd, every Secret in
   * them), removed once older than restore.keepMovedAside; never this run's. Housekeeping: a
   * failure is logged, never the restore's.
   */
  async function pruneMovedAside(r: NodeRef & { plan: NodePlan }): Promise<string[]> {
    try {
      const pruned = await gw.restoreNode(r.cluster, r.node).pruneMovedAside(r.plan, gw.config.restore.keepMovedAside);
      for (const dir of pruned) log.info({ cluster: r.cluster, node: r.node, dir }, 'moved-aside data dir pruned');
      return pruned;
    } catch (err) {
      log.warn({ cluster: r.cluster, node: r.node, error: (err as Error).message }, 'moved-aside data dirs not pruned');
      return [];
    }
  }

  /**
   * Every member stops at once, but the leader waits (up to 15 s) until its peers' etcd processes
   * are gone: a leader stopped while its followers stop tries to hand leadership to a peer that is
   * going away, and its shutdown took 7.5 s instead of < 1 s (bench/restore.ts). Read-only.
   */
  async function leaderStopsLast(input: NodeRef): Promise<void> {
    let st;
    try {
      st = await gw.etcd(input.cluster, input.node).status();
    } catch {
      return; // not running, or not answering: nothing to hand over
    }
    if (st.leader !== st.memberId) return;
    const peers = gw.cluster(input.cluster).nodes.filter((n) => n.name !== input.node);
    await pollUntil(
      {
        what: 'followers to stop first',
        timeoutMs: 15_000,
        every: 200,
        heartbeat: () => ({ waiting: 'followers to stop first' }),
        // Past the wait the leader stops anyway: slower, never wrong.
        onTimeout: () => undefined,
      },
      async () => {
        const running = await Promise.all(
          peers.map((n) =>
            gw
              .restoreNode(input.cluster, n.name)
              .etcdProcessRunning()
              .catch(() => false),
          ),
        );
        return running.some(Boolean) ? notYet(running) : done(undefined);
      },
    );
  }

  /**
   * The static pods in each kubeadm node's restartAfterRestore, killed so the kubelet starts them
   * again, then the cluster's rolloutAfterRestore Deployments. Returns what was restarted
   * ("cp1/velero", "deployment ns/name").
   */
  async function restartStaleControllers(cluster: string): Promise<{ restarted: string[]; notRunning: string[] }> {
    const at = new Date().toISOString();
    const c = gw.cluster(cluster);
    const [pods, deployments] = await Promise.all([
      Promise.all(
        c.nodes.map(async (n) => {
          const r = await gw.restoreNode(cluster, n.name).restartStaticPods(at);
          return {
            restarted: r.restarted.map((p) => `${n.name}/${p}`),
            notRunning: r.notRunning.map((p) => `${n.name}/${p}`),
          };
        }),
      ),
      Promise.all(
        c.rolloutAfterRestore.map(async (ref) => {
          const [ns = '', name = ''] = ref.split('/');
          return (await gw.kube(cluster).rolloutRestart(ns, name)) === 'restarted' ? [`deployment ${ref}`] : [];
        }),
      ),
    ]);
    return {
      restarted: [...pods.flatMap((p) => p.restarted), ...deployments.flat()],
      notRunning: pods.flatMap((p) => p.notRunning),
    };
  }

  /** The staged copy on the node is the snapshot recorded: its sha256, then etcd's own revision and hash. */
  async function verifyStaged(
    input: NodeRef & { plan: NodePlan; snapshot: SnapshotRef },
  ): Promise<{ sha256: string; revision: number }> {
    const { plan, snapshot } = input;
    const tools = new EtcdSnapshotTools(gw.shell(input.cluster, input.node), gw.node(input.cluster, input.node));
    const st = await tools.status(plan.stagedSnapshot);
    if (st.sha256 !== snapshot.sha256) {
      throw failure(
        FailureType.SnapshotCorrupt,
        `${input.cluster}/${input.node}: staged snapshot sha256 ${st.sha256} does not match ${snapshot.key}'s recorded ${snapshot.sha256}`,
      );
    }
    if (st.revision !== snapshot.revision || st.hash !== snapshot.etcdHash) {
      throw failure(
        FailureType.SnapshotCorrupt,
        `${input.cluster}/${input.node}: snapshot status (revision ${st.revision}, hash ${st.hash}) does not match the recorded (revision ${snapshot.revision}, hash ${snapshot.etcdHash})`,
      );
    }
    return { sha256: st.sha256, revision: st.revision };
  }

  return {
    async loadApprovalPolicy(): Promise<{
      approvers: string[];
      twoPersonRule: boolean;
      timeoutMs: number;
      /** failover.healthWatch.autoApprove: a failover the health watch starts needs no person. */
      autoApproveWatchFailovers: boolean;
    }> {
      const a = gw.config.approvals;
      return {
        approvers: a.approvers,
        twoPersonRule: a.twoPersonRule,
        timeoutMs: a.timeout,
        autoApproveWatchFailovers: gw.config.failover?.healthWatch.autoApprove ?? false,
      };
    },

    /**
     * 'latest' → the newest snapshot drctl signed; a key → that snapshot, which must be signed
     * (SnapshotUntrusted if it is not: refused here, in preflight, before any node is touched).
     * Objects passed over for 'latest' (unsigned, mis-signed, incomplete) are logged with why.
     */
    async resolveSnapshot(input: { cluster: string; snapshot: string }): Promise<SnapshotRef> {
      const snaps = gw.snapshots();
      if (input.snapshot !== 'latest') {
        const ref = await snaps.resolve(input.cluster, input.snapshot);
        const proof = await snaps.readProof(ref);
        if (proof && !('problem' in proof) && proof.verdict === 'unrestorable')
          throw failure(
            FailureType.SnapshotCorrupt,
            `${ref.key} was proven unrestorable ${proof.provedAt} (etcd ${proof.etcdVersion}): ${proof.detail}; pick another from \`drctl snapshot list\``,
          );
        return ref;
      }
      const { snapshots, ignored } = await snaps.list(input.cluster);
      for (const i of ignored)
        log.warn({ cluster: input.cluster, key: i.key, why: i.why }, "not a signed snapshot: passed over for 'latest'");
      // The newest proven restorable; one proven unrestorable never (common/snapshot-proof.ts).
      const { pick, untested, passedOver } = pickLatest(snapshots);
      for (const s of passedOver)
        log.warn(
          { cluster: input.cluster, key: s.key, proof: s.proof?.verdict ?? 'untested' },
          s.proof
            ? `proven unrestorable: passed over for 'latest' (${s.proof.detail})`
            : "not proven restorable: passed over for 'latest', an older one is",
        );
      if (pick) {
        if (untested)
          log.warn({ cluster: input.cluster, key: pick.key }, "'latest' is not proven restorable (no proof yet)");
        return pick;
      }
      if (snapshots.length)
        throw failure(
          FailureType.SnapshotCorrupt,
          `every signed snapshot of cluster '${input.cluster}' (${snapshots.length}) was proven unrestorable; newest: ${snapshots[0]!.key}: ${snapshots[0]!.proof?.detail}`,
        );
      throw failure(
        FailureType.SnapshotNotFound,
        `no signed snapshot of cluster '${input.cluster}' in s3://${snaps.bucket.bucket}/${snaps.prefixOf(input.cluster)}` +
          (ignored.length
            ? `; ${ignored.length} object(s) ignored: ${ignored
                .slice(0, 3)
                .map((i) => `${i.key}: ${i.why}`)
                .join('; ')}${ignored.length > 3 ? '; …' : ''}`
            : ''),
      );
    },

    /**
     * Read-only: reachability (pinned host key), root on the node (ssh.sudo), etcd version and restore
     * tool (host binaries or the etcd image), free disk and the data dir's layout, health.
     */
    async restorePreflightNode(r: NodeRef): Promise<NodePreflight> {
      try {
        const shell = gw.shell(r.cluster, r.node);
        await checkRoot(shell);
        const tools = await new EtcdSnapshotTools(shell, gw.node(r.cluster, r.node)).restoreTool();
        const disk = await gw.restoreNode(r.cluster, r.node).diskSpace();
        const etcd = gw.etcd(r.cluster, r.node);
        const health = await etcd.health();
        const revision = health.health ? (await etcd.status()).revision : undefined;
        return {
          node: r.node,
          reachable: true,
          etcdVersion: tools.etcdVersion,
          tool: tools.tool,
          supportsBumpRevision: tools.supportsBumpRevision,
          freeBytes: disk.freeBytes,
          dataDirExists: disk.dataDirExists,
          etcdHealthy: health.health,
          revision,
          // Host tools as configured (host) are the plan's default: recorded only when they differ.
          ...(tools.tools.from === 'image' || tools.tools.etcdctl || tools.tools.etcdutl ? { tools: tools.tools } : {}),
          ...(disk.mountPoint ? { dataDirMountPoint: true } : {}),
        };
      } catch (err) {
        const f = err as Error & { type?: string };
        // Never proceed past a wrong host key; a missing privilege is a config fix, not a flaky node.
        if (f.type === FailureType.HostKeyMismatch || f.type === FailureType.MissingPrivilege) throw err;
        return { node: r.node, reachable: false, error: f.message };
      }
    },

    /**
     * Streams the snapshot from the bucket through the worker to the node (S3 GET → sha256 of the
     * stored bytes → decrypt, 64 KiB chunk by chunk → sha256 of the plaintext → `cat >` over an SSH
     * exec channel into a .part file; nothing buffered whole), renames it into place only if every
     * chunk authenticated and both hashes are the signed ones, then checks its sha256 and `snapshot
     * status` on the node. The ref is checked against the signing key first (a ref from an older
     * run's history may be unsigned). Idempotent: a staged file that already verifies is kept.
     * Also removes data dirs earlier restores moved aside, once older than restore.keepMovedAside.
     */
    async stageSnapshot(
      input: NodeRef & { plan: NodePlan; snapshot: SnapshotRef },
    ): Promise<{ sha256: string; revision: number; skipped: boolean; pruned?: string[] }> {
      const { plan, snapshot } = input;
      const snaps = gw.snapshots();
      snaps.checkRef(snapshot);
      const node = gw.restoreNode(input.cluster, input.node);
      const pruned = await pruneMovedAside(input);
      const verify = () => verifyStaged(input);
      const extra = pruned.length ? { pruned } : {};
      if (await node.stagedPresent(plan)) {
        try {
          return { ...(await verify()), skipped: true, ...extra };
        } catch {
          await node.discardStaged(plan);
        }
      }
      const stored = meter(() => undefined, 60_000);
      const plain = meter((bytes) => heartbeat({ bytes }));
      try {
        await pipeline(
          await snaps.bucket.get(snapshot.key),
          stored.stream,
          snaps.keys.decryptStream(snapshot.key),
          plain.stream,
          await node.openStaging(plan),
        );
      } catch (err) {
        await node.discardStaging(plan);
        throw err;
      }
      const problem =
        stored.digest() !== snapshot.storedSha256 || stored.bytes() !== snapshot.storedSize
          ? `the object's ${stored.bytes()} bytes hash to ${stored.digest()}, not the signed ${snapshot.storedSha256}`
          : plain.digest() !== snapshot.sha256 || plain.bytes() !== snapshot.size
            ? `it decrypts to ${plain.bytes()} bytes hashing to ${plain.digest()}, not the signed ${snapshot.sha256}`
            : undefined;
      if (problem) {
        await node.discardStaging(plan);
        throw failure(FailureType.SnapshotCorrupt, `${snapshot.key}: ${problem}: the off-site copy is corrupt`);
      }
      await node.commitStaging(plan);
      return { ...(await verify()), skipped: false, ...extra };
    },

    /**
     * Read-only, when the gate opens: the copy staged on the node is still the snapshot approved
     * (present, its sha256, etcd's revision and hash). Nothing is re-staged: a copy that changed
     * means the restore stops with nothing changed.
     */
    async checkStagedSnapshot(
      input: NodeRef & { plan: NodePlan; snapshot: SnapshotRef },
    ): Promise<{ sha256: string; revision: number }> {
      if (!(await gw.restoreNode(input.cluster, input.node).stagedPresent(input.plan)))
        throw failure(
          FailureType.SnapshotNotFound,
          `${input.cluster}/${input.node}: the staged copy ${input.plan.stagedSnapshot} is gone`,
        );
      return verifyStaged(input);
    },

    /** Stops a control-plane component and waits until it is gone (etcd: its port closed too). */
    async stopComponent(
      input: NodeRef & { plan: NodePlan; component: Component },
    ): Promise<'stopped' | 'already-stopped'> {
      if (input.component === 'etcd') await leaderStopsLast(input);
      return nodeStep(input, `${input.component} stopped`, (n) => n.stop(input.plan, input.component));
    },

    /** Starts a component (kubeadm: puts its manifest back) and waits for its process. */
    async startComponent(
      input: NodeRef & { plan: NodePlan; component: Component },
    ): Promise<'started' | 'already-running'> {
      return nodeStep(input, `${input.component} running`, (n) => n.start(input.plan, input.component));
    },

    /** Moves the data dir aside under a name carrying the run id. Never twice: the aside dir is the marker. */
    async moveDataDirAside(input: NodeRef & { plan: NodePlan }): Promise<'moved' | 'already-moved' | 'no-data-dir'> {
      return nodeStep(input, 'move aside', (n) => n.moveDataDirAside(input.plan));
    },

    /**
     * Restores this member from the staged snapshot with its own name and peer URL into a scratch
     * dir, then renames it into place (so a crash never leaves a half-restored data dir live).
     */
    async restoreMember(input: NodeRef & { plan: NodePlan }): Promise<'restored' | 'already-restored'> {
      return nodeStep(input, 'restore', (n) => n.restoreMember(input.plan));
    },

    /**
     * Undo for a node, in the runbook's order: stop etcd, remove the restored dir, move the original
     * back. Idempotent: with no aside dir there is nothing to put back.
     */
    async putOriginalBack(input: NodeRef & { plan: NodePlan }): Promise<'put-back' | 'nothing-to-undo'> {
      return nodeStep(input, 'put back', (n) => n.putOriginalBack(input.plan));
    },

    /** Quorum: every planned member healthy, the member list exactly as planned, revisions agree. */
    async verifyQuorum(input: {
      cluster: string;
      plan: { nodes: Pick<NodePlan, 'node' | 'memberName' | 'peerUrl'>[] };
      minRevision?: number;
      timeoutMs?: number;
      /**
       * Every member at the same revision (default): true of a restored cluster with its API
       * servers stopped; a cluster that serves writes meanwhile (a recover, a rejoin) never holds
       * still, and there each member's revision is held to `minRevision` only.
       */
      revisionsAgree?: boolean;
    }) {
      const timeoutMs = input.timeoutMs ?? 180_000;
      return pollUntil(
        {
          what: `${input.cluster}: quorum`,
          timeoutMs,
          every: 250,
          onTimeout: (last) => {
            throw failure(
              FailureType.QuorumNotReached,
              `${input.cluster}: no quorum after ${timeoutMs / 1000} s: ${last}`,
            );
          },
        },
        async () => {
          try {
            const statuses = await Promise.all(
              input.plan.nodes.map(async (n) => {
                const etcd = gw.etcd(input.cluster, n.node);
                const h = await etcd.health();
                if (!h.health) throw new Error(`${n.node}: ${h.error ?? 'unhealthy'}`);
                return { node: n.node, ...(await etcd.status()) };
              }),
            );
            const members = await gw.etcd(input.cluster, input.plan.nodes[0]!.node).members();
            const want = input.plan.nodes.map((n) => `${n.memberName}=${n.peerUrl}`).sort();
            const got = members.map((m) => `${m.name}=${m.peerURLs[0] ?? ''}`).sort();
            if (JSON.stringify(want) !== JSON.stringify(got))
              return notYet(`member list ${got.join(',')} is not the planned ${want.join(',')}`);
            const revs = new Set(statuses.map((s) => s.revision));
            const leaders = new Set(statuses.map((s) => s.leader));
            if (leaders.size !== 1) return notYet(`no single leader yet (${[...leaders].join(', ')})`);
            if (revs.size !== 1 && input.revisionsAgree !== false)
              return notYet(`revisions differ: ${statuses.map((s) => `${s.node}=${s.revision}`).join(' ')}`);
            const revision = Math.min(...statuses.map((s) => s.revision));
            if (input.minRevision !== undefined && revision < input.minRevision)
              return notYet(`revision ${revision} is below the expected ${input.minRevision}`);
            return done({ revision, leader: statuses[0]!.leader, members: got });
          } catch (err) {
            return notYet((err as Error).message);
          }
        },
      );
    },

    /** Waits until the cluster's API server answers /readyz; returns its answer. Only waits. */
    async waitApiserverReady(input: { cluster: string; timeoutMs?: number }): Promise<string> {
      const kube = gw.kube(input.cluster);
      return pollUntil(
        { what: `${input.cluster}: kube-apiserver /readyz`, timeoutMs: input.timeoutMs ?? 180_000, every: 250 },
        async () => {
          const r = await kube.readyz();
          return r.ready ? done(r.detail) : notYet(r.detail);
        },
      );
    },

    /**
     * Restarts what holds state from before the restore (or its undo), as Kubernetes' etcd restore
     * procedure says, once the API server is ready so they start against a serving API (RBAC
     * included): a stale EndpointSlice tracker publishes no endpoints; a Velero backup the snapshot
     * caught InProgress blocks its schedule until the server restarts. A retry restarts them again.
     */
    async restartControllers(input: { cluster: string }): Promise<string> {
      const r = await heartbeating('restart controllers', restartStaleControllers(input.cluster));
      const parts = [
        ...(r.restarted.length ? [`restarted ${r.restarted.join(', ')} (caches predate the restore)`] : []),
        ...(r.notRunning.length ? [`started ${r.notRunning.join(', ')} (had exited; no back-off)`] : []),
      ];
      return parts.length ? parts.join('; ') : 'nothing to restart';
    },

    /** Key count and revision as each member itself holds them (serializable reads stay local). */
    async countKeys(input: {
      cluster: string;
      plan: { nodes: NodePlan[] };
    }): Promise<{ node: string; revision: number; keys: number }[]> {
      return Promise.all(
        input.plan.nodes.map(async (n) => ({ node: n.node, ...(await gw.etcd(input.cluster, n.node).keyCount()) })),
      );
    },

    /**
     * Removes the staged snapshot (the journal and this run's aside dir stay for the record), and
     * the data dirs earlier restores moved aside, once older than restore.keepMovedAside.
     */
    async cleanupStaged(input: NodeRef & { plan: NodePlan }): Promise<{ pruned: string[] }> {
      await gw.restoreNode(input.cluster, input.node).cleanupStaged(input.plan);
      return { pruned: await pruneMovedAside(input) };
    },

    async readJournal(input: NodeRef & { plan: NodePlan }): Promise<string[]> {
      return gw.restoreNode(input.cluster, input.node).journal(input.plan);
    },
  };
}
