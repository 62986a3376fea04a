// The CLI's side of Temporal: one connection per command, who is asking, and where the Web UI shows a run.
import { userInfo } from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { UsageError } from '../common/errors.ts';
import { loadConfig } from '../config/load.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { temporalConnectConfig } from '../config/temporal.ts';

export async function connectClient(cfg: DrctlConfig): Promise<Client> {
  const { connectionOptions, namespace } = temporalConnectConfig(cfg.temporal);
  const connection = await Connection.connect({ ...connectionOptions, connectTimeout: '10s' });
  return new Client({ connection, namespace });
}

export interface Session {
  config: DrctlConfig;
  client: Client;
}

/**
 * Loads the config, lets `check` refuse bad input before anything connects (exit 2 even with
 * Temporal down), then runs `fn` with a client that is closed afterwards.
 */
export async function withTemporal<T>(
  configPath: string,
  fn: (s: Session) => Promise<T>,
  check: (config: DrctlConfig) => void = () => undefined,
): Promise<T> {
  const { config } = loadConfig(configPath);
  check(config);
  const client = await connectClient(config);
  try {
    return await fn({ config, client });
  } finally {
    await client.connection.close();
  }
}

/** Who is asking, when --as is not given: $DRCTL_USER, else the login name. */
export function whoami(): string {
  return process.env.DRCTL_USER ?? process.env.USER ?? userInfo().username;
}

export function requireAs(as: string | undefined): string {
  if (!as) throw new UsageError('--as: who is asking? (set --as or $DRCTL_USER)');
  return as;
}

/** The run's page in the Temporal Web UI, when the config names the UI. */
export function webUiUrl(config: DrctlConfig, namespace: string, workflowId: string): string | null {
  if (!config.temporal.webUi) return null;
  const base = config.temporal.webUi.replace(/\/$/, '');
  return `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
