// docker-compose.yml, run for real: `nerdctl compose` (containerd's Docker-compatible CLI) on a
// containerd of its own, the drctl host "outside both sites" (published ports on 127.0.30.1), with
// BuildKit building the worker from the Dockerfile. Nothing can be pulled here, so every image the
// compose file names is built on this machine first (lab/images.ts), under the name the file uses:
//   temporalio/temporal:<temporalBin>  the lab's Temporal CLI build, run as uid 1000 like upstream's
//   temporalio/ui:<temporalUi>         ui-server from its Go module, with that module's docker.yaml
//   node:<node>-bookworm-slim          the Dockerfile's FROM: a debootstrapped bookworm (minbase)
//                                      with the official Node.js binary and npm the project runs on
// MinIO's release tags are not served by the Go proxy these machines reach, so the compose file's
// quay.io references cannot be built as such: the lab points DRCTL_MINIO_IMAGE and DRCTL_MC_IMAGE
// (variables the file reads, defaulting to quay.io) at images of its own MinIO and mc builds.
// The operator's side is what the compose file asks for: a drctl.yaml, an ssh/ and a kube/ directory
// (the worker's uid owns them), and the secrets as environment variables, all in .lab/compose.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { labConfig } from './config.ts';
import { IMAGE_REPO, type ImageSpec, imageTar } from './images.ts';
import { alive, launch, readState, stopPid, writeState } from './processes.ts';
import { bin, LAB_DIR, paths, REPO, SERVICES, SITES, VERSIONS } from './topology.ts';

const run = promisify(execFile);

export const COMPOSE = {
  /** The drctl host's address: where the compose file publishes Temporal, its UI and MinIO. */
  ip: '127.0.30.1',
  project: 'drctl',
  /** containerd namespace of nerdctl and of BuildKit's containerd worker (FROM images are found there). */
  namespace: 'default',
  /** The compose host's state (containerd, BuildKit's cache, nerdctl's volumes): outside the repo, kept between runs. */
  root: '/var/lib/drctl-compose',
  run: '/run/drctl-compose',
  /** The operator's files the compose file mounts, and its environment. */
  dir: join(LAB_DIR, 'compose'),
  /** The uid the worker runs as (the compose file's DRCTL_UID), owner of the mounted keys. */
  uid: 10001,
  file: join(REPO, 'docker-compose.yml'),
};
const sock = `${COMPOSE.run}/containerd.sock`;
const buildkitSock = `${COMPOSE.run}/buildkitd.sock`;
const nerdctlToml = `${COMPOSE.run}/nerdctl.toml`;
const PIDS = { containerd: 'compose/containerd', buildkitd: 'compose/buildkitd' } as const;

/** The Node.js release the project pins (scripts/node-env.sh), which the Dockerfile's FROM names. */
export function nodeVersion(): string {
  const m = /^DRCTL_NODE_VERSION=(\S+)/m.exec(readFileSync(join(REPO, 'scripts/node-env.sh'), 'utf8'));
  if (!m) throw new Error('scripts/node-env.sh names no DRCTL_NODE_VERSION');
  return m[1]!;
}

