// etcd snapshot activities (issue 3, part A). Filled in by the snapshot work.
import type { Gateways } from '../worker/gateways.ts';

export function createSnapshotActivities(_gw: Gateways) {
  return {};
}
