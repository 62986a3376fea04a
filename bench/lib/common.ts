// Shared helpers for the benchmark scripts (bench/*.ts). Benchmarks touch site-b only: every helper
// that acts on a cluster takes it from CLUSTER, never from an argument.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { createRestoreActivities } from '../../activities/restore.ts';
import { log } from '../../common/log.ts';
import type { NodePlan } from '../../common/restore.ts';
import { dirOf } from '../../common/etcd-tools.ts';
import { EtcdTools } from '../../gateways/etcd.ts';
import { type RemoteShell, shq } from '../../gateways/ssh.ts';
import { loadConfig } from '../../config/load.ts';
import type { DrctlConfig, NodeConfig } from '../../config/schema.ts';
import { temporalConnectConfig } from '../../config/temporal.ts';
import { labEtcdctl } from '../../lab/etcdctl.ts';
import type { Gateways } from '../../worker/gateways.ts';
import { etcdSnapshot, type EtcdSnapshotResult } from '../../workflows/etcd-snapshot.ts';

export const CLUSTER = 'site-b';
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const RESULTS_DIR = join(REPO, 'bench/results');
export const NODES = ['cp1', 'cp2', 'cp3'] as const;

// drctl's own logs (pino, JSON on stderr) would drown the tables.
log.level = process.env.DRCTL_LOG_LEVEL ?? 'warn';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const secs = (ms: number | undefined) =>
  ms === undefined || !Number.isFinite(ms) ? '-' : (ms / 1000).toFixed(2);
