// Builds the narrow gateways the activities use, from the worker's config. Connections are pooled
// per node for the worker's lifetime; secrets (SSH keys, S3 credentials, snapshot keys) are read
// here only.
import { FailureType, failure } from '../common/errors.ts';
import type { ClusterConfig, DrctlConfig, NodeConfig, SiteConfig } from '../config/schema.ts';
import { allClusters } from '../config/load.ts';
import { readFileSync } from 'node:fs';
import { Context } from '@temporalio/activity';
import { DnsGateway } from '../gateways/dns.ts';
import { EtcdGateway } from '../gateways/etcd.ts';
import { HttpGateway } from '../gateways/http.ts';
import type { Gateways } from '../gateways/index.ts';
import { KubeGateway } from '../gateways/kube.ts';
import { RestoreNode } from '../gateways/restore-node.ts';
import { RebuildNode } from '../gateways/rebuild-node.ts';
import { RecoverNode } from '../gateways/recover-node.ts';
import { ObjectStore } from '../gateways/s3.ts';
import { SnapshotKeys } from '../gateways/snapshot-crypto.ts';
import { SnapshotStore } from '../gateways/snapshot-store.ts';
import { connectShell, type RemoteShell } from '../gateways/ssh.ts';
import { TemporalGateway } from '../gateways/temporal.ts';
import { VeleroGateway } from '../gateways/velero.ts';

/**
 * The key of the activity call running now, the same on each of its retries (its workflow run and
 * activity id): a retried node-side step finds the job its first attempt started. Undefined
 * outside an activity.
 */
function activityAttempt(): string | undefined {
  try {
    const i = Context.current().info;
    return `${(i.workflowExecution?.runId ?? i.activityRunId ?? '').slice(-12)}-${i.activityId}`;
  } catch {
    return undefined;
  }
}

// Tests, benchmarks and scripts name the type from here, next to createGateways.
export type { Gateways };

export function createGateways(config: DrctlConfig): Gateways {
  const shells = new Map<string, RemoteShell>();
  const kubes = new Map<string, KubeGateway>();
  let store: ObjectStore | undefined;
  let snapshots: SnapshotStore | undefined;
  let dns: DnsGateway | undefined;
  let temporal: TemporalGateway | undefined;
  const http = new HttpGateway();
  const site = (name: string): SiteConfig => {
    const s = config.sites.find((x) => x.name === name);
    if (!s)
      throw failure(
        FailureType.UnknownCluster,
        `unknown site '${name}' in the worker's config (sites: ${config.sites.map((x) => x.name).join(', ')})`,
      );
    return s;
  };
  const cluster = (name: string): ClusterConfig => {
    const c = allClusters(config).find((x) => x.name === name);
    if (!c) throw failure(FailureType.UnknownCluster, `unknown cluster '${name}' in the worker's config`);
    return c;
  };
  const node = (clusterName: string, nodeName: string): NodeConfig => {
    const n = cluster(clusterName).nodes.find((x) => x.name === nodeName);
    if (!n)
      throw failure(
        FailureType.UnknownCluster,
        `cluster '${clusterName}' has no node '${nodeName}' in the worker's config`,
      );
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
  const kube = (c: string): KubeGateway => {
    let k = kubes.get(c);
    if (!k) {
      const cc = cluster(c);
      k = new KubeGateway({ label: c, kubeconfig: cc.kubeconfig, context: cc.context });
      kubes.set(c, k);
    }
    return k;
  };
  return {
    config,
    cluster,
    site,
    node,
    shell,
    etcd: (c, n) => new EtcdGateway(shell(c, n), node(c, n)),
    restoreNode: (c, n) => new RestoreNode(shell(c, n), node(c, n), activityAttempt),
    recoverNode: (c, n) => new RecoverNode(shell(c, n), node(c, n), activityAttempt),
    rebuildNode: (c, n) => new RebuildNode(shell(c, n), node(c, n)),
    kube,
    store: () => (store ??= new ObjectStore(config.objectStore)),
    snapshots: () =>
      (snapshots ??= new SnapshotStore(
        (store ??= new ObjectStore(config.objectStore)),
        SnapshotKeys.load(config.snapshots),
        config.objectStore.prefix,
      )),
    velero: (s) => {
      const sc = site(s);
      return new VeleroGateway(kube(sc.cluster.name), sc.velero.namespace);
    },
    dns: () => {
      if (!dns) {
        const d = config.dns;
        if (!d) throw failure(FailureType.PreflightFailed, "no dns section in the worker's config");
        const ref = d.powerdns.apiKey;
        const apiKey = 'env' in ref ? process.env[ref.env] : readFileSync(ref.file, 'utf8').trim();
        if (!apiKey)
          throw failure(
            FailureType.PreflightFailed,
            `the DNS API key is not set (${'env' in ref ? `environment variable ${ref.env}` : ref.file})`,
          );
        dns = new DnsGateway({
          api: d.powerdns.api,
          apiKey,
          serverId: d.powerdns.serverId,
          nameserver: d.nameserver,
          zone: d.zone,
        });
      }
      return dns;
    },
    http: () => http,
    temporal: () => (temporal ??= new TemporalGateway(config.temporal)),
    close: () => {
      void temporal?.close();
      for (const s of shells.values()) s.close();
      shells.clear();
      store?.client.destroy();
    },
  };
}