/** Docker's normalisation of an image name (containerd stores full names; `node:x` is docker.io/library/node:x). */
export function fullImageName(ref: string): string {
  const first = ref.split('/')[0]!;
  if (ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return ref;
  return ref.includes('/') ? `docker.io/${ref}` : `docker.io/library/${ref}`;
}

export const composeImages = {
  temporal: `temporalio/temporal:${VERSIONS.temporalBin}`,
  ui: `temporalio/ui:${VERSIONS.temporalUi.replace(/^v/, '')}`,
  node: () => `node:${nodeVersion()}-bookworm-slim`,
  minio: `${IMAGE_REPO}/minio:${VERSIONS.minio}`,
  mc: `${IMAGE_REPO}/mc:${VERSIONS.mc}`,
  worker: 'drctl-worker:0.1.0',
};

/** The official Node.js binary and npm of the pinned release (scripts/node-env.sh unpacks them here). */
function nodeDist(): { node: string; npm: string } {
  const v = nodeVersion();
  const dir = join(bin.nodeDistRoot, `node-${v}`);
  const node = join(dir, 'bin', 'node');
  const npm = join(dir, 'lib', 'node_modules', 'npm');
  if (existsSync(node) && existsSync(npm)) return { node, npm };
  if (process.version === `v${v}`) {
    const prefix = join(process.execPath, '..', '..');
    return { node: process.execPath, npm: join(prefix, 'lib', 'node_modules', 'npm') };
  }
  throw new Error(`no Node.js ${v} here (run scripts/setup.sh)`);
}

/** /etc/passwd and /etc/group with root and upstream's `temporal` user (uid 1000): Go's os/user needs them without cgo. */
const temporalUser = {
  '/etc/passwd': 'root:x:0:0:root:/root:/sbin/nologin\ntemporal:x:1000:1000::/home/temporal:/sbin/nologin\n',
  '/etc/group': 'root:x:0:\ntemporal:x:1000:\n',
};
const LAB_CA_BUNDLE = '/usr/local/share/drctl-lab/ca-certificates.crt';

export function composeImageSpecs(): ImageSpec[] {
  const { node, npm } = nodeDist();
  return [
    {
      ref: fullImageName(composeImages.temporal),
      binaries: [bin.temporal],
      texts: temporalUser,
      dirs: ['/home/temporal', '/tmp'],
      owners: { '/home/temporal': '1000:1000' },
      env: { HOME: '/home/temporal' },
      user: '1000:1000',
      workdir: '/home/temporal',
      entrypoint: ['temporal'],
    },
    {
      ref: fullImageName(composeImages.ui),
      binaries: [],
      files: {
        '/home/ui-server/ui-server': join(bin.uiServerDir, 'ui-server'),
        '/home/ui-server/config/docker.yaml': join(bin.uiServerDir, 'docker.yaml'),
      },
      texts: temporalUser,
      dirs: ['/tmp'],
      owners: { '/home/ui-server': '1000:1000' },
      user: '1000:1000',
      workdir: '/home/ui-server',
      entrypoint: ['./ui-server', '--env', 'docker', 'start'],
    },
    {
      ref: fullImageName(composeImages.node()),
      base: bin.debianRootfs,
      binaries: [],
      // The one addition to upstream's image: this machine's CA bundle for Node.js, because the npm
      // registry is reached here through a TLS-intercepting egress proxy (npm ci in the Dockerfile).
      files: { '/usr/local/bin/node': node, [LAB_CA_BUNDLE]: '/etc/ssl/certs/ca-certificates.crt' },
      trees: { '/usr/local/lib/node_modules/npm': npm },
      links: {
        '/usr/local/bin/npm': '../lib/node_modules/npm/bin/npm-cli.js',
        '/usr/local/bin/npx': '../lib/node_modules/npm/bin/npx-cli.js',
      },
      env: { NODE_VERSION: nodeVersion(), NODE_EXTRA_CA_CERTS: LAB_CA_BUNDLE },
      cmd: ['node'],
    },
    {
      // curl: the compose file's healthcheck, as in upstream's image.
      ref: fullImageName(composeImages.minio),
      binaries: [bin.minio, '/usr/bin/curl'],
      dirs: ['/data', '/tmp'],
      entrypoint: ['minio'],
    },
    {
      // A shell (busybox) for the compose file's minio-init script, as upstream's image has one.
      ref: fullImageName(composeImages.mc),
      binaries: [bin.mc],
      files: { '/bin/busybox': '/bin/busybox' },
      links: { '/bin/sh': 'busybox' },
      dirs: ['/root', '/tmp'],
      env: { HOME: '/root' },
      entrypoint: ['mc'],
    },
  ];
}

const nerdctlEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  NERDCTL_TOML: nerdctlToml,
  BUILDKIT_HOST: `unix://${buildkitSock}`,
  // nerdctl finds buildctl on PATH; iptables (for CNI's bridge and portmap) in /usr/sbin.
  PATH: `${bin.buildkitDir}:${bin.nerdctlDir}:/usr/sbin:/sbin:${process.env.PATH ?? ''}`,
});

export async function nerdctl(args: string[], opts: { timeout?: number; env?: Record<string, string> } = {}) {
  return run(join(bin.nerdctlDir, 'nerdctl'), args, {
    env: { ...nerdctlEnv(), ...(opts.env ?? composeEnv()) },
    cwd: REPO,
    timeout: opts.timeout ?? 600_000,
    maxBuffer: 64 * 1024 * 1024,
  });
}

function writeHostConfig(): void {
  mkdirSync(COMPOSE.run, { recursive: true });
  mkdirSync(COMPOSE.root, { recursive: true });
  writeFileSync(
    `${COMPOSE.run}/containerd.toml`,
    `version = 2
root = "${COMPOSE.root}/containerd"
state = "${COMPOSE.run}/containerd"
# No Kubernetes here: nerdctl and BuildKit speak containerd's own API.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${sock}"
`,
  );
  writeFileSync(
    nerdctlToml,
    `address = "unix://${sock}"
namespace = "${COMPOSE.namespace}"
data_root = "${COMPOSE.root}/nerdctl"
cni_path = "/usr/lib/cni"
cni_netconfpath = "${COMPOSE.root}/cni/net.d"
cgroup_manager = "cgroupfs"
`,
  );
}

