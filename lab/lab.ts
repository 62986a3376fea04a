// The embedded lab: real servers on this machine, each on its own loopback address.
// `up` lays out the nodes (PKI, SSH, static pod manifests), starts Temporal, MinIO, PowerDNS, the
// six nodes and the two sites' app endpoints, creates what the sites need through their API
// servers (kwok nodes, Velero's configuration, the demo app and its first backup), waits until
// everything is healthy and writes the lab's drctl.yaml. `down` stops exactly what `up` recorded.
// `site down|up` simulates losing a site. Nothing here is imported by drctl's workflows or activities.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import {
  CP1_PODS,
  KWOK_NODES,
  layoutControlPlane,
  manifestPath,
  parkedPath,
  staticPod,
  VELERO_NS,
  writeVeleroManifest,
} from './controlplane.ts';
import { layoutPdns, pdnsApi, pdnsCommand, queryA } from './pdns.ts';
import { ca, leaf, serviceAccountKeys } from './pki.ts';
import {
  bin,
  binariesPresent,
  CP_PORTS,
  LAB_DIR,
  type LabNode,
  type LabSite,
  onHost,
  paths,
  REPO,
  SERVICES,
  SITES,
  VERSIONS,
} from './topology.ts';
import { QUARTERLY } from '../config/schema.ts';

export interface Component {
  name: string;
  kind:
    | 'temporal'
    | 'minio'
    | 'node'
    | 'sshd'
    | 'etcd'
    | 'kube-apiserver'
    | 'kube-controller-manager'
    | 'kube-scheduler'
    | 'kwok'
    | 'velero'
    | 'pdns'
    | 'app'
    | 'worker';
  address: string;
  pid?: number;
  healthy: boolean;
  detail: string;
  /** Down on purpose (`drctl lab site down`): reported unhealthy, but `lab up` does not wait for it. */
  downOnPurpose?: boolean;
}

/** A site taken down with `drctl lab site down`: its app endpoint stopped; with --hard, cp1's manifests parked. */
interface SiteDown {
  hard: boolean;
  parked: string[];
  since: string;
}

interface LabState {
  pids: Record<string, number>;
  sitesDown?: Record<string, SiteDown>;
}

const readState = (): LabState =>
  existsSync(paths.state) ? (JSON.parse(readFileSync(paths.state, 'utf8')) as LabState) : { pids: {} };
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
  const out = execFileSync('ssh-keygen', ['-lf', join(node.root, 'etc/ssh/ssh_host_ed25519_key.pub')], {
    encoding: 'utf8',
  });
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

function layoutSite(site: LabSite, clientPub: string) {
  const pki = paths.pki(site.name);
  const etcdCa = ca(join(pki, 'etcd'), `${site.name}-etcd-ca`);
  const kubeCa = ca(join(pki, 'kubernetes'), `${site.name}-kubernetes-ca`);
  for (const node of site.nodes) {
    const r = (p: string) => join(node.root, p);
    for (const d of [
      'etc/kubernetes/pki/etcd',
      'etc/kubernetes/manifests',
      'etc/ssh',
      'var/lib',
      'var/log',
      'usr/local/bin',
      'run',
    ]) {
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
        dns: [
          'kubernetes',
          'kubernetes.default',
          'kubernetes.default.svc',
          'kubernetes.default.svc.cluster.local',
          node.name,
        ],
        usage: ['server'],
      });
      leaf(etcdCa, join(k, 'apiserver-etcd-client'), { cn: 'kube-apiserver-etcd-client', usage: ['client'] });
      serviceAccountKeys(k);
      linkTool(join(bin.kubeDir, 'kube-apiserver'), join(binDir, 'kube-apiserver'));
      if (fresh) writeFileSync(join(manifests, 'kube-apiserver.yaml'), stringify(apiserverManifest(site, node)));
      layoutControlPlane(site, node, kubeCa);
    }
    writeFileSync(r('var/lib/.lab-initialised'), new Date().toISOString());
  }
  // Admin kubeconfig with a client certificate (system:masters), like kubeadm's admin.conf.
  mkdirSync(join(LAB_DIR, 'kube'), { recursive: true });
  const admin = join(pki, 'kubernetes', 'admin');
  leaf(kubeCa, admin, { cn: 'kubernetes-admin', org: 'system:masters', usage: ['client'] });
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const ctx = `admin@${site.name}`;
  writeFileSync(
    site.kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: site.name, cluster: { server: site.apiserver, 'certificate-authority-data': b64(kubeCa.crt) } },
      ],
      users: [
        {
          name: `admin-${site.name}`,
          user: { 'client-certificate-data': b64(`${admin}.crt`), 'client-key-data': b64(`${admin}.key`) },
        },
      ],
      contexts: [{ name: ctx, context: { cluster: site.name, user: `admin-${site.name}` } }],
      'current-context': ctx,
    }),
    { mode: 0o600 },
  );
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
  writeFileSync(
    join(dir, 'sshd_config'),
    [
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
    ].join('\n'),
  );
}

