// RemoteShell: commands and file streams on one control-plane node over SSH, with the node's host
// key pinned to the SHA256 fingerprint from the config (OpenSSH's `ssh-keygen -lf` form).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { FailureType, failure } from '../common/errors.ts';
import { shq } from '../common/shell.ts';

export interface SshTarget {
  /** Used in messages: "site-a/cp1". */
  label: string;
  host: string;
  port: number;
  user: string;
  privateKeyPath: string;
  hostKeyFingerprint: string;
  connectTimeout: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the remote command's channel after this long. */
  timeoutMs?: number;
  /** Fail (RemoteCommandFailed) on a non-zero exit instead of returning it. */
  check?: boolean;
}

/** The narrow surface the rest of drctl uses; tests and benchmarks go through it too. */
export interface RemoteShell {
  readonly target: SshTarget;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  readStream(path: string): Promise<Readable>;
  writeStream(path: string, mode?: number): Promise<Writable>;
  close(): void;
}

export { shq };

export function fingerprintOf(hostKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(hostKey).digest('base64').replace(/=+$/, '')}`;
}

const MAX_OUTPUT = 4 * 1024 * 1024;

class Ssh2Shell implements RemoteShell {
  private conn?: Promise<Client>;

  constructor(readonly target: SshTarget) {}

  private connect(): Promise<Client> {
    if (this.conn) return this.conn;
    const t = this.target;
    const attempt = new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let seenKey: string | undefined;
      client
        .on('ready', () => {
          // Without this, Nagle's algorithm meets delayed ACKs: SFTP crawled at 2.8 MB/s and every
          // short command waited on the peer's ACK timer (bench/snapshot-pipeline.ts, transport diagnostic).
          client.setNoDelay(true);
          resolve(client);
        })
        .on('error', (err: Error & { level?: string }) => {
          this.reset(client);
          if (seenKey !== undefined && seenKey !== t.hostKeyFingerprint) {
            reject(
              failure(
                FailureType.HostKeyMismatch,
                `${t.label} (${t.host}:${t.port}): host key ${seenKey} does not match the pinned ${t.hostKeyFingerprint}; refusing to connect`,
              ),
            );
          } else {
            reject(failure(FailureType.SshUnreachable, `${t.label} (${t.host}:${t.port}): ${err.message}`));
          }
        })
        .on('close', () => this.reset(client));
      let privateKey: Buffer;
      try {
        privateKey = readFileSync(t.privateKeyPath);
      } catch (err) {
        reject(
          failure(
            FailureType.SshUnreachable,
            `${t.label}: cannot read private key ${t.privateKeyPath}: ${(err as Error).message}`,
          ),
        );
        return;
      }
      client.connect({
        host: t.host,
        port: t.port,
        username: t.user,
        privateKey,
        readyTimeout: t.connectTimeout,
        keepaliveInterval: 5_000,
        keepaliveCountMax: 3,
        // Pinned: only the configured fingerprint is accepted. ssh2 accepts any key without this.
        hostVerifier: (key: Buffer) => {
          seenKey = fingerprintOf(key);
          return seenKey === t.hostKeyFingerprint;
        },
      });
    });
    this.conn = attempt;
    attempt.catch(() => undefined);
    return attempt;
  }

  private reset(client: Client) {
    void this.conn?.then(
      (c) => {
        if (c === client) this.conn = undefined;
      },
      () => {
        this.conn = undefined;
      },
    );
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const client = await this.connect();
    const t = this.target;
    const result = await new Promise<ExecResult>((resolve, reject) => {
      client.exec(command, (err, stream: ClientChannel) => {
        if (err) {
          this.conn = undefined;
          reject(failure(FailureType.SshUnreachable, `${t.label}: exec failed: ${err.message}`));
          return;
        }
        let stdout = '';
        let stderr = '';
        let code: number | null = null;
        let signal: string | undefined;
        const timer = opts.timeoutMs
          ? setTimeout(() => {
              stream.close();
              reject(failure(FailureType.Timeout, `${t.label}: \`${command}\` timed out after ${opts.timeoutMs} ms`));
            }, opts.timeoutMs)
          : undefined;
        stream.on('data', (d: Buffer) => {
          if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
        });
        stream.stderr.on('data', (d: Buffer) => {
          if (stderr.length < MAX_OUTPUT) stderr += d.toString('utf8');
        });
        stream.on('exit', (c: number | null, sig?: string) => {
          code = c;
          signal = sig;
        });
        stream.on('close', () => {
          if (timer) clearTimeout(timer);
          if (code === null && signal === undefined) {
            reject(failure(FailureType.SshUnreachable, `${t.label}: connection lost while running \`${command}\``));
            return;
          }
          resolve({ code: code ?? 128, stdout, stderr: signal ? `${stderr}killed by ${signal}` : stderr });
        });
      });
    });
    if (opts.check && result.code !== 0) {
      throw failure(
        FailureType.RemoteCommandFailed,
        `${t.label}: \`${command}\` exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(-2000)}`,
        { node: t.label, command, code: result.code },
      );
    }
    return result;
  }

  /** Runs `command` on a channel and hands it over as a stream; a non-zero exit becomes a stream error. */
  private async channel(command: string): Promise<ClientChannel> {
    const client = await this.connect();
    return new Promise((resolve, reject) =>
      client.exec(command, (err, ch) =>
        err
          ? reject(failure(FailureType.SshUnreachable, `${this.target.label}: exec failed: ${err.message}`))
          : resolve(ch),
      ),
    );
  }

  // File streams go over an exec channel (`cat`), not SFTP: ssh2's SFTP read stream keeps one
  // request in flight and moved 2.8 MB/s in the lab, the channel 234 MB/s (measured, 100 MiB).

  async readStream(path: string): Promise<Readable> {
    const ch = await this.channel(`cat -- ${shq(path)}`);
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    let stderr = '';
    let code: number | null = null;
    ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    ch.on('exit', (c: number | null) => (code = c));
    ch.pipe(out, { end: false });
    ch.on('close', () => {
      if (code === 0) out.end();
      else
        out.destroy(
          failure(
            FailureType.RemoteCommandFailed,
            `${this.target.label}: reading ${path} failed (exit ${code}): ${stderr.trim()}`,
          ),
        );
    });
    out.on('close', () => ch.close());
    return out;
  }

  async writeStream(path: string, mode = 0o600): Promise<Writable> {
    const umask = (0o777 & ~mode).toString(8).padStart(3, '0');
    const ch = await this.channel(`umask ${umask} && cat > ${shq(path)}`);
    // The channel only emits 'close' once its (empty) stdout has been read to the end.
    ch.resume();
    let stderr = '';
    let closed = false;
    const exited = new Promise<number | null>((resolve) => {
      let code: number | null = null;
      ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      ch.on('exit', (c: number | null) => (code = c));
      ch.on('close', () => ((closed = true), resolve(code)));
    });
    const label = this.target.label;
    const failed = (code: number | null) =>
      failure(FailureType.RemoteCommandFailed, `${label}: writing ${path} failed (exit ${code}): ${stderr.trim()}`);
    return new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _enc, cb) {
        if (closed) return void exited.then((code) => cb(failed(code)));
        if (ch.write(chunk)) return cb();
        // Wait for the window to open again, or fail if the remote side went away meanwhile.
        const onDrain = () => (ch.off('close', onClose), cb());
        const onClose = () => (ch.off('drain', onDrain), void exited.then((code) => cb(failed(code))));
        ch.once('drain', onDrain);
        ch.once('close', onClose);
      },
      // Done only when the remote side has written everything and exited 0.
      final(cb) {
        ch.end();
        void exited.then((code) => cb(code === 0 ? null : failed(code)));
      },
      destroy(err, cb) {
        ch.close();
        cb(err);
      },
    });
  }

  close(): void {
    void this.conn?.then(
      (c) => c.end(),
      () => undefined,
    );
    this.conn = undefined;
  }
}

export function connectShell(target: SshTarget): RemoteShell {
  return new Ssh2Shell(target);
}
