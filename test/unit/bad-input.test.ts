// Bad input refused, nothing changed. Flags on the real command (a subprocess): exit 2, one line
// naming the flag, no stack trace, and no connection to Temporal tried: the config's Temporal
// address is a local listener that counts connections (and ends a command that got that far).
// Then the same inputs where they enter on the worker's side: typed, non-retryable failures before
// anything is read or deleted. No lab, no Temporal server.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { createFailoverActivities } from '../../activities/failover.ts';
import { createSnapshotActivities } from '../../activities/snapshot.ts';
import { FailureType } from '../../common/errors.ts';
import { retentionProblem } from '../../common/snapshots.ts';
import type { TemporalConfig } from '../../config/schema.ts';
import { temporalConnectConfig } from '../../config/temporal.ts';
import type { Gateways } from '../../gateways/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'drctl-bad-input-'));
const file = join(dir, 'drctl.yaml');

let connections = 0;
let running: ChildProcess | undefined;
const temporal = createServer((sock) => {
  connections++;
  sock.destroy();
  running?.kill('SIGKILL');
});

beforeAll(async () => {
  await new Promise<void>((r) => temporal.listen(0, '127.0.0.1', r));
  const VALID = parse(readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
  writeFileSync(
    file,
    stringify({
      ...VALID,
      // No TLS files to read: a command that passed its checks goes straight to the listener.
      temporal: { address: `127.0.0.1:${(temporal.address() as AddressInfo).port}`, namespace: 'dr' },
      sites: (VALID.sites as object[]).map((s, i) => ({ ...s, appAddress: `10.0.${i + 1}.100` })),
      dns: {
        powerdns: { api: 'https://10.0.30.5:8081', apiKey: { env: 'PDNS_KEY' } },
        nameserver: '10.0.30.5:53',
        zone: 'example.com',
        records: [{ name: 'app.example.com' }],
      },
      failover: { namespaces: ['shop', 'payments'] },
      drills: [
        {
          name: 'quarterly',
          from: 'site-a',
          to: 'site-b',
          workloads: [{ tier: 'e-commerce', namespaces: ['shop'] }],
          record: { name: 'drill.app.example.com' },
        },
      ],
    }),
  );
});
afterAll(() => new Promise<void>((r) => temporal.close(() => r())));

/** The shipped entry point (bin/drctl.js: tsx + client/cli.ts), without the caller's Temporal settings. */
function drctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_') && !k.startsWith('DRCTL_')),
  );
  const child = spawn(process.execPath, ['bin/drctl.js', '--config', file, ...args], {
    env: { ...env, DRCTL_USER: 'alice', TEMPORAL_CONFIG_FILE: join(dir, 'none.toml') },
  });
  running = child;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('bad flags: exit 2, one line naming the flag, no stack, no connection (subprocess)', () => {
  const failover = ['failover', '--from', 'site-a', '--to', 'site-b'];

  it.each([
    [
      ['etcd', 'restore', '--cluster', 'prod-a', '--bump-revision', '0'],
      "--bump-revision: expected an integer >= 1 (got '0')",
    ],
    [
      ['etcd', 'restore', '--cluster', 'prod-a', '--bump-revision', '1.5'],
      "--bump-revision: expected an integer >= 1 (got '1.5')",
    ],
    [
      ['etcd', 'restore', '--cluster', 'prod-a', '--approval-timeout', '0'],
      "--approval-timeout: expected a duration above 0 (got '0')",
    ],
    [
      ['etcd', 'restore', '--cluster', 'prod-a', '--approval-timeout', '-5m'],
      "--approval-timeout: expected a duration like 30m, 1h (got '-5m')",
    ],
    [[...failover, '--approval-timeout', '0s'], "--approval-timeout: expected a duration above 0 (got '0s')"],
    [
      ['drill', 'run', '--plan', 'quarterly', '--approval-timeout', '0'],
      "--approval-timeout: expected a duration above 0 (got '0')",
    ],
    [
      [...failover, '--namespaces', 'kube-system'],
      "--namespaces: 'kube-system' is not in failover.namespaces (shop, payments)",
    ],
    [
      ['failback', '--from', 'site-b', '--to', 'site-a', '--namespaces', 'shop,kube-system'],
      "--namespaces: 'kube-system' is not in failover.namespaces (shop, payments)",
    ],
    [[...failover, '--namespaces', ','], "--namespaces: expected at least one of shop, payments (got ',')"],
    [['snapshot', 'now', '--cluster', 'prod-a', '--max-age', '0'], "--max-age: expected a duration above 0 (got '0')"],
    [
      ['snapshot', 'schedule', '--cluster', 'prod-a', '--every', '1h', '--max-age', '30m'],
      '--max-age: the max age (30m) must be longer than the interval (60m), else each run deletes every snapshot but the newest',
    ],
    [
      ['restore', 'namespace', '--site', 'site-c', '--namespaces', 'shop'],
      "--site: unknown site 'site-c' (sites: site-a, site-b)",
    ],
    [
      ['restore', 'namespace', '--site', 'site-a', '--namespaces', 'shop,kube-system'],
      "--namespaces: 'kube-system' is one of the cluster's own namespaces: never restored in place",
    ],
    [
      ['restore', 'namespace', '--site', 'site-a', '--namespaces', 'Shop'],
      "--namespaces: 'Shop' is not a namespace name",
    ],
    [
      ['restore', 'namespace', '--site', 'site-a', '--namespaces', ' , '],
      "--namespaces: expected at least one namespace (got ' , ')",
    ],
    [
      ['restore', 'namespace', '--site', 'site-a', '--namespaces', 'shop', '--before', 'yesterday'],
      "--before: expected a time with its zone (2026-12-03T10:42:00Z) or how long ago (45m) (got 'yesterday')",
    ],
    [
      ['restore', 'namespace', '--site', 'site-a', '--namespaces', 'shop', '--before', '2026-12-03T10:42:00'],
      "--before: expected a time with its zone (2026-12-03T10:42:00Z) or how long ago (45m) (got '2026-12-03T10:42:00')",
    ],
    [
      ['restore', 'namespace', '--site', 'site-a', '--namespaces', 'shop', '--before', '2999-01-01T00:00:00Z'],
      '--before: 2999-01-01T00:00:00.000Z is in the future',
    ],
    [['audit', '--fix', 'delete-everything'], "--fix: expected one of protect-namespaces (got 'delete-everything')"],
    [
      ['audit', '--fix', 'protect-namespaces', '--site', 'site-c'],
      "--site: unknown site 'site-c' (sites: site-a, site-b)",
    ],
    [['audit', '--site', 'site-a'], '--site: only with --fix'],
    [['audit', '--approval-timeout', '1h'], '--approval-timeout: only with --fix'],
    [
      ['audit', 'schedule', '--cron', 'daily'],
      "--cron: expected a cron expression like '*/15 * * * *' or '@hourly' (got 'daily')",
    ],
    [['worker', '--metrics-listen', '9464'], "--metrics-listen: expected host:port, e.g. 127.0.0.1:9464 (got '9464')"],
  ])('%j', async (args, line) => {
    const before = connections;
    const r = await drctl(args);
    expect(r.stderr).toBe(`error: ${line}\n`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(connections - before, 'connections to Temporal').toBe(0);
  });

  it('the same commands with good flags do connect (what the cases above rule out)', async () => {
    for (const args of [
      [...failover, '--namespaces', 'payments', '--approval-timeout', '10m'],
      ['restore', 'namespace', '--site', 'site-a', '--namespaces', 'shop', '--before', '2026-12-01T10:42:00+01:00'],
    ]) {
      const before = connections;
      const r = await drctl(args);
      expect(r.code).not.toBe(2);
      expect(connections - before).toBeGreaterThan(0);
    }
  });
});

/** A typed failure: `type`, not retried, and its message. */
async function refused(p: Promise<unknown>, type: FailureType): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect((err as ApplicationFailure).type).toBe(type);
  expect((err as ApplicationFailure).nonRetryable).toBe(true);
  return (err as ApplicationFailure).message;
}

