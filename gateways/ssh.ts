// RemoteShell: commands and file streams on one control-plane node over SSH, with the node's host
// key pinned to the SHA256 fingerprint from the config (OpenSSH's `ssh-keygen -lf` form). Optionally
// through a bastion (its host key pinned too), and optionally as root through `sudo -n` for a
// non-root login: every command drctl runs on a node passes through here, so both live here only.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { FailureType, failure } from '../common/errors.ts';
import { shq } from '../common/shell.ts';

/** One SSH hop's address, login and pinned host key. */
export interface SshHop {
  host: string;
  port: number;
  user: string;
  privateKeyPath: string;
  hostKeyFingerprint: string;
  connectTimeout: number;
}

export interface SshTarget extends SshHop {
  /** Used in messages: "site-a/cp1". */
  label: string;
  /** Run every command as `sudo -n -- bash -c '<command>'` (the login user is not root). */
  sudo?: boolean;
  /** A bastion the connection goes through (ssh2 forwardOut to the node, then SSH over that channel). */
  jump?: SshHop;
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

/**
 * What runs on the node for `command`: itself for a root login, else through sudo as root with
 * bash. `-n`: never prompt (a password prompt would hang the channel); `--`: no more sudo options.
 */
export function asRoot(command: string, sudo: boolean | undefined): string {
  return sudo ? `sudo -n -- bash -c ${shq(command)}` : command;
}

/** "10.0.20.1:22", "10.0.20.1:22 via bastion 127.0.20.250:22" */
export function addressOf(t: SshTarget): string {
  return `${t.host}:${t.port}${t.jump ? ` via bastion ${t.jump.host}:${t.jump.port}` : ''}`;
}

/**
 * Read-only: can drctl run commands as root on the node? Runs `id -u` exactly as every other command
 * runs (through `sudo -n -- bash -c` when ssh.sudo is set), so a sudoers entry that allows some
 * other command but not bash is caught too. Changes nothing on the node.
 */
export async function checkRoot(shell: RemoteShell): Promise<void> {
  const t = shell.target;
  const r = await shell.exec('id -u', { timeoutMs: 15_000 });
  const uid = r.stdout.trim();
  if (r.code === 0 && uid === '0') return;
  const said = (r.stderr.trim().split('\n').pop() ?? '').replace(/^(bash: )?sudo: /, '');
  const guide = 'README: "Root on the nodes"';
  if (!t.sudo)
    throw failure(
      FailureType.MissingPrivilege,
      `${t.label}: user ${t.user} is not root (uid ${uid || '?'}) and ssh.sudo is false; log in as root or set ssh.sudo: true with NOPASSWD sudo for bash (${guide})`,
    );
  if (r.code === 127 || /command not found/.test(said))
    throw failure(
      FailureType.MissingPrivilege,
      `${t.label}: ssh.sudo is set but sudo is not installed on the node (${said}); drctl needs NOPASSWD sudo for bash (${guide})`,
    );
  throw failure(
    FailureType.MissingPrivilege,
    r.code === 0
      ? `${t.label}: user ${t.user} runs commands through sudo as uid ${uid}, not root; drctl needs NOPASSWD sudo to root for bash (${guide})`
      : `${t.label}: user ${t.user} may not run commands as root without a password (sudo -n: ${said || `exit ${r.code}`}); drctl needs NOPASSWD sudo for bash (${guide})`,
  );
}

export function fingerprintOf(hostKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(hostKey).digest('base64').replace(/=+$/, '')}`;
}

const MAX_OUTPUT = 4 * 1024 * 1024;

class Ssh2Shell implements RemoteShell {
  private conn?: Promise<Client>;

  constructor(readonly target: SshTarget) {}

  private connect(): Promise<Client> {
    if (this.conn) return this.conn;
    const attempt = this.open();
    this.conn = attempt;
    // A failed attempt is forgotten: the next call tries again.
    attempt.catch(() => {
      if (this.conn === attempt) this.conn = undefined;
    });
    return attempt;
  }

  /**
   * One hop: an SSH client to `hop` over `sock` (a channel forwarded by the bastion) or TCP, its
   * host key pinned. `where` names the hop in messages.
   */
  private hop(hop: SshHop, where: { label: string; mismatch: string }, sock?: ClientChannel): Promise<Client> {
    return new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let seenKey: string | undefined;
      let ready = false;
      client
        .on('ready', () => {
          ready = true;
          // Without this, Nagle's algorithm meets delayed ACKs: SFTP crawled at 2.8 MB/s and every
          // short command waited on the peer's ACK timer (bench/snapshot-pipeline.ts, transport diagnostic).
          if (!sock) client.setNoDelay(true);
          resolve(client);
        })
        .on('error', (err: Error & { level?: string }) => {
          if (ready) return; // a later error: 'close' follows and resets the connection
          if (seenKey !== undefined && seenKey !== hop.hostKeyFingerprint) {
            reject(
              failure(
                FailureType.HostKeyMismatch,
                `${where.label}: ${where.mismatch} ${seenKey} does not match the pinned ${hop.hostKeyFingerprint}; refusing to connect`,
              ),
            );
          } else {
            reject(failure(FailureType.SshUnreachable, `${where.label}: ${err.message}`));
          }
        });
      let privateKey: Buffer;
      try {
        privateKey = readFileSync(hop.privateKeyPath);
      } catch (err) {
        reject(
          failure(
            FailureType.SshUnreachable,
            `${where.label}: cannot read private key ${hop.privateKeyPath}: ${(err as Error).message}`,
          ),
        );
        return;
      }
      client.connect({
        ...(sock ? { sock } : { host: hop.host, port: hop.port }),
        username: hop.user,
        privateKey,
        readyTimeout: hop.connectTimeout,
        keepaliveInterval: 5_000,
        keepaliveCountMax: 3,
        // Pinned: only the configured fingerprint is accepted. ssh2 accepts any key without this.
        hostVerifier: (key: Buffer) => {
          seenKey = fingerprintOf(key);
          return seenKey === hop.hostKeyFingerprint;
        },
      });
    });
  }

  private async open(): Promise<Client> {
    const t = this.target;
    const jump = t.jump;
    if (!jump) {
      const client = await this.hop(t, { label: `${t.label} (${t.host}:${t.port})`, mismatch: 'host key' });
      client.on('error', () => this.reset(client)).on('close', () => this.reset(client));
      return client;
    }
    const via = `${t.label} via bastion ${jump.host}:${jump.port}`;
    const bastion = await this.hop(jump, { label: via, mismatch: 'bastion host key' });
    let client: Client;
    try {
      const stream = await new Promise<ClientChannel>((resolve, reject) =>
        bastion.forwardOut('127.0.0.1', 0, t.host, t.port, (err, ch) =>
          err
            ? reject(
                failure(
                  FailureType.SshUnreachable,
                  `${via}: the bastion cannot reach ${t.host}:${t.port}: ${err.message}`,
                ),
              )
            : resolve(ch),
        ),
      );
      client = await this.hop(
        t,
        { label: `${t.label} (${t.host}:${t.port} via bastion ${jump.host}:${jump.port})`, mismatch: 'host key' },
        stream,
      );
    } catch (err) {
      bastion.end();
      throw err;
    }
    // The node's connection lives inside the bastion's: closing either ends both.
    client.on('error', () => this.reset(client)).on('close', () => (this.reset(client), bastion.end()));
    bastion.on('error', () => undefined).on('close', () => (this.reset(client), client.end()));
    return client;
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
    const t = this.target;
    let stdout = '';
    let stderr = '';
    let code: number | null = null;
    let signal: string | undefined;
    let closed!: () => void;
    const ended = new Promise<void>((resolve) => (closed = resolve));
    // Listeners go on in the channel's own callback: a quick command's exit status can arrive in
    // the same packet batch as the channel's confirmation.
    const stream = await this.channel(command, (ch) => {
      ch.on('data', (d: Buffer) => {
        if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
      });
      ch.stderr.on('data', (d: Buffer) => {
        if (stderr.length < MAX_OUTPUT) stderr += d.toString('utf8');
      });
      ch.on('exit', (c: number | null, sig?: string) => {
        code = c;
        signal = sig;
      });
      ch.on('close', () => closed());
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      if (opts.timeoutMs)
        timer = setTimeout(() => {
          stream.close();
          reject(failure(FailureType.Timeout, `${t.label}: \`${command}\` timed out after ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
    });
    try {
      await Promise.race([ended, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    if (code === null && signal === undefined)
      throw failure(FailureType.SshUnreachable, `${t.label}: connection lost while running \`${command}\``);
    const result: ExecResult = {
      code: code ?? 128,
      stdout,
      stderr: signal ? `${stderr}killed by ${signal}` : stderr,
    };
    if (opts.check && result.code !== 0) {
      throw failure(
        FailureType.RemoteCommandFailed,
        `${t.label}: \`${command}\` exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(-2000)}`,
        { node: t.label, command, code: result.code },
      );
    }
    return result;
  }

  /**
   * Opens an exec channel running `command`. A cached connection can be dead without having said
   * so (ssh2 throws "Not connected" once its socket stopped being writable, e.g. the node behind a
   * bastion was restarted): the channel never opened, so nothing ran, and it is tried once more on
   * a fresh connection.
   */
  private async channel(command: string, onOpen?: (ch: ClientChannel) => void): Promise<ClientChannel> {
    for (let attempt = 0; ; attempt++) {
      const conn = this.connect();
      const client = await conn;
      try {
        return await new Promise<ClientChannel>((resolve, reject) =>
          client.exec(asRoot(command, this.target.sudo), (err, ch) => {
            if (err) return reject(err);
            onOpen?.(ch);
            resolve(ch);
          }),
        );
      } catch (err) {
        // Forgotten now, not in a later microtask (`reset`): the retry must open a new connection.
        if (this.conn === conn) this.conn = undefined;
        client.end();
        if (attempt === 0) continue;
        throw failure(FailureType.SshUnreachable, `${this.target.label}: exec failed: ${(err as Error).message}`);
      }
    }
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

/** A shell on the node; `target` may carry the config's `sudo` and `jump` (ssh section) as they are. */
export function connectShell(target: SshTarget): RemoteShell {
  return new Ssh2Shell(target);
}
