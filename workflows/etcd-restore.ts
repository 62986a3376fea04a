// Runbook: etcd quorum restore across every control-plane node.
//   1 preflight (read-only)  2 distribute the snapshot  3 go/no-go
//   4 stop kube-apiserver and etcd on ALL nodes  5 move data dirs aside  6 restore each member
//   7 start etcd, prove quorum, start kube-apiserver  8 verify
// A failure or cancel in 4-8 undoes in reverse on every node and proves the cluster is back on its
// pre-restore data. Each step's undo is registered right before the step runs (its fan-out may
// fail half-way; every undo is idempotent, so undoing a node the step never reached is harmless).
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { Component } from '../activities/restore.ts';
import { FailureType } from '../common/errors.ts';
import { waitForDecision } from './approval.ts';
import { stepRunner } from './steps.ts';
import {
  type DecisionRecord,
  type NodePlan,
  planRestore,
  RESTORE_STEPS,
  type RestoreEvidence,
  type RestoreInput,
  type RestorePlan,
  type RestoreResult,
  type RestoreStatus,
  type RestoreStep,
  type StepStatus,
} from '../common/restore.ts';

export { approveSignal, decideUpdate, rejectSignal } from './approval.ts';
export const statusQuery = defineQuery<RestoreStatus>('status');

// Every activity heartbeats while it waits, so a killed worker's step is retried within 20 s.
const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});
const long = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '10 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [FailureType.SnapshotCorrupt],
  },
});
/** Undo steps retry until they succeed: a node that is briefly unreachable must still be put back. */
const undo = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
});

