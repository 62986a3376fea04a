// The worker config's sections the site activities need, refused by name when absent.
import { FailureType, failure } from '../common/errors.ts';
import type { Gateways } from '../gateways/index.ts';

export function failoverSettings(gw: Gateways) {
  const f = gw.config.failover;
  if (!f) throw failure(FailureType.PreflightFailed, "no failover section in the worker's config");
  return f;
}
