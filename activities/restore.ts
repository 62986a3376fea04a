// etcd quorum-restore activities. Every one looks before it acts, so a retry — or a new worker
// after this one was killed mid-step — never does a destructive step twice. What each actually
// changed is appended to the node's journal (<workDir>/journal), which is also the evidence that
// no step ran twice.
import { pipeline } from 'node:stream/promises';
import { FailureType, failure } from '../common/errors.ts';
import type { NodePlan, NodePreflight } from '../common/restore.ts';
import { fromObjectMetadata, snapshotPrefix, type SnapshotRef } from '../common/snapshots.ts';
import { EtcdSnapshotTools, etcdctl } from '../gateways/etcd.ts';
import { type RemoteShell, shq } from '../gateways/ssh.ts';
import type { Gateways } from '../worker/gateways.ts';
import { heartbeat, meter } from './support.ts';

export type Component = 'etcd' | 'kube-apiserver';

interface NodeRef {
  cluster: string;
  node: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function journal(shell: RemoteShell, plan: NodePlan, line: string) {
  await shell.exec(`mkdir -p ${shq(plan.workDir)} && echo ${shq(`${new Date().toISOString()} ${line}`)} >> ${shq(`${plan.workDir}/journal`)}`, { check: true });
}

async function exists(shell: RemoteShell, path: string): Promise<boolean> {
  return (await shell.exec(`test -e ${shq(path)}`)).code === 0;
}

export function createRestoreActivities(gw: Gateways) {
  const profileOf = (r: NodeRef) => gw.node(r.cluster, r.node).controlPlane;

  /** Is the component's process running on the node, and (etcd) is its client port open? */
  async function running(r: NodeRef, component: Component): Promise<boolean> {
    const shell = gw.shell(r.cluster, r.node);
    const proc = (await shell.exec(`pgrep -x ${component} >/dev/null`)).code === 0;
    if (component !== 'etcd') return proc;
    const url = new URL(gw.node(r.cluster, r.node).etcd.clientUrl);
    const port = (await shell.exec(`timeout 2 bash -c ${shq(`exec 3<>/dev/tcp/${url.hostname}/${url.port || 2379}`)}`)).code === 0;
    return proc || port;
  }

  /**
   * kubeadm: the kubelet runs a static pod while its manifest is in manifestsDir, so parking the
   * manifest stops it and unparking starts it. Looks first: returns false when already there.
   */
  async function moveManifest(r: NodeRef, component: Component, direction: 'park' | 'unpark'): Promise<boolean> {
    const profile = profileOf(r);
    if (profile.profile !== 'kubeadm') return false;
    const shell = gw.shell(r.cluster, r.node);
    const live = `${profile.manifestsDir}/${component}.yaml`;
    const parked = `${profile.parkedDir}/${component}.yaml`;
    const [from, to] = direction === 'park' ? [live, parked] : [parked, live];
    if (!(await exists(shell, from))) return false;
    if (await exists(shell, to)) {
      throw failure(FailureType.PreflightFailed, `${r.cluster}/${r.node}: both ${live} and ${parked} exist; resolve by hand before going on`);
    }
    await shell.exec(`mkdir -p ${shq(profile.parkedDir)} && mv ${shq(from)} ${shq(to)}`, { check: true });
    return true;
  }

  async function waitFor(r: NodeRef, what: string, check: () => Promise<boolean>, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw failure(FailureType.Timeout, `${r.cluster}/${r.node}: ${what} not reached after ${timeoutMs / 1000} s`);
      heartbeat(what);
      await sleep(500);
    }
  }

