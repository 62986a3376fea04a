// A lab node's init, what systemd is on a kubeadm host: runs as PID 1's child inside the node's own
// network, mount, PID and UTS namespaces (started by `drctl lab up`: lab/namespaces.ts). It mounts
// the node's disk (/etc/kubernetes, /var/lib, /usr/local/bin, /var/log, /run/containerd, the
// node's /etc/hosts and /etc/hostname; on a node with a dedicated etcd disk, that disk's ext4 image
// at /var/lib/etcd), creates the kubelet's cgroup root, and runs sshd, containerd and the kubelet
// (restarted 2 s after it exits, like kubeadm's systemd unit with Restart=always). The kubelet,
// not this file, runs the static pods.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const root = args.get('root')!;
const hostname = args.get('hostname')!;
const cgroupRoot = args.get('cgroup-root')!;
const logDir = join(root, 'var/log');
const stateFile = join(root, 'run/supervisor.json');
/** The flags kubeadm's systemd drop-in (10-kubeadm.conf) gives the kubelet. */
const KUBELET_FLAGS = [
  '--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf',
  '--kubeconfig=/etc/kubernetes/kubelet.conf',
  '--config=/var/lib/kubelet/config.yaml',
];
const CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd'];

const procs: Record<'sshd' | 'containerd' | 'kubelet', ChildProcess | undefined> = {
  sshd: undefined,
  containerd: undefined,
  kubelet: undefined,
};
let shuttingDown = false;

function log(msg: string) {
  process.stderr.write(`${new Date().toISOString()} node-init ${msg}\n`);
}

function mountNodeDisk() {
  for (const [src, dst] of [
    ['etc/kubernetes', '/etc/kubernetes'],
    ['var/lib', '/var/lib'],
    ['usr/local/bin', '/usr/local/bin'],
    ['var/log', '/var/log'],
    ['run/containerd', '/run/containerd'],
  ] as const) {
    mkdirSync(join(root, src), { recursive: true });
    mkdirSync(dst, { recursive: true });
    execFileSync('mount', ['--bind', join(root, src), dst]);
  }
  // Single files: the mount target must exist on the host (identical content everywhere but here).
  for (const f of ['hosts', 'hostname', 'crictl.yaml'])
    execFileSync('mount', ['--bind', join(root, 'etc', f), `/etc/${f}`]);
  // The dedicated etcd disk: an ext4 image, mounted over the node's /var/lib/etcd.
  const disk = join(root, 'disks/etcd.img');
  if (existsSync(disk)) {
    mkdirSync('/var/lib/etcd', { recursive: true });
    execFileSync('mount', ['-o', 'loop', disk, '/var/lib/etcd']);
    log(`mounted ${disk} at /var/lib/etcd`);
  }
}

/** kubelet's cgroupRoot must exist in every v1 controller; cpuset needs its cpus and mems set first. */
function makeCgroupRoot() {
  for (const c of CONTROLLERS) {
    const base = `/sys/fs/cgroup/${c}`;
    if (!existsSync(base)) continue;
    let dir = base;
    for (const part of cgroupRoot.split('/').filter(Boolean)) {
      const parent = dir;
      dir = join(dir, part);
      mkdirSync(dir, { recursive: true });
      if (c === 'cpuset')
        for (const f of ['cpuset.cpus', 'cpuset.mems'])
          if (!readFileSync(join(dir, f), 'utf8').trim()) copyFileSync(join(parent, f), join(dir, f));
    }
  }
}

function run(name: keyof typeof procs, cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}) {
  const out = openSync(join(logDir, `${name}.log`), 'a');
  const p = spawn(cmd, argv, { stdio: ['ignore', out, out], env: { ...process.env, ...env } });
  procs[name] = p;
  log(`started ${name} pid ${p.pid}`);
  p.on('error', (err) => log(`${name}: ${err.message}`));
  p.on('exit', (code, sig) => {
    if (procs[name] === p) procs[name] = undefined;
    writeState();
    if (shuttingDown) return;
    log(`${name} exited (${code ?? sig})`);
    if (name === 'kubelet') setTimeout(startKubelet, 2000);
    // A dead sshd is a fault to recover from (SIGUSR1), a dead containerd one to see in `lab status`.
  });
  writeState();
}

function startSshd() {
  run('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', join(root, 'etc/ssh/sshd_config')]);
}

/** The kubelet as kubeadm's unit starts it: only once `kubeadm init/join` has written its config. */
function startKubelet() {
  if (shuttingDown || procs.kubelet) return;
  if (!existsSync('/var/lib/kubelet/config.yaml')) {
    setTimeout(startKubelet, 1000);
    return;
  }
  const env = existsSync('/var/lib/kubelet/kubeadm-flags.env')
    ? readFileSync('/var/lib/kubelet/kubeadm-flags.env', 'utf8')
    : '';
  const extra =
    env
      .match(/KUBELET_KUBEADM_ARGS="([^"]*)"/)?.[1]
      ?.split(/\s+/)
      .filter(Boolean) ?? [];
  run('kubelet', '/usr/local/bin/kubelet', [...KUBELET_FLAGS, ...extra]);
}

let lastState = '';
function writeState() {
  const state = JSON.stringify({
    supervisor: process.pid,
    ...Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, p?.exitCode === null ? p.pid : undefined])),
  });
  if (state === lastState) return;
  writeFileSync(`${stateFile}.tmp`, state);
  renameSync(`${stateFile}.tmp`, stateFile);
  lastState = state;
}

/** Like a host's orderly shutdown: the kubelet first, then every container stopped (etcd gets its SIGTERM), then the runtime. */
async function shutdown() {
  if (shuttingDown) return;
  shuttingDown = true;
  log('shutting down');
  const stopped = (p: ChildProcess | undefined) =>
    new Promise<void>((resolve) => {
      if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.once('exit', () => (clearTimeout(t), resolve()));
      p.kill('SIGTERM');
    });
  await stopped(procs.kubelet);
  try {
    const ids = execFileSync('crictl', ['ps', '-q'], { encoding: 'utf8', timeout: 10_000 })
      .trim()
      .split('\n')
      .filter(Boolean);
    if (ids.length) execFileSync('crictl', ['stop', '--timeout', '5', ...ids], { stdio: 'ignore', timeout: 30_000 });
  } catch (err) {
    log(`stopping containers: ${(err as Error).message}`);
  }
  await Promise.all([stopped(procs.containerd), stopped(procs.sshd)]);
  process.exit(0);
}

// `drctl lab fault start-sshd`: bring a killed sshd back (the kubelet never manages sshd).
process.on('SIGUSR1', () => {
  if (!procs.sshd) {
    log('SIGUSR1: starting sshd');
    startSshd();
  }
});
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());

mkdirSync(logDir, { recursive: true });
mkdirSync(join(root, 'run'), { recursive: true });
execFileSync('hostname', [hostname]);
mountNodeDisk();
makeCgroupRoot();
startSshd();
run('containerd', '/usr/bin/containerd', ['--config', join(root, 'etc/containerd/config.toml')]);
startKubelet();
