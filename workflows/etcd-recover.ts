// Runbook: quorum lost, recovered from the surviving members' own data (`drctl etcd recover`).
//   0 lease  1 preflight (read-only: who answers, what each survivor holds, the freshest one; refused
//     while a member still has a leader, or when the survivors are a majority)
//   2 go/no-go (members whose hosts do not answer: the approval attests they are fenced)
//   3 recheck (still no leader anywhere, the same freshest survivor)
//   4 fence: every dropped member whose host answers gets its etcd manifest parked
//   5 force-new-cluster: every survivor's kube-apiserver parked, every other survivor stopped; the freshest one stopped, its data dir moved
//     aside and copied back, `etcd --force-new-cluster` once on the copy, started again by its
//     kubelet: a cluster of one
//   6 add-survivors: each other survivor, one at a time: its data moved aside, member add as a
//     learner (a learner does not vote: the cluster of one keeps its quorum), its manifest set to
//     join, started, promoted once in sync, quorum proved
//   7 start-apiservers: each survivor's kube-apiserver back (a new pod: out of its crash back-off)
//   8 verify: the members are the survivors, one leader, the revision kept, the API server ready
// Undo (registered before each member is touched): its etcd stopped, its original data dir and
// manifest back, started again (the cluster as it was: no quorum, nothing lost); the API servers
// started again; a fenced member's manifest back in place.
//
// And `drctl etcd rejoin`: a returning member added back wiped, never with its old data.
//   0 lease  1 preflight (the cluster has a leader; the node answers and is not a started member)
//   2 go/no-go  3 recheck  4 wipe (its etcd stopped, its old data moved aside, kept)
//   5 member-add (as a learner, its manifest set to join)  6 start (then promoted once in sync)
//   7 verify (every member healthy, one leader)
// Undo: the member removed again, its etcd left stopped, its old data left aside.
import { defineQuery, workflowInfo } from '@temporalio/workflow';
import {
  attestationOf,
  hasLeader,
  planRecover,
  RECOVER_STEPS,
  type RecoverEvidence,
  type RecoverInput,
  type RecoverMemberState,
  type RecoverResult,
  REJOIN_STEPS,
  type RejoinEvidence,
  type RejoinInput,
  type RejoinResult,
} from '../common/etcd-recover.ts';
import { FailureType } from '../common/errors.ts';
import type { NodePlan } from '../common/restore.ts';
import type { RunbookStatus } from '../common/runbook.ts';
import { long, quick, undo } from './activity-options.ts';
import { refuse, Runbook } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<RunbookStatus>('status');

const DEFAULT_MEMBER_TIMEOUT_MS = 180_000;

/** Every member of the cluster's etcd, read as it is (activities/etcd-recover.ts readRecoverMember). */
async function readMembers(cluster: string) {
  const layout = await quick.describeEtcdLayout(cluster);
  const members = await Promise.all(
    layout.map((n) => quick.readRecoverMember({ cluster, node: n.node, site: n.site })),
  );
  return { layout, members };
}

/** One member, for a person: what it holds or why it is out. */
function described(m: RecoverMemberState): string {
  if (!m.reachable) return `LOST: ${m.error ?? 'host does not answer'}`;
  if (m.raftIndex === undefined)
    return `host answers, etcd ${m.etcdRunning ? 'does not answer' : 'stopped'}${m.parked ? ' (manifest parked)' : ''}`;
  return `${hasLeader(m) ? 'has a leader' : 'no leader'}, revision ${m.revision}, raft index ${m.raftIndex}${m.walWrittenAt ? `, last WAL write ${m.walWrittenAt}` : ''}`;
}

