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

/** A shell line appending to the node's journal (the evidence of what ran, and how often). */
function journalLine(plan: NodePlan, line: string): string {
  return `mkdir -p ${shq(plan.workDir)} && echo "$(date -u +%FT%T.%3NZ) "${shq(line)} >> ${shq(`${plan.workDir}/journal`)}`;
}

async function exists(shell: RemoteShell, path: string): Promise<boolean> {
  return (await shell.exec(`test -e ${shq(path)}`)).code === 0;
}

/**
 * Runs one node-side step as a single script: the look-before-act check, the action and its
 * journal line travel together, so a step costs one SSH round trip (measured: ~0.17 s each on the
 * lab; the first version spent 2-3 s per step in 6-10 of them). Heartbeats while it runs.
 */
async function step(
  shell: RemoteShell,
  script: string,
  what: string,
  timeoutMs = 120_000,
): Promise<{ code: number; out: string; err: string }> {
  const hb = setInterval(() => heartbeat(what), 5_000);
  try {
    const r = await shell.exec(`set -e\n${script}`, { timeoutMs });
    return { code: r.code ?? -1, out: r.stdout.trim().split('\n').pop() ?? '', err: r.stderr.trim() };
  } finally {
    clearInterval(hb);
  }
}

export function createRestoreActivities(gw: Gateways) {
  const profileOf = (r: NodeRef) => gw.node(r.cluster, r.node).controlPlane;

  /** Shell test: is the component's process running on the node (etcd: or its client port open)? */
  function runningTest(r: NodeRef, component: Component): string {
    if (component !== 'etcd') return `pgrep -x ${component} >/dev/null`;
    const url = new URL(gw.node(r.cluster, r.node).etcd.clientUrl);
    return `{ pgrep -x etcd >/dev/null || timeout 1 bash -c ${shq(`exec 3<>/dev/tcp/${url.hostname}/${url.port || 2379}`)} 2>/dev/null; }`;
  }

  /** Shell: wait (0.1 s polls, up to 90 s) until `test` holds, else exit 4. */
  const waitLoop = (test: string, what: string) =>
    `for i in $(seq 1 900); do if ${test}; then break; fi; if [ "$i" = 900 ]; then echo ${shq(`${what} not reached after 90 s`)} >&2; exit 4; fi; sleep 0.1; done`;

  /**
   * Stops (or starts) a component. kubeadm: the kubelet runs a static pod while its manifest is in
   * manifestsDir, so parking the manifest stops it and unparking starts it; `command`: the
   * configured command, only when the process is (not) running. Then waits for the process.
   */
  async function switchComponent(
    input: NodeRef & { plan: NodePlan; component: Component },
    to: 'stopped' | 'running',
  ): Promise<boolean> {
    const { plan, component } = input;
    const shell = gw.shell(input.cluster, input.node);
    const profile = profileOf(input);
    const test = runningTest(input, component);
    const verb = to === 'stopped' ? 'stopped' : 'started';
    let act: string;
    if (profile.profile === 'kubeadm') {
      const live = `${profile.manifestsDir}/${component}.yaml`;
      const parked = `${profile.parkedDir}/${component}.yaml`;
      const [from, dest] = to === 'stopped' ? [live, parked] : [parked, live];
      act = [
        `acted=0`,
        `if [ -e ${shq(from)} ]; then`,
        `  if [ -e ${shq(dest)} ]; then echo ${shq(`both ${live} and ${parked} exist; resolve by hand before going on`)} >&2; exit 3; fi`,
        `  mkdir -p ${shq(profile.parkedDir)} && mv ${shq(from)} ${shq(dest)} && acted=1`,
        `fi`,
      ].join('\n');
    } else {
      const cmd =
        component === 'etcd'
          ? profile.etcd[to === 'stopped' ? 'stop' : 'start']
          : profile.apiserver?.[to === 'stopped' ? 'stop' : 'start'];
      act = cmd ? `acted=0\nif ${to === 'stopped' ? '' : '! '}${test}; then ${cmd}; acted=1; fi` : 'acted=0';
    }
    // A parked kube-apiserver keeps serving its open watches until the kubelet kills it; its data
    // is about to be replaced, so after the grace there is nothing left worth waiting for.
    const graceMs =
      profile.profile === 'kubeadm' && component === 'kube-apiserver' && to === 'stopped'
        ? profile.apiserverStopGrace
        : 0;
    const script = [
      act,
      `if [ "$acted" = 1 ]; then ${journalLine(plan, `${verb} ${component}`)}; fi`,
      ...(graceMs > 0
        ? [
            `for i in $(seq 1 ${Math.ceil(graceMs / 100)}); do if ! ${test}; then break; fi; sleep 0.1; done`,
            `if ${test} && pkill -KILL -x ${component}; then ${journalLine(plan, `killed ${component}, still draining after ${graceMs / 1000} s`)}; fi`,
          ]
        : []),
      waitLoop(to === 'stopped' ? `! ${test}` : `pgrep -x ${component} >/dev/null`, `${component} ${to}`),
      'echo "acted=$acted"',
    ].join('\n');
    const r = await step(shell, script, `${component} ${to}`);
    if (r.code === 3) throw failure(FailureType.PreflightFailed, `${input.cluster}/${input.node}: ${r.err}`);
    if (r.code === 4) throw failure(FailureType.Timeout, `${input.cluster}/${input.node}: ${r.err}`);
    if (r.code !== 0)
      throw failure(
        FailureType.RemoteCommandFailed,
        `${input.cluster}/${input.node}: ${verb === 'stopped' ? 'stopping' : 'starting'} ${component} failed (exit ${r.code}): ${r.err.slice(-500)}`,
      );
    return r.out === 'acted=1';
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
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const running = await Promise.all(
        peers.map(
          async (n) =>
            (
              await gw
                .shell(input.cluster, n.name)
                .exec('pgrep -x etcd >/dev/null', { timeoutMs: 10_000 })
                .catch(() => ({ code: 1 }))
            ).code === 0,
        ),
      );
      if (!running.some(Boolean)) return;
      heartbeat({ waiting: 'followers to stop first' });
      await sleep(200);
    }
  }

  /**
   * The static pods in each kubeadm node's restartAfterRestore (a stale EndpointSlice tracker
   * publishes no endpoints; a Velero backup the snapshot caught InProgress blocks its schedule until
   * the server restarts), killed so the kubelet starts them again, then the cluster's
   * rolloutAfterRestore Deployments. Returns what was restarted ("cp1/velero", "deployment ns/name").
   */
  async function restartStaleControllers(cluster: string): Promise<string[]> {
    const c = gw.cluster(cluster);
    const [pods, deployments] = await Promise.all([
      Promise.all(
        c.nodes.map(async (n) => {
          const cp = n.controlPlane;
          if (cp.profile !== 'kubeadm' || !cp.restartAfterRestore.length) return [];
          // Matched on the command line (`pkill -x` sees only 15 characters of a name): its first
          // word is the binary, with or without a path.
          const out = await gw
            .shell(cluster, n.name)
            .exec(
              cp.restartAfterRestore
                .map(
                  (p) =>
                    `if [ -e ${shq(`${cp.manifestsDir}/${p}.yaml`)} ] && pkill -f ${shq(`^([^ ]*/)?${p}( |$)`)}; then echo ${p}; fi`,
                )
                .join('; '),
              { timeoutMs: 30_000 },
            );
          return out.stdout
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((p) => `${n.name}/${p}`);
        }),
      ),
      Promise.all(
        c.rolloutAfterRestore.map(async (ref) => {
          const [ns = '', name = ''] = ref.split('/');
          return (await gw.kube(cluster).rolloutRestart(ns, name)) === 'restarted' ? [`deployment ${ref}`] : [];
        }),
      ),
    ]);
    return [...pods.flat(), ...deployments.flat()];
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
          ? (await store.list(snapshotPrefix(gw.config.objectStore.prefix, input.cluster)))
              .map((o) => o.key)
              .sort()
              .reverse()
          : [input.snapshot];
      for (const key of keys) {
        const head = await store.head(key);
        if (!head) break;
        const meta = fromObjectMetadata(head.metadata);
        if (!meta) continue; // not a verified snapshot (no complete metadata): never a restore source
        if (meta.cluster !== input.cluster) {
          throw failure(
            FailureType.SnapshotNotFound,
            `${key} is a snapshot of cluster '${meta.cluster}', not '${input.cluster}'`,
          );
        }
        if (head.size !== meta.size)
          throw failure(
            FailureType.SnapshotCorrupt,
            `${key}: object is ${head.size} bytes, metadata says ${meta.size}`,
          );
        return { key, ...meta };
      }
      throw failure(
        FailureType.SnapshotNotFound,
        input.snapshot === 'latest'
          ? `no verified snapshot of cluster '${input.cluster}' in s3://${gw.config.objectStore.bucket}/${snapshotPrefix(gw.config.objectStore.prefix, input.cluster)}`
          : `snapshot ${input.snapshot} not found (or without drctl metadata) in s3://${gw.config.objectStore.bucket}`,
      );
    },

    /** Read-only: reachability (pinned host key), etcd version and restore tool, free disk, health. */
    async restorePreflightNode(r: NodeRef): Promise<NodePreflight> {
      const node = gw.node(r.cluster, r.node);
      const shell = gw.shell(r.cluster, r.node);
      try {
        const tools = await new EtcdSnapshotTools(shell, node).restoreTool();
        const parent = node.etcd.dataDir.replace(/\/[^/]+\/?$/, '') || '/';
        const df = await shell.exec(
          `df -B1 --output=avail ${shq(parent)} | tail -1; test -d ${shq(node.etcd.dataDir)} && echo yes || echo no`,
          { check: true },
        );
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
     * Streams the snapshot from the bucket to the node (S3 GET → `cat >` over an SSH exec channel,
     * nothing buffered whole), then checks its sha256 and `snapshot status` on the node.
     * Idempotent: a staged file that already verifies is kept.
     */
    async stageSnapshot(
      input: NodeRef & { plan: NodePlan; snapshot: SnapshotRef },
    ): Promise<{ sha256: string; revision: number; skipped: boolean }> {
      const { plan, snapshot } = input;
      const shell = gw.shell(input.cluster, input.node);
      const tools = new EtcdSnapshotTools(shell, gw.node(input.cluster, input.node));
      const verify = async () => {
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
        throw failure(
          FailureType.SnapshotCorrupt,
          `${snapshot.key}: the object's bytes hash to ${streamed}, not the recorded ${snapshot.sha256}: the off-site copy is corrupt`,
        );
      }
      await shell.exec(`mv -f ${shq(part)} ${shq(plan.stagedSnapshot)}`, { check: true });
      return { ...(await verify()), skipped: false };
    },

    /** Stops a control-plane component and waits until it is gone (etcd: its port closed too). */
    async stopComponent(
      input: NodeRef & { plan: NodePlan; component: Component },
    ): Promise<'stopped' | 'already-stopped'> {
      if (input.component === 'etcd') await leaderStopsLast(input);
      return (await switchComponent(input, 'stopped')) ? 'stopped' : 'already-stopped';
    },

    /** Starts a component (kubeadm: puts its manifest back) and waits for its process. */
    async startComponent(
      input: NodeRef & { plan: NodePlan; component: Component },
    ): Promise<'started' | 'already-running'> {
      return (await switchComponent(input, 'running')) ? 'started' : 'already-running';
    },

    /** Moves the data dir aside under a name carrying the run id. Never twice: the aside dir is the marker. */
    async moveDataDirAside(input: NodeRef & { plan: NodePlan }): Promise<'moved' | 'already-moved' | 'no-data-dir'> {
      const { plan } = input;
      const r = await step(
        gw.shell(input.cluster, input.node),
        [
          `if ${runningTest(input, 'etcd')}; then echo 'etcd is still running; refusing to move its data dir' >&2; exit 3; fi`,
          `if [ -e ${shq(plan.asideDir)} ]; then echo already-moved; exit 0; fi`,
          `if [ ! -e ${shq(plan.dataDir)} ]; then ${journalLine(plan, `no data dir at ${plan.dataDir}`)}; echo no-data-dir; exit 0; fi`,
          `mv ${shq(plan.dataDir)} ${shq(plan.asideDir)} && ${journalLine(plan, `moved-aside ${plan.dataDir} -> ${plan.asideDir}`)}`,
          'echo moved',
        ].join('\n'),
        'move aside',
      );
      if (r.code === 3) throw failure(FailureType.PreflightFailed, `${input.cluster}/${input.node}: ${r.err}`);
      if (r.code !== 0)
        throw failure(
          FailureType.RemoteCommandFailed,
          `${input.cluster}/${input.node}: moving ${plan.dataDir} aside failed (exit ${r.code}): ${r.err.slice(-500)}`,
        );
      return r.out as 'moved' | 'already-moved' | 'no-data-dir';
    },

    /**
     * Restores this member from the staged snapshot with its own name and peer URL into a scratch
     * dir, then renames it into place (so a crash never leaves a half-restored data dir live).
     */
    async restoreMember(input: NodeRef & { plan: NodePlan }): Promise<'restored' | 'already-restored'> {
      const { plan } = input;
      const marker = `${plan.workDir}/restored.done`;
      const scratch = `${plan.workDir}/restored`;
      const log = `${plan.workDir}/restore.log`;
      const r = await step(
        gw.shell(input.cluster, input.node),
        [
          `if [ -e ${shq(marker)} ] && [ -e ${shq(plan.dataDir)} ]; then echo already-restored; exit 0; fi`,
          `if [ ! -e ${shq(plan.asideDir)} ] && [ -e ${shq(plan.dataDir)} ]; then echo ${shq(`${plan.dataDir} was not moved aside; refusing to restore over it`)} >&2; exit 3; fi`,
          // Left by an attempt that died half-way: ours to remove (the original is safe in asideDir).
          `rm -rf ${shq(scratch)} ${shq(plan.dataDir)}`,
          `if ! ${plan.restoreCommand} > ${shq(log)} 2>&1; then tail -c 1500 ${shq(log)} >&2; exit 5; fi`,
          `chmod 700 ${shq(scratch)} && mv ${shq(scratch)} ${shq(plan.dataDir)} && touch ${shq(marker)}`,
          journalLine(plan, `restored ${plan.dataDir} from ${plan.stagedSnapshot}`),
          'echo restored',
        ].join('\n'),
        'restore',
        20 * 60_000,
      );
      if (r.code === 3) throw failure(FailureType.PreflightFailed, `${input.cluster}/${input.node}: ${r.err}`);
      if (r.code !== 0)
        throw failure(
          FailureType.RemoteCommandFailed,
          `${input.cluster}/${input.node}: restore failed: ${r.err.slice(-1500)}`,
        );
      return r.out as 'restored' | 'already-restored';
    },

    /**
     * Undo for a node, in the runbook's order: stop etcd, remove the restored dir, move the original
     * back. Idempotent: with no aside dir there is nothing to put back.
     */
    async putOriginalBack(input: NodeRef & { plan: NodePlan }): Promise<'put-back' | 'nothing-to-undo'> {
      const { plan } = input;
      const r = await step(
        gw.shell(input.cluster, input.node),
        [
          `if [ ! -e ${shq(plan.asideDir)} ]; then echo nothing-to-undo; exit 0; fi`,
          `if ${runningTest(input, 'etcd')}; then echo 'etcd must be stopped before its data dir is put back' >&2; exit 3; fi`,
          `rm -rf ${shq(plan.dataDir)} && mv ${shq(plan.asideDir)} ${shq(plan.dataDir)} && rm -f ${shq(`${plan.workDir}/restored.done`)}`,
          journalLine(plan, `put-back ${plan.asideDir} -> ${plan.dataDir}`),
          'echo put-back',
        ].join('\n'),
        'put back',
      );
      if (r.code === 3) throw failure(FailureType.PreflightFailed, `${input.cluster}/${input.node}: ${r.err}`);
      if (r.code !== 0)
        throw failure(
          FailureType.RemoteCommandFailed,
          `${input.cluster}/${input.node}: putting ${plan.asideDir} back failed (exit ${r.code}): ${r.err.slice(-500)}`,
        );
      return r.out as 'put-back' | 'nothing-to-undo';
    },

    /** Quorum: every planned member healthy, the member list exactly as planned, revisions agree. */
    async verifyQuorum(input: {
      cluster: string;
      plan: { nodes: NodePlan[] };
      minRevision?: number;
      timeoutMs?: number;
    }) {
      const deadline = Date.now() + (input.timeoutMs ?? 180_000);
      let last = '';
      for (;;) {
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
            throw new Error(`member list ${got.join(',')} is not the planned ${want.join(',')}`);
          const revs = new Set(statuses.map((s) => s.revision));
          const leaders = new Set(statuses.map((s) => s.leader));
          if (leaders.size !== 1) throw new Error(`no single leader yet (${[...leaders].join(', ')})`);
          if (revs.size !== 1)
            throw new Error(`revisions differ: ${statuses.map((s) => `${s.node}=${s.revision}`).join(' ')}`);
          const revision = statuses[0]!.revision;
          if (input.minRevision !== undefined && revision < input.minRevision)
            throw new Error(`revision ${revision} is below the expected ${input.minRevision}`);
          return { revision, leader: statuses[0]!.leader, members: got };
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline)
          throw failure(
            FailureType.QuorumNotReached,
            `${input.cluster}: no quorum after ${(input.timeoutMs ?? 180_000) / 1000} s: ${last}`,
          );
        heartbeat(last);
        await sleep(250);
      }
    },

    /**
     * Waits for /readyz, then restarts what holds state from before the restore (or its undo), as
     * Kubernetes' etcd restore procedure says: after readiness, so they start against a serving API
     * (RBAC included). Repeating it (a retry) only restarts them again.
     */
    async waitApiserverReady(input: { cluster: string; timeoutMs?: number }): Promise<string> {
      const kube = gw.kube(input.cluster);
      const deadline = Date.now() + (input.timeoutMs ?? 180_000);
      for (;;) {
        const r = await kube.readyz();
        if (r.ready) {
          const names = await restartStaleControllers(input.cluster);
          return `${r.detail}${names.length ? `; restarted ${names.join(', ')} (caches predate the restore)` : ''}`;
        }
        if (Date.now() > deadline)
          throw failure(FailureType.Timeout, `${input.cluster}: kube-apiserver not ready: ${r.detail}`);
        heartbeat(r.detail);
        await sleep(250);
      }
    },

    /** Key count and revision as each member itself holds them (serializable reads stay local). */
    async countKeys(input: {
      cluster: string;
      plan: { nodes: NodePlan[] };
    }): Promise<{ node: string; revision: number; keys: number }[]> {
      return Promise.all(
        input.plan.nodes.map(async (n) => {
          const shell = gw.shell(input.cluster, n.node);
          const r = await shell.exec(
            etcdctl(gw.node(input.cluster, n.node), 'get "" --prefix --count-only --consistency=s -w fields'),
            { check: true, timeoutMs: 60_000 },
          );
          const field = (name: string) => Number(r.stdout.match(new RegExp(`"${name}" : (\\d+)`))?.[1] ?? NaN);
          return { node: n.node, revision: field('Revision'), keys: field('Count') };
        }),
      );
    },

    /** Removes the staged snapshot (the journal and the aside dir stay for the record). */
    async cleanupStaged(input: NodeRef & { plan: NodePlan }): Promise<void> {
      const shell = gw.shell(input.cluster, input.node);
      await shell.exec(
        `rm -f ${shq(input.plan.stagedSnapshot)} ${shq(`${input.plan.stagedSnapshot}.part`)} && rm -rf ${shq(`${input.plan.workDir}/restored`)}`,
        { check: true },
      );
    },

    async readJournal(input: NodeRef & { plan: NodePlan }): Promise<string[]> {
      const r = await gw
        .shell(input.cluster, input.node)
        .exec(`cat ${shq(`${input.plan.workDir}/journal`)} 2>/dev/null || true`);
      return r.stdout.trim().split('\n').filter(Boolean);
    },
  };
}