export const stamp = () =>
  new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function say(msg: string) {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

/** The lab config with this benchmark's own task queue (never the shared 'drctl' queue). */
export function benchConfig(taskQueue: string): { path: string; config: DrctlConfig } {
  const { path, config } = loadConfig(process.env.DRCTL_CONFIG ?? join(REPO, '.lab/drctl.yaml'));
  return { path, config: { ...config, temporal: { ...config.temporal, taskQueue } } };
}

export async function temporalClient(config: DrctlConfig): Promise<Client> {
  const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
  return new Client({ connection: await Connection.connect(connectionOptions), namespace });
}

/** The lab's own etcdctl against one site-b member (lab/etcdctl.ts): set-up and clean-up around a measurement. */
export function etcdOn(
  _gw: Gateways,
  node: string,
  args: string[],
  timeoutMs = 120_000,
  input?: string,
): Promise<string> {
  return labEtcdctl(CLUSTER, node, args, { timeoutMs, input });
}

export async function countPrefix(gw: Gateways, prefix: string): Promise<number> {
  const out = await etcdOn(gw, 'cp1', ['get', prefix, '--prefix', '--count-only', '-w', 'fields']);
  return Number(out.match(/"Count" : (\d+)/)?.[1] ?? NaN);
}

/**
 * Writes `count` keys of `rawBytes` random bytes, base64'd (so 786432 → 1 MiB values), put from
 * `parallel` concurrent writers through cp1's member. Returns what is there afterwards.
 */
export async function fill(gw: Gateways, opts: { prefix: string; count: number; rawBytes: number; parallel: number }) {
  const t0 = Date.now();
  let error: string | undefined;
  const writer = async (b: number) => {
    for (let i = b; i < opts.count; i += opts.parallel) {
      const value = randomBytes(opts.rawBytes).toString('base64');
      await etcdOn(gw, 'cp1', ['put', `${opts.prefix}${String(i).padStart(5, '0')}`], 60_000, value);
    }
  };
  await Promise.all(Array.from({ length: opts.parallel }, (_, b) => writer(b))).catch((err: unknown) => {
    error = (err as Error).message.slice(-800);
  });
  const ms = Date.now() - t0;
  const keys = await countPrefix(gw, opts.prefix);
  const st = await gw.etcd(CLUSTER, 'cp1').status();
  return { ms, keys, ok: !error, error, dbSize: st.dbSize, revision: st.revision };
}

/** Deletes a prefix; then compacts to the current revision and defragments each member in turn. */
export async function deleteCompactDefrag(gw: Gateways, prefixes: string[]) {
  for (const p of prefixes) await etcdOn(gw, 'cp1', ['del', p, '--prefix']);
  const rev = (await gw.etcd(CLUSTER, 'cp1').status()).revision;
  try {
    await etcdOn(gw, 'cp1', ['compact', String(rev)]);
  } catch (err) {
    // The API server compacts on its own schedule: "already compacted" is fine.
    if (!/compacted/.test((err as Error).message)) throw err;
  }
  for (const n of NODES) await etcdOn(gw, n, ['defrag'], 10 * 60_000);
  const alarms = await etcdOn(gw, 'cp1', ['alarm', 'list']);
  if (alarms.trim()) await etcdOn(gw, 'cp1', ['alarm', 'disarm']);
  return Promise.all(NODES.map(async (n) => ({ node: n, dbSize: (await gw.etcd(CLUSTER, n).status()).dbSize })));
}

/** A snapshot through drctl's own runbook (keep is huge: never prune anyone else's snapshots). */
export async function drctlSnapshot(client: Client, taskQueue: string): Promise<EtcdSnapshotResult & { ms: number }> {
  const t0 = Date.now();
  const r = await client.workflow.execute(etcdSnapshot, {
    taskQueue,
    workflowId: `bench-snapshot-${CLUSTER}-${Date.now()}`,
    args: [{ cluster: CLUSTER, keep: 100_000 }],
  });
  return { ...r, ms: Date.now() - t0 };
}

/** Just enough of a plan for drctl's verifyQuorum (member names and peer URLs from the config). */
export function quorumPlan(gw: Gateways): { nodes: NodePlan[] } {
  return {
    nodes: gw.cluster(CLUSTER).nodes.map((n) => ({
      node: n.name,
      memberName: n.etcd.memberName,
      peerUrl: n.etcd.peerUrl,
      clientUrl: n.etcd.clientUrl,
      dataDir: n.etcd.dataDir,
      asideDir: '',
      workDir: '',
      stagedSnapshot: '',
      tool: 'etcdutl',
      markCompacted: false,
      apiserver: n.apiserver,
      restoreCommand: '',
    })),
  };
}

/** 3/3 members healthy with one leader and one revision (drctl's own check), and /readyz. */
export async function siteHealthy(gw: Gateways, timeoutMs = 10_000): Promise<{ ok: boolean; detail: string }> {
  const acts = createRestoreActivities(gw);
  try {
    const q = await acts.verifyQuorum({ cluster: CLUSTER, plan: quorumPlan(gw), timeoutMs });
    const api = await gw.kube(CLUSTER).readyz();
    return {
      ok: api.ready,
      detail: `quorum 3/3, leader ${q.leader}, revision ${q.revision}; kube-apiserver ${api.ready ? 'ready' : `NOT ready: ${api.detail}`}`,
    };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

/** `drctl cluster check --cluster site-b` through the lab's worker; its exit code and output. */
export function drctlClusterCheck(): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const config = process.env.DRCTL_CONFIG ?? join(REPO, '.lab/drctl.yaml');
    const child = spawn(
      process.execPath,
      ['bin/drctl.js', 'cluster', 'check', '--cluster', CLUSTER, '--config', config],
      { cwd: REPO, env: process.env },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, out: out.trim() }));
  });
}

/** The drctl CLI with the lab's config; its stdout. A non-zero exit throws with what it said. */
export function drctl(args: string[]): Promise<string> {
  const config = process.env.DRCTL_CONFIG ?? join(REPO, '.lab/drctl.yaml');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/drctl.js', '--config', config, ...args], {
      cwd: REPO,
      env: process.env,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`drctl ${args.join(' ')}: exit ${code}\n${err.slice(-2000)}${out.slice(-2000)}`)),
    );
  });
}

/** The run `id`, started at `since` or later, waiting at its gate (its preflight done). */
export async function atGate(id: string, since: number, timeoutMs = 180_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(500)) {
    const st = (await drctl(['status', id, '--json']).then(JSON.parse, () => undefined)) as
      { phase: string; error?: string; steps: { startedAt?: string }[] } | undefined;
    const mine = st && Date.parse(st.steps[0]?.startedAt ?? '0') >= since - 1000;
    if (mine && st.phase === 'waiting-approval') return;
    if (mine && st.phase !== 'running') throw new Error(`${id}: ${st.phase}: ${st.error}`);
  }
  throw new Error(`${id} never reached its gate`);
}

