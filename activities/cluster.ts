// Read-only checks of one cluster: each control-plane node over SSH (pinned host key) and etcd on
// it, and the cluster's API server. Safe to retry: nothing here changes anything.
import type { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/errors.ts';
import type { ClusterShape, KubeCheck, NodeCheck } from '../common/types.ts';
import type { Gateways } from '../gateways/index.ts';

export function createClusterActivities(gw: Gateways) {
  return {
    async describeCluster(cluster: string): Promise<ClusterShape> {
      const c = gw.cluster(cluster);
      return {
        cluster,
        nodes: c.nodes.map((n) => ({
          name: n.name,
          memberName: n.etcd.memberName,
          peerUrl: n.etcd.peerUrl,
          clientUrl: n.etcd.clientUrl,
          dataDir: n.etcd.dataDir,
          apiserver: n.apiserver,
        })),
      };
    },

    async checkNode(input: { cluster: string; node: string }): Promise<NodeCheck> {
      const t0 = Date.now();
      const shell = gw.shell(input.cluster, input.node);
      try {
        await shell.exec('true', { timeoutMs: 15_000, check: true });
      } catch (err) {
        const f = err as ApplicationFailure;
        return {
          node: input.node,
          reachable: false,
          hostKeyMismatch: f.type === FailureType.HostKeyMismatch,
          error: f.message,
          etcd: { healthy: false, error: 'node unreachable' },
          tookMs: Date.now() - t0,
        };
      }
      const etcd = gw.etcd(input.cluster, input.node);
      const health = await etcd.health();
      if (!health.health)
        return {
          node: input.node,
          reachable: true,
          etcd: { healthy: false, error: health.error },
          tookMs: Date.now() - t0,
        };
      const st = await etcd.status();
      return {
        node: input.node,
        reachable: true,
        etcd: {
          healthy: true,
          version: st.version,
          revision: st.revision,
          leader: st.leader,
          memberId: st.memberId,
          dbSize: st.dbSize,
        },
        tookMs: Date.now() - t0,
      };
    },

    async checkKubeApi(cluster: string): Promise<KubeCheck> {
      const kube = gw.kube(cluster);
      const r = await kube.readyz();
      const namespaces = r.ready ? await kube.listNamespaces() : [];
      return { ready: r.ready, detail: r.detail, namespaces };
    },
  };
}
