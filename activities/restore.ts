import type { Gateways } from '../worker/gateways.ts';

export function createRestoreActivities(_gw: Gateways) {
  return {};
}
