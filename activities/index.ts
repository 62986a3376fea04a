// All of drctl's activities, built over injected gateways (gateways/index.ts, built by the worker).
// Workflows use `import type` of this and proxyActivities, so no gateway code enters the bundle.
import type { Gateways } from '../gateways/index.ts';
import { createApprovalActivities } from './approval.ts';
import { createAuditActivities } from './audit.ts';
import { createClusterActivities } from './cluster.ts';
import { createDrillActivities } from './drill.ts';
import { createFailoverActivities } from './failover.ts';
import { createLeaseActivities } from './lease.ts';
import { createNamespaceRestoreActivities } from './namespace-restore.ts';
import { createRestoreActivities } from './restore.ts';
import { createSnapshotActivities } from './snapshot.ts';
import { createEtcdLatencyActivities } from './etcd-latency.ts';
import { createEtcdTuneActivities } from './etcd-tune.ts';
import { createEtcdRecoverActivities } from './etcd-recover.ts';
import { createRebuildActivities } from './rebuild.ts';

export function createActivities(gw: Gateways) {
  return {
    ...createApprovalActivities(gw),
    ...createClusterActivities(gw),
    ...createSnapshotActivities(gw),
    ...createRestoreActivities(gw),
    ...createFailoverActivities(gw),
    ...createDrillActivities(gw),
    ...createLeaseActivities(gw),
    ...createNamespaceRestoreActivities(gw),
    ...createAuditActivities(gw),
    ...createEtcdLatencyActivities(gw),
    ...createEtcdTuneActivities(gw),
    ...createEtcdRecoverActivities(gw),
    ...createRebuildActivities(gw),
  };
}

export type Activities = ReturnType<typeof createActivities>;
