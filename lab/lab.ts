// The embedded lab: real servers on this machine, each on its own loopback address.
// `up` lays out the nodes (PKI, SSH, static pod manifests), starts Temporal, MinIO and the six
// nodes, waits until everything is healthy and writes the lab's drctl.yaml. `down` stops exactly
// what `up` recorded. Nothing here is imported by drctl's workflows or activities.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { ca, leaf, serviceAccountKeys } from './pki.ts';
import { bin, binariesPresent, LAB_DIR, type LabNode, type LabSite, onHost, paths, REPO, SERVICES, SITES, VERSIONS } from './topology.ts';

export interface Component {
  name: string;
  kind: 'temporal' | 'minio' | 'node' | 'sshd' | 'etcd' | 'kube-apiserver' | 'worker';
  address: string;
  pid?: number;
  healthy: boolean;
  detail: string;
}

interface LabState {
  pids: Record<string, number>;
}

const readState = (): LabState => (existsSync(paths.state) ? (JSON.parse(readFileSync(paths.state, 'utf8')) as LabState) : { pids: {} });
const writeState = (s: LabState) => writeFileSync(paths.state, JSON.stringify(s, null, 2));

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Layout

function sshKeygen(args: string[]) {
  execFileSync('ssh-keygen', args, { stdio: 'ignore' });
}

/** `ssh-keygen -lf` prints "256 SHA256:... comment (ED25519)": the pinned form drctl.yaml takes. */
export function hostKeyFingerprint(node: LabNode): string {
  const out = execFileSync('ssh-keygen', ['-lf', join(node.root, 'etc/ssh/ssh_host_ed25519_key.pub')], { encoding: 'utf8' });
  return out.split(' ')[1]!;
}

const nodePki = '/etc/kubernetes/pki';
const LAB_TASK_QUEUE = 'drctl';

function etcdManifest(site: LabSite, node: LabNode): object {
  const cluster = site.nodes.map((n) => `${n.name}=https://${n.ip}:2380`).join(',');
  return staticPod('etcd', `registry.k8s.io/etcd:${site.etcdVersion.slice(1)}-0`, [
    'etcd',
    `--name=${node.name}`,
    '--data-dir=/var/lib/etcd',
    `--listen-client-urls=https://${node.ip}:2379`,
    `--advertise-client-urls=https://${node.ip}:2379`,
    `--listen-peer-urls=https://${node.ip}:2380`,
    `--initial-advertise-peer-urls=https://${node.ip}:2380`,
    `--initial-cluster=${cluster}`,
    '--initial-cluster-state=new',
    `--initial-cluster-token=${site.name}`,
    `--listen-metrics-urls=http://${node.ip}:2381`,
    `--cert-file=${nodePki}/etcd/server.crt`,
    `--key-file=${nodePki}/etcd/server.key`,
    `--trusted-ca-file=${nodePki}/etcd/ca.crt`,
    '--client-cert-auth=true',
    `--peer-cert-file=${nodePki}/etcd/peer.crt`,
    `--peer-key-file=${nodePki}/etcd/peer.key`,
    `--peer-trusted-ca-file=${nodePki}/etcd/ca.crt`,
    '--peer-client-cert-auth=true',
    '--snapshot-count=10000',
  ]);
}

