// Diagnostic for bench/snapshot-pipeline.ts: where does a node read's time go? Reads the first
// `bytes` of a node file and discards them (no S3), through:
//   1 drctl's RemoteShell.readStream (`cat` on an exec channel, TCP_NODELAY)
//   2 ssh2 SFTP on a connection of our own (256 KiB highWaterMark: one read in flight), which
//     drctl used before
//   3 as 2, with TCP_NODELAY on the client socket
//   4 as 2, with 4 MiB highWaterMark
//   5 ssh2 exec `head -c N FILE` on our own connection (a plain byte stream on the channel)
//   6 the system OpenSSH client: ssh node head -c N FILE
// and, for the restore's distribute step, writes of `bytes` (64 KiB chunks, as an S3 GET body
// arrives) to <file>.probe-write: drctl's RemoteShell.writeStream (`cat >`), then ssh2 SFTP with
// TCP_NODELAY.
//   npx tsx bench/lib/transport-probe.ts <node> <path> [MiB]     (site-b only)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, type SFTPWrapper } from 'ssh2';
import { fingerprintOf, shq } from '../../gateways/ssh.ts';
import type { Gateways } from '../../worker/gateways.ts';
import { CLUSTER } from './common.ts';
import { opensshArgs } from './openssh.ts';

export interface ProbeResult {
  path: string;
  bytes: number;
  ms: number;
  mbPerS: number;
}

async function drain(stream: Readable, limit: number): Promise<number> {
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (d: Buffer) => {
      n += d.length;
      if (n >= limit) {
        stream.destroy();
        resolve();
      }
    });
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
  return n;
}

function connect(gw: Gateways, node: string): Promise<Client> {
  const t = gw.node(CLUSTER, node).ssh;
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on('ready', () => resolve(c)).on('error', reject);
    c.connect({
      host: t.host,
      port: t.port,
      username: t.user,
      privateKey: readFileSync(t.privateKeyPath),
      hostVerifier: (key: Buffer) => fingerprintOf(key) === t.hostKeyFingerprint,
    });
  });
}

async function timed(path: string, fn: () => Promise<number>): Promise<ProbeResult> {
  const t0 = performance.now();
  const bytes = await fn();
  const ms = performance.now() - t0;
  return { path, bytes, ms, mbPerS: bytes / 1e6 / (ms / 1000) };
}

export async function transportProbe(
  gw: Gateways,
  node: string,
  file: string,
  bytes: number,
  knownHosts?: string,
): Promise<ProbeResult[]> {
  const out: ProbeResult[] = [];
  out.push(
    await timed('drctl RemoteShell.readStream (exec `cat`)', async () =>
      drain(await gw.shell(CLUSTER, node).readStream(file), bytes),
    ),
  );
  const hardened = !!(gw.node(CLUSTER, node).ssh.sudo || gw.node(CLUSTER, node).ssh.jump);
  const sftpRead = async (opts: { noDelay?: boolean; highWaterMark: number }) => {
    const c = await connect(gw, node);
    try {
      if (opts.noDelay) c.setNoDelay(true);
      const sftp = await new Promise<SFTPWrapper>((res, rej) => c.sftp((e, s) => (e ? rej(e) : res(s))));
      return await drain(sftp.createReadStream(file, { highWaterMark: opts.highWaterMark, end: bytes - 1 }), bytes);
    } finally {
      c.end();
    }
  };
  // ssh2's own connections log in as the login user: behind a bastion, or as a sudoer that may not
  // read root's files, they are not the comparison; drctl's and OpenSSH's paths still are.
  if (!hardened) {
    out.push(
      await timed('ssh2 SFTP readStream, 256 KiB (own connection)', () => sftpRead({ highWaterMark: 256 * 1024 })),
    );
    out.push(
      await timed('ssh2 SFTP readStream, 256 KiB, TCP_NODELAY', () =>
        sftpRead({ noDelay: true, highWaterMark: 256 * 1024 }),
      ),
    );
    out.push(await timed('ssh2 SFTP readStream, 4 MiB', () => sftpRead({ highWaterMark: 4 * 1024 * 1024 })));
    out.push(
      await timed('ssh2 exec `head -c` (own connection)', async () => {
        const c = await connect(gw, node);
        try {
          const stream = await new Promise<Readable>((res, rej) =>
            c.exec(`head -c ${bytes} ${shq(file)}`, (e, s) => (e ? rej(e) : res(s))),
          );
          return await drain(stream, bytes);
        } finally {
          c.end();
        }
      }),
    );
  }
  const chunks = () => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    let left = bytes;
    return Readable.from(
      (function* () {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          yield n === chunk.length ? chunk : chunk.subarray(0, n);
        }
      })(),
    );
  };
  const target = `${file}.probe-write`;
  out.push(
    await timed('drctl RemoteShell.writeStream (exec `cat >`)', async () => {
      await pipeline(chunks(), await gw.shell(CLUSTER, node).writeStream(target));
      return bytes;
    }),
  );
  if (!hardened) {
    out.push(
      await timed('ssh2 SFTP writeStream, TCP_NODELAY', async () => {
        const c = await connect(gw, node);
        try {
          c.setNoDelay(true);
          const sftp = await new Promise<SFTPWrapper>((res, rej) => c.sftp((e, s) => (e ? rej(e) : res(s))));
          await pipeline(chunks(), sftp.createWriteStream(target) as Writable);
          return bytes;
        } finally {
          c.end();
        }
      }),
    );
  }
  await gw.shell(CLUSTER, node).exec(`rm -f ${shq(target)}`, { check: true });
  if (knownHosts) {
    const t = gw.node(CLUSTER, node).ssh;
    out.push(
      await timed('OpenSSH `ssh node head -c`', async () => {
        const child = spawn('ssh', opensshArgs(t, knownHosts, `head -c ${bytes} ${shq(file)}`), {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        return drain(child.stdout, bytes);
      }),
    );
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [node = 'cp1', file = '', mib = '64'] = process.argv.slice(2);
  const { benchConfig } = await import('./common.ts');
  const { createGateways } = await import('../../worker/gateways.ts');
  const gw = createGateways(benchConfig('bench-probe').config);
  for (const r of await transportProbe(gw, node, file, Number(mib) * 1024 * 1024)) {
    console.log(
      `${r.path.padEnd(50)} ${(r.bytes / 1e6).toFixed(0).padStart(5)} MB ${(r.ms / 1000).toFixed(2).padStart(7)} s ${r.mbPerS.toFixed(1).padStart(7)} MB/s`,
    );
  }
  gw.close();
}
