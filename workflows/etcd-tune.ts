// Runbook: a rolling change of etcd's heartbeat interval and election timeout (`drctl etcd tune`).
//   0 lease  1 preflight (read-only: values inside etcd's rules, every member healthy, who leads)
//   2 go/no-go  3 recheck (still healthy, manifests as planned)
//   4 roll: one member at a time, followers first, the leader last: a member that leads hands
//     leadership to the member rolled before it, its manifest is edited (the kubelet restarts
//     it), then wait until it runs the new values, healthy, with a leader
//   5 verify: every member runs the new values, healthy, one leader
// Undo (registered before each member is touched): that member's old values back, and waited for.
import { defineQuery, patched } from '@temporalio/workflow';
import {
  rollOrder,
  type TuneEvidence,
  type TuneInput,
  type TunePlanMember,
  type TuneResult,
  tuneRefusal,
  TUNE_STEPS,
  type Tuning,
} from '../common/etcd-tuning.ts';
import { FailureType } from '../common/errors.ts';
import type { RunbookStatus } from '../common/runbook.ts';
import { long, quick, undo } from './activity-options.ts';
import { refuse, Runbook } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<RunbookStatus>('status');

const DEFAULT_MEMBER_TIMEOUT_MS = 120_000;
const text = (t: Tuning) => `${t.heartbeatMs}/${t.electionMs} ms`;