  return {
    async loadApprovalPolicy(): Promise<{ approvers: string[]; twoPersonRule: boolean; timeoutMs: number }> {
      const a = gw.config.approvals;
      return { approvers: a.approvers, twoPersonRule: a.twoPersonRule, timeoutMs: a.timeout };
    },

    /** 'latest' → the newest snapshot with complete metadata; a key → that object, which must exist. */
    async resolveSnapshot(input: { cluster: string; snapshot: string }): Promise<SnapshotRef> {
      const store = gw.store();
      const keys =
        input.snapshot === 'latest'
          ? (await store.list(snapshotPrefix(gw.config.objectStore.prefix, input.cluster))).map((o) => o.key).sort().reverse()
          : [input.snapshot];
      for (const key of keys) {
        const head = await store.head(key);
        if (!head) break;
        const meta = fromObjectMetadata(head.metadata);
        if (!meta) continue; // not a verified snapshot (no complete metadata): never a restore source
        if (meta.cluster !== input.cluster) {
          throw failure(FailureType.SnapshotNotFound, `${key} is a snapshot of cluster '${meta.cluster}', not '${input.cluster}'`);
        }
        if (head.size !== meta.size) throw failure(FailureType.SnapshotCorrupt, `${key}: object is ${head.size} bytes, metadata says ${meta.size}`);
        return { key, ...meta };
      }
      throw failure(FailureType.SnapshotNotFound, input.snapshot === 'latest'
        ? `no verified snapshot of cluster '${input.cluster}' in s3://${gw.config.objectStore.bucket}/${snapshotPrefix(gw.config.objectStore.prefix, input.cluster)}`
        : `snapshot ${input.snapshot} not found (or without drctl metadata) in s3://${gw.config.objectStore.bucket}`);
    },

    /** Read-only: reachability (pinned host key), etcd version and restore tool, free disk, health. */
    async restorePreflightNode(r: NodeRef): Promise<NodePreflight> {
      const node = gw.node(r.cluster, r.node);
      const shell = gw.shell(r.cluster, r.node);
      try {
        const tools = await new EtcdSnapshotTools(shell, node).restoreTool();
        const parent = node.etcd.dataDir.replace(/\/[^/]+\/?$/, '') || '/';
        const df = await shell.exec(`df -B1 --output=avail ${shq(parent)} | tail -1; test -d ${shq(node.etcd.dataDir)} && echo yes || echo no`, { check: true });
        const [avail, dirExists] = df.stdout.trim().split('\n');
        const etcd = gw.etcd(r.cluster, r.node);
        const health = await etcd.health();
        const revision = health.health ? (await etcd.status()).revision : undefined;
        return {
          node: r.node,
          reachable: true,
          etcdVersion: tools.etcdVersion,
          tool: tools.tool,
          supportsBumpRevision: tools.supportsBumpRevision,
          freeBytes: Number(avail),
          dataDirExists: dirExists === 'yes',
          etcdHealthy: health.health,
          revision,
        };
      } catch (err) {
        const f = err as Error & { type?: string };
        if (f.type === FailureType.HostKeyMismatch) throw err; // never proceed past a wrong host key
        return { node: r.node, reachable: false, error: f.message };
      }
    },

    /**
     * Streams the snapshot from the bucket to the node (S3 GET → SFTP write, nothing buffered whole),
     * then checks its sha256 and `snapshot status` on the node. Idempotent: a staged file that
     * already verifies is kept.
     */
    async stageSnapshot(input: NodeRef & { plan: NodePlan; snapshot: SnapshotRef }): Promise<{ sha256: string; revision: number; skipped: boolean }> {
      const { plan, snapshot } = input;
      const shell = gw.shell(input.cluster, input.node);
      const tools = new EtcdSnapshotTools(shell, gw.node(input.cluster, input.node));
      const verify = async () => {
        const st = await tools.status(plan.stagedSnapshot);
        if (st.sha256 !== snapshot.sha256) {
          throw failure(FailureType.SnapshotCorrupt, `${input.cluster}/${input.node}: staged snapshot sha256 ${st.sha256} does not match ${snapshot.key}'s recorded ${snapshot.sha256}`);
        }
        if (st.revision !== snapshot.revision || st.hash !== snapshot.etcdHash) {
          throw failure(FailureType.SnapshotCorrupt, `${input.cluster}/${input.node}: snapshot status (revision ${st.revision}, hash ${st.hash}) does not match the recorded (revision ${snapshot.revision}, hash ${snapshot.etcdHash})`);
        }
        return { sha256: st.sha256, revision: st.revision };
      };
      if (await exists(shell, plan.stagedSnapshot)) {
        try {
          return { ...(await verify()), skipped: true };
        } catch {
          await shell.exec(`rm -f ${shq(plan.stagedSnapshot)}`, { check: true });
        }
      }
      await shell.exec(`mkdir -p ${shq(plan.workDir)} && chmod 700 ${shq(plan.workDir)}`, { check: true });
      const part = `${plan.stagedSnapshot}.part`;
      const m = meter((bytes) => heartbeat({ bytes }));
      await pipeline(await gw.store().get(snapshot.key), m.stream, await shell.writeStream(part, 0o600));
      const streamed = m.digest();
      if (streamed !== snapshot.sha256) {
        await shell.exec(`rm -f ${shq(part)}`);
        throw failure(FailureType.SnapshotCorrupt, `${snapshot.key}: the object's bytes hash to ${streamed}, not the recorded ${snapshot.sha256}: the off-site copy is corrupt`);
      }
      await shell.exec(`mv -f ${shq(part)} ${shq(plan.stagedSnapshot)}`, { check: true });
      return { ...(await verify()), skipped: false };
    },

    /** Stops a control-plane component: kubeadm parks its static pod manifest; waits until it is gone. */
    async stopComponent(input: NodeRef & { plan: NodePlan; component: Component }): Promise<'stopped' | 'already-stopped'> {
      const shell = gw.shell(input.cluster, input.node);
      const profile = profileOf(input);
      let acted = false;
      if (profile.profile === 'kubeadm') {
        acted = await moveManifest(input, input.component, 'park');
      } else {
        const cmd = input.component === 'etcd' ? profile.etcd.stop : profile.apiserver?.stop;
        if (cmd && (await running(input, input.component))) {
          await shell.exec(cmd, { check: true, timeoutMs: 120_000 });
          acted = true;
        }
      }
      await waitFor(input, `${input.component} stopped`, async () => !(await running(input, input.component)), 90_000);
      if (acted) await journal(shell, input.plan, `stopped ${input.component}`);
      return acted ? 'stopped' : 'already-stopped';
    },

    /** Starts a component (kubeadm: puts its manifest back) and waits for its process (etcd: port too). */
    async startComponent(input: NodeRef & { plan: NodePlan; component: Component }): Promise<'started' | 'already-running'> {
      const shell = gw.shell(input.cluster, input.node);
      const profile = profileOf(input);
      let acted = false;
      if (profile.profile === 'kubeadm') {
        acted = await moveManifest(input, input.component, 'unpark');
      } else {
        const cmd = input.component === 'etcd' ? profile.etcd.start : profile.apiserver?.start;
        if (cmd && !(await running(input, input.component))) {
          await shell.exec(cmd, { check: true, timeoutMs: 120_000 });
          acted = true;
        }
      }
      if (acted) await journal(shell, input.plan, `started ${input.component}`);
      const check = input.component === 'etcd'
        ? async () => (await shell.exec(`pgrep -x etcd >/dev/null`)).code === 0
        : async () => (await shell.exec(`pgrep -x kube-apiserver >/dev/null`)).code === 0;
      await waitFor(input, `${input.component} running`, check, 90_000);
      return acted ? 'started' : 'already-running';
    },

    /** Moves the data dir aside under a name carrying the run id. Never twice: the aside dir is the marker. */
    async moveDataDirAside(input: NodeRef & { plan: NodePlan }): Promise<'moved' | 'already-moved' | 'no-data-dir'> {
      const { plan } = input;
      const shell = gw.shell(input.cluster, input.node);
      if (await running(input, 'etcd')) throw failure(FailureType.PreflightFailed, `${input.cluster}/${input.node}: etcd is still running; refusing to move its data dir`);
      if (await exists(shell, plan.asideDir)) return 'already-moved';
      if (!(await exists(shell, plan.dataDir))) {
        await journal(shell, plan, `no data dir at ${plan.dataDir}`);
        return 'no-data-dir';
      }
      await shell.exec(`mv ${shq(plan.dataDir)} ${shq(plan.asideDir)}`, { check: true });
      await journal(shell, plan, `moved-aside ${plan.dataDir} -> ${plan.asideDir}`);
      return 'moved';
    },

    /**
     * Restores this member from the staged snapshot with its own name and peer URL into a scratch
     * dir, then renames it into place (so a crash never leaves a half-restored data dir live).
     */
    async restoreMember(input: NodeRef & { plan: NodePlan }): Promise<'restored' | 'already-restored'> {
      const { plan } = input;
      const shell = gw.shell(input.cluster, input.node);
      const marker = `${plan.workDir}/restored.done`;
      if ((await exists(shell, marker)) && (await exists(shell, plan.dataDir))) return 'already-restored';
      if (!(await exists(shell, plan.asideDir)) && (await exists(shell, plan.dataDir))) {
        throw failure(FailureType.PreflightFailed, `${input.cluster}/${input.node}: ${plan.dataDir} was not moved aside; refusing to restore over it`);
      }
      const scratch = `${plan.workDir}/restored`;
      // Left by an attempt that died half-way: ours to remove (the original is safe in asideDir).
      await shell.exec(`rm -rf ${shq(scratch)} ${shq(plan.dataDir)}`, { check: true });
      const r = await shell.exec(plan.restoreCommand, { timeoutMs: 20 * 60_000 });
      if (r.code !== 0) throw failure(FailureType.RemoteCommandFailed, `${input.cluster}/${input.node}: restore failed: ${(r.stderr || r.stdout).trim().slice(-1500)}`);
      await shell.exec(`chmod 700 ${shq(scratch)} && mv ${shq(scratch)} ${shq(plan.dataDir)} && touch ${shq(marker)}`, { check: true });
      await journal(shell, plan, `restored ${plan.dataDir} from ${plan.stagedSnapshot}`);
      return 'restored';
    },

    /**
     * Undo for a node, in the runbook's order: stop etcd, remove the restored dir, move the original
     * back. Idempotent: with no aside dir there is nothing to put back.
     */
    async putOriginalBack(input: NodeRef & { plan: NodePlan }): Promise<'put-back' | 'nothing-to-undo'> {
      const { plan } = input;
      const shell = gw.shell(input.cluster, input.node);
      if (!(await exists(shell, plan.asideDir))) return 'nothing-to-undo';
      if (await running(input, 'etcd')) throw failure(FailureType.PreflightFailed, `${input.cluster}/${input.node}: etcd must be stopped before its data dir is put back`);
      await shell.exec(`rm -rf ${shq(plan.dataDir)} && mv ${shq(plan.asideDir)} ${shq(plan.dataDir)} && rm -f ${shq(`${plan.workDir}/restored.done`)}`, { check: true });
      await journal(shell, plan, `put-back ${plan.asideDir} -> ${plan.dataDir}`);
      return 'put-back';
    },

    /** Quorum: every planned member healthy, the member list exactly as planned, revisions agree. */
    async verifyQuorum(input: { cluster: string; plan: { nodes: NodePlan[] }; minRevision?: number; timeoutMs?: number }) {
      const deadline = Date.now() + (input.timeoutMs ?? 180_000);
      let last = '';
      for (;;) {
        try {
          const statuses = await Promise.all(input.plan.nodes.map(async (n) => {
            const etcd = gw.etcd(input.cluster, n.node);
            const h = await etcd.health();
            if (!h.health) throw new Error(`${n.node}: ${h.error ?? 'unhealthy'}`);
            return { node: n.node, ...(await etcd.status()) };
          }));
          const members = await gw.etcd(input.cluster, input.plan.nodes[0]!.node).members();
          const want = input.plan.nodes.map((n) => `${n.memberName}=${n.peerUrl}`).sort();
          const got = members.map((m) => `${m.name}=${m.peerURLs[0] ?? ''}`).sort();
          if (JSON.stringify(want) !== JSON.stringify(got)) throw new Error(`member list ${got.join(',')} is not the planned ${want.join(',')}`);
          const revs = new Set(statuses.map((s) => s.revision));
          const leaders = new Set(statuses.map((s) => s.leader));
          if (leaders.size !== 1) throw new Error(`no single leader yet (${[...leaders].join(', ')})`);
          if (revs.size !== 1) throw new Error(`revisions differ: ${statuses.map((s) => `${s.node}=${s.revision}`).join(' ')}`);
          const revision = statuses[0]!.revision;
          if (input.minRevision !== undefined && revision < input.minRevision) throw new Error(`revision ${revision} is below the expected ${input.minRevision}`);
          return { revision, leader: statuses[0]!.leader, members: got };
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline) throw failure(FailureType.QuorumNotReached, `${input.cluster}: no quorum after ${(input.timeoutMs ?? 180_000) / 1000} s: ${last}`);
        heartbeat(last);
        await sleep(1000);
      }
    },

    async waitApiserverReady(input: { cluster: string; timeoutMs?: number }): Promise<string> {
      const kube = gw.kube(input.cluster);
      const deadline = Date.now() + (input.timeoutMs ?? 180_000);
      for (;;) {
        const r = await kube.readyz();
        if (r.ready) return r.detail;
        if (Date.now() > deadline) throw failure(FailureType.Timeout, `${input.cluster}: kube-apiserver not ready: ${r.detail}`);
        heartbeat(r.detail);
        await sleep(1000);
      }
    },

    /** Key count and revision as each member itself holds them (serializable reads stay local). */
    async countKeys(input: { cluster: string; plan: { nodes: NodePlan[] } }): Promise<{ node: string; revision: number; keys: number }[]> {
      return Promise.all(input.plan.nodes.map(async (n) => {
        const shell = gw.shell(input.cluster, n.node);
        const r = await shell.exec(etcdctl(gw.node(input.cluster, n.node), 'get "" --prefix --count-only --consistency=s -w fields'), { check: true, timeoutMs: 60_000 });
        const field = (name: string) => Number(r.stdout.match(new RegExp(`"${name}" : (\\d+)`))?.[1] ?? NaN);
        return { node: n.node, revision: field('Revision'), keys: field('Count') };
      }));
    },

    /** Removes the staged snapshot (the journal and the aside dir stay for the record). */
    async cleanupStaged(input: NodeRef & { plan: NodePlan }): Promise<void> {
      const shell = gw.shell(input.cluster, input.node);
      await shell.exec(`rm -f ${shq(input.plan.stagedSnapshot)} ${shq(`${input.plan.stagedSnapshot}.part`)} && rm -rf ${shq(`${input.plan.workDir}/restored`)}`, { check: true });
    },

    async readJournal(input: NodeRef & { plan: NodePlan }): Promise<string[]> {
      const r = await gw.shell(input.cluster, input.node).exec(`cat ${shq(`${input.plan.workDir}/journal`)} 2>/dev/null || true`);
      return r.stdout.trim().split('\n').filter(Boolean);
    },
  };
}
