// `drctl etcd recover` and `drctl etcd rejoin`, the member-level activities. Reads first: a member
// is looked at (host, etcd process, `endpoint status`, its WAL's last write, where its manifest
// is) without starting or changing anything. The changes go through RecoverNode (one script per
// step, detached under the node's lock, journaled) and etcd's own member API, each looking first
// (a member add finds a member already listed with the peer URL; a forced member is forced once).
import { FailureType, failure } from '../common/errors.ts';
import { type RecoverMemberState, initialClusterOf } from '../common/etcd-recover.ts';
import { type NodePlan, runTag } from '../common/restore.ts';
import type { Gateways } from '../gateways/index.ts';
import type { RecoverNode } from '../gateways/recover-node.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { heartbeat, heartbeating } from './support.ts';

type NodeRef = { cluster: string; node: string };

/** The member's config as a plan for RestoreNode's steps (no snapshot: nothing is staged or restored). */
function memberPlan(gw: Gateways, r: NodeRef, tag: string, mountPoint: boolean): NodePlan {
  const n = gw.node(r.cluster, r.node);
  const dataDir = n.etcd.dataDir.replace(/\/+$/, '');
  const parent = dataDir.replace(/\/[^/]+$/, '') || '/';
  const contents = mountPoint;
  return {
    node: r.node,
    memberName: n.etcd.memberName,
    peerUrl: n.etcd.peerUrl,
    clientUrl: n.etcd.clientUrl,
    dataDir,
    asideDir: contents ? `${dataDir}/.drctl-aside-${tag}` : `${dataDir}.drctl-${tag}`,
    workDir: `${parent}/drctl-recover-${tag}`,
    stagedSnapshot: '',
    tool: 'etcdutl',
    markCompacted: false,
    apiserver: n.controlPlane.profile === 'kubeadm',
    restoreCommand: '',
    ...(contents ? { layout: 'contents' as const } : {}),
  };
}

