// Runbook: "is this control plane healthy?" — every node reachable over SSH with its pinned host
// key, every etcd member healthy and agreeing on one leader, the API server ready. Read-only.
import type { RunbookStatus } from '../common/runbook.ts';
import { defineQuery } from '@temporalio/workflow';
import type { ClusterHealthReport } from '../common/types.ts';
import { quick } from './activity-options.ts';
import { Runbook } from './runbook.ts';

/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<RunbookStatus>('status');

export async function clusterHealth(input: { cluster: string }): Promise<ClusterHealthReport> {
  const { cluster } = input;
  const rb = new Runbook({ runbook: 'cluster-health', title: `health of ${cluster}`, steps: ['check'], cluster }, {});
  return rb.execute(
    () =>
      rb.run('check', async (s) => {
        const shape = await quick.describeCluster(cluster);
        // Fan out: every node is checked at once.
        const [nodes, kube] = await Promise.all([
          rb.each(
            s,
            shape.nodes,
            (n) => n.name,
            (n) => quick.checkNode({ cluster, node: n.name }),
          ),
          quick.checkKubeApi(cluster),
        ]);
        const problems: string[] = [];
        for (const n of nodes) {
          s.items[n.node] = !n.reachable
            ? `unreachable: ${n.error}`
            : n.etcd.healthy
              ? 'etcd healthy'
              : `etcd unhealthy: ${n.etcd.error}`;
          if (!n.reachable) problems.push(`${n.node}: unreachable: ${n.error}`);
          else if (!n.etcd.healthy) problems.push(`${n.node}: etcd unhealthy: ${n.etcd.error}`);
        }
        s.items['kube-apiserver'] = kube.detail;
        const healthy = nodes.filter((n) => n.etcd.healthy);
        const leaders = new Set(healthy.map((n) => n.etcd.leader));
        if (leaders.size > 1) problems.push(`members disagree on the leader: ${[...leaders].join(', ')}`);
        if (!kube.ready) problems.push(`kube-apiserver not ready: ${kube.detail}`);
        const quorum = healthy.length >= Math.floor(shape.nodes.length / 2) + 1;
        s.detail = problems.length ? `${problems.length} problem(s)` : 'healthy';
        return {
          cluster,
          checkedAt: new Date().toISOString(),
          ok: problems.length === 0,
          quorum,
          healthyMembers: healthy.length,
          members: shape.nodes.length,
          leader: leaders.size === 1 ? [...leaders][0] : undefined,
          nodes,
          kube,
          problems,
        };
      }),
    (cause) => `health check of ${cluster} failed (${cause})`,
  );
}
