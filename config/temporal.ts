// Temporal connection settings: drctl.yaml's `temporal:` section as the base, with an envconfig
// profile (TOML file + TEMPORAL_* environment variables) layered on top, so the same worker and
// CLI run against the dev server, a self-hosted cluster or Temporal Cloud.
import {
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ClientConnectConfig,
} from '@temporalio/envconfig';
import { UsageError } from '../common/errors.ts';
import type { TemporalConfig } from './schema.ts';

export function temporalConnectConfig(t: TemporalConfig): ClientConnectConfig & { namespace: string } {
  const base: ClientConfigProfile = {
    address: t.address,
    namespace: t.namespace,
    apiKey: t.apiKeyEnv ? process.env[t.apiKeyEnv] : undefined,
  };
  if (t.apiKeyEnv && !base.apiKey) throw new UsageError(`temporal.apiKeyEnv: $${t.apiKeyEnv} is not set`);
  if (t.tls === true) base.tls = {};
  else if (t.tls === false) base.tls = { disabled: true };
  else if (t.tls) {
    base.tls = {
      serverName: t.tls.serverName,
      serverCACert: t.tls.serverCaCertPath ? { path: t.tls.serverCaCertPath } : undefined,
      clientCert: t.tls.clientCertPath ? { path: t.tls.clientCertPath } : undefined,
      clientKey: t.tls.clientKeyPath ? { path: t.tls.clientKeyPath } : undefined,
    };
  }
  let overlay: ClientConfigProfile = {};
  try {
    overlay = loadClientConfigProfile({ profile: t.profile });
  } catch (err) {
    if (t.profile) throw new UsageError(`temporal.profile '${t.profile}': ${(err as Error).message}`);
  }
  const merged: ClientConfigProfile = { ...base };
  for (const [k, v] of Object.entries(overlay)) if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  // The profile may add a key or turn TLS off: the schema's check again on what will be used.
  if (merged.apiKey && merged.tls?.disabled)
    throw new UsageError(
      'temporal.tls: TLS is off (tls: false or the profile) and an API key is set: it would be sent in clear text',
    );
  merged.address ??= 'localhost:7233';
  const out = toClientOptions(merged);
  return { ...out, namespace: out.namespace ?? 'default' };
}