function layout() {
  for (const d of [
    LAB_DIR,
    paths.logs,
    join(LAB_DIR, 'ssh'),
    paths.minioData,
    join(LAB_DIR, 'temporal'),
    paths.pdnsDir,
  ])
    mkdirSync(d, { recursive: true });
  // Mount points for the nodes' private disks, and sshd's privilege-separation dir.
  for (const d of ['/etc/kubernetes', '/run/sshd']) mkdirSync(d, { recursive: true });
  if (!existsSync(paths.sshKey))
    sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'drctl-lab-operator', '-f', paths.sshKey]);
  const clientPub = readFileSync(`${paths.sshKey}.pub`, 'utf8');
  if (!existsSync(paths.minioCreds)) {
    writeFileSync(
      paths.minioCreds,
      stringify({ accessKeyId: 'drctl-lab', secretAccessKey: randomBytes(18).toString('base64url') }),
      { mode: 0o600 },
    );
  }
  for (const site of SITES) layoutSite(site, clientPub);
  layoutPdns();
}

// ---------------------------------------------------------------------------------------------
// Processes

function launch(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): number {
  const out = openSync(join(paths.logs, `${name.replace(/\//g, '-')}.log`), 'a');
  const child = spawn(cmd, args, {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, ...env },
    cwd: REPO,
  });
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

/**
 * Lab addresses that something other than this lab already listens on (a lab from another
 * checkout, a process left behind): a server started there fails, and the leftover may even look
 * healthy to the checks. Only addresses whose recorded lab process is not running are probed.
 */
async function foreignListeners(state: LabState): Promise<string[]> {
  const probes: { what: string; host: string; port: number }[] = [];
  const t = SERVICES.temporal;
  if (!alive(state.pids.temporal))
    probes.push({ what: 'temporal', host: t.ip, port: t.port }, { what: 'temporal ui', host: t.ip, port: t.uiPort });
  if (!alive(state.pids.minio)) probes.push({ what: 'minio', host: SERVICES.minio.ip, port: SERVICES.minio.port });
  if (!alive(state.pids.pdns)) probes.push({ what: 'pdns api', host: SERVICES.pdns.ip, port: SERVICES.pdns.apiPort });
  for (const site of SITES) {
    if (!state.sitesDown?.[site.name] && !alive(state.pids[appKey(site)]))
      probes.push({ what: appKey(site), host: site.appAddress, port: site.appPort });
    for (const node of site.nodes) {
      if (!alive(state.pids[node.id]))
        probes.push(
          { what: `${node.id} sshd`, host: node.ip, port: 22 },
          { what: `${node.id} etcd`, host: node.ip, port: 2379 },
        );
    }
  }
  const open = await Promise.all(probes.map((p) => tcpOpen(p.host, p.port, 300)));
  return probes.filter((_, i) => open[i]).map((p) => `${p.host}:${p.port} (${p.what})`);
}