/** A fixed-width table. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n');
}

export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}-${stamp()}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** Protobuf timestamps in workflow histories → epoch ms. */
export function tsMs(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  if (!t) return NaN;
  return Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6;
}

/** The first JSON payload of an activity's input, decoded (drctl's activities take one object). */
export function firstPayload(
  payloads: { payloads?: { data?: Uint8Array | null }[] | null } | null | undefined,
): unknown {
  const d = payloads?.payloads?.[0]?.data;
  if (!d) return undefined;
  try {
    return JSON.parse(Buffer.from(d).toString('utf8'));
  } catch {
    return undefined;
  }
}

export interface ActivitySpan {
  type: string;
  /** e.g. "cp1 etcd" */
  what: string;
  scheduledAt: number;
  startedAt: number;
  closedAt: number;
  attempt: number;
  outcome: 'completed' | 'failed' | 'timed-out' | 'canceled' | 'open';
}

/** Every activity in a workflow's history with its schedule/start/close times. */
export async function activitySpans(client: Client, workflowId: string): Promise<ActivitySpan[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const spans = new Map<string, ActivitySpan>();
  for (const e of history.events ?? []) {
    const at = tsMs(e.eventTime);
    const id = String(e.eventId);
    if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      const input = firstPayload(a.input) as { node?: string; component?: string } | string | undefined;
      const what = typeof input === 'string' ? input : [input?.node, input?.component].filter(Boolean).join(' ');
      spans.set(id, {
        type: a.activityType?.name ?? '?',
        what,
        scheduledAt: at,
        startedAt: NaN,
        closedAt: NaN,
        attempt: 0,
        outcome: 'open',
      });
    } else if (e.activityTaskStartedEventAttributes) {
      const s = spans.get(String(e.activityTaskStartedEventAttributes.scheduledEventId));
      if (s) {
        s.startedAt = at;
        s.attempt = e.activityTaskStartedEventAttributes.attempt ?? 1;
      }
    } else {
      const closed =
        (e.activityTaskCompletedEventAttributes && (['completed', e.activityTaskCompletedEventAttributes] as const)) ||
        (e.activityTaskFailedEventAttributes && (['failed', e.activityTaskFailedEventAttributes] as const)) ||
        (e.activityTaskTimedOutEventAttributes && (['timed-out', e.activityTaskTimedOutEventAttributes] as const)) ||
        (e.activityTaskCanceledEventAttributes && (['canceled', e.activityTaskCanceledEventAttributes] as const));
      if (closed) {
        const s = spans.get(String(closed[1].scheduledEventId));
        if (s) {
          s.closedAt = at;
          s.outcome = closed[0];
        }
      }
    }
  }
  return [...spans.values()];
}

/**
 * The manual runbook's `etcdutl snapshot restore` on `node`, with drctl's flags: its own name and
 * peer URL, one initial cluster, a new token, the revision bumped and compacted. etcdutl from the
 * node's own etcd image (kubeadm hosts have no etcd binary), as drctl runs it.
 */
export function handRestoreCommand(
  shell: RemoteShell,
  node: NodeConfig,
  r: { purpose: string; staged: string; initialCluster: string; token: string; dataDir: string; bump: number },
): Promise<string> {
  return new EtcdTools(shell, node).command(r.purpose, {
    tool: 'etcdutl',
    args: [
      'snapshot restore',
      shq(r.staged),
      `--name=${shq(node.etcd.memberName)}`,
      `--initial-cluster=${shq(r.initialCluster)}`,
      `--initial-cluster-token=${shq(r.token)}`,
      `--initial-advertise-peer-urls=${shq(node.etcd.peerUrl)}`,
      `--data-dir=${shq(r.dataDir)}`,
      `--bump-revision=${r.bump}`,
      '--mark-compacted',
    ].join(' '),
    ro: [dirOf(r.staged)],
    rw: [dirOf(r.dataDir)],
  });
}