describe('where workflow inputs enter on the worker', () => {
  /** Gateways with just a config and a bucket that records what is asked of it. */
  function gateways(config: object) {
    const asked: string[] = [];
    const store = {
      list: (prefix: string) => (asked.push(`list ${prefix}`), Promise.resolve([])),
      head: () => Promise.resolve(undefined),
      delete: (key: string) => (asked.push(`delete ${key}`), Promise.resolve()),
    };
    // The signed-snapshot listing over that store: what prune reads first.
    const snapshotStore = {
      list: (cluster: string) => (
        asked.push(`list drctl/snapshots/${cluster}/`),
        Promise.resolve({ snapshots: [], ignored: [] })
      ),
    };
    const gw = {
      config,
      store: () => store,
      snapshots: () => snapshotStore,
      site: (name: string) => ({ name }),
    } as unknown as Gateways;
    return { gw, asked };
  }
  const snapshots = { keep: 20, every: 900_000, nodeDir: '/var/lib/etcd-snapshots' };

  // A workflow input from any client: 0, negative, or not even a number.
  it.each([0, -60_000, '7d'])('prune refuses maxAgeMs %j before it reads the bucket', async (maxAgeMs) => {
    const { gw, asked } = gateways({ objectStore: { prefix: 'drctl/' }, snapshots });
    const prune = createSnapshotActivities(gw).pruneSnapshots;
    expect(
      await refused(prune({ cluster: 'prod-a', maxAgeMs: maxAgeMs as number }), FailureType.PreflightFailed),
    ).toMatch(/^maxAgeMs must be above 0/);
    expect(asked).toEqual([]);
    // A good one does read it: the empty list above is the refusal, not a fake that does nothing.
    expect(await prune({ cluster: 'prod-a', maxAgeMs: 1 })).toEqual([]);
    expect(asked).toEqual(['list drctl/snapshots/prod-a/']);
  });

  it('retention inputs: keep >= 1, maxAgeMs > 0 (what the workflow and the activity refuse)', () => {
    expect(retentionProblem({})).toBeUndefined();
    expect(retentionProblem({ keep: 1, maxAgeMs: 1 })).toBeUndefined();
    expect(retentionProblem({ keep: 0 })).toBe('keep must be an integer >= 1 (got 0)');
    expect(retentionProblem({ keep: 2.5 })).toBe('keep must be an integer >= 1 (got 2.5)');
    expect(retentionProblem({ maxAgeMs: 0 })).toMatch(/^maxAgeMs must be above 0 \(got 0\)/);
    expect(retentionProblem({ maxAgeMs: Number.POSITIVE_INFINITY })).toMatch(/^maxAgeMs must be above 0/);
  });

  it('failover preflight refuses namespaces outside failover.namespaces', async () => {
    const { gw } = gateways({ failover: { namespaces: ['shop'] } });
    const preflight = createFailoverActivities(gw).failoverPreflight;
    expect(
      await refused(
        preflight({ from: 'site-a', to: 'site-b', namespaces: ['shop', 'kube-system'] }),
        FailureType.FailoverRefused,
      ),
    ).toBe('namespaces kube-system are not in failover.namespaces (shop)');
    // Past that check with the app's own namespace (the fake sites stop it at the next one).
    expect(
      await refused(preflight({ from: 'site-a', to: 'site-a', namespaces: ['shop'] }), FailureType.FailoverRefused),
    ).toBe('--from and --to are the same site (site-a)');
  });
});

