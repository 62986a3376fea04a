// Where every lab host lives. One loopback address per host: 127.0.10.x site A, 127.0.20.x site B,
// 127.0.30.x the off-site object store. Temporal stays on 127.0.0.1: the dev server's internal
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
  minio: string;
  temporalBin: string;
};

export const CACHE = process.env.DRCTL_CACHE_DIR ?? join(homedir(), '.cache/drctl');
export const LAB_DIR = resolve(process.env.DRCTL_LAB_DIR ?? join(REPO, '.lab'));

export const bin = {
  temporal: join(CACHE, 'bin', `temporal-${VERSIONS.temporalBin}`, 'temporal'),
  minio: join(CACHE, 'bin', `minio-${VERSIONS.minio}`, 'minio'),
  etcdDir: (site: string) => join(CACHE, 'bin', `etcd-${VERSIONS.etcd[site]}`),
  kubeDir: join(CACHE, 'bin', `kubernetes-${VERSIONS.kubernetes}`),
};

export function binariesPresent(): string[] {
  const dirs = [dirname(bin.temporal), dirname(bin.minio), bin.etcdDir('site-a'), bin.etcdDir('site-b'), bin.kubeDir];
  return dirs.filter((d) => !existsSync(join(d, '.complete')));
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
  };
});

export const SERVICES = {
  temporal: { ip: '127.0.0.1', port: 7233, uiPort: 8233 },
  minio: { ip: '127.0.30.2', port: 9000, consolePort: 9001, bucket: 'drctl-offsite' },
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
};

/** Paths inside a node (what drctl sees over SSH) mapped to the lab host's view of that node's disk. */
export function onHost(node: LabNode, nodePath: string): string {
  for (const [inside, host] of [
    ['/etc/kubernetes', 'etc/kubernetes'],
    ['/var/lib', 'var/lib'],
    ['/usr/local/bin', 'usr/local/bin'],
  ] as const) {
    if (nodePath === inside || nodePath.startsWith(`${inside}/`)) return join(node.root, host, nodePath.slice(inside.length));
  }
  throw new Error(`${nodePath} is not on a node-private mount`);
}