function apiserverManifest(site: LabSite, node: LabNode): object {
  return staticPod('kube-apiserver', `registry.k8s.io/kube-apiserver:${VERSIONS.kubernetes}`, [
    'kube-apiserver',
    `--advertise-address=${node.ip}`,
    `--bind-address=${node.ip}`,
    '--secure-port=6443',
    `--etcd-servers=${site.nodes.map((n) => `https://${n.ip}:2379`).join(',')}`,
    `--etcd-cafile=${nodePki}/etcd/ca.crt`,
    `--etcd-certfile=${nodePki}/apiserver-etcd-client.crt`,
    `--etcd-keyfile=${nodePki}/apiserver-etcd-client.key`,
    `--client-ca-file=${nodePki}/ca.crt`,
    `--tls-cert-file=${nodePki}/apiserver.crt`,
    `--tls-private-key-file=${nodePki}/apiserver.key`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${nodePki}/sa.pub`,
    `--service-account-signing-key-file=${nodePki}/sa.key`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    '--profiling=false',
    `--cert-dir=/var/lib/kube-apiserver`,
  ]);
}

function staticPod(name: string, image: string, command: string[]): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'kube-system', labels: { component: name, tier: 'control-plane' } },
    spec: { hostNetwork: true, priorityClassName: 'system-node-critical', containers: [{ name, image, command }] },
  };
}

function layoutSite(site: LabSite, clientPub: string) {
  const pki = paths.pki(site.name);
  const etcdCa = ca(join(pki, 'etcd'), `${site.name}-etcd-ca`);
  const kubeCa = ca(join(pki, 'kubernetes'), `${site.name}-kubernetes-ca`);
  for (const node of site.nodes) {
    const r = (p: string) => join(node.root, p);
    for (const d of ['etc/kubernetes/pki/etcd', 'etc/kubernetes/manifests', 'etc/ssh', 'var/lib', 'var/log', 'usr/local/bin', 'run']) {
      mkdirSync(r(d), { recursive: true });
    }
    const etcdPki = r('etc/kubernetes/pki/etcd');
    copyFileSync(etcdCa.crt, join(etcdPki, 'ca.crt'));
    const sans = { ips: [node.ip, '127.0.0.1'], dns: [node.name, `${node.name}.${site.name}.lab`, 'localhost'] };
    leaf(etcdCa, join(etcdPki, 'server'), { cn: node.name, ...sans, usage: ['server', 'client'] });
    leaf(etcdCa, join(etcdPki, 'peer'), { cn: node.name, ...sans, usage: ['server', 'client'] });
    leaf(etcdCa, join(etcdPki, 'healthcheck-client'), { cn: 'kube-etcd-healthcheck-client', usage: ['client'] });

    const binDir = r('usr/local/bin');
    for (const tool of ['etcd', 'etcdctl', 'etcdutl']) linkTool(join(bin.etcdDir(site.name), tool), join(binDir, tool));
    linkTool(join(bin.kubeDir, 'kubectl'), join(binDir, 'kubectl'));

    writeSshd(node, clientPub);
    const manifests = r('etc/kubernetes/manifests');
    const fresh = !existsSync(r('var/lib/.lab-initialised'));
    if (fresh) writeFileSync(join(manifests, 'etcd.yaml'), stringify(etcdManifest(site, node)));

    if (node.runsApiserver) {
      const k = r('etc/kubernetes/pki');
      copyFileSync(kubeCa.crt, join(k, 'ca.crt'));
      leaf(kubeCa, join(k, 'apiserver'), {
        cn: 'kube-apiserver',
        ips: [node.ip, '10.96.0.1', '127.0.0.1'],
        dns: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', node.name],
        usage: ['server'],
      });
      leaf(etcdCa, join(k, 'apiserver-etcd-client'), { cn: 'kube-apiserver-etcd-client', usage: ['client'] });
      serviceAccountKeys(k);
      linkTool(join(bin.kubeDir, 'kube-apiserver'), join(binDir, 'kube-apiserver'));
      if (fresh) writeFileSync(join(manifests, 'kube-apiserver.yaml'), stringify(apiserverManifest(site, node)));
    }
    writeFileSync(r('var/lib/.lab-initialised'), new Date().toISOString());
  }
  // Admin kubeconfig with a client certificate (system:masters), like kubeadm's admin.conf.
  mkdirSync(join(LAB_DIR, 'kube'), { recursive: true });
  const admin = join(pki, 'kubernetes', 'admin');
  leaf(kubeCa, admin, { cn: 'kubernetes-admin', org: 'system:masters', usage: ['client'] });
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const ctx = `admin@${site.name}`;
  writeFileSync(site.kubeconfig, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: site.name, cluster: { server: site.apiserver, 'certificate-authority-data': b64(kubeCa.crt) } }],
    users: [{ name: `admin-${site.name}`, user: { 'client-certificate-data': b64(`${admin}.crt`), 'client-key-data': b64(`${admin}.key`) } }],
    contexts: [{ name: ctx, context: { cluster: site.name, user: `admin-${site.name}` } }],
    'current-context': ctx,
  }), { mode: 0o600 });
}

function linkTool(target: string, link: string) {
  rmSync(link, { force: true });
  symlinkSync(target, link);
}

function writeSshd(node: LabNode, clientPub: string) {
  const dir = join(node.root, 'etc/ssh');
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKey)) sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', `${node.id}`, '-f', hostKey]);
  writeFileSync(paths.authorizedKeys, clientPub, { mode: 0o600 });
  writeFileSync(join(dir, 'sshd_config'), [
    `ListenAddress ${node.ip}:22`,
    `HostKey ${hostKey}`,
    `PidFile ${join(node.root, 'run/sshd.pid')}`,
    `AuthorizedKeysFile ${paths.authorizedKeys}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'PrintMotd no',
    'MaxSessions 64',
    'MaxStartups 64:30:128',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n'));
}

function layout() {
  for (const d of [LAB_DIR, paths.logs, join(LAB_DIR, 'ssh'), paths.minioData, join(LAB_DIR, 'temporal')]) mkdirSync(d, { recursive: true });
  // Mount points for the nodes' private disks, and sshd's privilege-separation dir.
  for (const d of ['/etc/kubernetes', '/run/sshd']) mkdirSync(d, { recursive: true });
  if (!existsSync(paths.sshKey)) sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'drctl-lab-operator', '-f', paths.sshKey]);
  const clientPub = readFileSync(`${paths.sshKey}.pub`, 'utf8');
  if (!existsSync(paths.minioCreds)) {
    writeFileSync(paths.minioCreds, stringify({ accessKeyId: 'drctl-lab', secretAccessKey: randomBytes(18).toString('base64url') }), { mode: 0o600 });
  }
  for (const site of SITES) layoutSite(site, clientPub);
}

