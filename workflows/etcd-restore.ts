// Runbook: etcd quorum restore across every control-plane node.
//   0 the site's lease (under the drill's, for a drill's restore)  1 preflight (read-only)  2 distribute the snapshot  3 go/no-go  3b recheck what the go was for
//   4 stop kube-apiserver and etcd on ALL nodes  5 move data dirs aside  6 restore each member
//   7 start etcd  8 verify-quorum  9 start-apiserver  10 restart-controllers  11 remove-staged
// A failure or cancel in 4-10 undoes in reverse on every node and proves the cluster is back on its
// pre-restore data; an undo that cannot finish ends the run `needs-attention`.
import { workflowInfo, defineQuery, patched } from '@temporalio/workflow';
import type { Component } from '../activities/restore.ts';
import { FailureType, failureType, rootMessage } from '../common/errors.ts';
import {
  bytesNeeded,
  changesSinceApproval,
  hasQuorum,
  type NodePlan,
  planRestore,
  RESTORE_STEPS,
  type RestoreEvidence,
  type RestoreInput,
  type RestorePlan,
  type RestoreResult,
  type RestoreStatus,
  type SnapshotNow,
  type StagedNow,
} from '../common/restore.ts';
import { long, quick, undo } from './activity-options.ts';
import { refuse, Runbook, signerText } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<RestoreStatus>('status');