export async function etcdTune(input: TuneInput): Promise<TuneResult> {
  const { cluster } = input;
  const to: Tuning = { heartbeatMs: input.heartbeatMs, electionMs: input.electionMs };
  const memberTimeoutMs = input.memberTimeoutMs ?? DEFAULT_MEMBER_TIMEOUT_MS;
  const rb = new Runbook<TuneEvidence>(
    {
      runbook: 'etcd-tune',
      title: `etcd tune of ${cluster} to heartbeat ${to.heartbeatMs} ms, election ${to.electionMs} ms`,
      steps: TUNE_STEPS,
      requestedBy: input.requestedBy,
      cluster,
      input,
    },
    {},
  );
  const { run } = rb;
  const read = (node: string) => quick.readTuneMember({ cluster, node });

  return rb.execute(
    async () => {
      const refusal = tuneRefusal(to);
      if (refusal) throw refuse(FailureType.PreflightFailed, `refused, nothing changed: ${refusal}`);
      // 0. The cluster's lease (a stretched cluster's own; a site's cluster, its site's).
      await rb.lease(async () => [await quick.siteOfCluster({ cluster })]);

      // 1. Preflight, read-only: every member healthy (a roll takes one member away at a time: with
      //    one already down, that could be the quorum), all agreeing on one leader.
      const { order, policy } = await run('preflight', async (s) => {
        const [layout, policy] = await Promise.all([quick.describeEtcdLayout(cluster), quick.loadApprovalPolicy()]);
        const members = await Promise.all(layout.map((n) => read(n.node)));
        const problems: string[] = [];
        for (const m of members) {
          s.items[m.node] = m.healthy
            ? `healthy, runs ${m.running ? text(m.running) : '?'}${m.manifest && m.running && text(m.manifest) !== text(m.running) ? ` (manifest says ${text(m.manifest)})` : ''}`
            : `NOT healthy: ${m.error ?? 'no leader'}`;
          if (!m.healthy) problems.push(`${m.node}: not healthy (${m.error ?? 'no leader'})`);
          else if (!m.manifest) problems.push(`${m.node}: no etcd manifest`);
        }
        const leaders = new Set(members.flatMap((m) => (m.leader ? [m.leader] : [])));
        if (leaders.size !== 1)
          problems.push(`members do not agree on one leader (${[...leaders].join(', ') || 'none'})`);
        if (problems.length)
          throw refuse(FailureType.PreflightFailed, `refused, nothing changed:\n${problems.join('\n')}`);
        const leaderId = [...leaders][0];
        const order: TunePlanMember[] = rollOrder(
          members.map((m) => ({
            node: m.node,
            site: layout.find((n) => n.node === m.node)?.site,
            leader: m.memberId === leaderId,
            from: m.manifest!,
          })),
        );
        s.detail = `${members.length}/${members.length} healthy; order ${order.map((m) => m.node + (m.leader ? ' (leader)' : '')).join(', ')}`;
        return { order, policy };
      });
      const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
      rb.status.evidence = {
        cluster,
        to,
        order,
        healthyAtPreflight: order.length,
        leader: order.find((m) => m.leader)?.node,
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      const todo = order.filter((m) => text(m.from) !== text(to));
      if (input.dryRun || !todo.length) {
        for (const s of rb.status.steps)
          if (s.state === 'pending') rb.skip(s.step, input.dryRun ? 'dry run' : 'nothing to change');
        if (input.dryRun) rb.setPhase('dry-run');
        return { outcome: input.dryRun ? 'dry-run' : 'already', to, order, changed: {} };
      }

      // 2. Go/no-go. A rejection, a timeout or a cancel here changes nothing.
      await rb.gate(policy, timeoutMs, 'tune');

      // 3. The gate may have waited: still every member healthy, every manifest as planned.
      await rb.recheck('recheck', async (s) => {
        const now = await Promise.all(order.map((m) => read(m.node)));
        const changes: string[] = [];
        for (const m of now) {
          const planned = order.find((o) => o.node === m.node)!;
          s.items[m.node] = m.healthy ? 'healthy' : `NOT healthy: ${m.error ?? 'no leader'}`;
          if (!m.healthy) changes.push(`${m.node}: no longer healthy (${m.error ?? 'no leader'})`);
          else if (!m.manifest || text(m.manifest) !== text(planned.from))
            changes.push(
              `${m.node}: manifest now says ${m.manifest ? text(m.manifest) : 'nothing'}, planned from ${text(planned.from)}`,
            );
        }
        if (changes.length)
          throw refuse(
            FailureType.ChangedSinceApproval,
            `${cluster} changed while the gate waited; nothing was changed:\n${changes.join('\n')}`,
          );
        s.detail = `as approved: ${now.length}/${now.length} healthy`;
      });

      // 4. The roll: one member at a time, each back before the next, the leader last.
      const changed: Record<string, string> = {};
      // Runs recorded before the hand-off existed replay without it.
      const handOff = patched('tune-hands-off-leadership');
      await run('roll', async (s) => {
        for (const m of order) s.items[m.node] = 'pending';
        let rolled: string | undefined;
        for (const m of order) {
          if (text(m.from) === text(to)) {
            s.items[m.node] = `already ${text(to)}`;
            changed[m.node] = 'already';
            continue;
          }
          rb.undo(
            `${m.node}: back to ${text(m.from)}`,
            async () => {
              await undo.setMemberTuning({ cluster, node: m.node, tuning: m.from, expect: to });
              await long.waitMemberTuned({ cluster, node: m.node, tuning: m.from, timeoutMs: memberTimeoutMs });
            },
            `${m.node}: /etc/kubernetes/manifests/etcd.yaml should say --heartbeat-interval=${m.from.heartbeatMs} --election-timeout=${m.from.electionMs}, and the member be healthy`,
          );
          let handed = '';
          if (handOff) {
            // Whoever leads now (the planned leader, or one elected during the roll) is restarted
            // as a follower: leadership goes to the member rolled last (or the next, if none yet).
            const heir = rolled ?? order.find((o) => o.node !== m.node)!.node;
            s.items[m.node] = `handing leadership to ${heir} if it leads`;
            const h = await quick.handOffLeadership({ cluster, node: m.node, to: heir });
            if (h.outcome === 'moved') handed = `, leadership handed to ${heir} first`;
          }
          s.items[m.node] = `writing ${text(to)}${m.leader ? ' (leader)' : ''}${handed}`;
          changed[m.node] = await quick.setMemberTuning({ cluster, node: m.node, tuning: to, expect: m.from });
          s.items[m.node] = 'waiting until it is back';
          await long.waitMemberTuned({ cluster, node: m.node, tuning: to, timeoutMs: memberTimeoutMs });
          s.items[m.node] = `back with ${text(to)}, healthy${handed}`;
          rolled = m.node;
        }
        s.detail = `${Object.values(changed).filter((c) => c === 'written').length} member(s) restarted with ${text(to)}`;
      });

      // 5. Verify: every member runs the new values, healthy, one leader.
      await run('verify', async (s) => {
        const now = await Promise.all(order.map((m) => read(m.node)));
        const bad = now.filter((m) => !m.healthy || !m.running || text(m.running) !== text(to));
        for (const m of now)
          s.items[m.node] = `${m.healthy ? 'healthy' : 'NOT healthy'}, runs ${m.running ? text(m.running) : '?'}`;
        const leaders = new Set(now.flatMap((m) => (m.leader ? [m.leader] : [])));
        if (bad.length || leaders.size !== 1)
          throw refuse(
            FailureType.VerificationFailed,
            `after the roll: ${bad.map((m) => m.node).join(', ') || 'no member'} not as planned; ${leaders.size} leader(s)`,
          );
        s.detail = `${now.length}/${now.length} members healthy with ${text(to)}, one leader`;
      });
      rb.forgetUndos();
      return { outcome: 'tuned', to, order, changed };
    },
    (cause) => `etcd tune of ${cluster} failed (${cause}); the members changed were put back`,
  );
}