// ---------------------------------------------------------------------------------------------
// Processes

function launch(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): number {
  const out = openSync(join(paths.logs, `${name.replace(/\//g, '-')}.log`), 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...env } });
  child.unref();
  if (!child.pid) throw new Error(`could not start ${name} (${cmd})`);
  return child.pid;
}

function minioCreds(): { accessKeyId: string; secretAccessKey: string } {
  const text = readFileSync(paths.minioCreds, 'utf8');
  return {
    accessKeyId: text.match(/accessKeyId: (\S+)/)![1]!,
    secretAccessKey: text.match(/secretAccessKey: (\S+)/)![1]!,
  };
}

function startAll(state: LabState) {
  const t = SERVICES.temporal;
  if (!alive(state.pids.temporal)) {
    state.pids.temporal = launch('temporal', bin.temporal, [
      'server', 'start-dev', '--ip', t.ip, '--port', String(t.port), '--ui-ip', t.ip, '--ui-port', String(t.uiPort),
      '--db-filename', paths.temporalDb, '--log-level', 'warn', '--namespace', 'default',
    ]);
  }
  const m = SERVICES.minio;
  if (!alive(state.pids.minio)) {
    const c = minioCreds();
    state.pids.minio = launch('minio', bin.minio, ['server', paths.minioData, '--address', `${m.ip}:${m.port}`, '--console-address', `${m.ip}:${m.consolePort}`, '--quiet'], {
      MINIO_ROOT_USER: c.accessKeyId,
      MINIO_ROOT_PASSWORD: c.secretAccessKey,
      MINIO_BROWSER: 'on',
    });
  }
  for (const site of SITES) {
    for (const node of site.nodes) {
      if (alive(state.pids[node.id])) continue;
      // The node's own mount + PID namespace; bash as PID 1 reaps orphans and forwards SIGTERM.
      state.pids[node.id] = launch(node.id, 'unshare', [
        '--mount', '--pid', '--fork', '--mount-proc', '--propagation', 'private', '--kill-child=SIGTERM', '--',
        'bash', '-c', 'node --import tsx "$0" --root "$1" & c=$!; trap "kill -TERM $c" TERM INT; wait $c; wait $c',
        join(REPO, 'lab/supervisor.ts'), node.root,
      ], { PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/bin:/bin'}` });
    }
  }
  writeState(state);
}

// ---------------------------------------------------------------------------------------------
// Health

function tcpOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: timeoutMs });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('timeout', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(false));
  });
}

