// The drctl worker: activities built over gateways from this worker's own config (credentials are
// read here and never leave), workflows from workflows/.
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
}

export async function createWorker(config: DrctlConfig, overrides: Partial<WorkerOptions> = {}): Promise<DrctlWorker> {
  installRuntime();
  const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
  const connection = await NativeConnection.connect(connectionOptions);
  const gateways = createGateways(config);
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: config.temporal.taskQueue,
    workflowsPath,
    activities: createActivities(gateways),
    interceptors: { activity: [heartbeatWhileRunning] },
    ...overrides,
  });
  return { worker, gateways, connection };
}

/** Runs until SIGINT/SIGTERM, then drains in-flight tasks. */
export async function runWorker(config: DrctlConfig): Promise<void> {
  // The snapshot keys now, not at the first snapshot: a worker that could not sign or encrypt one
  // says so before it starts (one line naming the config field and the file or variable; exit 2).
  try {
    SnapshotKeys.load(config.snapshots);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { worker, gateways, connection } = await createWorker(config);
  log.info({ taskQueue: config.temporal.taskQueue, namespace: worker.options.namespace }, 'worker running');
  try {
    await worker.run();
  } finally {
    gateways.close();
    await connection.close();
  }
}
