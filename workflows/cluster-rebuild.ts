// Runbook: a burned site's control plane rebuilt on new hardware (`drctl cluster rebuild`).
//   0 lease  1 preflight (read-only: the snapshot and its control-plane bundle checked whole, each new
//     host reachable with its pinned key and empty of any control plane, disk space)
//   2 go/no-go (the snapshot's age and revision: the control plane's RPO; the bundle; the hosts)
//   3 recheck (the hosts still new, the snapshot and bundle still there)
//   4 lay-pki: the bundle's CAs and service-account key pair on every host
//   5 kubeadm-phases: kubeadm's own `init phase` certs (each node's certificates issued from the
//     restored CAs), kubeconfig, etcd local, control-plane: manifests written, nothing started yet
//   6 restore-etcd: the same snapshot staged and restored on every member, as the quorum restore
//     does (each member's name and peer URL; the revision bumped so informers relist)
//   7 start: each kubelet given its config from the bundle; it starts the static pods; quorum proved
//   8 verify: the API ready with a kubeconfig issued before the fire; the kubeadm-config the
//     cluster holds is the bundle's; the nodes; Velero's storage locations
//   9 cleanup: the staged snapshot copies removed
// Undo (registered before the first host is touched, run on failure or cancel): every host back to
// what provisioning left: static pods stopped, the kubelet's config, /etc/kubernetes and etcd's
// data removed (the preflight and the recheck saw the hosts new: everything there is this run's).
import { defineQuery, workflowInfo } from '@temporalio/workflow';
import { FailureType, rootMessage } from '../common/errors.ts';
import {
  type HostPreflight,
  REBUILD_STEPS,
  rebuildChanges,
  type RebuildEvidence,
  type RebuildInput,
  rebuildProblems,
  type RebuildResult,
  type RebuildSource,
} from '../common/rebuild.ts';
import { bytesNeeded, planRestore, restoreWorkDir, runTag } from '../common/restore.ts';
import type { RunbookStatus } from '../common/runbook.ts';
import { long, quick, undo } from './activity-options.ts';
import { refuse, Runbook } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<RunbookStatus>('status');

function described(h: HostPreflight): string {
  if (!h.reachable) return `unreachable: ${h.error}`;
  if (h.leftovers.length) return `NOT NEW: ${h.leftovers.join(', ')}`;
  return `new host ${h.hostname} at ${h.address}: kubeadm ${h.kubeadm ?? 'missing'}, kubelet ${h.kubelet ?? 'missing'}, ${h.images} images, ${h.freeBytes} bytes free for etcd`;
}