function sshBanner(host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host, port: 22, timeout: 2000 });
    s.once('data', (d) => (s.destroy(), resolve(d.toString().trim())));
    s.once('timeout', () => (s.destroy(), resolve(undefined)));
    s.once('error', () => resolve(undefined));
  });
}

function httpsGet(url: string, tls: { ca: string; cert: string; key: string }): Promise<{ status: number; body: string }> {
  let creds: { ca: Buffer; cert: Buffer; key: Buffer };
  try {
    // A lab that was never brought up (fresh clone) has no PKI yet: that is "down", not a crash.
    creds = { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  } catch (err) {
    return Promise.resolve({ status: 0, body: `no client certificate (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` });
  }
  return new Promise((resolve) => {
    const req = httpsRequest(url, { ...creds, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
    req.end();
  });
}

interface SupervisorState {
  sshd?: number;
  pods: Record<string, { pid?: number; restarts: number }>;
}

/** PIDs inside a node are namespace-local; map them to this host's view for `lab status`. */
function hostPid(nodeInitPid: number | undefined, nsPid: number | undefined): number | undefined {
  if (!nodeInitPid || !nsPid) return undefined;
  try {
    const pidNs = readlinkSync(`/proc/${childOf(nodeInitPid) ?? nodeInitPid}/ns/pid`);
    // Read /proc directly: processes come and go while we look (a vanished entry is just skipped).
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const m = readFileSync(`/proc/${d}/status`, 'utf8').match(/^NSpid:\s+(\d+)\s+(\d+)$/m);
        if (m && Number(m[2]) === nsPid && readlinkSync(`/proc/${d}/ns/pid`) === pidNs) return Number(m[1]);
      } catch {
        /* exited meanwhile */
      }
    }
  } catch {
    /* the node itself is gone */
  }
  return undefined;
}

function childOf(pid: number): number | undefined {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids[0] ? Number(kids[0]) : undefined;
  } catch {
    return undefined;
  }
}

/** The lab's drctl worker is healthy when it is alive and polling its task queue. */
async function workerStatus(pid: number): Promise<Component> {
  const { Connection } = await import('@temporalio/client');
  const t = SERVICES.temporal;
  let pollers = 0;
  let detail = 'not polling';
  try {
    const conn = await Connection.connect({ address: `${t.ip}:${t.port}`, connectTimeout: 2000 });
    try {
      const r = await conn.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: LAB_TASK_QUEUE }, taskQueueType: 1 });
      pollers = r.pollers?.length ?? 0;
      detail = `${pollers} workflow poller(s) on '${LAB_TASK_QUEUE}'`;
    } finally {
      await conn.close();
    }
  } catch (err) {
    detail = (err as Error).message;
  }
  return { name: 'worker', kind: 'worker', address: `task queue ${LAB_TASK_QUEUE}`, pid, healthy: alive(pid) && pollers > 0, detail };
}

