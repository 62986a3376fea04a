// Runbook: "is this control plane healthy?" — every node reachable over SSH with its pinned host
// key, every etcd member healthy and agreeing on one leader, the API server ready.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { ClusterHealthReport } from '../common/types.ts';

const { describeCluster, checkNode, checkKubeApi } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
});

export async function clusterHealth(input: { cluster: string }): Promise<ClusterHealthReport> {
  const shape = await describeCluster(input.cluster);
  // Fan out: every node is checked at once.
  const [nodes, kube] = await Promise.all([
    Promise.all(shape.nodes.map((n) => checkNode({ cluster: input.cluster, node: n.name }))),
    checkKubeApi(input.cluster),
  ]);
  const problems: string[] = [];
  for (const n of nodes) {
    if (!n.reachable) problems.push(`${n.node}: unreachable: ${n.error}`);
    else if (!n.etcd.healthy) problems.push(`${n.node}: etcd unhealthy: ${n.etcd.error}`);
  }
  const healthy = nodes.filter((n) => n.etcd.healthy);
  const leaders = new Set(healthy.map((n) => n.etcd.leader));
  if (leaders.size > 1) problems.push(`members disagree on the leader: ${[...leaders].join(', ')}`);
  if (!kube.ready) problems.push(`kube-apiserver not ready: ${kube.detail}`);
  const quorum = healthy.length >= Math.floor(shape.nodes.length / 2) + 1;
  return {
    cluster: input.cluster,
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
}
