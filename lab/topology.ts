// Where every lab host lives. The control-plane nodes are hosts of their own: each in its own
// network namespace (lab/network.ts) on the lab bridge, site A's at 172.30.10.x, site B's at
// 172.30.20.x, because kubeadm refuses a loopback advertise address (it swaps it for a global
// address on lo: SetAPIEndpointDynamicDefaults in cmd/kubeadm/app/util/config/initconfiguration.go)
// and a real node has its own 127.0.0.1 (kubeadm binds etcd, the controller-manager and the
// scheduler there). Site B's bastion is a host of its own too (172.30.20.250). The off-site object
// store answers on the bridge (172.30.30.2: Velero on the nodes reaches it). The rest shares this
// machine's network namespace with one loopback address each: the sites' app endpoints at
// 127.0.10.100 and 127.0.20.100, DNS at 127.0.40.x. Temporal stays on 127.0.0.1: the dev server's
// internal services always dial each other there, whatever --ip says (measured: StartWorkflowExecution
// fails with "dial tcp 127.0.0.1:<port>: connection refused" when bound to another loopback address).
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const VERSIONS = JSON.parse(readFileSync(join(REPO, 'lab/versions.json'), 'utf8')) as {
  etcd: Record<string, string>;
  kubernetes: string;
  kwok: string;
  minio: string;
  pdns: string;
  temporalBin: string;
  velero: string;
  veleroPluginForAws: string;
  criTools: string;
  pause: string;
  prometheus: string;
  nerdctl: string;
  buildkit: string;
  temporalUi: string;
  mc: string;
  debian: string;
  toxiproxy: string;
};

export const CACHE = process.env.DRCTL_CACHE_DIR ?? join(homedir(), '.cache/drctl');
export const LAB_DIR = resolve(process.env.DRCTL_LAB_DIR ?? join(REPO, '.lab'));

export const bin = {
  temporal: join(CACHE, 'bin', `temporal-${VERSIONS.temporalBin}`, 'temporal'),
  minio: join(CACHE, 'bin', `minio-${VERSIONS.minio}`, 'minio'),
  /** etcd, etcdctl, etcdutl of one version (packed into that version's etcd image). */
  etcdVersionDir: (version: string) => join(CACHE, 'bin', `etcd-${version}`),
  /** The site's etcd version's binaries (the lab's own etcdctl: `lab env`, tests and benchmarks). */
  etcdDir: (site: string) => bin.etcdVersionDir(VERSIONS.etcd[site]!),
  /** kubelet and kubeadm: what a kubeadm host has on its PATH. */
  nodeDir: join(CACHE, 'bin', `kubernetes-node-${VERSIONS.kubernetes}+stamped`),
  crictl: join(CACHE, 'bin', `cri-tools-${VERSIONS.criTools}`, 'crictl'),
  pause: join(CACHE, 'bin', `pause-${VERSIONS.pause}`, 'pause'),
  /** kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (version-stamped; see install.sh). */
  kubeDir: join(CACHE, 'bin', `kubernetes-${VERSIONS.kubernetes}+stamped`),
  kwokDir: join(CACHE, 'bin', `kwok-${VERSIONS.kwok}`),
  /** kwokctl's default stages (node initialise + heartbeat with lease, pod ready/complete/delete). */
  kwokStages: join(CACHE, 'bin', `kwok-${VERSIONS.kwok}`, 'stages.yaml'),
  velero: join(CACHE, 'bin', `velero-${VERSIONS.velero}+nomgrmetrics`, 'velero'),
  /** Prometheus' promtool: tests drctl's alert rules (alerts/) and checks what the workers export. */
  promtool: join(CACHE, 'bin', `prometheus-${VERSIONS.prometheus}`, 'promtool'),
  /** Velero's --plugin-dir: every executable file in it is a plugin. */
  veleroPluginDir: join(CACHE, 'bin', `velero-plugin-for-aws-${VERSIONS.veleroPluginForAws}`),
  /** The compose host's tools (lab/compose.ts): nerdctl, and BuildKit's buildkitd + buildctl. */
  nerdctlDir: join(CACHE, 'bin', `nerdctl-${VERSIONS.nerdctl}`),
  buildkitDir: join(CACHE, 'bin', `buildkit-${VERSIONS.buildkit}`),
  /** Temporal's Web UI server and its module's config/docker.yaml. */
  uiServerDir: join(CACHE, 'bin', `temporal-ui-server-${VERSIONS.temporalUi}`),
  mc: join(CACHE, 'bin', `mc-${VERSIONS.mc}`, 'mc'),
  /** A debootstrapped Debian (minbase): the base of the Dockerfile's node image. */
  debianRootfs: join(CACHE, 'rootfs', `debian-${VERSIONS.debian}-minbase`),
  /** Where scripts/node-env.sh unpacks the official Node.js releases (node-<version>/). */
  nodeDistRoot: join(CACHE, 'bin'),
  /** Toxiproxy's server: the inter-site links' latency and partitions (lab/link.ts). */
  toxiproxy: join(CACHE, 'bin', `toxiproxy-${VERSIONS.toxiproxy}`, 'toxiproxy-server'),
  pdns: '/usr/sbin/pdns_server',
  pdnsSchema: '/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql',
};