export async function status(): Promise<Component[]> {
  const state = readState();
  const t = SERVICES.temporal;
  const m = SERVICES.minio;
  const checks: Promise<Component>[] = [
    (async () => {
      const grpc = await tcpOpen(t.ip, t.port);
      const ui = await fetch(`http://${t.ip}:${t.uiPort}/`).then((r) => r.ok, () => false);
      return { name: 'temporal', kind: 'temporal', address: `${t.ip}:${t.port} (UI http://${t.ip}:${t.uiPort})`, pid: state.pids.temporal,
        healthy: alive(state.pids.temporal) && grpc && ui, detail: `grpc ${grpc ? 'up' : 'down'}, ui ${ui ? 'up' : 'down'}` };
    })(),
    (async () => {
      const ok = await fetch(`http://${m.ip}:${m.port}/minio/health/live`).then((r) => r.ok, () => false);
      return { name: 'minio', kind: 'minio', address: `${m.ip}:${m.port}`, pid: state.pids.minio, healthy: alive(state.pids.minio) && ok, detail: ok ? 'live' : 'not answering' };
    })(),
  ];
  if (state.pids.worker) checks.push(workerStatus(state.pids.worker));
  for (const site of SITES) {
    for (const node of site.nodes) {
      const initPid = state.pids[node.id];
      let sup: SupervisorState | undefined;
      try {
        sup = JSON.parse(readFileSync(join(node.root, 'run/supervisor.json'), 'utf8')) as SupervisorState;
      } catch {
        sup = undefined;
      }
      checks.push((async () => ({ name: node.id, kind: 'node', address: node.ip, pid: initPid, healthy: alive(initPid), detail: alive(initPid) ? 'namespace up' : 'down' }))());
      checks.push((async () => {
        const banner = await sshBanner(node.ip);
        return { name: `${node.id}/sshd`, kind: 'sshd', address: `${node.ip}:22`, pid: hostPid(initPid, sup?.sshd), healthy: !!banner?.startsWith('SSH-2.0'), detail: banner ?? 'no banner' };
      })());
      checks.push((async () => {
        const tls = {
          ca: onHost(node, '/etc/kubernetes/pki/etcd/ca.crt'),
          cert: onHost(node, '/etc/kubernetes/pki/etcd/healthcheck-client.crt'),
          key: onHost(node, '/etc/kubernetes/pki/etcd/healthcheck-client.key'),
        };
        const r = await httpsGet(`https://${node.ip}:2379/health`, tls);
        const healthy = r.status === 200 && /"health":\s*"true"/.test(r.body);
        return { name: `${node.id}/etcd`, kind: 'etcd', address: `https://${node.ip}:2379`, pid: hostPid(initPid, sup?.pods.etcd?.pid), healthy,
          detail: `${site.etcdVersion} ${r.status ? `${r.status} ${r.body}` : r.body}` };
      })());
      if (node.runsApiserver) {
        checks.push((async () => {
          const pki = paths.pki(site.name);
          const r = await httpsGet(`${site.apiserver}/readyz`, { ca: join(pki, 'kubernetes/ca.crt'), cert: join(pki, 'kubernetes/admin.crt'), key: join(pki, 'kubernetes/admin.key') });
          return { name: `${site.name}/kube-apiserver`, kind: 'kube-apiserver', address: site.apiserver, pid: hostPid(initPid, sup?.pods['kube-apiserver']?.pid),
            healthy: r.status === 200, detail: `readyz ${r.status || r.body}` };
        })());
      }
    }
  }
  return Promise.all(checks);
}

// ---------------------------------------------------------------------------------------------
// Config for drctl

export function labConfig(): object {
  return {
    temporal: { address: `${SERVICES.temporal.ip}:${SERVICES.temporal.port}`, namespace: 'default', taskQueue: LAB_TASK_QUEUE, webUi: `http://${SERVICES.temporal.ip}:${SERVICES.temporal.uiPort}` },
    sites: SITES.map((site) => ({
      name: site.name,
      role: site.role,
      cluster: {
        name: site.name,
        kubeconfig: site.kubeconfig,
        nodes: site.nodes.map((node) => ({
          name: node.name,
          ssh: { host: node.ip, port: 22, user: 'root', privateKeyPath: paths.sshKey, hostKeyFingerprint: hostKeyFingerprint(node) },
          etcd: { memberName: node.name, clientUrl: `https://${node.ip}:2379`, peerUrl: `https://${node.ip}:2380`, dataDir: '/var/lib/etcd' },
          controlPlane: { profile: 'kubeadm' },
          apiserver: node.runsApiserver,
        })),
      },
    })),
    objectStore: {
      endpoint: `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`,
      bucket: SERVICES.minio.bucket,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { file: paths.minioCreds },
    },
    approvals: { approvers: ['alice', 'bob', 'carol'], twoPersonRule: true, timeout: '1h' },
  };
}