export function createEtcdRecoverActivities(gw: Gateways) {
  const node = (r: NodeRef): RecoverNode => gw.recoverNode(r.cluster, r.node);

  /** A step's result, or its refusal as a failure naming the member (nothing was done). */
  async function step<R extends { outcome: string } | { outcome: string; reason: string }>(
    r: NodeRef,
    what: string,
    work: Promise<R>,
  ): Promise<Exclude<R, { reason: string }>['outcome']> {
    const result = await heartbeating(what, work);
    if ('reason' in result)
      throw failure(
        result.outcome === 'etcd-running' ? FailureType.ChangedSinceApproval : FailureType.RemoteCommandFailed,
        `${r.cluster}/${r.node}: ${what}: ${result.reason as string}`,
      );
    return result.outcome as Exclude<R, { reason: string }>['outcome'];
  }

  return {
    /**
     * One member as it is, read-only, in one SSH command: does its host answer, does etcd run, what
     * it holds (revision, committed raft index, whether it has a leader), when its WAL was last
     * written, where its manifest is.
     */
    async readRecoverMember(r: NodeRef & { site?: string }): Promise<RecoverMemberState> {
      const n = gw.node(r.cluster, r.node);
      const base: RecoverMemberState = {
        node: r.node,
        site: r.site,
        memberName: n.etcd.memberName,
        peerUrl: n.etcd.peerUrl,
        reachable: false,
        etcdRunning: false,
      };
      let data: Awaited<ReturnType<RecoverNode['lookAtData']>>;
      try {
        data = await node(r).lookAtData();
      } catch (err) {
        return { ...base, error: `host does not answer: ${(err as Error).message.split('\n')[0]}` };
      }
      const running = data.etcdRunning;
      const m = data.metrics;
      return {
        ...base,
        reachable: true,
        etcdRunning: running,
        parked: data.manifest === 'parked',
        walWrittenAt: data.walWrittenAt,
        ...(m && running
          ? {
              memberId: m.memberId,
              hasLeader: m.hasLeader,
              revision: m.revision,
              raftIndex: Math.max(m.committed, m.applied),
            }
          : {}),
        error: !running ? 'etcd is not running' : m ? undefined : `its /metrics: ${data.metricsError ?? 'no answer'}`,
      };
    },

    /** The member's plan for this run: its data dir's layout (a mount point or not) read from the node. */
    async recoverMemberPlan(r: NodeRef & { runId: string }): Promise<NodePlan> {
      const space = await gw.restoreNode(r.cluster, r.node).diskSpace();
      return memberPlan(gw, r, runTag(r.runId), space.mountPoint);
    },

    /** The original data, moved aside, copied back into place for --force-new-cluster to work on. */
    async copyAsideBack(r: NodeRef & { plan: NodePlan }): Promise<'copied' | 'already-copied'> {
      return step(r, 'copying the data back', node(r).copyAsideBack(r.plan));
    },

    /** `etcd --force-new-cluster` once on the member's data (its manifest parked), until it leads a cluster of one. */
    async forceNewCluster(r: NodeRef & { plan: NodePlan }): Promise<'forced' | 'already-forced'> {
      return step(r, '--force-new-cluster', node(r).forceNewCluster(r.plan));
    },

    /**
     * `member add` of `node` through `via` (a member with a leader); returns --initial-cluster for
     * it: every member as listed, the new one by its name. A member already listed with its peer
     * URL is not added twice.
     */
    async addMember(input: {
      cluster: string;
      via: string;
      node: string;
    }): Promise<{ outcome: 'added' | 'already-listed'; initialCluster: string; members: string[] }> {
      const n = gw.node(input.cluster, input.node);
      const name = n.etcd.memberName;
      const r = await gw.etcd(input.cluster, input.via).memberAdd(name, n.etcd.peerUrl);
      const listed = r.members.map((m) => ({
        name: m.peerURLs.includes(n.etcd.peerUrl) ? name : m.name,
        peerUrl: m.peerURLs[0] ?? '',
      }));
      if (listed.some((m) => !m.name || !m.peerUrl))
        throw failure(
          FailureType.EtcdUnhealthy,
          `${input.cluster}: another member is listed but not started (${listed
            .filter((m) => !m.name)
            .map((m) => m.peerUrl)
            .join(', ')}): etcd adds one member at a time; start or remove it first`,
        );
      return { outcome: r.outcome, initialCluster: initialClusterOf(listed), members: listed.map((m) => m.name) };
    },

    /**
     * The learner `node` made a voting member through `via` once it has caught up with the leader
     * (etcd refuses before): tried every second until `timeoutMs`, heartbeating.
     */
    async promoteMember(input: {
      cluster: string;
      via: string;
      node: string;
      timeoutMs: number;
    }): Promise<'promoted' | 'already-voting'> {
      const peerUrl = gw.node(input.cluster, input.node).etcd.peerUrl;
      const until = Date.now() + input.timeoutMs;
      for (;;) {
        const r = await gw.etcd(input.cluster, input.via).memberPromote(peerUrl);
        heartbeat({ promote: input.node, answer: r });
        if (r !== 'not-ready') return r;
        if (Date.now() > until)
          throw failure(
            FailureType.VerificationFailed,
            `${input.cluster}/${input.node}: still a learner not in sync with the leader after ${Math.round(input.timeoutMs / 1000)} s`,
          );
        await sleep(1000);
      }
    },

    /** Undo of addMember: the member with the node's peer URL removed, through `via`. */
    async removeMember(input: { cluster: string; via: string; node: string }): Promise<'removed' | 'not-listed'> {
      return gw.etcd(input.cluster, input.via).memberRemove(gw.node(input.cluster, input.node).etcd.peerUrl);
    },

    /** The members as `via` lists them: name and first peer URL ('' for a member not started yet). */
    async listMembers(input: { cluster: string; via: string }): Promise<{ name: string; peerUrl: string }[]> {
      return (await gw.etcd(input.cluster, input.via).members()).map((m) => ({
        name: m.name,
        peerUrl: m.peerURLs[0] ?? '',
      }));
    },

    /** etcd started from its parked manifest; the kubelet restarted if it does not start it (kubernetes#112814). */
    async startEtcd(
      r: NodeRef & { plan: NodePlan },
    ): Promise<'started' | 'already-running' | 'started-after-kubelet-restart'> {
      return step(r, 'starting etcd', node(r).startEtcd(r.plan));
    },

    /** The parked manifest set to join the existing cluster (the original kept for the undo). */
    async setJoinFlags(r: NodeRef & { plan: NodePlan; initialCluster: string }): Promise<'written' | 'already'> {
      return node(r).setJoinFlags(r.plan, r.initialCluster);
    },

    /** Undo of setJoinFlags. */
    async restoreEtcdManifest(r: NodeRef & { plan: NodePlan }): Promise<'restored' | 'nothing-to-restore'> {
      return node(r).restoreManifest(r.plan);
    },
  };
}
