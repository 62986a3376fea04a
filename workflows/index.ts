// The workflow bundle's entry point: every runbook drctl runs.
export { clusterHealth } from './cluster-health.ts';
