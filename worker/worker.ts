// The drctl worker: activities built over gateways from this worker's own config (credentials are
// read here and never leave), workflows from workflows/.
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities/index.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { temporalConnectConfig } from '../config/temporal.ts';
import { createGateways, type Gateways } from './gateways.ts';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface DrctlWorker {
  worker: Worker;
  gateways: Gateways;
  connection: NativeConnection;
}

export async function createWorker(config: DrctlConfig, overrides: Partial<WorkerOptions> = {}): Promise<DrctlWorker> {
  const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
  const connection = await NativeConnection.connect(connectionOptions);
  const gateways = createGateways(config);
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: config.temporal.taskQueue,
    workflowsPath,
    activities: createActivities(gateways),
    ...overrides,
  });
  return { worker, gateways, connection };
}

/** Runs until SIGINT/SIGTERM, then drains in-flight tasks. */
export async function runWorker(config: DrctlConfig): Promise<void> {
  const { worker, gateways, connection } = await createWorker(config);
  try {
    await worker.run();
  } finally {
    gateways.close();
    await connection.close();
  }
}
