// A throwaway etcd on the worker: a snapshot (plaintext stream) written to a scratch directory,
// restored there with etcdutl, served by an etcd on two free 127.0.0.1 ports (no fsync: scratch),
// asked what it holds through its JSON gateway, then stopped and the directory removed. Why on the
// worker, not on a node: it proves the off-site object (what a restore would fetch, decrypted with
// the worker's key), and costs a control-plane node nothing.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The snapshot does not restore, or its etcd does not serve it: a verdict on the snapshot, not the worker. */
export class Unrestorable extends Error {
  override name = 'Unrestorable';
}

export interface ScratchAnswer {
  revision: number;
  keys: number;
  /** Kubernetes' own namespace key is there: it is a Kubernetes cluster's etcd. */
  kubernetes: boolean;
  etcdVersion: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** POST /v3/kv/range, count only: the store's revision and how many keys the range holds. */
async function rangeCount(url: string, key: string, rangeEnd?: string): Promise<{ revision: number; count: number }> {
  const r = await fetch(`${url}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({
      key: b64(key),
      ...(rangeEnd !== undefined ? { range_end: b64(rangeEnd) } : {}),
      count_only: true,
    }),
    signal: AbortSignal.timeout(5000),
  });
  if (!r.ok) throw new Error(`range: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
  const j = (await r.json()) as { header?: { revision?: string }; count?: string };
  return { revision: Number(j.header?.revision ?? 0), count: Number(j.count ?? 0) };
}

/**
 * Restores `plain` (the snapshot file's bytes) with `binDir`'s etcdutl and serves it with its etcd.
 * The bytes must hash to `expect.sha256` (else Unrestorable). Unrestorable when etcdutl refuses the
 * file or etcd exits or does not answer within `timeoutMs`; any other error is the worker's (a
 * missing binary, a full disk). Always stops etcd and removes the scratch directory.
 */
export async function serveFromScratch(opts: {
  plain: Readable;
  expect: { sha256: string; size: number };
  binDir: string;
  scratchDir?: string;
  timeoutMs: number;
  onProgress?: (what: string) => void;
}): Promise<ScratchAnswer> {
  const dir = await mkdtemp(join(opts.scratchDir ?? tmpdir(), 'drctl-proof-'));
  let etcd: ReturnType<typeof spawn> | undefined;
  try {
    const file = join(dir, 'snapshot.db');
    const hash = createHash('sha256');
    let size = 0;
    const counter = new PassThrough();
    counter.on('data', (c: Buffer) => {
      hash.update(c);
      size += c.length;
    });
    await pipeline(opts.plain, counter, createWriteStream(file, { mode: 0o600 }));
    const sha256 = hash.digest('hex');
    if (sha256 !== opts.expect.sha256 || size !== opts.expect.size)
      throw new Unrestorable(
        `the off-site object decrypts to ${size} bytes hashing to ${sha256}, not the signed ${opts.expect.size} bytes ${opts.expect.sha256}`,
      );
    opts.onProgress?.('fetched');
    const { stdout: version } = await run(join(opts.binDir, 'etcd'), ['--version']);
    const etcdVersion = /etcd Version: (\S+)/.exec(version)?.[1] ?? 'unknown';
    const [client, peer] = [await freePort(), await freePort()];
    const peerUrl = `http://127.0.0.1:${peer}`;
    const clientUrl = `http://127.0.0.1:${client}`;
    const data = join(dir, 'data');
    const member = ['--name', 'drctl-proof', '--initial-cluster', `drctl-proof=${peerUrl}`];
    try {
      await run(join(opts.binDir, 'etcdutl'), [
        'snapshot',
        'restore',
        file,
        '--data-dir',
        data,
        ...member,
        '--initial-advertise-peer-urls',
        peerUrl,
      ]);
    } catch (err) {
      const e = err as Error & { code?: string | number; stderr?: string };
      if (e.code === 'ENOENT') throw err;
      throw new Unrestorable(
        `etcdutl snapshot restore: ${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' | ')}`,
      );
    }
    opts.onProgress?.('restored');
    let log = '';
    etcd = spawn(
      join(opts.binDir, 'etcd'),
      [
        ...member,
        '--data-dir',
        data,
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        '--listen-peer-urls',
        peerUrl,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--unsafe-no-fsync',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    etcd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-2000)));
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      try {
        const all = await rangeCount(clientUrl, '\0', '\0');
        const kube = await rangeCount(clientUrl, '/registry/namespaces/kube-system');
        return { revision: all.revision, keys: all.count, kubernetes: kube.count === 1, etcdVersion };
      } catch (err) {
        if (etcd.exitCode !== null || etcd.signalCode !== null)
          throw new Unrestorable(
            `etcd exited (${etcd.exitCode ?? etcd.signalCode}) serving the restored data: ${log.trim().slice(-300)}`,
          );
        if (Date.now() > deadline)
          throw new Unrestorable(`etcd did not answer within ${opts.timeoutMs / 1000} s: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    if (etcd && etcd.exitCode === null && etcd.signalCode === null) {
      const gone = new Promise((r) => etcd!.once('exit', r));
      etcd.kill('SIGTERM');
      const t = setTimeout(() => etcd!.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  }
}
