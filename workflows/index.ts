// The workflow bundle's entry point: every runbook drctl runs.
export { clusterHealth } from './cluster-health.ts';
export * from './etcd-snapshot.ts';
export * from './etcd-restore.ts';