export async function clusterRebuild(input: RebuildInput): Promise<RebuildResult> {
  const { cluster } = input;
  const { runId } = workflowInfo();
  const tag = runTag(runId);
  const rb = new Runbook<RebuildEvidence>(
    {
      runbook: 'cluster-rebuild',
      title: `control-plane rebuild of ${cluster} from ${input.snapshot}`,
      steps: REBUILD_STEPS,
      requestedBy: input.requestedBy,
      cluster,
      input,
    },
    {},
  );
  const { run, each } = rb;
  const readHosts = (nodes: string[]) =>
    Promise.all(nodes.map((node) => quick.rebuildPreflightHost({ cluster, node })));

  return rb.execute(
    async () => {
      // 0. The site's lease.
      await rb.lease(async () => [await quick.siteOfCluster({ cluster })]);

      // 1. Preflight, read-only: the off-site source whole first (a corrupt or missing bundle is
      //    refused before any host is even read), then every host.
      const { shape, policy, source, hosts } = await run('preflight', async (s) => {
        const [shape, policy, source] = await Promise.all([
          quick.describeCluster(cluster),
          quick.loadApprovalPolicy(),
          quick.resolveRebuildSource({ cluster, snapshot: input.snapshot }),
        ]);
        s.items.source = `${source.snapshot.key} (revision ${source.snapshot.revision}, taken ${source.snapshot.takenAt}); bundle from ${source.bundle.fromNode}, ${source.bundle.items} items${source.bundle.complete ? '' : ', INCOMPLETE'}${source.controlPlaneEndpoint ? `; controlPlaneEndpoint ${source.controlPlaneEndpoint}` : ''}`;
        const hosts = await readHosts(shape.nodes.map((n) => n.name));
        for (const h of hosts) s.items[h.node] = described(h);
        const problems = rebuildProblems(source, hosts, bytesNeeded(source.snapshot));
        if (problems.length)
          throw refuse(FailureType.PreflightFailed, `refused, nothing changed:\n${problems.join('\n')}`);
        s.detail = `${hosts.length} new hosts; snapshot revision ${source.snapshot.revision}, bundle complete`;
        return { shape, policy, source, hosts };
      });
      const snapshot = source.snapshot;
      const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
      rb.status.evidence = {
        cluster,
        snapshotKey: snapshot.key,
        snapshotTakenAt: snapshot.takenAt,
        snapshotAgeSeconds: Math.round((Date.now() - Date.parse(snapshot.takenAt)) / 1000),
        revision: snapshot.revision,
        bundle: { ...source.bundle, names: source.items },
        passedOver: source.passedOver,
        hosts,
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      if (input.dryRun) {
        rb.endDryRun();
        return { outcome: 'dry-run', snapshotKey: snapshot.key, revision: snapshot.revision };
      }

      // 2. Go/no-go.
      await rb.gate(policy, timeoutMs, 'rebuild');

      // 3. The gate may have waited: the hosts still new, the source still there and whole.
      await rb.recheck('recheck', async (s) => {
        const [now, sourceNow] = await Promise.all([
          readHosts(hosts.map((h) => h.node)),
          quick.resolveRebuildSource({ cluster, snapshot: snapshot.key }).then(
            (r: RebuildSource) =>
              r.bundle.complete ? undefined : `bundle now incomplete: ${r.bundle.missing.join('; ')}`,
            (err: unknown) => rootMessage(err),
          ),
        ]);
        for (const h of now) s.items[h.node] = described(h);
        const changes = rebuildChanges(hosts, now, sourceNow);
        if (changes.length)
          throw refuse(
            FailureType.ChangedSinceApproval,
            `${cluster} changed while the gate waited; nothing was changed:\n${changes.join('\n')}`,
          );
        s.detail = `as approved: ${now.length} new hosts, ${snapshot.key} and its bundle intact`;
      });

      const nodes = shape.nodes.map((n) => n.name);
      const workDirOf = (node: string) => restoreWorkDir(shape.nodes.find((n) => n.name === node)!.dataDir, tag);
      // The undo, before the first host is touched: every host back to what provisioning left.
      rb.undo(
        'every host back to what provisioning left',
        () => Promise.all(nodes.map((node) => undo.resetRebuiltHost({ cluster, node, tag, workDir: workDirOf(node) }))),
        `on every host of ${cluster}: no manifest in /etc/kubernetes/manifests, no /etc/kubernetes/pki, no /var/lib/kubelet/config.yaml, nothing but lost+found in etcd's data dir`,
      );

      // 4. The bundle's PKI on every host.
      await run('lay-pki', (s) =>
        each(
          s,
          nodes,
          (n) => n,
          (node) => quick.layRebuildPki({ cluster, node, key: snapshot.key }),
        ),
      );

      // 5. kubeadm's own phases: certificates from the restored CAs, kubeconfigs, manifests.
      await run('kubeadm-phases', (s) =>
        each(
          s,
          nodes,
          (n) => n,
          async (node) => {
            const lines = await long.runKubeadmPhases({ cluster, node, key: snapshot.key, tag });
            return `${lines.filter((l) => l.startsWith('==')).length} phases, ${lines.length} lines`;
          },
        ),
      );

      // 6. etcd: the same snapshot on every member, as the quorum restore does.
      const plan = await run('restore-etcd', async (s) => {
        const preflight = await Promise.all(nodes.map((node) => quick.restorePreflightNode({ cluster, node })));
        const plan = planRestore({ shape, snapshot, runId, preflight, bumpRevision: input.bumpRevision });
        await each(
          s,
          plan.nodes,
          (n) => n.node,
          async (n) => {
            await long.stageSnapshot({ cluster, node: n.node, plan: n, snapshot });
            await quick.moveDataDirAside({ cluster, node: n.node, plan: n });
            await long.restoreMember({ cluster, node: n.node, plan: n });
            return `restored as ${n.memberName}${n.bumpRevision ? `, revision +${n.bumpRevision}` : ''}`;
          },
        );
        return plan;
      });

      // 7. Each kubelet gets its config: it starts etcd and the control plane. Then quorum.
      const quorum = await run('start', async (s) => {
        await each(
          s,
          nodes,
          (n) => n,
          (node) => quick.startRebuiltKubelet({ cluster, node, key: snapshot.key }),
        );
        const q = await long.verifyQuorum({
          cluster,
          plan,
          minRevision: snapshot.revision + (plan.nodes[0]?.bumpRevision ?? 0),
        });
        s.detail = `quorum: revision ${q.revision}, leader ${q.leader}`;
        return q;
      });

      // 8. Verify what the rebuilt API serves.
      const verified = await run('verify', async (s) => {
        const apiserver = await long.waitApiserverReady({ cluster });
        const v = await quick.verifyRebuilt({ cluster, key: snapshot.key });
        s.items.apiserver = apiserver;
        s.items['kubeadm-config'] = v.kubeadmConfigMatches
          ? "the bundle's ClusterConfiguration"
          : 'DIFFERS from the bundle';
        s.items.nodes = v.nodes.map((n) => `${n.name}${n.ready ? '' : ' (not ready)'}`).join(', ');
        s.items.velero = v.backupLocations.map((l) => `${l.name}${l.phase ? ` ${l.phase}` : ''}`).join(', ') || 'none';
        if (!v.kubeadmConfigMatches)
          throw refuse(
            FailureType.VerificationFailed,
            `${cluster}: the kubeadm-config the rebuilt cluster holds is not the bundle's ClusterConfiguration`,
          );
        s.detail = `API ready; ${v.nodes.length} nodes; kubeadm-config matches`;
        return { ...v, apiserver, revision: quorum.revision, leader: quorum.leader };
      });

      // 9. The rebuild is done whatever happens here.
      rb.forgetUndos();
      await run('cleanup', async (s) => {
        await Promise.all(plan.nodes.map((n) => quick.cleanupStaged({ cluster, node: n.node, plan: n }))).catch(
          (err: unknown) => (s.detail = `left on the nodes: ${rootMessage(err)}`),
        );
      });
      return {
        outcome: 'completed',
        snapshotKey: snapshot.key,
        revision: snapshot.revision,
        verified,
        timings: rb.timings(),
      };
    },
    (cause) => `rebuild failed (${cause}); compensated: every host is back to what provisioning left`,
  );
}