async function waitFor(what: string, ok: () => Promise<boolean>, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await ok().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`${what} did not come up in ${ms / 1000} s`);
}

/** containerd and BuildKit of the drctl host, each unless it runs. */
export async function startComposeHost(): Promise<void> {
  writeHostConfig();
  const state = readState();
  if (!alive(state.pids[PIDS.containerd])) {
    state.pids[PIDS.containerd] = launch(PIDS.containerd, 'containerd', ['--config', `${COMPOSE.run}/containerd.toml`]);
    writeState(state);
  }
  const ctr = (args: string[]) => run('ctr', ['-a', sock, '-n', COMPOSE.namespace, ...args]);
  await waitFor('containerd (compose host)', async () => (await ctr(['version'])).stdout.includes('Server'), 30_000);
  if (!alive(state.pids[PIDS.buildkitd])) {
    // The containerd worker, so a Dockerfile's FROM finds the images loaded below; RUN steps on the
    // host's network (the build's apt-get and npm ci reach the machine's package mirrors).
    state.pids[PIDS.buildkitd] = launch(PIDS.buildkitd, join(bin.buildkitDir, 'buildkitd'), [
      '--root',
      `${COMPOSE.root}/buildkit`,
      '--addr',
      `unix://${buildkitSock}`,
      '--oci-worker=false',
      '--containerd-worker=true',
      `--containerd-worker-addr=${sock}`,
      `--containerd-worker-namespace=${COMPOSE.namespace}`,
      '--containerd-worker-net=host',
    ]);
    writeState(state);
  }
  await waitFor(
    'buildkitd',
    async () =>
      (await run(join(bin.buildkitDir, 'buildctl'), ['--addr', `unix://${buildkitSock}`, 'debug', 'workers'])).stdout
        .trim()
        .split('\n').length > 1, // a header and one worker
    60_000,
  );
  // Each image imported again when its tar (keyed by its spec) is not the one imported last.
  const have = new Set((await ctr(['images', 'ls', '-q'])).stdout.split('\n'));
  const marker = `${COMPOSE.root}/imported.json`;
  const imported = (existsSync(marker) ? JSON.parse(readFileSync(marker, 'utf8')) : {}) as Record<string, string>;
  for (const spec of composeImageSpecs()) {
    const tar = imageTar(spec);
    if (have.has(spec.ref) && imported[spec.ref] === tar) continue;
    await ctr(['images', 'import', tar]);
    imported[spec.ref] = tar;
    writeFileSync(marker, JSON.stringify(imported, null, 2));
  }
}

/** The compose file's variables for the lab's run; the secrets come from .lab/compose/secrets.json. */
export function composeEnv(): Record<string, string> {
  const f = join(COMPOSE.dir, 'secrets.json');
  if (!existsSync(f)) return {};
  const s = JSON.parse(readFileSync(f, 'utf8')) as Record<string, string>;
  return {
    ...s,
    DRCTL_CONFIG_FILE: join(COMPOSE.dir, 'drctl.yaml'),
    DRCTL_SSH_DIR: join(COMPOSE.dir, 'ssh'),
    DRCTL_KUBE_DIR: join(COMPOSE.dir, 'kube'),
    DRCTL_PUBLISH_IP: COMPOSE.ip,
    DRCTL_UID: String(COMPOSE.uid),
    DRCTL_GID: String(COMPOSE.uid),
    DRCTL_MINIO_IMAGE: composeImages.minio,
    DRCTL_MC_IMAGE: composeImages.mc,
  };
}

/**
 * What an operator lays beside the compose file for this lab: the worker's drctl.yaml (the lab's
 * sites, the compose file's own MinIO, every secret by environment variable), the SSH key and the
 * kubeconfigs, owned by the worker's uid; and the secrets, new each time, in secrets.json (0600).
 */
