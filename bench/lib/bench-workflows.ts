// Workflow for bench/snapshot-pipeline.ts: runs ONE of drctl's activities, once (no retries), on
// another task queue — the one the drctl worker process under test polls — so the activity's work
// (and memory) lands in that process while this bundle runs in the benchmark's own process.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.ts';

export interface BenchActivityInput {
  activityTaskQueue: string;
  name: keyof Activities;
  args: unknown[];
}

export async function benchRunActivity(input: BenchActivityInput): Promise<unknown> {
  const acts = proxyActivities<Activities>({
    taskQueue: input.activityTaskQueue,
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 1 },
  });
  const fn = acts[input.name] as unknown as (...args: unknown[]) => Promise<unknown>;
  return fn(...input.args);
}
