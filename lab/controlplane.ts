// The rest of a site's control plane, as static pods on the site's cp1 next to its kube-apiserver:
// kube-controller-manager and kube-scheduler (each with its own client certificate, as kubeadm
// issues them), kwok (the site's three fake worker nodes) and the Velero server. Every listener
// binds cp1's own address: the nodes share the host's network namespace, so the default ports
// (10257, 10259, 10247, 8085, 6060) would otherwise collide between the two sites.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { leaf } from './pki.ts';
import { bin, CP_PORTS, type LabNode, type LabSite, paths, VERSIONS } from './topology.ts';

const nodePki = '/etc/kubernetes/pki';
export const VELERO_NS = 'velero';
export const KWOK_NODES = [1, 2, 3].map((i) => `kwok-node-${i}`);
/** kwok's conventional taint and annotation for the nodes it fakes. */
export const KWOK_TAINT = { key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' };

/** The static pods on cp1 besides etcd, in start order; `lab site down --hard` parks them all. */
export const CP1_PODS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'velero'] as const;
export type Cp1Pod = (typeof CP1_PODS)[number];

export function staticPod(name: string, image: string, command: string[], env: Record<string, string> = {}): object {
  const container: Record<string, unknown> = { name, image, command };
  if (Object.keys(env).length) container.env = Object.entries(env).map(([k, value]) => ({ name: k, value }));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'kube-system', labels: { component: name, tier: 'control-plane' } },
    spec: { hostNetwork: true, priorityClassName: 'system-node-critical', containers: [container] },
  };
}

export const manifestPath = (node: LabNode, name: string) =>
  join(node.root, 'etc/kubernetes/manifests', `${name}.yaml`);
export const parkedPath = (node: LabNode, name: string) =>
  join(node.root, 'etc/kubernetes/manifests-parked', `${name}.yaml`);

/**
 * Writes a static pod manifest unless it is parked (moved aside on purpose: by `lab site down
 * --hard` or a restore runbook, which will move it back). Rewriting identical content changes
 * nothing: the supervisor restarts a pod only when its manifest's hash changes.
 */
export function writeManifest(node: LabNode, name: string, pod: object): void {
  if (existsSync(parkedPath(node, name))) return;
  const file = manifestPath(node, name);
  const text = stringify(pod);
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
  writeFileSync(`${file}.tmp`, text);
  copyFileSync(`${file}.tmp`, file);
  rmSync(`${file}.tmp`);
}

function linkTool(target: string, link: string) {
  rmSync(link, { force: true });
  symlinkSync(target, link);
}

/** A kubeconfig with an embedded client certificate, like the ones kubeadm writes to /etc/kubernetes. */
export function kubeconfig(site: LabSite, user: string, caCrt: string, certBase: string): string {
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const ctx = `${user}@${site.name}`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: site.name, cluster: { server: site.apiserver, 'certificate-authority-data': b64(caCrt) } }],
    users: [
      {
        name: user,
        user: { 'client-certificate-data': b64(`${certBase}.crt`), 'client-key-data': b64(`${certBase}.key`) },
      },
    ],
    contexts: [{ name: ctx, context: { cluster: site.name, user } }],
    'current-context': ctx,
  });
}

/** Identities of cp1's clients: kubeadm's for the controllers, admin-equivalent for kwok and Velero (a lab shortcut). */
const CLIENTS = [
  { file: 'controller-manager.conf', cert: 'controller-manager', cn: 'system:kube-controller-manager' },
  { file: 'scheduler.conf', cert: 'scheduler', cn: 'system:kube-scheduler' },
  { file: 'kwok.conf', cert: 'kwok', cn: 'kwok-controller', org: 'system:masters' },
  { file: 'velero.conf', cert: 'velero', cn: 'velero-server', org: 'system:masters' },
];

function controllerManager(site: LabSite, node: LabNode): object {
  const conf = '/etc/kubernetes/controller-manager.conf';
  return staticPod('kube-controller-manager', `registry.k8s.io/kube-controller-manager:${VERSIONS.kubernetes}`, [
    'kube-controller-manager',
    `--kubeconfig=${conf}`,
    `--authentication-kubeconfig=${conf}`,
    `--authorization-kubeconfig=${conf}`,
    `--bind-address=${node.ip}`,
    `--secure-port=${CP_PORTS.controllerManager}`,
    '--leader-elect=false',
    '--controllers=*',
    `--cluster-name=${site.name}`,
    `--root-ca-file=${nodePki}/ca.crt`,
    `--service-account-private-key-file=${nodePki}/sa.key`,
    '--use-service-account-credentials=true',
    `--cluster-signing-cert-file=${nodePki}/ca.crt`,
    `--cluster-signing-key-file=${nodePki}/ca.key`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--allocate-node-cidrs=false',
    // A kubelet re-reports its pods' readiness when its node comes back; kwok does not. So a short
    // API outage (an etcd restore of this site) must not get the kwok nodes marked NotReady: their
    // pods would stay Ready=False for good. A burned site (lab site down --hard) has no API anyway.
    '--node-monitor-grace-period=10m',
    '--profiling=false',
  ]);
}

