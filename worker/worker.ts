// The drctl worker: activities built over gateways from this worker's own config (credentials are
// read here and never leave), workflows from workflows/.
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  type LogLevel,
  type LogMetadata,
  NativeConnection,
  Runtime,
  Worker,
  type WorkerOptions,
} from '@temporalio/worker';
import { UsageError } from '../common/errors.ts';
import { log } from '../common/log.ts';
import { createActivities } from '../activities/index.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { temporalConnectConfig } from '../config/temporal.ts';
import { SnapshotKeys } from '../gateways/snapshot-crypto.ts';
import { createGateways, type Gateways } from './gateways.ts';
import { heartbeatWhileRunning } from './heartbeat.ts';
import { observeDr, serveMetrics, WorkerMetrics } from './metrics.ts';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

let runtimeInstalled = false;

/** Temporal's core and SDK logs go through pino; Temporal's INFO chatter is kept at debug. */
function installRuntime() {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (l: LogLevel) => (l === 'ERROR' ? 'error' : l === 'WARN' ? 'warn' : 'debug');
  try {
    Runtime.install({
      logger: {
        log: (l: LogLevel, message: string, meta?: LogMetadata) => log[level(l)]({ ...meta, temporal: true }, message),
        trace: (m: string, meta?: LogMetadata) => log.trace(meta ?? {}, m),
        debug: (m: string, meta?: LogMetadata) => log.debug(meta ?? {}, m),
        info: (m: string, meta?: LogMetadata) => log.debug(meta ?? {}, m),
        warn: (m: string, meta?: LogMetadata) => log.warn(meta ?? {}, m),
        error: (m: string, meta?: LogMetadata) => log.error(meta ?? {}, m),
      },
    });
  } catch {
    // A runtime already exists in this process (e.g. a test installed one): keep it.
  }
}

export interface DrctlWorker {
  worker: Worker;
  gateways: Gateways;
  connection: NativeConnection;
  /** The DR state and the runs this worker saw end; served when metrics.listen is set. */
  metrics: WorkerMetrics;
}

export async function createWorker(
  config: DrctlConfig,
  overrides: Partial<WorkerOptions> = {},
  made?: { gateways: Gateways; metrics: WorkerMetrics },
): Promise<DrctlWorker> {
  installRuntime();
  const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
  const connection = await NativeConnection.connect(connectionOptions);
  const gateways = made?.gateways ?? createGateways(config);
  const metrics = made?.metrics ?? new WorkerMetrics(() => observeDr(gateways), config.metrics.refresh);
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: config.temporal.taskQueue,
    workflowsPath,
    activities: createActivities(gateways),
    interceptors: { activity: [heartbeatWhileRunning] },
    sinks: metrics.sinks(),
    ...overrides,
  });
  return { worker, gateways, connection, metrics };
}

/**
 * The identity a worker polls with, which Temporal records on every task it runs (the history's
 * ActivityTaskStarted, `describe`'s pending activities, the task queue's pollers): the site it runs
 * at, then Temporal's default `pid@host`.
 */
export function workerIdentity(site?: string): string {
  return `drctl-worker@${site ?? 'unplaced'} ${process.pid}@${hostname()}`;
}

/**
 * Runs until SIGINT/SIGTERM, then drains in-flight tasks. `site`: where this worker runs. Every
 * worker on the task queue runs every activity (each reads both sites' credentials from its own
 * config), so with one worker per site the loss of a site's worker costs an activity's heartbeat
 * timeout, not the run.
 */
export async function runWorker(
  config: DrctlConfig,
  opts: { site?: string; metricsListen?: string } = {},
): Promise<void> {
  // The snapshot keys now, not at the first snapshot: a worker that could not sign or encrypt one
  // says so before it starts (one line naming the config field and the file or variable; exit 2).
  try {
    SnapshotKeys.load(config.snapshots);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const identity = workerIdentity(opts.site);
  // The metrics address first: one that cannot be bound is bad input, before anything connects.
  const gateways = createGateways(config);
  const metrics = new WorkerMetrics(() => observeDr(gateways), config.metrics.refresh);
  const listen = opts.metricsListen ?? config.metrics.listen;
  const served = listen
    ? await serveMetrics(listen, metrics).catch((err: unknown) => {
        gateways.close();
        throw new UsageError(`metrics.listen ${listen}: cannot listen (${(err as Error).message})`);
      })
    : undefined;
  const { worker, connection } = await createWorker(config, { identity }, { gateways, metrics });
  log.info(
    { taskQueue: config.temporal.taskQueue, namespace: worker.options.namespace, identity, metrics: served?.url },
    'worker running',
  );
  try {
    await worker.run();
  } finally {
    served?.server.close();
    gateways.close();
    await connection.close();
  }
}
