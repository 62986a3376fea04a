// Builds the narrow gateways the activities use, from the worker's config. Connections are pooled
// per node for the worker's lifetime; secrets (SSH keys, S3 credentials) are read here only.
import { FailureType, failure } from '../common/errors.ts';
import type { ClusterConfig, DrctlConfig, NodeConfig } from '../config/schema.ts';
import { EtcdGateway } from '../gateways/etcd.ts';
import { KubeGateway } from '../gateways/kube.ts';
import { ObjectStore } from '../gateways/s3.ts';
import { connectShell, type RemoteShell } from '../gateways/ssh.ts';

export interface Gateways {
  config: DrctlConfig;
  cluster(name: string): ClusterConfig;
  node(cluster: string, node: string): NodeConfig;
  shell(cluster: string, node: string): RemoteShell;
  etcd(cluster: string, node: string): EtcdGateway;
  kube(cluster: string): KubeGateway;
  store(): ObjectStore;
  close(): void;
}

export function createGateways(config: DrctlConfig): Gateways {
  const shells = new Map<string, RemoteShell>();
  const kubes = new Map<string, KubeGateway>();
  let store: ObjectStore | undefined;
  const cluster = (name: string): ClusterConfig => {
    const c = config.sites.find((s) => s.cluster.name === name)?.cluster;
    if (!c) throw failure(FailureType.UnknownCluster, `unknown cluster '${name}' in the worker's config`);
    return c;
  };
  const node = (clusterName: string, nodeName: string): NodeConfig => {
    const n = cluster(clusterName).nodes.find((x) => x.name === nodeName);
    if (!n) throw failure(FailureType.UnknownCluster, `cluster '${clusterName}' has no node '${nodeName}' in the worker's config`);
    return n;
  };
  const shell = (clusterName: string, nodeName: string): RemoteShell => {
    const key = `${clusterName}/${nodeName}`;
    let s = shells.get(key);
    if (!s) {
      const n = node(clusterName, nodeName);
      s = connectShell({ label: key, ...n.ssh });
      shells.set(key, s);
    }
    return s;
  };
  return {
    config,
    cluster,
    node,
    shell,
    etcd: (c, n) => new EtcdGateway(shell(c, n), node(c, n)),
    kube: (c) => {
      let k = kubes.get(c);
      if (!k) {
        const cc = cluster(c);
        k = new KubeGateway({ label: c, kubeconfig: cc.kubeconfig, context: cc.context });
        kubes.set(c, k);
      }
      return k;
    },
    store: () => (store ??= new ObjectStore(config.objectStore)),
    close: () => {
      for (const s of shells.values()) s.close();
      shells.clear();
      store?.client.destroy();
    },
  };
}
