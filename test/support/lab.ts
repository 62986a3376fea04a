import { execFileSync, spawn } from 'node:child_process';
// Shared helpers for integration tests against the running lab.
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundle } from '@temporalio/worker';
import { signDecision, signRequest } from '../../client/signing.ts';
import type { DecisionRecord, RunbookName } from '../../common/runbook.ts';
import type { DecisionKind, Signed } from '../../common/signed.ts';
import { loadConfig } from '../../config/load.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { temporalConnectConfig } from '../../config/temporal.ts';
import type { SnapshotRef } from '../../common/snapshots.ts';
import { siteUp, startSshd, status as labStatus } from '../../lab/lab.ts';
import { labEtcdctl } from '../../lab/etcdctl.ts';
import { paths, SITES } from '../../lab/topology.ts';
import { createGateways, type Gateways } from '../../worker/gateways.ts';
import { createWorker, type DrctlWorker, workflowsPath } from '../../worker/worker.ts';
import { decideUpdate } from '../../workflows/approval.ts';
import { etcdSnapshot } from '../../workflows/etcd-snapshot.ts';

export function labConfig(taskQueue?: string): DrctlConfig {
  const config = loadConfig(paths.config).config;
  return taskQueue ? { ...config, temporal: { ...config.temporal, taskQueue } } : config;
}

export async function temporalClient(config: DrctlConfig): Promise<Client> {
  const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
  return new Client({ connection: await Connection.connect(connectionOptions), namespace });
}

