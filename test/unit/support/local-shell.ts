// A RemoteShell that runs its commands on this machine with bash, exactly as the SSH one sends
// them (through `sudo -n -- bash -c` when sudo is set), so the node-side scripts can be run against
// temp dirs without a lab. In a PID namespace of its own by default: the lab's etcd processes on
// this machine must not look like the node's etcd to `pgrep -x etcd`.
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { FailureType, failure } from '../../../common/errors.ts';
import {
  asRoot,
  shq,
  type ExecOptions,
  type ExecResult,
  type RemoteShell,
  type SshTarget,
} from '../../../gateways/ssh.ts';

export function localShell(opts: { label?: string; sudo?: boolean; env?: Record<string, string> } = {}): RemoteShell & {
  commands: string[];
} {
  const target: SshTarget = {
    label: opts.label ?? 'test/local',
    host: '127.0.0.1',
    port: 22,
    user: 'root',
    privateKeyPath: '/dev/null',
    hostKeyFingerprint: 'SHA256:none',
    connectTimeout: 1000,
    sudo: opts.sudo,
  };
  const commands: string[] = [];
  return {
    target,
    commands,
    exec(command: string, o: ExecOptions = {}): Promise<ExecResult> {
      commands.push(command);
      return new Promise((resolve, reject) => {
        const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', 'bash', '-c', asRoot(command, opts.sudo)], {
          env: { ...process.env, ...opts.env },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const timer = o.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), o.timeoutMs) : undefined;
        child.on('error', reject);
        child.on('close', (code) => {
          if (timer) clearTimeout(timer);
          const r = { code: code ?? 128, stdout, stderr };
          if (o.check && r.code !== 0)
            reject(
              failure(FailureType.RemoteCommandFailed, `${target.label}: \`${command}\` exited ${r.code}: ${stderr}`),
            );
          else resolve(r);
        });
      });
    },
    readStream: () => Promise.reject(new Error('not in the local shell')),
    // As the SSH one: `cat` into the file under a umask from `mode`; done when cat has exited 0.
    writeStream(path: string, mode = 0o600): Promise<Writable> {
      const umask = (0o777 & ~mode).toString(8).padStart(3, '0');
      const command = `umask ${umask} && cat > ${shq(path)}`;
      commands.push(command);
      const child = spawn('bash', ['-c', asRoot(command, opts.sudo)], { env: { ...process.env, ...opts.env } });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      return Promise.resolve(
        new Writable({
          write: (chunk: Buffer, _enc, cb) => void child.stdin.write(chunk, cb),
          final: (cb) => {
            child.stdin.end();
            void exited.then((code) => cb(code === 0 ? null : new Error(`writing ${path}: exit ${code}: ${stderr}`)));
          },
        }),
      );
    },
    close: () => undefined,
  };
}