// ---------------------------------------------------------------------------------------------
// Commands

export interface UpResult {
  config: string;
  webUi: string;
  seconds: number;
  components: Component[];
}

export async function up(opts: { timeoutMs?: number; log?: (m: string) => void } = {}): Promise<UpResult> {
  const log = opts.log ?? (() => undefined);
  const t0 = Date.now();
  const missing = binariesPresent();
  if (missing.length) {
    log(`installing lab binaries (${missing.length} missing; a fresh machine takes a while) ...`);
    execFileSync('bash', [join(REPO, 'lab/install.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  layout();
  const state = readState();
  startAll(state);
  log('waiting for every component to be healthy ...');
  const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
  await waitHealthy(deadline, t0, (c) => c.kind !== 'worker');
  await ensureBucket();
  writeFileSync(paths.config, `# Written by \`drctl lab up\`; regenerated on every up.\n${stringify(labConfig())}`);
  chmodSync(paths.config, 0o600);
  // Always a fresh worker, so it runs the code and config as they are now.
  await stopPid(state.pids.worker);
  state.pids.worker = launch('worker', process.execPath, [join(REPO, 'bin/drctl.js'), '--config', paths.config, 'worker']);
  writeState(state);
  const comps = await waitHealthy(deadline, t0);
  return { config: paths.config, webUi: `http://${SERVICES.temporal.ip}:${SERVICES.temporal.uiPort}`, seconds: (Date.now() - t0) / 1000, components: comps };
}

async function waitHealthy(deadline: number, t0: number, which: (c: Component) => boolean = () => true): Promise<Component[]> {
  for (;;) {
    const comps = (await status()).filter(which);
    if (comps.every((c) => c.healthy)) return comps;
    if (Date.now() > deadline) {
      const bad = comps.filter((c) => !c.healthy).map((c) => `${c.name}: ${c.detail}`);
      throw new Error(`lab not healthy after ${Math.round((Date.now() - t0) / 1000)} s:\n  ${bad.join('\n  ')}\n(logs in ${paths.logs} and ${LAB_DIR}/nodes/*/var/log)`);
    }
    await sleep(1000);
  }
}

async function ensureBucket() {
  const { ObjectStore } = await import('../gateways/s3.ts');
  const store = new ObjectStore({
    endpoint: `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`, bucket: SERVICES.minio.bucket, region: 'us-east-1', forcePathStyle: true, prefix: 'drctl/',
    credentials: { file: paths.minioCreds },
  });
  await store.ensureBucket();
}

/**
 * SIGTERM, up to 15 s to exit, then SIGKILL of its process group. A node's pid is its `unshare`,
 * which ignores SIGTERM while it waits: the signal goes to the namespace's init (bash), which
 * hands it to the supervisor, which stops its static pods gracefully.
 */
async function stopPid(pid: number | undefined, isNode = false): Promise<boolean> {
  if (!alive(pid)) return false;
  try {
    process.kill((isNode ? childOf(pid!) : undefined) ?? pid!, 'SIGTERM');
  } catch {
    return false;
  }
  for (let i = 0; i < 150 && alive(pid); i++) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(-pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return true;
}

export async function down(opts: { purge?: boolean } = {}): Promise<string[]> {
  const state = readState();
  const stopped: string[] = [];
  // The worker first: it should not see its servers vanish under it.
  if (await stopPid(state.pids.worker)) stopped.push(`worker (pid ${state.pids.worker})`);
  await Promise.all(Object.entries(state.pids).filter(([name]) => name !== 'worker').map(async ([name, pid]) => {
    if (await stopPid(pid, name.includes('/'))) stopped.push(`${name} (pid ${pid})`);
  }));
  writeState({ pids: {} });
  if (opts.purge) rmSync(LAB_DIR, { recursive: true, force: true });
  return stopped.sort();
}

// ---------------------------------------------------------------------------------------------
// Faults, for tests and demos

/** Host pids of every process inside a node's PID namespace, with their command names. */
function nodeProcesses(nodeId: string): { pid: number; comm: string; cmdline: string }[] {
  const init = childOf(readState().pids[nodeId] ?? 0);
  if (!init) throw new Error(`${nodeId} is not running`);
  const ns = readlinkSync(`/proc/${init}/ns/pid`);
  const out: { pid: number; comm: string; cmdline: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/pid`) !== ns) continue;
      out.push({ pid: Number(d), comm: readFileSync(`/proc/${d}/comm`, 'utf8').trim(), cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

const nodeIdOf = (id: string) => {
  if (!SITES.some((s) => s.nodes.some((n) => n.id === id))) throw new Error(`unknown node '${id}' (e.g. site-a/cp2)`);
  return id;
};

/** Kills the node's sshd and every session it serves, as a crashed daemon would leave it. */
export function killSshd(nodeId: string): number[] {
  const killed = nodeProcesses(nodeIdOf(nodeId)).filter((p) => p.comm === 'sshd').map((p) => p.pid);
  for (const pid of killed) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return killed;
}

export async function startSshd(nodeId: string): Promise<void> {
  const sup = nodeProcesses(nodeIdOf(nodeId)).find((p) => p.comm === 'node' && p.cmdline.includes('supervisor.ts'));
  if (!sup) throw new Error(`${nodeId}: supervisor not found`);
  process.kill(sup.pid, 'SIGUSR1');
  const node = SITES.flatMap((s) => s.nodes).find((n) => n.id === nodeId)!;
  for (let i = 0; i < 100; i++) {
    if ((await sshBanner(node.ip))?.startsWith('SSH-2.0')) return;
    await sleep(100);
  }
  throw new Error(`${nodeId}: sshd did not come back`);
}

/** Stops the Temporal dev server and starts it again on the same database file. */
export async function restartTemporal(downMs = 0): Promise<void> {
  const state = readState();
  await stopPid(state.pids.temporal);
  if (downMs) await sleep(downMs);
  startAll(state);
  const t = SERVICES.temporal;
  for (let i = 0; i < 300; i++) {
    if (await tcpOpen(t.ip, t.port)) return;
    await sleep(100);
  }
  throw new Error('temporal did not come back');
}

/** Shell exports to poke at one site by hand with etcdctl, kubectl or an S3 client. */
export function env(siteName: string): string {
  const site = SITES.find((s) => s.name === siteName);
  if (!site) throw new Error(`unknown site '${siteName}' (lab sites: ${SITES.map((s) => s.name).join(', ')})`);
  const n1 = site.nodes[0]!;
  const c = minioCreds();
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const vars: [string, string][] = [
    ['DRCTL_CONFIG', paths.config],
    ['TEMPORAL_ADDRESS', `${SERVICES.temporal.ip}:${SERVICES.temporal.port}`],
    ['ETCDCTL_ENDPOINTS', site.nodes.map((n) => `https://${n.ip}:2379`).join(',')],
    ['ETCDCTL_CACERT', onHost(n1, '/etc/kubernetes/pki/etcd/ca.crt')],
    ['ETCDCTL_CERT', onHost(n1, '/etc/kubernetes/pki/etcd/healthcheck-client.crt')],
    ['ETCDCTL_KEY', onHost(n1, '/etc/kubernetes/pki/etcd/healthcheck-client.key')],
    ['KUBECONFIG', site.kubeconfig],
    ['AWS_ENDPOINT_URL', `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`],
    ['AWS_ACCESS_KEY_ID', c.accessKeyId],
    ['AWS_SECRET_ACCESS_KEY', c.secretAccessKey],
    ['AWS_REGION', 'us-east-1'],
    ['DRCTL_BUCKET', SERVICES.minio.bucket],
    ['PATH', `${bin.etcdDir(site.name)}:${bin.kubeDir}:$PATH`],
  ];
  return vars.map(([k, v]) => `export ${k}=${k === 'PATH' ? `"${v}"` : q(v)}`).join('\n');
}