export async function etcdRestore(input: RestoreInput): Promise<RestoreResult> {
  const { cluster } = input;
  const runId = workflowInfo().runId;
  const timings: Record<string, number> = {};
  const status: RestoreStatus = {
    cluster,
    phase: 'running',
    requestedBy: input.requestedBy,
    steps: RESTORE_STEPS.map((step) => ({ step, state: 'pending', nodes: {} })),
    decisions: [],
  };
  setHandler(statusQuery, () => status, { description: 'Phase, evidence, plan and per-node progress of every step' });

  const step = (name: RestoreStep | 'compensate'): StepStatus => {
    let s = status.steps.find((x) => x.step === name);
    if (!s) status.steps.push((s = { step: name, state: 'pending', nodes: {} }));
    return s;
  };
  /** Runs one step, recording its state and duration for `drctl status`. */
  const run = stepRunner(step, (name, ms) => (timings[name] = ms));
  /** The same activity on every node at once, with per-node progress. */
  function onEveryNode<T>(s: StepStatus, nodes: NodePlan[], fn: (n: NodePlan) => Promise<T>): Promise<T[]> {
    return Promise.all(
      nodes.map(async (n) => {
        s.nodes[n.node] = 'running';
        try {
          const out = await fn(n);
          s.nodes[n.node] = typeof out === 'string' ? out : 'done';
          return out;
        } catch (err) {
          s.nodes[n.node] = `failed: ${(err as Error).message}`;
          throw err;
        }
      }),
    );
  }

  const fail = (err: unknown): never => {
    status.phase = 'failed';
    status.error = (err as Error).message;
    throw err;
  };

  // 1. Preflight: read-only.
  const { shape, policy, snapshot, preflight } = await run('preflight', async (s) => {
    const [shape, policy, snapshot] = await Promise.all([
      quick.describeCluster(cluster),
      quick.loadApprovalPolicy(),
      quick.resolveSnapshot({ cluster, snapshot: input.snapshot }),
    ]);
    const preflight = await Promise.all(shape.nodes.map((n) => quick.restorePreflightNode({ cluster, node: n.name })));
    const problems: string[] = [];
    for (const p of preflight) {
      s.nodes[p.node] = p.reachable
        ? `etcd ${p.etcdVersion} via ${p.tool}, ${p.etcdHealthy ? 'healthy' : 'down'}`
        : `unreachable: ${p.error}`;
      if (!p.reachable) problems.push(`${p.node}: unreachable: ${p.error}`);
      else if ((p.freeBytes ?? 0) < snapshot.size * 2 + 64 * 1024 * 1024) {
        problems.push(
          `${p.node}: ${p.freeBytes} bytes free next to the data dir; needs ${snapshot.size * 2 + 64 * 1024 * 1024} (staged + restored snapshot)`,
        );
      }
    }
    if (problems.length)
      throw ApplicationFailure.create({
        type: FailureType.PreflightFailed,
        message: `preflight failed:\n${problems.join('\n')}`,
        nonRetryable: true,
      });
    const healthy = preflight.filter((p) => p.etcdHealthy).length;
    const quorum = healthy >= Math.floor(shape.nodes.length / 2) + 1;
    s.detail = `${healthy}/${shape.nodes.length} members healthy${quorum ? ' (quorum)' : ''}`;
    return { shape, policy, snapshot, preflight, quorum };
  }).catch(fail);
  const plan: RestorePlan = planRestore({ shape, snapshot, runId, preflight, bumpRevision: input.bumpRevision });
  status.plan = plan;
  const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
  const evidence: RestoreEvidence = {
    snapshotKey: snapshot.key,
    snapshotTakenAt: snapshot.takenAt,
    snapshotAgeSeconds: Math.round((Date.now() - Date.parse(snapshot.takenAt)) / 1000),
    revision: snapshot.revision,
    etcdHash: snapshot.etcdHash,
    sha256: snapshot.sha256,
    liveRevision: plan.liveRevision,
    writesLost: plan.writesLost,
    bumpRevision: plan.nodes[0]?.bumpRevision,
    quorumAtPreflight: preflight.filter((p) => p.etcdHealthy).length >= Math.floor(shape.nodes.length / 2) + 1,
    perNode: plan.nodes.map((n) => ({
      node: n.node,
      command: n.restoreCommand,
      etcdVersion: preflight.find((p) => p.node === n.node)?.etcdVersion,
      freeBytes: preflight.find((p) => p.node === n.node)?.freeBytes,
    })),
    approvers: policy.approvers,
    twoPersonRule: policy.twoPersonRule,
    approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
  };
  status.evidence = evidence;
  // Restoring a healthy cluster throws away its newer writes: only with --force.
  const refusal =
    evidence.quorumAtPreflight && !input.force
      ? `${cluster} has quorum (${step('preflight').detail}): restoring would throw away every write since the snapshot. Use --force if that is what you want.`
      : undefined;
  if (input.dryRun) {
    status.phase = 'dry-run';
    for (const s of status.steps) if (s.state === 'pending') s.state = 'skipped';
    return { outcome: 'dry-run', plan, timings, refusal };
  }
  if (refusal)
    fail(ApplicationFailure.create({ type: FailureType.ClusterHasQuorum, nonRetryable: true, message: refusal }));

  // 2. Distribute: the same snapshot to every node, checked there. Nothing is touched yet.
  const cleanupStaged = () =>
    Promise.all(plan.nodes.map((n) => undo.cleanupStaged({ cluster, node: n.node, plan: n })));
  try {
    await run('distribute', (s) =>
      onEveryNode(s, plan.nodes, (n) =>
        long
          .stageSnapshot({ cluster, node: n.node, plan: n, snapshot })
          .then((r) => (r.skipped ? 'already staged' : 'staged + verified')),
      ),
    );
  } catch (err) {
    await CancellationScope.nonCancellable(cleanupStaged);
    fail(err);
  }

  // 3. Go/no-go. A rejection, a timeout or a cancel here leaves everything as it was.
  let approval: DecisionRecord;
  try {
    approval = await run('approval', async (s) => {
      const d = await waitForDecision(status, policy, input.requestedBy, timeoutMs, 'restore');
      s.detail = `${d.approve ? 'approved' : 'rejected'} by ${d.by}${d.reason ? `: ${d.reason}` : ''}`;
      return d;
    });
  } catch (err) {
    await CancellationScope.nonCancellable(cleanupStaged);
    status.phase = 'aborted';
    throw err;
  }
  status.approval = approval;
  if (!approval.approve) {
    await CancellationScope.nonCancellable(cleanupStaged);
    status.phase = 'aborted';
    throw ApplicationFailure.create({
      type: FailureType.ApprovalRejected,
      nonRetryable: true,
      message: `rejected by ${approval.by}${approval.reason ? `: ${approval.reason}` : ''}; nothing was changed`,
    });
  }
  status.phase = 'running';

  const compensations: { name: string; fn: () => Promise<unknown> }[] = [];
  const onFailure = (name: string, fn: () => Promise<unknown>) => compensations.unshift({ name, fn });
  const apiNodes = plan.nodes.filter((n) => n.apiserver);
  const each = (component: Component, nodes: NodePlan[], what: 'stopComponent' | 'startComponent', acts = undo) =>
    Promise.all(nodes.map((n) => acts[what]({ cluster, node: n.node, plan: n, component })));

  try {
    // 4. Stop kube-apiserver, then etcd, on ALL nodes.
    await run('stop', async (s) => {
      onFailure('start kube-apiserver', async () => {
        await each('kube-apiserver', apiNodes, 'startComponent');
        await undo.waitApiserverReady({ cluster });
      });
      await onEveryNode(s, apiNodes, (n) =>
        quick.stopComponent({ cluster, node: n.node, plan: n, component: 'kube-apiserver' }),
      );
      onFailure('start etcd and prove the pre-restore cluster is back', async () => {
        await each('etcd', plan.nodes, 'startComponent');
        await undo.verifyQuorum({ cluster, plan, minRevision: plan.liveRevision });
      });
      await onEveryNode(s, plan.nodes, (n) =>
        quick.stopComponent({ cluster, node: n.node, plan: n, component: 'etcd' }),
      );
    });

    // 5. Move every data dir aside (named after this run).
    await run('move-aside', async (s) => {
      onFailure('stop etcd, remove the restored dir, move the original back', async () => {
        await each('etcd', plan.nodes, 'stopComponent');
        await Promise.all(plan.nodes.map((n) => undo.putOriginalBack({ cluster, node: n.node, plan: n })));
      });
      await onEveryNode(s, plan.nodes, (n) => quick.moveDataDirAside({ cluster, node: n.node, plan: n }));
    });

    // 6. Restore every member in parallel, each with its own name and peer URL.
    await run('restore', (s) =>
      onEveryNode(s, plan.nodes, (n) => long.restoreMember({ cluster, node: n.node, plan: n })),
    );

    // 7. Start etcd everywhere and prove quorum: every member healthy, the planned member list,
    //    one leader, one revision past the snapshot's + bump, and the same keys on every member
    //    (counted before any API server writes again).
    await run('start', (s) =>
      onEveryNode(s, plan.nodes, (n) => quick.startComponent({ cluster, node: n.node, plan: n, component: 'etcd' })),
    );
    const verification = await run('verify-quorum', async (s) => {
      const quorum = await long.verifyQuorum({
        cluster,
        plan,
        minRevision: snapshot.revision + (plan.nodes[0]?.bumpRevision ?? 0),
      });
      s.detail = `revision ${quorum.revision}, leader ${quorum.leader}`;
      const counts = await quick.countKeys({ cluster, plan });
      for (const c of counts) s.nodes[c.node] = `${c.keys} keys at revision ${c.revision}`;
      if (new Set(counts.map((c) => `${c.keys}@${c.revision}`)).size !== 1) {
        throw ApplicationFailure.create({
          type: FailureType.VerificationFailed,
          nonRetryable: true,
          message: `members disagree: ${counts.map((c) => `${c.node}=${c.keys} keys@${c.revision}`).join(' ')}`,
        });
      }
      return counts;
    });

    // 8. Start the API servers and wait for /readyz.
    await run('verify', async (s) => {
      // An API server must never see its etcd swapped underneath it (its watch cache would see
      // revisions go backwards): undoing from here stops them first.
      onFailure('stop kube-apiserver', () => each('kube-apiserver', apiNodes, 'stopComponent'));
      await onEveryNode(s, apiNodes, (n) =>
        quick.startComponent({ cluster, node: n.node, plan: n, component: 'kube-apiserver' }),
      );
      s.detail = await long.waitApiserverReady({ cluster });
      s.detail += `; ${await long.restartControllers({ cluster })}`;
    });
    await Promise.all(plan.nodes.map((n) => undo.cleanupStaged({ cluster, node: n.node, plan: n })));
    status.phase = 'completed';
    return { outcome: 'completed', plan, approval, verification, timings };
  } catch (err) {
    status.phase = 'compensating';
    status.error = (err as Error).message;
    // Runs to the end even when the workflow was cancelled.
    await CancellationScope.nonCancellable(() =>
      run('compensate', async (s) => {
        for (const c of compensations) {
          s.nodes[c.name] = 'running';
          await c.fn();
          s.nodes[c.name] = 'done';
        }
        await cleanupStaged();
      }),
    );
    status.phase = 'compensated';
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.create({
      type: 'RestoreCompensated',
      nonRetryable: true,
      message: `restore failed (${(err as Error).message}); compensated: every node is back on its pre-restore data and the cluster has quorum`,
      cause: err as Error,
    });
  }
}
