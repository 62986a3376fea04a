// How every runbook calls its activities. One place, so "what is retried, how long, how often" is
// decided once (which failure types are never retried is decided in common/errors.ts).
// - quick: reads and small changes; heartbeats while they wait, so a killed worker's step is
//   retried within 20 s.
// - long: streams, restores, Velero runs.
// - undo: compensation. Bounded: an undo that cannot succeed (a cluster that had no quorum before
//   the run will not regain it) ends the run `needs-attention` instead of retrying forever.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';

export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});
export const long = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});
export const undo = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 6 },
});
