// The RemoteShell through a bastion, against two real OpenSSH servers on this machine: a bastion
// on 127.0.60.1:2222 and a "node" on 127.0.60.2:2222, with temporary host keys and authorized_keys.
// Both hops' host keys are pinned; sudo wraps exec and the file streams alike. No lab needed.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureType } from '../../common/errors.ts';
import { connectShell, fingerprintOf, type SshHop, type SshTarget } from '../../gateways/ssh.ts';

const SSHD = '/usr/sbin/sshd';
const BASTION = '127.0.60.1';
const NODE = '127.0.60.2';
const PORT = 2222;

let dir = '';
const sshds: { proc: ChildProcess; log: () => string }[] = [];

const keygen = (file: string) =>
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'drctl-test', '-f', file]);
const fingerprint = (pub: string) => fingerprintOf(Buffer.from(readFileSync(pub, 'utf8').split(' ')[1]!, 'base64'));

function startSshd(name: string, ip: string): { proc: ChildProcess; log: () => string } {
  const hostKey = join(dir, `${name}_host_key`);
  keygen(hostKey);
  const cfg = join(dir, `${name}_sshd_config`);
  writeFileSync(
    cfg,
    [
      `ListenAddress ${ip}:${PORT}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, `${name}.pid`)}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding yes',
      'LogLevel DEBUG1',
      '',
    ].join('\n'),
  );
  const proc = spawn(SSHD, ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const s = { proc, log: () => log };
  sshds.push(s);
  return s;
}

const listening = (host: string) =>
  new Promise<boolean>((resolve) => {
    const sock = connect(PORT, host);
    sock.once('connect', () => (sock.destroy(), resolve(true)));
    sock.once('error', () => resolve(false));
  });

/** Established TCP connections to host:PORT from this machine, as `ss` sees them. */
const connectionsTo = (host: string) =>
  execFileSync('ss', ['-Htn', 'state', 'established', 'dst', `${host}:${PORT}`], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter(Boolean).length;

async function until(what: string, test: () => boolean | Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('SSH through a bastion (two real sshd)', () => {
  let bastion: { proc: ChildProcess; log: () => string };
  let bastionFp: string;
  let nodeFp: string;
  let clientKey = '';

  beforeAll(async () => {
    // Needs root and OpenSSH's sshd (scripts/test-unit.sh and lab/install.sh install it): a failure, not a skip.
    expect(process.getuid?.(), 'running as root').toBe(0);
    expect(existsSync(SSHD), `${SSHD} (openssh-server)`).toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'drctl-ssh-jump-'));
    clientKey = join(dir, 'id_ed25519');
    mkdirSync('/run/sshd', { recursive: true });
    keygen(clientKey);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`), { mode: 0o600 });
    bastion = startSshd('bastion', BASTION);
    startSshd('node', NODE);
    bastionFp = fingerprint(join(dir, 'bastion_host_key.pub'));
    nodeFp = fingerprint(join(dir, 'node_host_key.pub'));
    await until('both sshd to listen', async () => (await listening(BASTION)) && (await listening(NODE)));
  });

  afterAll(async () => {
    // sshd removes its pid file as it exits: wait for that before removing the dir.
    await Promise.all(
      sshds.map(
        (s) =>
          new Promise((resolve) => {
            if (s.proc.exitCode !== null || s.proc.signalCode !== null) return resolve(undefined);
            s.proc.once('exit', resolve);
            s.proc.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  const hop = (host: string, fp: string): SshHop => ({
    host,
    port: PORT,
    user: 'root',
    privateKeyPath: clientKey,
    hostKeyFingerprint: fp,
    connectTimeout: 5000,
  });
  const target = (over: Partial<SshTarget> = {}): SshTarget => ({
    label: 'site-b/cp1',
    ...hop(NODE, nodeFp),
    jump: hop(BASTION, bastionFp),
    ...over,
  });

  it('runs commands on the node through the bastion; closing it closes the bastion connection too', async () => {
    const shell = connectShell(target());
    try {
      const r = await shell.exec('echo "$SSH_CONNECTION"; id -u', { check: true });
      const [conn, uid] = r.stdout.trim().split('\n');
      expect(conn!.split(' ')[2]).toBe(NODE); // the node's sshd served it
      expect(uid).toBe('0');
      // The bastion opened the channel to the node (sshd logs the direct-tcpip request).
      expect(bastion.log()).toMatch(
        new RegExp(
          `direct-tcpip.*${NODE.replace(/\./g, '\\.')}.*${PORT}|target ${NODE.replace(/\./g, '\\.')} port ${PORT}`,
          's',
        ),
      );
      expect(connectionsTo(BASTION)).toBe(1);
      expect(connectionsTo(NODE)).toBe(1); // bastion -> node
    } finally {
      shell.close();
    }
    await until('the bastion connection to close', () => connectionsTo(BASTION) === 0);
    await until('the forwarded connection to close', () => connectionsTo(NODE) === 0);
  });

  it('a cached connection that went dead without a word (ssh2: "Not connected") is replaced, and the command runs once', async () => {
    const shell = connectShell(target());
    try {
      await shell.exec('true', { check: true });
      // What a node restarted behind the bastion looks like to ssh2 before its socket says 'close':
      // exec throws "Not connected" and nothing ran.
      const dead = await (shell as unknown as { conn: Promise<{ exec: () => never; end: () => void }> }).conn;
      dead.exec = () => {
        throw new Error('Not connected');
      };
      const marker = join(dir, 'ran-once');
      const r = await shell.exec(`echo x >> ${marker}; cat ${marker}`, { check: true });
      expect(r.stdout).toBe('x\n');
      await until('one connection through the bastion again', () => connectionsTo(BASTION) === 1);
    } finally {
      shell.close();
    }
  });

  it('a wrong bastion host key is refused, naming the bastion', async () => {
    const wrong = target({ jump: hop(BASTION, nodeFp) });
    const err = await connectShell(wrong)
      .exec('true')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ type: FailureType.HostKeyMismatch, nonRetryable: true });
    expect((err as Error).message).toBe(
      `site-b/cp1 via bastion ${BASTION}:${PORT}: bastion host key ${bastionFp} does not match the pinned ${nodeFp}; refusing to connect`,
    );
  });

  it("a wrong node host key behind a good bastion is refused, naming the node's hop", async () => {
    const err = await connectShell(target({ hostKeyFingerprint: bastionFp }))
      .exec('true')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ type: FailureType.HostKeyMismatch });
    expect((err as Error).message).toBe(
      `site-b/cp1 (${NODE}:${PORT} via bastion ${BASTION}:${PORT}): host key ${nodeFp} does not match the pinned ${bastionFp}; refusing to connect`,
    );
    await until('the bastion connection to close', () => connectionsTo(BASTION) === 0);
  });

  it('sudo: exec and the file streams run as root through sudo -n, with awkward names intact', async () => {
    const shell = connectShell(target({ sudo: true }));
    try {
      const r = await shell.exec(`id -u; ps -o args= -p $PPID`, { check: true });
      expect(r.stdout.split('\n')[0]).toBe('0');
      expect(r.stdout).toContain('bash -c id -u;');
      const file = join(dir, `it's a "file" $(x).txt`);
      await pipeline(Readable.from([Buffer.from('hello through sudo')]), await shell.writeStream(file, 0o600));
      expect(readFileSync(file, 'utf8')).toBe('hello through sudo');
      const chunks: Buffer[] = [];
      for await (const c of await shell.readStream(file)) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('hello through sudo');
    } finally {
      shell.close();
    }
  });
});