export function writeOperatorFiles(): void {
  rmSync(COMPOSE.dir, { recursive: true, force: true });
  for (const d of ['ssh', 'kube']) mkdirSync(join(COMPOSE.dir, d), { recursive: true, mode: 0o700 });
  const cfg = labConfig() as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  cfg.temporal = { address: 'temporal:7233', namespace: 'default', taskQueue: cfg.temporal.taskQueue };
  for (const site of cfg.sites) {
    site.cluster.kubeconfig = `/etc/drctl/kube/${site.name}.kubeconfig`;
    for (const node of site.cluster.nodes) {
      node.ssh.privateKeyPath = '/etc/drctl/ssh/id_ed25519';
      if (node.ssh.jump) node.ssh.jump.privateKeyPath = '/etc/drctl/ssh/id_ed25519';
    }
  }
  cfg.objectStore = {
    endpoint: 'http://minio:9000',
    bucket: SERVICES.minio.bucket,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyIdEnv: 'DRCTL_S3_KEY', secretAccessKeyEnv: 'DRCTL_S3_SECRET' },
  };
  cfg.snapshots = {
    encryptionKey: { env: 'DRCTL_SNAPSHOT_ENCRYPTION_KEY' },
    signingKey: { env: 'DRCTL_SNAPSHOT_SIGNING_KEY' },
  };
  cfg.dns.powerdns.apiKey = { env: 'DRCTL_DNS_API_KEY' };
  writeFileSync(join(COMPOSE.dir, 'drctl.yaml'), stringify(cfg), { mode: 0o644 });
  cpSync(paths.sshKey, join(COMPOSE.dir, 'ssh', 'id_ed25519'));
  for (const site of SITES) cpSync(site.kubeconfig, join(COMPOSE.dir, 'kube', `${site.name}.kubeconfig`));
  execFileSync('chown', ['-R', `${COMPOSE.uid}:${COMPOSE.uid}`, join(COMPOSE.dir, 'ssh'), join(COMPOSE.dir, 'kube')]);
  chownSync(join(COMPOSE.dir, 'drctl.yaml'), COMPOSE.uid, COMPOSE.uid);
  const rand = (n: number) => execFileSync('openssl', ['rand', '-base64', String(n)], { encoding: 'utf8' }).trim();
  const root = { user: 'drctl-admin', password: rand(24) };
  writeFileSync(
    join(COMPOSE.dir, 'secrets.json'),
    JSON.stringify({
      MINIO_ROOT_USER: root.user,
      MINIO_ROOT_PASSWORD: root.password,
      DRCTL_S3_KEY: root.user,
      DRCTL_S3_SECRET: root.password,
      DRCTL_SNAPSHOT_ENCRYPTION_KEY: readFileSync(paths.snapshotEncryptionKey, 'utf8').trim(),
      DRCTL_SNAPSHOT_SIGNING_KEY: readFileSync(paths.snapshotSigningKey, 'utf8').trim(),
      DRCTL_DNS_API_KEY: readFileSync(paths.pdnsApiKey, 'utf8').trim(),
    }),
    { mode: 0o600 },
  );
}

/** `nerdctl compose up -d --build` of the repository's docker-compose.yml on the drctl host. */
export async function composeUp(): Promise<{ tookMs: number }> {
  const t0 = Date.now();
  await startComposeHost();
  writeOperatorFiles();
  const compose = ['compose', '-f', COMPOSE.file, '-p', COMPOSE.project];
  try {
    await nerdctl([...compose, 'up', '-d', '--build'], { timeout: 1_200_000 });
  } catch (err) {
    // Seen twice on this machine under load: nerdctl 2.0.5 on containerd 1.6 failed `run -d` of the
    // MinIO service with "OCI runtime start failed: cannot start a container that has stopped"
    // (its process ended before the start returned). Once more from a clean project, and say so.
    const first = (err as Error).message
      .split('\n')
      .filter((l) => /fatal|error/i.test(l))
      .join(' | ');
    process.stderr.write(`[compose] up failed once (${first.slice(0, 400)}); down and up again\n`);
    await nerdctl([...compose, 'down'], { timeout: 180_000 }).catch(() => undefined);
    await nerdctl([...compose, 'up', '-d', '--build'], { timeout: 1_200_000 });
  }
  return { tookMs: Date.now() - t0 };
}

/** The compose project's containers, volumes and network removed; then BuildKit and containerd stopped. */
export async function composeDown(opts: { keepHost?: boolean } = {}): Promise<string[]> {
  const state = readState();
  const stopped: string[] = [];
  // The file's required variables must be set even to take it down (placeholders when the secrets are gone).
  if (alive(state.pids[PIDS.containerd]))
    await nerdctl(['compose', '-f', COMPOSE.file, '-p', COMPOSE.project, 'down', '-v'], {
      timeout: 180_000,
      env: { MINIO_ROOT_USER: 'unused', MINIO_ROOT_PASSWORD: 'unused', ...composeEnv() },
    });
  if (opts.keepHost) return stopped;
  for (const key of [PIDS.buildkitd, PIDS.containerd]) {
    if (await stopPid(state.pids[key])) stopped.push(`${key} (pid ${state.pids[key]})`);
    delete state.pids[key];
  }
  writeState(state);
  return stopped;
}