function scheduler(node: LabNode): object {
  const conf = '/etc/kubernetes/scheduler.conf';
  return staticPod('kube-scheduler', `registry.k8s.io/kube-scheduler:${VERSIONS.kubernetes}`, [
    'kube-scheduler',
    `--kubeconfig=${conf}`,
    `--authentication-kubeconfig=${conf}`,
    `--authorization-kubeconfig=${conf}`,
    `--bind-address=${node.ip}`,
    `--secure-port=${CP_PORTS.scheduler}`,
    '--leader-elect=false',
    '--profiling=false',
  ]);
}

function kwok(site: LabSite, node: LabNode): object {
  return staticPod('kwok', `registry.k8s.io/kwok/kwok:${VERSIONS.kwok}`, [
    'kwok',
    '--kubeconfig=/etc/kubernetes/kwok.conf',
    // The binary has no built-in stages (kwokctl passes them); install.sh extracts kwokctl's defaults.
    `--config=${bin.kwokStages}`,
    '--manage-all-nodes=false',
    `--manage-nodes-with-annotation-selector=${KWOK_TAINT.key}=${KWOK_TAINT.value}`,
    `--cidr=${site.podCidr}`,
    `--node-ip=${node.ip}`,
    `--node-port=${CP_PORTS.kwok}`,
    `--server-address=${node.ip}:${CP_PORTS.kwok}`,
    '--node-lease-duration-seconds=40',
  ]);
}

function velero(node: LabNode): object {
  return staticPod(
    'velero',
    `velero/velero:${VERSIONS.velero}`,
    [
      'velero',
      'server',
      '--kubeconfig=/etc/kubernetes/velero.conf',
      `--namespace=${VELERO_NS}`,
      `--plugin-dir=${bin.veleroPluginDir}`,
      `--metrics-address=${node.ip}:${CP_PORTS.veleroMetrics}`,
      `--profiler-address=${node.ip}:${CP_PORTS.veleroProfiler}`,
      // Both sites' locations name the same bucket: a backup taken at one site appears at the other
      // at its next sync. The period is a floor: Velero 1.18's sync loop wakes once a minute
      // (backupSyncReconcilePeriod), so a backup takes up to ~1 min to appear at the other site.
      '--backup-sync-period=5s',
      '--store-validation-frequency=10s',
      '--log-level=info',
    ],
    {
      // Velero writes the location's credentials to $TMPDIR/credentials/<namespace>/...: keep the
      // two sites' servers apart (the host's /tmp is shared; /var/lib is cp1's own).
      TMPDIR: '/var/lib/velero/tmp',
    },
  );
}

/**
 * cp1's extra PKI, kubeconfigs, binaries and manifests. kube-controller-manager, kube-scheduler and
 * kwok start right away (they wait for the API server themselves); Velero's manifest is written by
 * `writeVeleroManifest` once its CRDs and storage location exist.
 */
export function layoutControlPlane(site: LabSite, node: LabNode, kubeCa: { crt: string; key: string }): void {
  const r = (p: string) => join(node.root, p);
  const pki = paths.pki(site.name);
  // kubeadm keeps the cluster CA's key on control-plane nodes: the controller-manager signs CSRs with it.
  copyFileSync(kubeCa.key, r('etc/kubernetes/pki/ca.key'));
  for (const c of CLIENTS) {
    const base = join(pki, 'kubernetes', c.cert);
    leaf(kubeCa, base, { cn: c.cn, org: c.org, usage: ['client'] });
    writeFileSync(r(`etc/kubernetes/${c.file}`), kubeconfig(site, c.cn, kubeCa.crt, base), { mode: 0o600 });
  }
  const binDir = r('usr/local/bin');
  for (const tool of ['kube-controller-manager', 'kube-scheduler'])
    linkTool(join(bin.kubeDir, tool), join(binDir, tool));
  linkTool(join(bin.kwokDir, 'kwok'), join(binDir, 'kwok'));
  linkTool(bin.velero, join(binDir, 'velero'));
  mkdirSync(r('var/lib/velero/tmp'), { recursive: true });
  mkdirSync(r('etc/kubernetes/manifests-parked'), { recursive: true });
  writeManifest(node, 'kube-controller-manager', controllerManager(site, node));
  writeManifest(node, 'kube-scheduler', scheduler(node));
  writeManifest(node, 'kwok', kwok(site, node));
}

export function writeVeleroManifest(site: LabSite): void {
  const cp1 = site.nodes.find((n) => n.runsApiserver)!;
  writeManifest(cp1, 'velero', velero(cp1));
}
