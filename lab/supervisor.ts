// A lab node's init: runs inside the node's own mount + PID namespace (started by `drctl lab up`
// through unshare). It bind-mounts the node's disk over /etc/kubernetes, /var/lib and
// /usr/local/bin, starts the node's sshd, and then acts like the kubelet does for static pods:
// runs what each manifest in /etc/kubernetes/manifests says while the file is there, stops it when
// the file goes away, restarts it (with back-off) when it dies.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const root = args.get('root')!;
const manifestsDir = '/etc/kubernetes/manifests';
const logDir = join(root, 'var/log');
const stateFile = join(root, 'run/supervisor.json');

interface Pod {
  name: string;
  hash: string;
  command: string[];
  env: Record<string, string>;
  proc?: ChildProcess;
  startedAt?: number;
  restarts: number;
  nextStart: number;
  stopping?: Promise<void>;
}

const pods = new Map<string, Pod>();
let sshd: ChildProcess | undefined;
let shuttingDown = false;

function log(msg: string) {
  process.stderr.write(`${new Date().toISOString()} supervisor ${msg}\n`);
}

function mountNodeDisk() {
  for (const [src, dst] of [
    ['etc/kubernetes', '/etc/kubernetes'],
    ['var/lib', '/var/lib'],
    ['usr/local/bin', '/usr/local/bin'],
  ] as const) {
    mkdirSync(dst, { recursive: true });
    execFileSync('mount', ['--bind', join(root, src), dst]);
  }
}

function startSshd() {
  const out = openSync(join(logDir, 'sshd.log'), 'a');
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(root, 'etc/ssh/sshd_config')], {
    stdio: ['ignore', out, out],
  });
  sshd.on('exit', (code, sig) =>
    log(`sshd exited (${code ?? sig}); not restarted (a dead sshd is a fault to recover from)`),
  );
}

// Parsed manifests by file identity (inode, size, mtime): an idle node re-reads nothing.
const parsed = new Map<string, { key: string; pod: Omit<Pod, 'restarts' | 'nextStart'> | undefined }>();

function readManifestCached(file: string): Omit<Pod, 'restarts' | 'nextStart'> | undefined {
  let key: string;
  try {
    const st = statSync(join(manifestsDir, file), { bigint: true });
    key = `${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return undefined;
  }
  const hit = parsed.get(file);
  if (hit?.key === key) return hit.pod;
  const pod = readManifest(file);
  // Cache only what parsed: a half-written file is read again next time.
  if (pod) parsed.set(file, { key, pod });
  return pod;
}

function readManifest(file: string): Omit<Pod, 'restarts' | 'nextStart'> | undefined {
  try {
    const text = readFileSync(join(manifestsDir, file), 'utf8');
    const pod = parse(text) as {
      metadata?: { name?: string };
      spec?: { containers?: { command?: string[]; args?: string[]; env?: { name: string; value?: string }[] }[] };
    };
    const c = pod.spec?.containers?.[0];
    if (!c?.command?.length) return undefined;
    return {
      name: pod.metadata?.name ?? file,
      hash: createHash('sha256').update(text).digest('hex'),
      command: [...c.command, ...(c.args ?? [])],
      env: Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? ''])),
    };
  } catch {
    return undefined; // half-written or unparsable: the kubelet ignores it too until it parses
  }
}

function start(pod: Pod) {
  const out = openSync(join(logDir, `${pod.name}.log`), 'a');
  const [cmd, ...rest] = pod.command;
  const proc = spawn(cmd!, rest, { stdio: ['ignore', out, out], env: { ...process.env, ...pod.env }, detached: true });
  pod.proc = proc;
  pod.startedAt = Date.now();
  log(`started ${pod.name} pid ${proc.pid}`);
  proc.on('error', (err) => log(`${pod.name}: ${err.message}`));
  proc.on('exit', (code, sig) => {
    if (pod.proc !== proc) return;
    pod.proc = undefined;
    if (pod.stopping || shuttingDown) return;
    const ranFor = Date.now() - (pod.startedAt ?? 0);
    pod.restarts = ranFor > 30_000 ? 1 : pod.restarts + 1;
    const backoff = Math.min(10_000, 500 * 2 ** (pod.restarts - 1));
    pod.nextStart = Date.now() + backoff;
    log(`${pod.name} exited (${code ?? sig}) after ${ranFor} ms; restarting in ${backoff} ms`);
    writeState();
  });
}

function stop(pod: Pod): Promise<void> {
  const proc = pod.proc;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  pod.stopping ??= new Promise<void>((resolve) => {
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-proc.pid!, sig);
      } catch {
        /* already gone */
      }
    };
    const grace = setTimeout(() => kill('SIGKILL'), 10_000);
    proc.once('exit', () => {
      clearTimeout(grace);
      log(`stopped ${pod.name}`);
      resolve();
    });
    kill('SIGTERM');
  });
  return pod.stopping;
}

let lastState = '';

/** Written (atomically) only when it changed: `lab status` reads it; an idle node writes nothing. */
function writeState() {
  const state = JSON.stringify({
    supervisor: process.pid,
    sshd: sshd?.exitCode === null ? sshd.pid : undefined,
    pods: Object.fromEntries(
      [...pods.values()].map((p) => [p.name, { pid: p.proc?.pid, startedAt: p.startedAt, restarts: p.restarts }]),
    ),
  });
  if (state === lastState) return;
  const tmp = `${stateFile}.tmp`;
  writeFileSync(tmp, state);
  renameSync(tmp, stateFile);
  lastState = state;
}

async function sync() {
  let files: string[] = [];
  try {
    files = readdirSync(manifestsDir).filter((f) => /\.(ya?ml|json)$/.test(f) && !f.startsWith('.'));
  } catch {
    /* no manifest dir: nothing runs */
  }
  for (const f of parsed.keys()) if (!files.includes(f)) parsed.delete(f);
  const wanted = new Map<string, Omit<Pod, 'restarts' | 'nextStart'>>();
  for (const f of files) {
    const m = readManifestCached(f);
    if (m) wanted.set(m.name, m);
  }
  for (const [name, pod] of pods) {
    const w = wanted.get(name);
    if (!w || w.hash !== pod.hash) {
      await stop(pod);
      pods.delete(name);
    }
  }
  const now = Date.now();
  for (const [name, w] of wanted) {
    let pod = pods.get(name);
    if (!pod) {
      pod = { ...w, restarts: 0, nextStart: 0 };
      pods.set(name, pod);
    }
    if (!pod.proc && !pod.stopping && now >= pod.nextStart) start(pod);
  }
  writeState();
}

async function shutdown() {
  if (shuttingDown) return;
  shuttingDown = true;
  log('shutting down');
  await Promise.all([...pods.values()].map(stop));
  sshd?.kill('SIGTERM');
  process.exit(0);
}

// `drctl lab fault start-sshd`: bring a killed sshd back (the kubelet never manages sshd).
process.on('SIGUSR1', () => {
  if (!sshd || sshd.exitCode !== null || sshd.signalCode !== null) {
    log('SIGUSR1: starting sshd');
    startSshd();
    writeState();
  }
});
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());

mkdirSync(logDir, { recursive: true });
mkdirSync(join(root, 'run'), { recursive: true });
mountNodeDisk();
startSshd();
for (;;) {
  if (shuttingDown) break;
  await sync();
  await new Promise((r) => setTimeout(r, 250));
}
