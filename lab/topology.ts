// Where every lab host lives. One loopback address per host: 127.0.10.x site A, 127.0.20.x site B,
// 127.0.30.x the off-site object store, 127.0.40.x DNS. All lab processes share the host's network
// namespace, so every listener binds its own address (a wildcard bind would collide between sites). Temporal stays on 127.0.0.1: the dev server's internal
// services always dial each other there, whatever --ip says (measured: StartWorkflowExecution fails
// with "dial tcp 127.0.0.1:<port>: connection refused" when bound to another loopback address).
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
};

export const CACHE = process.env.DRCTL_CACHE_DIR ?? join(homedir(), '.cache/drctl');
export const LAB_DIR = resolve(process.env.DRCTL_LAB_DIR ?? join(REPO, '.lab'));

export const bin = {
  temporal: join(CACHE, 'bin', `temporal-${VERSIONS.temporalBin}`, 'temporal'),
  minio: join(CACHE, 'bin', `minio-${VERSIONS.minio}`, 'minio'),
  etcdDir: (site: string) => join(CACHE, 'bin', `etcd-${VERSIONS.etcd[site]}`),
  /** kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (version-stamped; see install.sh). */
  kubeDir: join(CACHE, 'bin', `kubernetes-${VERSIONS.kubernetes}+stamped`),
  kwokDir: join(CACHE, 'bin', `kwok-${VERSIONS.kwok}`),
  /** kwokctl's default stages (node initialise + heartbeat with lease, pod ready/complete/delete). */
  kwokStages: join(CACHE, 'bin', `kwok-${VERSIONS.kwok}`, 'stages.yaml'),
  velero: join(CACHE, 'bin', `velero-${VERSIONS.velero}+nomgrmetrics`, 'velero'),
  /** Velero's --plugin-dir: every executable file in it is a plugin. */
  veleroPluginDir: join(CACHE, 'bin', `velero-plugin-for-aws-${VERSIONS.veleroPluginForAws}`),
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
  site: string;
  name: string;
  /** "site-a/cp1" */
  id: string;
  ip: string;
  /** The node's disk, seen from the lab host; bind-mounted at /etc/kubernetes, /var/lib, /usr/local/bin inside the node. */
  root: string;
  runsApiserver: boolean;
}

export interface LabSite {
  name: string;
  role: 'primary' | 'dr';
  net: string;
  etcdVersion: string;
  nodes: LabNode[];
  apiserver: string;
  kubeconfig: string;
  /** Where the site's app is served (its "ingress"): DNS points the app record here while the site serves. */
  appAddress: string;
  appPort: number;
  /** Pod IPs kwok hands out at this site. */
  podCidr: string;
}

const SITE_DEFS = [
  { name: 'site-a', role: 'primary' as const, net: '127.0.10' },
  { name: 'site-b', role: 'dr' as const, net: '127.0.20' },
];

export const SITES: LabSite[] = SITE_DEFS.map((s) => {
  const nodes = [1, 2, 3].map((i) => ({
    site: s.name,
    name: `cp${i}`,
    id: `${s.name}/cp${i}`,
    ip: `${s.net}.${i}`,
    root: join(LAB_DIR, 'nodes', `${s.name}-cp${i}`),
    runsApiserver: i === 1,
  }));
  return {
    ...s,
    etcdVersion: VERSIONS.etcd[s.name]!,
    nodes,
    apiserver: `https://${s.net}.1:6443`,
    kubeconfig: join(LAB_DIR, 'kube', `${s.name}.kubeconfig`),
    appAddress: `${s.net}.100`,
    appPort: 8080,
    podCidr: `10.${s.net.split('.')[2]}.0.0/16`,
  };
});

/** The site by name; the error lists the lab's sites. */
export function siteNamed(name: string): LabSite {
  const site = SITES.find((s) => s.name === name);
  if (!site) throw new Error(`unknown site '${name}' (lab sites: ${SITES.map((s) => s.name).join(', ')})`);
  return site;
}

/** The node by id ("site-a/cp2"). */
export function nodeNamed(id: string): LabNode {
  const node = SITES.flatMap((s) => s.nodes).find((n) => n.id === id);
  if (!node) throw new Error(`unknown node '${id}' (e.g. site-a/cp2)`);
  return node;
}

/** The site's cp1: the node that runs its API server and the rest of its control plane. */
export const cp1Of = (site: LabSite): LabNode => site.nodes.find((n) => n.runsApiserver)!;

/** Ports of the servers that run as static pods on a site's cp1, each bound to cp1's own address. */
export const CP_PORTS = {
  apiserver: 6443,
  controllerManager: 10257,
  scheduler: 10259,
  kwok: 10247,
  veleroMetrics: 8085,
  veleroProfiler: 6060,
};

export const SERVICES = {
  temporal: { ip: '127.0.0.1', port: 7233, uiPort: 8233 },
  minio: { ip: '127.0.30.2', port: 9000, consolePort: 9001, bucket: 'drctl-offsite', veleroBucket: 'velero-backups' },
  pdns: {
    ip: '127.0.40.2',
    port: 53,
    apiPort: 8081,
    zone: 'example.com',
    records: ['app.example.com', 'drill.app.example.com'],
    ttl: 30,
  },
};

export const paths = {
  state: join(LAB_DIR, 'state.json'),
  config: join(LAB_DIR, 'drctl.yaml'),
  logs: join(LAB_DIR, 'logs'),
  pki: (site: string) => join(LAB_DIR, 'pki', site),
  sshKey: join(LAB_DIR, 'ssh', 'id_ed25519'),
  authorizedKeys: join(LAB_DIR, 'ssh', 'authorized_keys'),
  minioData: join(LAB_DIR, 'minio', 'data'),
  minioCreds: join(LAB_DIR, 'minio', 'credentials.yaml'),
  temporalDb: join(LAB_DIR, 'temporal', 'temporal.db'),
  pdnsDir: join(LAB_DIR, 'pdns'),
  pdnsApiKey: join(LAB_DIR, 'pdns', 'api-key'),
};

/** Paths inside a node (what drctl sees over SSH) mapped to the lab host's view of that node's disk. */
export function onHost(node: LabNode, nodePath: string): string {
  for (const [inside, host] of [
    ['/etc/kubernetes', 'etc/kubernetes'],
    ['/var/lib', 'var/lib'],
    ['/usr/local/bin', 'usr/local/bin'],
  ] as const) {
    if (nodePath === inside || nodePath.startsWith(`${inside}/`))
      return join(node.root, host, nodePath.slice(inside.length));
  }
  throw new Error(`${nodePath} is not on a node-private mount`);
}
