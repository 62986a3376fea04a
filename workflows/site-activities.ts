// How the site runbooks (failover, drill) call their activities: API reads retry a few times,
// long waits heartbeat, and undo steps retry until they succeed — a site briefly unreachable must
// still be put back.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';

export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});
export const long = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 3 },
});
export const undo = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
});
