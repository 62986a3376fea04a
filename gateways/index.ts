// What activities are given: one narrow gateway per outside system, built from config by
// worker/gateways.ts. Activities depend on this interface only, never on how it is built.
import type { ClusterConfig, DrctlConfig, NodeConfig, SiteConfig } from '../config/schema.ts';
import type { DnsGateway } from './dns.ts';
import type { EtcdGateway } from './etcd.ts';
import type { HttpGateway } from './http.ts';
import type { KubeGateway } from './kube.ts';
import type { RestoreNode } from './restore-node.ts';
import type { RebuildNode } from './rebuild-node.ts';
import type { RecoverNode } from './recover-node.ts';
import type { ObjectStore } from './s3.ts';
import type { SnapshotStore } from './snapshot-store.ts';
import type { RemoteShell } from './ssh.ts';
import type { TemporalGateway } from './temporal.ts';
import type { VeleroGateway } from './velero.ts';

export interface Gateways {
  config: DrctlConfig;
  cluster(name: string): ClusterConfig;
  node(cluster: string, node: string): NodeConfig;
  site(name: string): SiteConfig;
  shell(cluster: string, node: string): RemoteShell;
  etcd(cluster: string, node: string): EtcdGateway;
  /** The node-side operations of an etcd restore on one control-plane node. */
  restoreNode(cluster: string, node: string): RestoreNode;
  /** The node-side operations of an etcd recover or rejoin (a RestoreNode, and more). */
  recoverNode(cluster: string, node: string): RecoverNode;
  /** The node-side steps of a control-plane rebuild on a new host. */
  rebuildNode(cluster: string, node: string): RebuildNode;
  kube(cluster: string): KubeGateway;
  store(): ObjectStore;
  /**
   * The bucket's etcd snapshots: signed manifests, encryption on the way in and out, with the
   * worker's keys (read on first use; a missing or malformed key is a PreflightFailed).
   */
  snapshots(): SnapshotStore;
  /** Velero on the cluster of the named site. */
  velero(site: string): VeleroGateway;
  dns(): DnsGateway;
  /** App endpoint probes and webhook posts. */
  http(): HttpGateway;
  /** Temporal itself, read-only: schedules and visibility (the audit, the metrics). */
  temporal(): TemporalGateway;
  close(): void;
}