export function binariesPresent(): string[] {
  const dirs = [
    dirname(bin.temporal),
    dirname(bin.minio),
    bin.etcdDir('site-a'),
    bin.etcdDir('site-b'),
    bin.kubeDir,
    bin.nodeDir,
    dirname(bin.crictl),
    dirname(bin.pause),
    bin.kwokDir,
    dirname(bin.velero),
    bin.veleroPluginDir,
  ];
  return [
    ...dirs.filter((d) => !existsSync(join(d, '.complete'))),
    ...[bin.kwokStages, bin.pdns, bin.pdnsSchema].filter((f) => !existsSync(f)),
  ];
}

export interface LabNode {
  /** The cluster the node belongs to (a site's own, or the stretched one). */
  site: string;
  /** The site the node stands in: its cluster's site, or for a stretched cluster's member, its side. */
  location: string;
  name: string;
  /** "site-a/cp1" */
  id: string;
  ip: string;
  /** The node's disk, seen from the lab host; bind-mounted at /etc/kubernetes, /var/lib, /usr/local/bin inside the node. */
  root: string;
  /** kubeadm: every control-plane node runs a kube-apiserver. */
  runsApiserver: boolean;
  /** The node `kubeadm init` ran on; the others joined it (`kubeadm join --control-plane`). */
  first: boolean;
  /** Its network namespace (/run/netns/NAME) and the host end of its veth (at most 15 characters). */
  netns: string;
  veth: string;
  /** kubelet's cgroupRoot: its own in every cgroup v1 controller, so two kubelets never share one. */
  cgroupRoot: string;
  /** /var/lib/etcd is a filesystem of its own (a loop-mounted ext4 image), as a dedicated etcd disk is. */
  etcdDisk: boolean;
  /** How drctl logs in: root (site A), or a sudoer with root login off, through the site's bastion (site B). */
  login: { user: string; sudo: boolean; permitRootLogin: boolean };
  /** The bastion SSH reaches it through (its location's), when that differs from its cluster's. */
  jump?: LabBastion;
}

/** A site's SSH bastion (jump host): its own network namespace and sshd; the site's nodes accept SSH only from it. */
export interface LabBastion {
  id: string;
  ip: string;
  root: string;
  netns: string;
  veth: string;
}

/** A kubeadm cluster of lab nodes: a site's own, or the stretched one across both sites. */
export interface LabCluster {
  name: string;
  etcdVersion: string;
  nodes: LabNode[];
  apiserver: string;
  kubeconfig: string;
  bastion?: LabBastion;
}

export interface LabSite extends LabCluster {
  role: 'primary' | 'dr';
  net: string;
  /** Where the site's app is served (its "ingress"): DNS points the app record here while the site serves. */
  appAddress: string;
  appPort: number;
  /** Pod IPs kwok hands out at this site. */
  podCidr: string;
}

/** A site's cluster (with an app, kwok and Velero), as opposed to the stretched one. */
export const isSite = (c: LabCluster): c is LabSite => 'role' in c;

/** The lab bridge every node namespace hangs off; the host's own address on it is the nodes' way out. */
export const LAB_NET = { bridge: 'drctl-lab', hostIp: '172.30.0.254', prefix: 16 };
/** The login user with sudo on every node, and one without (the refused-preflight case). */
export const LOGIN = { user: 'drctl', noSudoUser: 'drctl-nosudo' };

const SITE_DEFS = [
  { name: 'site-a', role: 'primary' as const, net: '127.0.10', nodeNet: '172.30.10', hardened: false },
  { name: 'site-b', role: 'dr' as const, net: '127.0.20', nodeNet: '172.30.20', hardened: true },
];

