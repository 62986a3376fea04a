// The workflow bundle's entry point: every runbook drctl runs.
export { clusterHealth } from './cluster-health.ts';
export { clusterRebuild } from './cluster-rebuild.ts';
export { etcdLatency } from './etcd-latency.ts';
export { etcdSnapshot, listEtcdSnapshots } from './etcd-snapshot.ts';
export { etcdRestore } from './etcd-restore.ts';
export { siteFailover } from './site-failover.ts';
export { healthWatch } from './health-watch.ts';
export { drDrill } from './drill.ts';
export { fenceOnReturn } from './fence-on-return.ts';
export { siteLease } from './lease.ts';
export { namespaceRestore } from './namespace-restore.ts';
export { protectNamespaces, readinessAudit } from './audit.ts';
export { etcdTune } from './etcd-tune.ts';
export { etcdRecover, etcdRejoin } from './etcd-recover.ts';