export async function until<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 60_000,
  everyMs = 300,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)} ${lastErr ? String(lastErr) : ''}`);
}

/** The lab's own etcdctl against one member (lab/etcdctl.ts); serializable reads stay local to it. */
export function etcdOn(_gw: Gateways, cluster: string, node: string, args: string[]): Promise<string> {
  return labEtcdctl(cluster, node, args);
}

/** Puts the keys through the cluster's first member in one transaction; returns the revision after it. */
export async function putKeys(gw: Gateways, cluster: string, kv: Record<string, string>): Promise<number> {
  // `etcdctl txn` reads three blocks, each ended by an empty line: compares, success ops, failure ops.
  const q = (v: string) => JSON.stringify(v);
  const txn = `\n${Object.entries(kv)
    .map(([k, v]) => `put ${q(k)} ${q(v)}`)
    .join('\n')}\n\n\n`;
  const out = await labEtcdctl(cluster, gw.cluster(cluster).nodes[0]!.name, ['txn', '-w', 'json'], { input: txn });
  return (JSON.parse(out) as { header: { revision: number } }).header.revision;
}

/** Keys and values under a prefix as one member sees them (serializable: that member's own data). */
export async function keysOn(
  gw: Gateways,
  cluster: string,
  node: string,
  prefix: string,
): Promise<Record<string, string>> {
  const out = await etcdOn(gw, cluster, node, ['get', prefix, '--prefix', '--consistency=s', '-w', 'json']);
  const j = JSON.parse(out) as { kvs?: { key: string; value: string }[] };
  const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
  return Object.fromEntries((j.kvs ?? []).map((kv) => [b64(kv.key), b64(kv.value)]));
}

/** A snapshot through drctl's own snapshot runbook; returns it as the restore side sees it. */
export async function snapshotNow(
  client: Client,
  taskQueue: string,
  gw: Gateways,
  cluster: string,
): Promise<SnapshotRef> {
  const r = await client.workflow.execute(etcdSnapshot, {
    taskQueue,
    workflowId: `test-snapshot-${cluster}-${Date.now()}`,
    args: [{ cluster, keep: 50 }],
  });
  // As the restore reads it: the signed manifest, checked with the worker's keys.
  return gw.snapshots().resolve(cluster, r.key);
}

/** Runs the real `drctl` CLI without blocking this process (an in-process worker must keep serving). */
export function drctlCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/drctl.js', ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ status: code ?? 1, stdout, stderr }));
  });
}

/**
 * The whole lab healthy, whatever the file before this one left: sshd on every node (a fault test
 * kills one), both sites up (a failover test takes one down), then every component of `lab status`
 * healthy (etcd members, API servers, controllers, Velero, the app endpoints, Temporal). A lab file
 * calls this in its beforeAll: vitest orders files by its own cache, not by their names.
 */
export async function ensureLabHealthy(): Promise<void> {
  // A stretched-cluster file that died before its afterAll leaves the sites frozen.
  (await import('../../lab/stretched.ts')).thawSites();
  for (const n of SITES.flatMap((s) => s.nodes)) await startSshd(n.id);
  // `drctl lab site up`, in this process (the CLI would load the Kubernetes client again).
  for (const s of SITES) await siteUp(s.name);
  await until(
    'every lab component healthy',
    async () => (await labStatus()).filter((c) => !c.healthy).map((c) => `${c.name}: ${c.detail}`),
    (unhealthy) => unhealthy.length === 0,
    180_000,
    1000,
  );
}

/** Per-item progress of a status step (a node, a check, an undo), whichever name the runbook gives it. */
export function itemsOf(step: { items: Record<string, string> } | undefined) {
  return step?.items ?? {};
}

export interface TestEnv {
  config: DrctlConfig;
  taskQueue: string;
  /** The test's own gateways (separate from the worker's, as a person's shell would be). */
  gw: Gateways;
  client: Client;
  worker: DrctlWorker;
  close(): Promise<void>;
}

/**
 * The workflow code bundled once per test file, for every worker the file starts (webpack takes
 * 5-15 s a bundle on this machine). The lab's own workers (`drctl worker`) bundle as users' do.
 */
let bundle: Promise<WorkflowBundle> | undefined;
export const workflows = async () => ({
  workflowsPath: undefined,
  workflowBundle: await (bundle ??= bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') })),
});

/** A drctl worker running in this process on its own task queue, a client, and gateways. */
export async function startTestEnv(name: string, change: (c: DrctlConfig) => void = () => undefined): Promise<TestEnv> {
  const taskQueue = `${name}-${Date.now()}`;
  const config = labConfig(taskQueue);
  change(config);
  const worker = await createWorker(config, await workflows());
  const running = worker.worker.run();
  const gw = createGateways(config);
  const client = await temporalClient(config);
  return {
    config,
    taskQueue,
    gw,
    client,
    worker,
    async close() {
      worker.worker.shutdown();
      await running;
      await worker.connection.close();
      worker.gateways.close();
      gw.close();
      await client.connection.close();
    },
  };
}

/** A worker on its own task queue with a changed config (a policy, a timeout), for one test's runs. */
export async function withWorker<T>(
  name: string,
  change: (c: DrctlConfig) => void,
  fn: (taskQueue: string) => Promise<T>,
): Promise<T> {
  const taskQueue = `${name}-variant-${Date.now()}`;
  const config = labConfig(taskQueue);
  change(config);
  const w = await createWorker(config, await workflows());
  try {
    return await w.worker.runUntil(fn(taskQueue));
  } finally {
    await w.connection.close();
    w.gateways.close();
  }
}

/** A lab person's signing key (alice, bob and carol approve; dave only asks). */
export const personKey = (who: string) => paths.personKey(who);

/**
 * A run's input as `drctl` sends it when `who` starts it: `requestedBy` = who, and the request
 * signed with their key over the workflow id, the runbook and the input.
 */
export async function signedInput<I extends object>(
  env: Pick<TestEnv, 'config'>,
  runbook: RunbookName,
  workflowId: string,
  input: I,
  who = 'alice',
): Promise<I & { requestedBy: string; request?: Signed }> {
  const r = await signRequest(env.config, {
    runbook,
    workflowId,
    input: { ...input, requestedBy: who },
    key: personKey(who),
  });
  return r.input;
}

/** `who`'s signed decision on a run at its gate (or sign-off), as `drctl approve --sign-only` prints it. */
export function signedDecision(
  env: Pick<TestEnv, 'config' | 'client'>,
  workflowId: string,
  who: string,
  decision: DecisionKind = 'approve',
  reason?: string,
): Promise<Signed> {
  return signDecision(env.client, env.config, { workflowId, decision, reason, key: personKey(who), validMs: 600_000 });
}

/** `drctl approve|reject <id> --key <who's key>`: the signed decision through the update; its verdict. */
export async function decide(
  env: Pick<TestEnv, 'config' | 'client'>,
  handle: WorkflowHandle,
  who: string,
  approve = true,
  reason?: string,
): Promise<DecisionRecord> {
  const signed = await signedDecision(env, handle.workflowId, who, approve ? 'approve' : 'reject', reason);
  return handle.executeUpdate(decideUpdate, { args: [{ approve, signed }] });
}

/** The SHA256 fingerprint of a lab person's key, as the worker records it for their decisions. */
export function keyFingerprint(who: string): string {
  return execFileSync('ssh-keygen', ['-lf', `${personKey(who)}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
}