export const SITES: LabSite[] = SITE_DEFS.map(({ hardened, nodeNet, ...s }) => {
  const short = s.name.replace(/^site-/, '');
  const nodes = [1, 2, 3].map((i) => ({
    site: s.name,
    location: s.name,
    name: `cp${i}`,
    id: `${s.name}/cp${i}`,
    ip: `${nodeNet}.${i}`,
    root: join(LAB_DIR, 'nodes', `${s.name}-cp${i}`),
    runsApiserver: true,
    first: i === 1,
    netns: `drctl-${s.name}-cp${i}`,
    veth: `dl-${short}-cp${i}`,
    cgroupRoot: `/drctl/${s.name}-cp${i}`,
    etcdDisk: i === 2,
    login: hardened
      ? { user: LOGIN.user, sudo: true, permitRootLogin: false }
      : { user: 'root', sudo: false, permitRootLogin: true },
  }));
  const bastion = hardened
    ? {
        id: `${s.name}/bastion`,
        ip: `${nodeNet}.250`,
        root: join(LAB_DIR, 'nodes', `${s.name}-bastion`),
        netns: `drctl-${s.name}-bastion`,
        veth: `dl-${short}-bast`,
      }
    : undefined;
  return {
    ...s,
    etcdVersion: VERSIONS.etcd[s.name]!,
    nodes,
    bastion,
    apiserver: `https://${nodeNet}.1:6443`,
    kubeconfig: join(LAB_DIR, 'kube', `${s.name}.kubeconfig`),
    appAddress: `${s.net}.100`,
    appPort: 8080,
    podCidr: `10.${s.net.split('.')[2]}.0.0/16`,
  };
});

/**
 * The stretched (active-active) cluster: five etcd members stretched 3 + 2 over the two sites, as
 * the seed's question 4 lays out payments: a1-a3 on site A's node network, b1-b2 on site B's, each
 * a stock kubeadm control-plane node like the sites' (kubeadm init on a1, the others join with
 * --control-plane: five API servers, each kubelet on its own, as kubeadm 1.35 lays them out; an
 * etcd-only member is not a kubeadm layout: its join points the kubelet at a local API server,
 * ControlPlaneKubeletLocalMode, which the 1.35 join applies whatever the gate says, measured).
 * Site B's members are hardened as site B's nodes are (the login with sudo, SSH only through site
 * B's bastion). Every connection between the two sides runs through Toxiproxy (lab/stretched.ts):
 * `drctl lab link` sets its latency or cuts it.
 * Started on demand (`drctl lab stretched up`), not by every `lab up`.
 */
export const STRETCHED: LabCluster = (() => {
  const name = 'stretched';
  const siteB = SITES.find((s) => s.name === 'site-b')!;
  const members = [
    { name: 'a1', location: 'site-a', ip: '172.30.10.11' },
    { name: 'a2', location: 'site-a', ip: '172.30.10.12' },
    { name: 'a3', location: 'site-a', ip: '172.30.10.13' },
    { name: 'b1', location: 'site-b', ip: '172.30.20.11' },
    { name: 'b2', location: 'site-b', ip: '172.30.20.12' },
  ];
  const nodes: LabNode[] = members.map((m, i) => {
    const hardened = m.location === 'site-b';
    return {
      site: name,
      location: m.location,
      name: m.name,
      id: `${name}/${m.name}`,
      ip: m.ip,
      root: join(LAB_DIR, 'nodes', `${name}-${m.name}`),
      runsApiserver: true,
      first: i === 0,
      netns: `drctl-str-${m.name}`,
      veth: `dl-str-${m.name}`,
      cgroupRoot: `/drctl/${name}-${m.name}`,
      etcdDisk: m.name === 'a2' || m.name === 'b2',
      login: hardened
        ? { user: LOGIN.user, sudo: true, permitRootLogin: false }
        : { user: 'root', sudo: false, permitRootLogin: true },
      ...(hardened ? { jump: siteB.bastion } : {}),
    };
  });
  return {
    name,
    etcdVersion: VERSIONS.etcd['site-a']!,
    nodes,
    // Site B's API server: the one left when site A (3 of 5) is lost.
    apiserver: 'https://172.30.20.11:6443',
    kubeconfig: join(LAB_DIR, 'kube', `${name}.kubeconfig`),
  };
})();