export async function etcdRecover(input: RecoverInput): Promise<RecoverResult> {
  const { cluster } = input;
  const memberTimeoutMs = input.memberTimeoutMs ?? DEFAULT_MEMBER_TIMEOUT_MS;
  const rb = new Runbook<RecoverEvidence>(
    {
      runbook: 'etcd-recover',
      title: `etcd recover of ${cluster} from its surviving members`,
      steps: RECOVER_STEPS,
      requestedBy: input.requestedBy,
      cluster,
      input,
    },
    {},
  );
  const { run } = rb;
  const readAll = async () => (await readMembers(cluster)).members;

  return rb.execute(
    async () => {
      // 0. The cluster's lease.
      await rb.lease(async () => [await quick.siteOfCluster({ cluster })]);

      // 1. Preflight, read-only.
      const { plan, policy, members, snapshot } = await run('preflight', async (s) => {
        const [members, policy, snapshots] = await Promise.all([
          readAll(),
          quick.loadApprovalPolicy(),
          quick.listSnapshots(cluster).catch(() => undefined),
        ]);
        for (const m of members) s.items[m.node] = described(m);
        const { plan, refusal } = planRecover(members);
        if (!plan) throw refuse(FailureType.PreflightFailed, `refused, nothing changed: ${refusal}`);
        const newest = snapshots?.snapshots[0];
        s.detail = `keep ${plan.keep} (revision ${plan.revisionKept}, raft index ${plan.raftIndexKept}); add back ${plan.addBack.join(', ') || 'none'}; drop ${plan.dropped.map((d) => d.node).join(', ')}`;
        return {
          plan,
          policy,
          members,
          snapshot: newest ? { key: newest.key, takenAt: newest.takenAt, revision: newest.revision } : undefined,
        };
      });
      const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
      const attestationNeeded = plan.dropped.filter((d) => d.fence === 'attestation').map((d) => d.node);
      rb.status.evidence = {
        cluster,
        survivors: members.filter((m) => m.node === plan.keep || plan.addBack.includes(m.node)),
        plan,
        attestationNeeded,
        newestSnapshot: snapshot,
        revisionsBeyondSnapshot: snapshot ? Math.max(0, plan.revisionKept - snapshot.revision) : undefined,
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      if (input.dryRun) {
        rb.endDryRun();
        return { outcome: 'dry-run', plan };
      }

      // 2. Go/no-go. Members that cannot be reached are fenced only by a person's word: the approval
      //    must carry it ("attest: site A is powered off"), signed with the decision.
      const decision = await rb.gate(policy, timeoutMs, 'recover', {
        approvalNeeds: attestationNeeded.length
          ? (reason) =>
              attestationOf(reason)
                ? undefined
                : `${attestationNeeded.join(', ')} cannot be reached: approve with --attest "<how they are fenced>" (e.g. "site A is powered off"); a lost member that comes back with its data while the survivors form a new cluster is split brain`
          : undefined,
      });
      const attestation = attestationOf(decision.reason);

      // 3. The gate may have waited: still no leader anywhere, the same survivor the freshest.
      await rb.recheck('recheck', async (s) => {
        const now = await readAll();
        for (const m of now) s.items[m.node] = described(m);
        const again = planRecover(now);
        if (!again.plan)
          throw refuse(
            FailureType.ChangedSinceApproval,
            `${cluster} changed while the gate waited; nothing was changed: ${again.refusal}`,
          );
        if (again.plan.keep !== plan.keep || again.plan.addBack.join() !== plan.addBack.join())
          throw refuse(
            FailureType.ChangedSinceApproval,
            `${cluster} changed while the gate waited (now: keep ${again.plan.keep}, add back ${again.plan.addBack.join(', ') || 'none'}); nothing was changed`,
          );
        s.detail = `as approved: keep ${plan.keep}, revision now ${again.plan.revisionKept}`;
      });

      const { runId } = workflowInfo();
      const plans: Record<string, NodePlan> = {};
      const planOf = async (node: string) => (plans[node] ??= await quick.recoverMemberPlan({ cluster, node, runId }));

      // 4. Fence: a dropped member whose host answers is parked; the others are attested.
      await run('fence', async (s) => {
        for (const d of plan.dropped) {
          if (d.fence === 'attestation') {
            s.items[d.node] = `host does not answer: fenced by attestation "${attestation}" (${decision.by})`;
            continue;
          }
          if (d.fence === 'already-parked') {
            s.items[d.node] = 'etcd manifest already parked';
            continue;
          }
          const p = await planOf(d.node);
          rb.undo(
            `${d.node}: etcd manifest back in place`,
            async () => {
              await undo.startComponent({ cluster, node: d.node, plan: p, component: 'etcd' });
            },
            `${d.node}: move ${'etcd.yaml'} from the parked dir back into /etc/kubernetes/manifests`,
          );
          s.items[d.node] = 'parking its etcd manifest';
          await quick.stopComponent({ cluster, node: d.node, plan: p, component: 'etcd' });
          s.items[d.node] = 'etcd manifest parked';
        }
        s.detail = plan.dropped.map((d) => `${d.node}: ${d.fence}`).join('; ');
      });

      // 5. The freshest survivor: a cluster of one on its own data. Every other survivor is stopped
      //    first: a member still running while another forces a new cluster keeps sending it raft
      //    messages (etcd: --force-new-cluster "panics if other members are still alive").
      const keep = await planOf(plan.keep);
      const memberUndo = (p: NodePlan, manifestToo: boolean) => async () => {
        await undo.stopComponent({ cluster, node: p.node, plan: p, component: 'etcd' });
        await undo.putOriginalBack({ cluster, node: p.node, plan: p });
        if (manifestToo) await undo.restoreEtcdManifest({ cluster, node: p.node, plan: p });
        await undo.startComponent({ cluster, node: p.node, plan: p, component: 'etcd' });
      };
      const others: NodePlan[] = [];
      await run('force-new-cluster', async (s) => {
        // Every survivor's API server parked first, as the restore does: its only etcd is about to
        // restart, and a kubelet restarting a static pod first deletes its mirror pod through that
        // API server, which hangs while etcd is down (measured: 90 s; kubernetes#139502).
        for (const node of [plan.keep, ...plan.addBack]) {
          const p = await planOf(node);
          if (!p.apiserver) continue;
          rb.undo(
            `${node}: kube-apiserver started again`,
            async () => {
              await undo.startComponent({ cluster, node, plan: p, component: 'kube-apiserver' });
            },
            `${node}: kube-apiserver.yaml back in /etc/kubernetes/manifests`,
          );
          s.items[node] = 'parking kube-apiserver';
          await quick.stopComponent({ cluster, node, plan: p, component: 'kube-apiserver' });
        }
        for (const node of plan.addBack) {
          const p = await planOf(node);
          rb.undo(
            `${node}: its original data and manifest back`,
            memberUndo(p, true),
            `${node}: etcd stopped, ${p.asideDir} back at ${p.dataDir} (if moved), the original manifest back, etcd started`,
          );
          s.items[node] = 'stopping etcd';
          await quick.stopComponent({ cluster, node, plan: p, component: 'etcd' });
          s.items[node] = 'stopped (added back next)';
          others.push(p);
        }
        rb.undo(
          `${plan.keep}: its original data back`,
          memberUndo(keep, false),
          `${plan.keep}: etcd stopped, ${keep.asideDir} back at ${keep.dataDir}, etcd started`,
        );
        s.items[plan.keep] = 'stopping etcd';
        await quick.stopComponent({ cluster, node: plan.keep, plan: keep, component: 'etcd' });
        s.items[plan.keep] = `moving ${keep.dataDir} aside (kept for the undo)`;
        await quick.moveDataDirAside({ cluster, node: plan.keep, plan: keep });
        await long.copyAsideBack({ cluster, node: plan.keep, plan: keep });
        s.items[plan.keep] = 'etcd --force-new-cluster';
        await long.forceNewCluster({ cluster, node: plan.keep, plan: keep });
        s.items[plan.keep] = 'starting etcd';
        await quick.startComponent({ cluster, node: plan.keep, plan: keep, component: 'etcd' });
        const q = await long.verifyQuorum({
          cluster,
          plan: { nodes: [keep] },
          timeoutMs: memberTimeoutMs,
          revisionsAgree: false,
        });
        s.items[plan.keep] = `a cluster of one, revision ${q.revision}`;
        s.detail = `${plan.keep} leads a cluster of one at revision ${q.revision} (kept ${plan.revisionKept} at preflight)`;
      });

      // 6. Every other survivor added back, one at a time, wiped: it syncs from the forced member.
      const joined: NodePlan[] = [keep];
      await run('add-survivors', async (s) => {
        for (const p of others) s.items[p.node] = 'pending';
        for (const p of others) {
          const node = p.node;
          s.items[node] = `moving ${p.dataDir} aside`;
          await quick.moveDataDirAside({ cluster, node, plan: p });
          s.items[node] = `member add through ${plan.keep}`;
          const added = await quick.addMember({ cluster, via: plan.keep, node });
          await quick.setJoinFlags({ cluster, node, plan: p, initialCluster: added.initialCluster });
          s.items[node] = 'starting etcd (joins as a learner)';
          await quick.startComponent({ cluster, node, plan: p, component: 'etcd' });
          s.items[node] = 'promoting it once in sync';
          await long.promoteMember({ cluster, via: plan.keep, node, timeoutMs: memberTimeoutMs });
          joined.push(p);
          const q = await long.verifyQuorum({
            cluster,
            plan: { nodes: joined },
            timeoutMs: memberTimeoutMs,
            revisionsAgree: false,
          });
          s.items[node] = `joined, revision ${q.revision}`;
        }
        s.detail = `${joined.length} member(s): ${joined.map((p) => p.node).join(', ')}`;
      });

      // 7. Each survivor's API server back, as a new pod (parked, it carries a new annotation): out
      //    of the crash back-off it was in while etcd had no quorum (up to 5 min).
      await run('start-apiservers', async (s) => {
        for (const p of joined.filter((x) => x.apiserver)) {
          await quick.startComponent({ cluster, node: p.node, plan: p, component: 'kube-apiserver' });
          s.items[p.node] = 'kube-apiserver started';
        }
        s.detail = `${Object.keys(s.items).length} API server(s) started`;
      });

      // 8. Verify: the survivors are the members, one leader, nothing older than what was kept.
      const verified = await run('verify', async (s) => {
        const q = await long.verifyQuorum({
          cluster,
          plan: { nodes: joined },
          minRevision: plan.revisionKept,
          timeoutMs: memberTimeoutMs,
          revisionsAgree: false,
        });
        s.items.members = q.members.join(', ');
        s.items.apiserver = await long.waitApiserverReady({ cluster, timeoutMs: memberTimeoutMs });
        s.detail = `${q.members.length} members, one leader, revision ${q.revision} (kept ${plan.revisionKept})`;
        return q;
      });
      rb.forgetUndos();
      return {
        outcome: 'recovered',
        plan,
        attestation,
        members: verified.members,
        revision: verified.revision,
      };
    },
    (cause) => `etcd recover of ${cluster} failed (${cause}); the survivors' original data was put back`,
  );
}

export async function etcdRejoin(input: RejoinInput): Promise<RejoinResult> {
  const { cluster, node } = input;
  const memberTimeoutMs = input.memberTimeoutMs ?? DEFAULT_MEMBER_TIMEOUT_MS;
  const rb = new Runbook<RejoinEvidence>(
    {
      runbook: 'etcd-rejoin',
      title: `etcd rejoin of ${node} to ${cluster}, wiped`,
      steps: REJOIN_STEPS,
      requestedBy: input.requestedBy,
      cluster,
      input,
    },
    {},
  );
  const { run } = rb;

  /** The cluster as it is: every member read, one with a leader to act through, the member list. */
  const look = async () => {
    const { layout, members } = await readMembers(cluster);
    if (!layout.some((n) => n.node === node))
      throw refuse(
        FailureType.PreflightFailed,
        `${node} is not a node of ${cluster} in the config (${layout.map((n) => n.node).join(', ')})`,
      );
    const via = members.find((m) => m.node !== node && hasLeader(m));
    const listed = via ? await quick.listMembers({ cluster, via: via.node }) : [];
    return { members, via, listed, returning: members.find((m) => m.node === node)! };
  };

  return rb.execute(
    async () => {
      await rb.lease(async () => [await quick.siteOfCluster({ cluster })]);

      const { via, policy, listed, returning, members } = await run('preflight', async (s) => {
        const [seen, policy] = await Promise.all([look(), quick.loadApprovalPolicy()]);
        for (const m of seen.members) s.items[m.node] = described(m);
        const problems: string[] = [];
        if (!seen.via)
          problems.push(`no member of ${cluster} has a leader: recover its quorum first (drctl etcd recover)`);
        if (!seen.returning.reachable)
          problems.push(`${node}: its host does not answer (${seen.returning.error ?? ''}); bring it back first`);
        const mine = seen.listed.find((m) => m.peerUrl === seen.returning.peerUrl);
        if (mine?.name && hasLeader(seen.returning))
          throw refuse(
            FailureType.PreflightFailed,
            `${node} is already a started member of ${cluster} and has a leader: nothing to do`,
          );
        const unstarted = seen.listed.filter((m) => !m.name && m.peerUrl !== seen.returning.peerUrl);
        if (unstarted.length)
          problems.push(
            `another member is added but not started (${unstarted.map((m) => m.peerUrl).join(', ')}): one at a time`,
          );
        if (problems.length)
          throw refuse(FailureType.PreflightFailed, `refused, nothing changed:\n${problems.join('\n')}`);
        s.detail = `through ${seen.via!.node}; members ${seen.listed.map((m) => m.name || '(unstarted)').join(', ')}; ${node}'s data is moved aside, never started`;
        return { via: seen.via!.node, policy, listed: seen.listed, returning: seen.returning, members: seen.members };
      });
      const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
      rb.status.evidence = {
        cluster,
        node,
        via,
        members: listed.map((m) => m.name || `(unstarted ${m.peerUrl})`),
        returning,
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      if (input.dryRun) {
        rb.endDryRun();
        return { outcome: 'dry-run', node, members: listed.map((m) => m.name) };
      }

      await rb.gate(policy, timeoutMs, 'rejoin');

      await rb.recheck('recheck', async (s) => {
        const now = await look();
        if (!now.via?.node)
          throw refuse(
            FailureType.ChangedSinceApproval,
            `${cluster} lost its leader while the gate waited; nothing was changed`,
          );
        if (!now.returning.reachable)
          throw refuse(
            FailureType.ChangedSinceApproval,
            `${node} stopped answering while the gate waited; nothing was changed`,
          );
        s.detail = `as approved: ${cluster} has a leader; ${node} answers`;
      });

      const p = await quick.recoverMemberPlan({ cluster, node, runId: workflowInfo().runId });
      rb.undo(
        `${node}: removed from the members again, its etcd left stopped`,
        async () => {
          await undo.removeMember({ cluster, via, node });
          await undo.stopComponent({ cluster, node, plan: p, component: 'etcd' });
        },
        `${node}: not in \`etcdctl member list\`, its etcd manifest parked; its old data stays at ${p.asideDir}`,
      );
      await run('wipe', async (s) => {
        await quick.stopComponent({ cluster, node, plan: p, component: 'etcd' });
        const moved = await quick.moveDataDirAside({ cluster, node, plan: p });
        s.detail =
          moved === 'no-data-dir'
            ? `${p.dataDir}: no data (nothing to set aside)`
            : `its old data at ${p.asideDir} (kept, never started again)`;
      });
      const added = await run('member-add', async (s) => {
        const a = await quick.addMember({ cluster, via, node });
        await quick.setJoinFlags({ cluster, node, plan: p, initialCluster: a.initialCluster });
        s.detail = `${a.outcome} through ${via}; --initial-cluster=${a.initialCluster} --initial-cluster-state=existing`;
        return a;
      });
      await run('start', async (s) => {
        // A returning host's kubelet may need a restart to start it (kubernetes#112814).
        const started = await long.startEtcd({ cluster, node, plan: p });
        const promoted = await long.promoteMember({ cluster, via, node, timeoutMs: memberTimeoutMs });
        s.detail = `${started}; ${promoted === 'promoted' ? 'caught up as a learner, then promoted to a voting member' : 'already a voting member'}`;
      });
      const verified = await run('verify', async (s) => {
        // Each listed member by its node in the config (by peer URL): a member drctl does not know is named as such.
        const nodes = (await quick.listMembers({ cluster, via })).map((m) => {
          const known = members.find((x) => x.peerUrl === m.peerUrl);
          if (!known)
            throw refuse(
              FailureType.VerificationFailed,
              `${cluster} lists a member drctl has no node for: ${m.name} ${m.peerUrl}`,
            );
          return { node: known.node, memberName: known.memberName, peerUrl: m.peerUrl };
        });
        const q = await long.verifyQuorum({
          cluster,
          plan: { nodes },
          timeoutMs: memberTimeoutMs,
          revisionsAgree: false,
        });
        s.detail = `${q.members.length} members healthy, one leader, revision ${q.revision}`;
        return q;
      });
      rb.forgetUndos();
      return {
        outcome: 'rejoined',
        node,
        members: verified.members.length ? verified.members : added.members,
        oldDataAt: p.asideDir,
      };
    },
    (cause) => `etcd rejoin of ${node} to ${cluster} failed (${cause}); it was removed from the members again`,
  );
}