function startAll(state: LabState) {
  const t = SERVICES.temporal;
  if (!alive(state.pids.temporal)) {
    state.pids.temporal = launch('temporal', bin.temporal, [
      'server',
      'start-dev',
      '--ip',
      t.ip,
      '--port',
      String(t.port),
      '--ui-ip',
      t.ip,
      '--ui-port',
      String(t.uiPort),
      '--db-filename',
      paths.temporalDb,
      '--log-level',
      'warn',
      '--namespace',
      'default',
    ]);
  }
  const m = SERVICES.minio;
  if (!alive(state.pids.minio)) {
    const c = minioCreds();
    state.pids.minio = launch(
      'minio',
      bin.minio,
      [
        'server',
        paths.minioData,
        '--address',
        `${m.ip}:${m.port}`,
        '--console-address',
        `${m.ip}:${m.consolePort}`,
        '--quiet',
      ],
      {
        MINIO_ROOT_USER: c.accessKeyId,
        MINIO_ROOT_PASSWORD: c.secretAccessKey,
        MINIO_BROWSER: 'on',
      },
    );
  }
  if (!alive(state.pids.pdns)) {
    const [cmd, args] = pdnsCommand();
    state.pids.pdns = launch('pdns', cmd, args);
  }
  for (const site of SITES) {
    if (!state.sitesDown?.[site.name]) startApp(state, site);
    for (const node of site.nodes) {
      if (alive(state.pids[node.id])) continue;
      // The node's own mount + PID namespace; bash as PID 1 reaps orphans and forwards SIGTERM.
      state.pids[node.id] = launch(
        node.id,
        'unshare',
        [
          '--mount',
          '--pid',
          '--fork',
          '--mount-proc',
          '--propagation',
          'private',
          '--kill-child=SIGTERM',
          '--',
          'bash',
          '-c',
          'node --import tsx "$0" --root "$1" & c=$!; trap "kill -TERM $c" TERM INT; wait $c; wait $c',
          join(REPO, 'lab/supervisor.ts'),
          node.root,
        ],
        { PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/bin:/bin'}` },
      );
    }
  }
  writeState(state);
}

const appKey = (site: LabSite) => `${site.name}/app`;

/** The site's app endpoint (lab/app-endpoint.ts) on its app address; started like MinIO is. */
function startApp(state: LabState, site: LabSite): boolean {
  if (alive(state.pids[appKey(site)])) return false;
  state.pids[appKey(site)] = launch(appKey(site), process.execPath, [
    '--import',
    'tsx',
    join(REPO, 'lab/app-endpoint.ts'),
    '--site',
    site.name,
    '--address',
    site.appAddress,
    '--port',
    String(site.appPort),
    '--kubeconfig',
    site.kubeconfig,
  ]);
  return true;
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

function httpsGet(
  url: string,
  tls: { ca: string; cert: string; key: string },
): Promise<{ status: number; body: string }> {
  let creds: { ca: Buffer; cert: Buffer; key: Buffer };
  try {
    // A lab that was never brought up (fresh clone) has no PKI yet: that is "down", not a crash.
    creds = { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  } catch (err) {
    return Promise.resolve({
      status: 0,
      body: `no client certificate (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    });
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

/**
 * PIDs inside a node are namespace-local; map them to this host's view for `lab status`. One scan
 * of /proc per status call: "pidns inode:namespace pid" -> host pid, for every process in a child
 * PID namespace. Read /proc directly: processes come and go while we look (a vanished entry is skipped).
 */
function nsPidTable(): Map<string, number> {
  const table = new Map<string, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = readFileSync(`/proc/${d}/status`, 'utf8').match(/^NSpid:\s+(\d+)\s+(\d+)$/m);
      if (m) table.set(`${readlinkSync(`/proc/${d}/ns/pid`)}:${m[2]}`, Number(m[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  return table;
}

function hostPid(
  table: () => Map<string, number>,
  nodeInitPid: number | undefined,
  nsPid: number | undefined,
): number | undefined {
  if (!nodeInitPid || !nsPid) return undefined;
  try {
    const pidNs = readlinkSync(`/proc/${childOf(nodeInitPid) ?? nodeInitPid}/ns/pid`);
    return table().get(`${pidNs}:${nsPid}`);
  } catch {
    return undefined; // the node itself is gone
  }
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
      const r = await conn.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: LAB_TASK_QUEUE },
        taskQueueType: 1,
      });
      pollers = r.pollers?.length ?? 0;
      detail = `${pollers} workflow poller(s) on '${LAB_TASK_QUEUE}'`;
    } finally {
      await conn.close();
    }
  } catch (err) {
    detail = (err as Error).message;
  }
  return {
    name: 'worker',
    kind: 'worker',
    address: `task queue ${LAB_TASK_QUEUE}`,
    pid,
    healthy: alive(pid) && pollers > 0,
    detail,
  };
}

/** HTTPS GET without a client certificate, not verifying the server (self-signed serving certificates). */
function httpsProbe(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, body: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end();
  });
}

async function httpGet(url: string, timeoutMs = 3000): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: (await res.text()).trim() };
  } catch (err) {
    const e = err as Error & { cause?: NodeJS.ErrnoException };
    return { status: 0, body: e.cause?.code ?? e.message };
  }
}

/** A GET on the site's API server with the admin client certificate. */
function adminGet(site: LabSite, path: string): Promise<{ status: number; body: string }> {
  const pki = join(paths.pki(site.name), 'kubernetes');
  return httpsGet(`${site.apiserver}${path}`, {
    ca: join(pki, 'ca.crt'),
    cert: join(pki, 'admin.crt'),
    key: join(pki, 'admin.key'),
  });
}

function json<T>(body: string): T | undefined {
  try {
    return JSON.parse(body) as T;
  } catch {
    return undefined;
  }
}

async function kwokNodesReady(site: LabSite): Promise<{ ready: number; detail: string }> {
  const r = await adminGet(site, '/api/v1/nodes?labelSelector=type%3Dkwok');
  const list =
    r.status === 200
      ? json<{ items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }>(
          r.body,
        )
      : undefined;
  if (!list) return { ready: 0, detail: `nodes: ${r.status || r.body}` };
  const ready = list.items.filter(
    (n) =>
      KWOK_NODES.includes(n.metadata.name) &&
      n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  ).length;
  return { ready, detail: `${ready}/${KWOK_NODES.length} kwok nodes Ready` };
}

async function storageLocation(site: LabSite): Promise<{ phase?: string; detail: string }> {
  const r = await adminGet(site, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backupstoragelocations/default`);
  const bsl =
    r.status === 200
      ? json<{ spec?: { accessMode?: string }; status?: { phase?: string; message?: string } }>(r.body)
      : undefined;
  if (!bsl) return { detail: `storage location default: ${r.status === 404 ? 'not created yet' : r.status || r.body}` };
  const phase = bsl.status?.phase ?? 'not validated yet';
  return {
    phase,
    detail: `storage location default ${phase} (${bsl.spec?.accessMode ?? 'ReadWrite'})${bsl.status?.message ? `: ${bsl.status.message}` : ''}`,
  };
}

export async function status(): Promise<Component[]> {
  const state = readState();
  let table: Map<string, number> | undefined;
  const pids = () => (table ??= nsPidTable());
  const t = SERVICES.temporal;
  const m = SERVICES.minio;
  const d = SERVICES.pdns;
  const checks: Promise<Component>[] = [
    (async () => {
      const grpc = await tcpOpen(t.ip, t.port);
      const ui = await fetch(`http://${t.ip}:${t.uiPort}/`).then(
        (r) => r.ok,
        () => false,
      );
      return {
        name: 'temporal',
        kind: 'temporal',
        address: `${t.ip}:${t.port} (UI http://${t.ip}:${t.uiPort})`,
        pid: state.pids.temporal,
        healthy: alive(state.pids.temporal) && grpc && ui,
        detail: `grpc ${grpc ? 'up' : 'down'}, ui ${ui ? 'up' : 'down'}`,
      };
    })(),
    (async () => {
      const ok = await fetch(`http://${m.ip}:${m.port}/minio/health/live`).then(
        (r) => r.ok,
        () => false,
      );
      return {
        name: 'minio',
        kind: 'minio',
        address: `${m.ip}:${m.port}`,
        pid: state.pids.minio,
        healthy: alive(state.pids.minio) && ok,
        detail: ok ? 'live' : 'not answering',
      };
    })(),
    (async () => {
      // A real DNS query, as a resolver would ask.
      const name = d.records[0]!;
      const r = await queryA(name);
      const ok = 'addresses' in r && r.addresses.length > 0;
      return {
        name: 'pdns',
        kind: 'pdns',
        address: `${d.ip}:${d.port} (API ${pdnsApi})`,
        pid: state.pids.pdns,
        healthy: alive(state.pids.pdns) && ok,
        detail: 'addresses' in r ? `${name} A ${r.addresses.join(',')} TTL ${r.ttl}` : `${name}: ${r.error}`,
      };
    })(),
  ];
  if (state.pids.worker) checks.push(workerStatus(state.pids.worker));
  for (const site of SITES) {
    const down = state.sitesDown?.[site.name];
    const onPurpose = (c: Component, parked: boolean): Component =>
      parked
        ? {
            ...c,
            healthy: false,
            downOnPurpose: true,
            detail: `down on purpose (drctl lab site down${down?.hard ? ' --hard' : ''}); ${c.detail}`,
          }
        : c;
    checks.push(
      (async () => {
        // The primary site's app must serve (200); the DR site's answers 503 until the app is restored there.
        const pid = state.pids[appKey(site)];
        const r = await httpGet(`http://${site.appAddress}:${site.appPort}/healthz`);
        const answering = r.status === 200 || r.status === 503;
        const healthy = alive(pid) && (site.role === 'primary' ? r.status === 200 : answering);
        return onPurpose(
          {
            name: appKey(site),
            kind: 'app',
            address: `http://${site.appAddress}:${site.appPort}`,
            pid: alive(pid) ? pid : undefined,
            healthy,
            detail: r.status ? `HTTP ${r.status} ${r.body}` : r.body,
          },
          !!down,
        );
      })(),
    );
    for (const node of site.nodes) {
      const initPid = state.pids[node.id];
      let sup: SupervisorState | undefined;
      try {
        sup = JSON.parse(readFileSync(join(node.root, 'run/supervisor.json'), 'utf8')) as SupervisorState;
      } catch {
        sup = undefined;
      }
      const podPid = (pod: string) => hostPid(pids, initPid, sup?.pods[pod]?.pid);
      const parked = (pod: string) => !!down?.parked.includes(`${pod}.yaml`);
      checks.push(
        (async () => ({
          name: node.id,
          kind: 'node',
          address: node.ip,
          pid: initPid,
          healthy: alive(initPid),
          detail: alive(initPid) ? 'namespace up' : 'down',
        }))(),
      );
      checks.push(
        (async () => {
          const banner = await sshBanner(node.ip);
          return {
            name: `${node.id}/sshd`,
            kind: 'sshd',
            address: `${node.ip}:22`,
            pid: hostPid(pids, initPid, sup?.sshd),
            healthy: !!banner?.startsWith('SSH-2.0'),
            detail: banner ?? 'no banner',
          };
        })(),
      );
      checks.push(
        (async () => {
          const tls = {
            ca: onHost(node, '/etc/kubernetes/pki/etcd/ca.crt'),
            cert: onHost(node, '/etc/kubernetes/pki/etcd/healthcheck-client.crt'),
            key: onHost(node, '/etc/kubernetes/pki/etcd/healthcheck-client.key'),
          };
          const r = await httpsGet(`https://${node.ip}:2379/health`, tls);
          const healthy = r.status === 200 && /"health":\s*"true"/.test(r.body);
          return {
            name: `${node.id}/etcd`,
            kind: 'etcd',
            address: `https://${node.ip}:2379`,
            pid: podPid('etcd'),
            healthy,
            detail: `${site.etcdVersion} ${r.status ? `${r.status} ${r.body}` : r.body}`,
          };
        })(),
      );
      if (!node.runsApiserver) continue;
      checks.push(
        (async () => {
          const r = await adminGet(site, '/readyz');
          return onPurpose(
            {
              name: `${site.name}/kube-apiserver`,
              kind: 'kube-apiserver',
              address: site.apiserver,
              pid: podPid('kube-apiserver'),
              healthy: r.status === 200,
              detail: `readyz ${r.status || r.body}`,
            },
            parked('kube-apiserver'),
          );
        })(),
      );
      for (const [pod, kind, port] of [
        ['kube-controller-manager', 'kube-controller-manager', CP_PORTS.controllerManager],
        ['kube-scheduler', 'kube-scheduler', CP_PORTS.scheduler],
      ] as const) {
        checks.push(
          (async () => {
            const r = await httpsProbe(`https://${node.ip}:${port}/healthz`);
            const pid = podPid(pod);
            return onPurpose(
              {
                name: `${site.name}/${pod}`,
                kind,
                address: `https://${node.ip}:${port}`,
                pid,
                healthy: !!pid && r.status === 200,
                detail: `healthz ${r.status ? `${r.status} ${r.body.slice(0, 80)}` : r.body}`,
              },
              parked(pod),
            );
          })(),
        );
      }
      checks.push(
        (async () => {
          // kwok fakes the nodes' kubelets: healthy when it runs and its nodes are Ready.
          const pid = podPid('kwok');
          const r = await kwokNodesReady(site);
          return onPurpose(
            {
              name: `${site.name}/kwok`,
              kind: 'kwok',
              address: `http://${node.ip}:${CP_PORTS.kwok}`,
              pid,
              healthy: !!pid && r.ready === KWOK_NODES.length,
              detail: r.detail,
            },
            parked('kwok'),
          );
        })(),
      );
      checks.push(
        (async () => {
          // Velero is healthy when it has validated its storage location (the shared bucket) as Available.
          const pid = podPid('velero');
          const r = await storageLocation(site);
          return onPurpose(
            {
              name: `${site.name}/velero`,
              kind: 'velero',
              address: `http://${node.ip}:${CP_PORTS.veleroMetrics}`,
              pid,
              healthy: !!pid && r.phase === 'Available',
              detail: r.detail,
            },
            parked('velero'),
          );
        })(),
      );
    }
  }
  return Promise.all(checks);
}

// ---------------------------------------------------------------------------------------------
// Config for drctl

export function labConfig(): object {
  return {
    temporal: {
      address: `${SERVICES.temporal.ip}:${SERVICES.temporal.port}`,
      namespace: 'default',
      taskQueue: LAB_TASK_QUEUE,
      webUi: `http://${SERVICES.temporal.ip}:${SERVICES.temporal.uiPort}`,
    },
    sites: SITES.map((site) => ({
      name: site.name,
      role: site.role,
      appEndpoint: `http://${site.appAddress}:${site.appPort}/healthz`,
      appAddress: site.appAddress,
      velero: { namespace: VELERO_NS, storageLocation: 'default' },
      cluster: {
        name: site.name,
        kubeconfig: site.kubeconfig,
        nodes: site.nodes.map((node) => ({
          name: node.name,
          ssh: {
            host: node.ip,
            port: 22,
            user: 'root',
            privateKeyPath: paths.sshKey,
            hostKeyFingerprint: hostKeyFingerprint(node),
          },
          etcd: {
            memberName: node.name,
            clientUrl: `https://${node.ip}:2379`,
            peerUrl: `https://${node.ip}:2380`,
            dataDir: '/var/lib/etcd',
          },
          // The lab runs the Velero server as a static pod next to the controllers (lab/controlplane.ts).
          controlPlane: {
            profile: 'kubeadm',
            restartAfterRestore: ['kube-controller-manager', 'kube-scheduler', 'velero'],
          },
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
    dns: {
      powerdns: { api: pdnsApi, apiKey: { file: paths.pdnsApiKey }, serverId: 'localhost' },
      nameserver: `${SERVICES.pdns.ip}:${SERVICES.pdns.port}`,
      zone: SERVICES.pdns.zone,
      records: [{ name: SERVICES.pdns.records[0], ttl: SERVICES.pdns.ttl }],
    },
    failover: {
      namespaces: ['demo-app'],
      tier: 'e-commerce',
      rpoPolicy: 'refuse',
      restoreTimeout: '5m',
      healthWatch: { interval: '10s', failuresToDown: 3, successesToUp: 5, autoFailover: true, autoApprove: false },
    },
    drills: [
      {
        name: 'quarterly',
        from: 'site-a',
        to: 'site-b',
        workloads: [{ tier: 'e-commerce', namespaces: ['demo-app'] }],
        record: { name: SERVICES.pdns.records[1], ttl: SERVICES.pdns.ttl },
        etcdRestore: false,
        schedule: QUARTERLY,
        verifyTimeout: '3m',
      },
    ],
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
  for (const [site, d] of Object.entries(state.sitesDown ?? {})) {
    log(
      `${site} is down on purpose since ${d.since} (lab site down${d.hard ? ' --hard' : ''}); \`drctl lab site up ${site}\` brings it back`,
    );
  }
  const foreign = await foreignListeners(state);
  if (foreign.length) {
    throw new Error(
      `lab addresses already in use, not by this lab (${LAB_DIR}): ${foreign.join(', ')}\n` +
        `a lab from another checkout? stop it there (drctl lab down), or find the process: ss -ltnp 'sport = :PORT'`,
    );
  }
  startAll(state);
  log('waiting for every component to be healthy ...');
  const deadline = Date.now() + (opts.timeoutMs ?? 240_000);
  const reachable = SITES.filter((s) => !state.sitesDown?.[s.name]?.hard);
  // The servers first; then what lives in them (buckets, the DNS zone, each site's objects); then
  // everything that depends on those (Velero validates its bucket, the app needs its pods Ready).
  const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  await waitHealthy(deadline, t0, (c) =>
    ['temporal', 'minio', 'node', 'sshd', 'etcd', 'kube-apiserver'].includes(c.kind),
  );
  log(`servers up (${since()}); creating buckets, the DNS zone and the sites' objects ...`);
  const { ensureDemoBackups, ensureSiteObjects, backups, INITIAL_BACKUP } = await import('./objects.ts');
  const { ensureZone } = await import('./pdns.ts');
  await Promise.all([
    ensureBucket(SERVICES.minio.bucket),
    ensureBucket(SERVICES.minio.veleroBucket),
    ...reachable.map(async (site) => {
      await ensureSiteObjects(site, minioCreds());
      writeVeleroManifest(site);
    }),
  ]);
  // PowerDNS's API answers a moment after it starts listening.
  for (;;) {
    try {
      await ensureZone();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(300);
    }
  }
  await waitHealthy(deadline, t0, (c) => c.kind !== 'worker');
  log(`controllers, kwok, Velero, DNS and app endpoints healthy (${since()})`);
  const primary = SITES.find((s) => s.role === 'primary')!;
  if (reachable.includes(primary)) {
    const b = await ensureDemoBackups(primary, Math.max(10_000, deadline - Date.now()), log);
    // The newest backup (just taken here, or by the Schedule catching up on a lab that was stopped):
    // wait until the other sites' Velero servers have synced it from the bucket, so a failover or
    // drill right after `lab up` finds it. Velero 1.18 enqueues its backup sync once a minute
    // whatever --backup-sync-period says (backupSyncReconcilePeriod is a constant), and its first
    // sync at start-up ran before its location was validated (skipped). A restarted server syncs at
    // once (its location is Available by then): restart it rather than wait up to a minute.
    await Promise.all(
      reachable
        .filter((s) => s !== primary)
        .map(async (site) => {
          const t = Date.now();
          let restarted = false;
          for (;;) {
            const synced = (await backups(site)).some(
              (x) => x.metadata.name === b.backup && x.status?.phase === 'Completed',
            );
            if (synced) break;
            if (!restarted && Date.now() - t > 6000) {
              const pid = (await status()).find((c) => c.name === `${site.name}/velero`)?.pid;
              if (pid) process.kill(pid, 'SIGTERM');
              restarted = true;
            }
            if (Date.now() > deadline)
              throw new Error(
                `${site.name}: Velero has not synced backup ${b.backup} (${INITIAL_BACKUP}) from the bucket`,
              );
            await sleep(500);
          }
          log(`${site.name} sees backup ${b.backup} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
        }),
    );
  }
  writeFileSync(paths.config, `# Written by \`drctl lab up\`; regenerated on every up.\n${stringify(labConfig())}`);
  chmodSync(paths.config, 0o600);
  // Always a fresh worker, so it runs the code and config as they are now.
  await stopPid(state.pids.worker);
  state.pids.worker = launch('worker', process.execPath, [
    join(REPO, 'bin/drctl.js'),
    '--config',
    paths.config,
    'worker',
  ]);
  writeState(state);
  const comps = await waitHealthy(deadline, t0);
  return {
    config: paths.config,
    webUi: `http://${SERVICES.temporal.ip}:${SERVICES.temporal.uiPort}`,
    seconds: (Date.now() - t0) / 1000,
    components: comps,
  };
}

/** Waits until every selected component is healthy (components down on purpose are not waited for). */
async function waitHealthy(
  deadline: number,
  t0: number,
  which: (c: Component) => boolean = () => true,
): Promise<Component[]> {
  for (;;) {
    const comps = (await status()).filter((c) => which(c) && !c.downOnPurpose);
    if (comps.every((c) => c.healthy)) return comps;
    if (Date.now() > deadline) {
      const bad = comps.filter((c) => !c.healthy).map((c) => `${c.name}: ${c.detail}`);
      throw new Error(
        `lab not healthy after ${Math.round((Date.now() - t0) / 1000)} s:\n  ${bad.join('\n  ')}\n(logs in ${paths.logs} and ${LAB_DIR}/nodes/*/var/log)`,
      );
    }
    await sleep(1000);
  }
}

async function ensureBucket(bucket: string) {
  const { ObjectStore } = await import('../gateways/s3.ts');
  const store = new ObjectStore({
    endpoint: `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`,
    bucket,
    region: 'us-east-1',
    forcePathStyle: true,
    prefix: 'drctl/',
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

const isNodeId = (name: string) => SITES.some((s) => s.nodes.some((n) => n.id === name));

export async function down(opts: { purge?: boolean } = {}): Promise<string[]> {
  const state = readState();
  const stopped: string[] = [];
  // A site taken down on purpose comes back whole on the next `lab up`: its parked manifests go back now.
  for (const name of Object.keys(state.sitesDown ?? {})) unpark(siteNamed(name), state.sitesDown![name]!.parked);
  // The worker first: it should not see its servers vanish under it.
  if (await stopPid(state.pids.worker)) stopped.push(`worker (pid ${state.pids.worker})`);
  await Promise.all(
    Object.entries(state.pids)
      .filter(([name]) => name !== 'worker')
      .map(async ([name, pid]) => {
        if (await stopPid(pid, isNodeId(name))) stopped.push(`${name} (pid ${pid})`);
      }),
  );
  writeState({ pids: {} });
  if (opts.purge) rmSync(LAB_DIR, { recursive: true, force: true });
  return stopped.sort();
}

// ---------------------------------------------------------------------------------------------
// Losing a site, on purpose

function siteNamed(name: string): LabSite {
  const site = SITES.find((s) => s.name === name);
  if (!site) throw new Error(`unknown site '${name}' (lab sites: ${SITES.map((s) => s.name).join(', ')})`);
  return site;
}

const cp1Of = (site: LabSite) => site.nodes.find((n) => n.runsApiserver)!;

/** Moves parked manifests (file names) back into cp1's manifest dir; the supervisor starts them. */
function unpark(site: LabSite, files: string[]): string[] {
  const cp1 = cp1Of(site);
  const back: string[] = [];
  for (const f of files) {
    const name = f.replace(/\.yaml$/, '');
    if (!existsSync(parkedPath(cp1, name))) continue;
    renameSync(parkedPath(cp1, name), manifestPath(cp1, name));
    back.push(name);
  }
  return back;
}

export interface SiteChange {
  site: string;
  action: 'down' | 'up';
  hard: boolean;
  /** What this call changed (empty when the site was already in that state). */
  changed: string[];
  appEndpoint: string;
  apiserver: string;
}

/**
 * Simulates losing a site: its app endpoint stops (clients of the app get connection refused).
 * `hard` also parks every static pod on cp1 but etcd (API server, controllers, kwok, Velero), as
 * a burned site would lose them. Idempotent; `siteUp` reverses exactly what was done.
 */
export async function siteDown(siteName: string, opts: { hard?: boolean } = {}): Promise<SiteChange> {
  const site = siteNamed(siteName);
  const state = readState();
  state.sitesDown ??= {};
  const rec: SiteDown = state.sitesDown[site.name] ?? { hard: false, parked: [], since: new Date().toISOString() };
  const changed: string[] = [];
  const pid = state.pids[appKey(site)];
  if (await stopPid(pid)) changed.push(`app endpoint stopped (pid ${pid})`);
  delete state.pids[appKey(site)];
  if (opts.hard && !rec.hard) {
    const cp1 = cp1Of(site);
    for (const pod of [...CP1_PODS].reverse()) {
      if (!existsSync(manifestPath(cp1, pod))) continue;
      mkdirSync(dirname(parkedPath(cp1, pod)), { recursive: true });
      renameSync(manifestPath(cp1, pod), parkedPath(cp1, pod));
      rec.parked.push(`${pod}.yaml`);
      changed.push(`${pod} parked`);
    }
    rec.hard = true;
  }
  state.sitesDown[site.name] = rec;
  writeState(state);
  if (rec.hard) {
    const ip = cp1Of(site).ip;
    for (let i = 0; i < 200 && (await tcpOpen(ip, CP_PORTS.apiserver, 300)); i++) await sleep(100);
  }
  return {
    site: site.name,
    action: 'down',
    hard: rec.hard,
    changed,
    appEndpoint: 'stopped',
    apiserver: rec.hard ? 'stopped' : 'running',
  };
}

export async function siteUp(siteName: string, opts: { timeoutMs?: number } = {}): Promise<SiteChange> {
  const site = siteNamed(siteName);
  const state = readState();
  const rec = state.sitesDown?.[site.name];
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  const changed: string[] = [];
  if (rec?.parked.length) {
    // The API server first, then its clients: they would only crash-loop against a closed port meanwhile.
    changed.push(
      ...unpark(
        site,
        rec.parked.filter((f) => f === 'kube-apiserver.yaml'),
      ).map((p) => `${p} started`),
    );
    while ((await adminGet(site, '/readyz')).status !== 200 && Date.now() < deadline) await sleep(300);
    changed.push(
      ...unpark(
        site,
        rec.parked.filter((f) => f !== 'kube-apiserver.yaml'),
      ).map((p) => `${p} started`),
    );
  }
  if (startApp(state, site)) changed.push(`app endpoint started (pid ${state.pids[appKey(site)]})`);
  if (state.sitesDown) delete state.sitesDown[site.name];
  writeState(state);
  // Back when its API server is ready and its app endpoint answers (200, or 503 while the app is not there).
  for (;;) {
    const [api, app] = await Promise.all([
      adminGet(site, '/readyz'),
      httpGet(`http://${site.appAddress}:${site.appPort}/healthz`),
    ]);
    if (api.status === 200 && (app.status === 200 || app.status === 503)) break;
    if (Date.now() > deadline)
      throw new Error(
        `${site.name} not back after ${opts.timeoutMs ?? 90_000} ms: API readyz ${api.status || api.body}, app ${app.status || app.body}`,
      );
    await sleep(300);
  }
  return { site: site.name, action: 'up', hard: !!rec?.hard, changed, appEndpoint: 'running', apiserver: 'running' };
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
      out.push({
        pid: Number(d),
        comm: readFileSync(`/proc/${d}/comm`, 'utf8').trim(),
        cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' '),
      });
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
  const killed = nodeProcesses(nodeIdOf(nodeId))
    .filter((p) => p.comm === 'sshd')
    .map((p) => p.pid);
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
    ['PDNS_API', pdnsApi],
    ['PATH', `${bin.etcdDir(site.name)}:${bin.kubeDir}:${dirname(bin.velero)}:$PATH`],
  ];
  return vars.map(([k, v]) => `export ${k}=${k === 'PATH' ? `"${v}"` : q(v)}`).join('\n');
}