describe('an API key never goes out in clear text', () => {
  beforeEach(() => {
    // Only what each case sets: no profile file, no key or TLS switch from the caller's environment.
    vi.stubEnv('TEMPORAL_CONFIG_FILE', join(dir, 'none.toml'));
    for (const k of ['TEMPORAL_API_KEY', 'TEMPORAL_TLS', 'TEMPORAL_PROFILE']) vi.stubEnv(k, undefined);
  });
  afterEach(() => vi.unstubAllEnvs());
  const base: TemporalConfig = { address: '127.0.0.1:7233', taskQueue: 'drctl' };

  it.each([
    ['tls: false in the config, the key from the environment', { ...base, tls: false }, { TEMPORAL_API_KEY: 'k' }],
    [
      'the key from apiKeyEnv, TLS turned off in the environment',
      { ...base, apiKeyEnv: 'DRCTL_TEST_KEY' },
      { DRCTL_TEST_KEY: 'k', TEMPORAL_TLS: 'false' },
    ],
  ])('%s: refused', (_name, t, env) => {
    for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
    expect(() => temporalConnectConfig(t)).toThrow(
      'temporal.tls: TLS is off (tls: false or the profile) and an API key is set: it would be sent in clear text',
    );
  });

  it('without the key, or with TLS, the same settings pass', () => {
    expect(temporalConnectConfig({ ...base, tls: false }).connectionOptions.tls).toBe(false);
    vi.stubEnv('DRCTL_TEST_KEY', 'k');
    expect(temporalConnectConfig({ ...base, apiKeyEnv: 'DRCTL_TEST_KEY' }).connectionOptions.tls).toBeTruthy();
  });
});