/** Every lab cluster: the sites' and the stretched one. */
export const CLUSTERS: LabCluster[] = [...SITES, STRETCHED];

/** The lab's Toxiproxy: the stretched cluster's cross-site connections; proxies listen on this machine's bridge address. */
export const TOXIPROXY = { api: 'http://127.0.50.1:8474', ip: '127.0.50.1', port: 8474, listenIp: '172.30.0.254' };

/** The site by name; the error lists the lab's sites. */
export function siteNamed(name: string): LabSite {
  const site = SITES.find((s) => s.name === name);
  if (!site) throw new Error(`unknown site '${name}' (lab sites: ${SITES.map((s) => s.name).join(', ')})`);
  return site;
}

/** The node by id ("site-a/cp2"). */
export function nodeNamed(id: string): LabNode {
  const node = CLUSTERS.flatMap((s) => s.nodes).find((n) => n.id === id);
  if (!node) throw new Error(`unknown node '${id}' (e.g. site-a/cp2)`);
  return node;
}

/** The site's cp1: the node `kubeadm init` ran on, which also runs kwok and Velero. */
export const cp1Of = (site: LabCluster): LabNode => site.nodes.find((n) => n.first)!;

/** Where the lab's worker "at" a site serves its Prometheus metrics (`drctl worker --metrics-listen`). */
export const workerMetricsAddress = (site: { net: string }) => `${site.net}.90:9464`;

/** Ports of the servers that run as static pods on a site's cp1, each bound to cp1's own address. */
export const CP_PORTS = {
  apiserver: 6443,
  kwok: 10247,
  veleroMetrics: 8085,
  veleroProfiler: 6060,
};

export const SERVICES = {
  temporal: { ip: '127.0.0.1', port: 7233, uiPort: 8233 },
  minio: { ip: '172.30.30.2', port: 9000, consolePort: 9001, bucket: 'drctl-offsite', veleroBucket: 'velero-backups' },
  pdns: {
    ip: '127.0.40.2',
    port: 53,
    apiPort: 8081,
    zone: 'example.com',
    records: ['app.example.com', 'drill.app.example.com'],
    ttl: 30,
  },
};

/** The lab's people: alice, bob and carol approve (two-person rule); dave only asks. */
export const APPROVERS = ['alice', 'bob', 'carol'] as const;
export const PEOPLE = [...APPROVERS, 'dave'] as const;

export const paths = {
  state: join(LAB_DIR, 'state.json'),
  config: join(LAB_DIR, 'drctl.yaml'),
  logs: join(LAB_DIR, 'logs'),
  pki: (site: string) => join(LAB_DIR, 'pki', site),
  sshKey: join(LAB_DIR, 'ssh', 'id_ed25519'),
  /** Each lab person's own signing key (decisions and requests are signed: `drctl approve --key`). */
  personKey: (who: string) => join(LAB_DIR, 'people', who, 'id_ed25519'),
  authorizedKeys: join(LAB_DIR, 'ssh', 'authorized_keys'),
  minioData: join(LAB_DIR, 'minio', 'data'),
  minioCreds: join(LAB_DIR, 'minio', 'credentials.yaml'),
  temporalDb: join(LAB_DIR, 'temporal', 'temporal.db'),
  pdnsDir: join(LAB_DIR, 'pdns'),
  pdnsApiKey: join(LAB_DIR, 'pdns', 'api-key'),
  /** The lab worker's snapshot keys (base64, 0600 in a 0700 dir): drctl.yaml names them, never holds them. */
  keysDir: join(LAB_DIR, 'keys'),
  snapshotEncryptionKey: join(LAB_DIR, 'keys', 'snapshot-encryption.key'),
  snapshotSigningKey: join(LAB_DIR, 'keys', 'snapshot-signing.key'),
};

/** Paths inside a node (what drctl sees over SSH) mapped to the lab host's view of that node's disk. */
export function onHost(node: LabNode, nodePath: string): string {
  for (const [inside, host] of [
    ['/etc/kubernetes', 'etc/kubernetes'],
    ['/var/lib', 'var/lib'],
    ['/usr/local/bin', 'usr/local/bin'],
    ['/var/log', 'var/log'],
  ] as const) {
    if (nodePath === inside || nodePath.startsWith(`${inside}/`))
      return join(node.root, host, nodePath.slice(inside.length));
  }
  throw new Error(`${nodePath} is not on a node-private mount`);
}
