import { Client, Connection } from '@temporalio/client';
import { temporalConnectConfig } from '../config/temporal.ts';
import type { DrctlConfig } from '../config/schema.ts';

export async function connectClient(cfg: DrctlConfig): Promise<Client> {
  const { connectionOptions, namespace } = temporalConnectConfig(cfg.temporal);
  const connection = await Connection.connect({ ...connectionOptions, connectTimeout: '10s' });
  return new Client({ connection, namespace });
}