export async function etcdRestore(input: RestoreInput): Promise<RestoreResult> {
  const { cluster } = input;
  const runId = workflowInfo().runId;
  const rb = new Runbook<RestoreEvidence, Pick<RestoreStatus, 'plan'>>(
    {
      runbook: 'etcd-restore',
      title: `etcd restore of ${cluster} from ${input.snapshot}`,
      steps: RESTORE_STEPS,
      requestedBy: input.requestedBy,
      cluster,
      input,
    },
    {},
  );
  const { run, each } = rb;
  const onNodes = <T>(s: Parameters<typeof each>[0], nodes: NodePlan[], fn: (n: NodePlan) => Promise<T>) =>
    each(s, nodes, (n) => n.node, fn);
  const component = (c: Component, nodes: NodePlan[], what: 'stopComponent' | 'startComponent', acts = undo) =>
    Promise.all(nodes.map((n) => acts[what]({ cluster, node: n.node, plan: n, component: c })));

  return rb.execute(
    async () => {
      // 0 would restore without a bump (revisions going backwards for every watcher): refused.
      if (input.bumpRevision !== undefined && !(Number.isSafeInteger(input.bumpRevision) && input.bumpRevision >= 1))
        throw refuse(FailureType.PreflightFailed, `bumpRevision must be an integer >= 1 (got ${input.bumpRevision})`);
      // 0. The site's lease: one runbook per site at a time (a drill's restore works under the drill's).
      await rb.lease(async () => [await quick.siteOfCluster({ cluster })]);
      // 1. Preflight: read-only.
      const { shape, policy, snapshot, preflight, quorum } = await run('preflight', async (s) => {
        const [shape, policy, snapshot] = await Promise.all([
          quick.describeCluster(cluster),
          quick.loadApprovalPolicy(),
          quick.resolveSnapshot({ cluster, snapshot: input.snapshot }),
        ]);
        const preflight = await Promise.all(
          shape.nodes.map((n) => quick.restorePreflightNode({ cluster, node: n.name })),
        );
        const problems: string[] = [];
        const needs = bytesNeeded(snapshot);
        for (const p of preflight) {
          s.items[p.node] = p.reachable
            ? `etcd ${p.etcdVersion} via ${p.tool}, ${p.etcdHealthy ? 'healthy' : 'down'}`
            : `unreachable: ${p.error}`;
          if (!p.reachable) problems.push(`${p.node}: unreachable: ${p.error}`);
          else if ((p.freeBytes ?? 0) < needs)
            problems.push(
              `${p.node}: ${p.freeBytes} bytes free next to the data dir; needs ${needs} (staged + restored snapshot)`,
            );
        }
        if (problems.length) throw refuse(FailureType.PreflightFailed, `preflight failed:\n${problems.join('\n')}`);
        const healthy = preflight.filter((p) => p.etcdHealthy).length;
        const quorum = hasQuorum(preflight, shape.nodes.length);
        s.detail = `${healthy}/${shape.nodes.length} members healthy${quorum ? ' (quorum)' : ''}`;
        return { shape, policy, snapshot, preflight, quorum };
      });
      const plan: RestorePlan = planRestore({ shape, snapshot, runId, preflight, bumpRevision: input.bumpRevision });
      rb.status.plan = plan;
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
        quorumAtPreflight: quorum,
        perNode: plan.nodes.map((n) => {
          const p = preflight.find((x) => x.node === n.node);
          return { node: n.node, command: n.restoreCommand, etcdVersion: p?.etcdVersion, freeBytes: p?.freeBytes };
        }),
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      rb.status.evidence = evidence;
      // Restoring a healthy cluster throws away its newer writes: only with --force.
      const refusal =
        quorum && !input.force
          ? `${cluster} has quorum (${rb.step('preflight').detail}): restoring would throw away every write since the snapshot. Use --force if that is what you want.`
          : undefined;
      if (input.dryRun) {
        rb.endDryRun();
        return { outcome: 'dry-run', plan, timings: rb.timings(), refusal };
      }
      if (refusal) throw refuse(FailureType.ClusterHasQuorum, refusal);

      // 2. Distribute: the same snapshot to every node, checked there. Nothing is touched yet.
      const removeStaged = () =>
        Promise.all(plan.nodes.map((n) => undo.cleanupStaged({ cluster, node: n.node, plan: n })));
      rb.undo('remove the staged snapshot', removeStaged, `on every node: remove ${plan.nodes[0]?.workDir} by hand`);
      await run('distribute', (s) =>
        onNodes(s, plan.nodes, (n) =>
          long
            .stageSnapshot({ cluster, node: n.node, plan: n, snapshot })
            .then((r) => (r.skipped ? 'already staged' : 'staged + verified')),
        ),
      );

      // 3. Go/no-go. A rejection, a timeout or a cancel here leaves everything as it was.
      const parent = workflowInfo().parent;
      const approval =
        input.approvedByParent && parent
          ? (rb.passGate(
              input.approvedByParent,
              `approved with ${parent.workflowId} by ${signerText(input.approvedByParent)}`,
            ),
            input.approvedByParent)
          : await rb.gate(policy, timeoutMs, 'restore');

      // 3b. The gate may have waited an hour: before the first change, what the go was given for
      //     must still hold (no quorum regained, every node reachable as planned, the approved
      //     snapshot unchanged in the bucket and on every node), else abort with nothing changed.
      //     (Runs that passed their gate before this step existed replay without it.)
      if (patched('recheck-after-gate')) {
        await rb.recheck('recheck', async (s) => {
          const [now, snapshotNow, staged] = await Promise.all([
            Promise.all(shape.nodes.map((n) => quick.restorePreflightNode({ cluster, node: n.name }))),
            quick.resolveSnapshot({ cluster, snapshot: snapshot.key }).then(
              (found): SnapshotNow => ({ found }),
              (err: unknown): SnapshotNow => {
                const t = failureType(err);
                return t === FailureType.SnapshotNotFound || t === FailureType.SnapshotCorrupt
                  ? { gone: rootMessage(err) }
                  : { unreadable: rootMessage(err) };
              },
            ),
            Promise.all(
              plan.nodes.map((n) =>
                quick.checkStagedSnapshot({ cluster, node: n.node, plan: n, snapshot }).then(
                  (r): StagedNow => ({ node: n.node, sha256: r.sha256 }),
                  (err: unknown): StagedNow => ({ node: n.node, error: rootMessage(err) }),
                ),
              ),
            ),
          ]);
          for (const p of now)
            s.items[p.node] = p.reachable ? `etcd ${p.etcdHealthy ? 'healthy' : 'down'}` : `unreachable: ${p.error}`;
          for (const st of staged)
            s.items[st.node] += 'error' in st ? `; staged: ${st.error}` : '; staged copy verified';
          if ('unreadable' in snapshotNow) s.items.bucket = `not re-read (${snapshotNow.unreadable})`;
          const changes = changesSinceApproval({
            members: shape.nodes.length,
            force: !!input.force,
            snapshot,
            before: preflight,
            now,
            snapshotNow,
            staged,
          });
          if (changes.length)
            throw refuse(
              FailureType.ChangedSinceApproval,
              `${cluster} changed while the gate waited; nothing was changed:\n${changes.join('\n')}`,
            );
          const healthy = now.filter((p) => p.etcdHealthy).length;
          s.detail = `as approved: ${healthy}/${shape.nodes.length} members healthy, snapshot sha256 ${snapshot.sha256.slice(0, 12)}… on every node`;
        });
      }

      const apiNodes = plan.nodes.filter((n) => n.apiserver);
      // 4. Stop kube-apiserver, then etcd, on ALL nodes.
      await run('stop', async (s) => {
        rb.undo(
          'start kube-apiserver and restart the controllers',
          async () => {
            await component('kube-apiserver', apiNodes, 'startComponent');
            await undo.waitApiserverReady({ cluster });
            await undo.restartControllers({ cluster });
          },
          `kube-apiserver on ${apiNodes.map((n) => n.node).join(', ')}: is its static pod manifest back and /readyz ok?`,
        );
        await onNodes(s, apiNodes, (n) =>
          quick.stopComponent({ cluster, node: n.node, plan: n, component: 'kube-apiserver' }),
        );
        rb.undo(
          'start etcd and prove the pre-restore cluster is back',
          async () => {
            await component('etcd', plan.nodes, 'startComponent');
            await undo.verifyQuorum({ cluster, plan, minRevision: plan.liveRevision });
          },
          `etcd on every node of ${cluster}: running, quorum, revision >= ${plan.liveRevision ?? 'the pre-restore one'} (\`drctl cluster check --cluster ${cluster}\`)`,
        );
        await onNodes(s, plan.nodes, (n) => quick.stopComponent({ cluster, node: n.node, plan: n, component: 'etcd' }));
      });

      // 5. Move every data dir aside (named after this run).
      await run('move-aside', async (s) => {
        rb.undo(
          'stop etcd, remove the restored dir, move the original back',
          async () => {
            await component('etcd', plan.nodes, 'stopComponent');
            await Promise.all(plan.nodes.map((n) => undo.putOriginalBack({ cluster, node: n.node, plan: n })));
          },
          `on every node: etcd stopped, ${plan.nodes[0]?.dataDir} must hold the pre-restore data; if not, it is at ${plan.nodes[0]?.asideDir}`,
        );
        await onNodes(s, plan.nodes, (n) => quick.moveDataDirAside({ cluster, node: n.node, plan: n }));
      });

      // 6. Restore every member in parallel, each with its own name and peer URL.
      await run('restore', (s) =>
        onNodes(s, plan.nodes, (n) => long.restoreMember({ cluster, node: n.node, plan: n })),
      );

      // 7. Start etcd everywhere.
      await run('start', (s) =>
        onNodes(s, plan.nodes, (n) => quick.startComponent({ cluster, node: n.node, plan: n, component: 'etcd' })),
      );

      // 8. Prove quorum: every member healthy, the planned member list, one leader, one revision past
      //    the snapshot's + bump, and the same keys on every member (counted before any API server
      //    writes again).
      const verification = await run('verify-quorum', async (s) => {
        const q = await long.verifyQuorum({
          cluster,
          plan,
          minRevision: snapshot.revision + (plan.nodes[0]?.bumpRevision ?? 0),
        });
        s.detail = `revision ${q.revision}, leader ${q.leader}`;
        const counts = await quick.countKeys({ cluster, plan });
        for (const c of counts) s.items[c.node] = `${c.keys} keys at revision ${c.revision}`;
        if (new Set(counts.map((c) => `${c.keys}@${c.revision}`)).size !== 1) {
          throw refuse(
            FailureType.VerificationFailed,
            `members disagree: ${counts.map((c) => `${c.node}=${c.keys} keys@${c.revision}`).join(' ')}`,
          );
        }
        return counts;
      });

      // 9. Start the API servers and wait for /readyz. An API server must never see its etcd swapped
      //    underneath it (its watch cache would see revisions go backwards): undoing from here stops
      //    them first.
      await run('start-apiserver', async (s) => {
        rb.undo(
          'stop kube-apiserver',
          () => component('kube-apiserver', apiNodes, 'stopComponent'),
          `kube-apiserver on ${apiNodes.map((n) => n.node).join(', ')}: stopped (manifest parked) before etcd's data is put back`,
        );
        await onNodes(s, apiNodes, (n) =>
          quick.startComponent({ cluster, node: n.node, plan: n, component: 'kube-apiserver' }),
        );
        s.detail = await long.waitApiserverReady({ cluster });
      });

      // 10. The controllers' caches predate the restore: restart them (and roll in-cluster ones).
      await run('restart-controllers', async (s) => {
        s.detail = await long.restartControllers({ cluster });
      });

      // 11. The staged snapshot copies are no longer needed.
      //     The restore is done whatever happens here: a copy left behind is reported, not undone.
      rb.forgetUndos();
      await run('remove-staged', async (s) => {
        await removeStaged().catch((err: unknown) => (s.detail = `left on the nodes: ${rootMessage(err)}`));
      });
      return { outcome: 'completed', plan, approval, verification, timings: rb.timings() };
    },
    (cause) =>
      `restore failed (${cause}); compensated: every node is back on its pre-restore data and the cluster has quorum`,
  );
}
