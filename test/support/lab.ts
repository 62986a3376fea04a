// Shared helpers for integration tests against the running lab.
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../config/load.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { temporalConnectConfig } from '../../config/temporal.ts';
import { type SnapshotMeta, type SnapshotRef, snapshotKey, toObjectMetadata } from '../../common/snapshots.ts';
import { EtcdSnapshotTools, etcdctl } from '../../gateways/etcd.ts';
import { shq } from '../../gateways/ssh.ts';
import { paths } from '../../lab/topology.ts';
import type { Gateways } from '../../worker/gateways.ts';

export function labConfig(taskQueue?: string): DrctlConfig {
  const config = loadConfig(paths.config).config;
  return taskQueue ? { ...config, temporal: { ...config.temporal, taskQueue } } : config;
}

export async function temporalClient(config: DrctlConfig): Promise<Client> {
  const { connectionOptions, namespace } = temporalConnectConfig(config.temporal);
  return new Client({ connection: await Connection.connect(connectionOptions), namespace });
}

export async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000, everyMs = 300): Promise<T> {
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

/** etcdctl on a node, against that node's own member (serializable reads stay local). */
export async function etcdOn(gw: Gateways, cluster: string, node: string, args: string): Promise<string> {
  const r = await gw.shell(cluster, node).exec(etcdctl(gw.node(cluster, node), args), { check: true });
  return r.stdout;
}

export async function putKeys(gw: Gateways, cluster: string, kv: Record<string, string>) {
  const node = gw.cluster(cluster).nodes[0]!.name;
  const cmds = Object.entries(kv).map(([k, v]) => etcdctl(gw.node(cluster, node), `put ${shq(k)} ${shq(v)}`));
  await gw.shell(cluster, node).exec(cmds.join(' && '), { check: true });
}

/** Keys and values under a prefix as one member sees them (serializable: that member's own data). */
export async function keysOn(gw: Gateways, cluster: string, node: string, prefix: string): Promise<Record<string, string>> {
  const out = await etcdOn(gw, cluster, node, `get ${shq(prefix)} --prefix --consistency=s -w json`);
  const j = JSON.parse(out) as { kvs?: { key: string; value: string }[] };
  const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
  return Object.fromEntries((j.kvs ?? []).map((kv) => [b64(kv.key), b64(kv.value)]));
}

/**
 * Takes a snapshot on a node and uploads it with drctl's metadata — the snapshot contract
 * (common/snapshots.ts) — for restore tests that must control exactly when the snapshot is taken.
 */
export async function seedSnapshot(gw: Gateways, cluster: string, node: string): Promise<SnapshotRef> {
  const shell = gw.shell(cluster, node);
  const tools = new EtcdSnapshotTools(shell, gw.node(cluster, node));
  const path = `/var/lib/etcd-snapshots/test-${Date.now()}.db`;
  const takenAt = new Date();
  await tools.save(path);
  const st = await tools.status(path);
  const { etcdVersion } = await tools.restoreTool();
  const meta: SnapshotMeta = {
    cluster, member: gw.node(cluster, node).etcd.memberName, revision: st.revision, etcdHash: st.hash, totalKey: st.totalKey,
    totalSize: st.totalSize, sha256: st.sha256, size: st.size, etcdVersion, takenAt: takenAt.toISOString(),
  };
  const key = snapshotKey(gw.config.objectStore.prefix, cluster, takenAt, st.revision);
  await gw.store().put(key, await shell.readStream(path), toObjectMetadata(meta));
  await shell.exec(`rm -f ${shq(path)}`, { check: true });
  return { key, ...meta };
}
