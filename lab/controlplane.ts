// A site's control plane beyond etcd, as static pods on the site's cp1: kube-apiserver (kubeadm's
// serving, etcd-client and service-account keys), kube-controller-manager and kube-scheduler (each
// with its own client certificate, as kubeadm issues them), kwok (the site's three fake worker
// nodes) and the Velero server. Every listener binds cp1's own address: the nodes share the host's
// network namespace, so the default ports (10257, 10259, 10247, 8085, 6060) would otherwise collide
// between the two sites.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { linkTool, manifestPath, NODE_PKI, staticPod, writeManifest } from './nodes.ts';
import { kubeconfig, leaf, serviceAccountKeys } from './pki.ts';
import { bin, cp1Of, CP_PORTS, type LabNode, type LabSite, paths, VERSIONS } from './topology.ts';

export const VELERO_NS = 'velero';
export const KWOK_NODES = [1, 2, 3].map((i) => `kwok-node-${i}`);
/** kwok's conventional taint and annotation for the nodes it fakes. */
export const KWOK_TAINT = { key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' };
/** What a pod needs to be scheduled onto kwok's nodes. */
export const KWOK_TOLERATION = { key: KWOK_TAINT.key, operator: 'Exists', effect: KWOK_TAINT.effect };

/** The static pods on cp1 besides etcd, in start order; `lab site down --hard` parks them all. */
export const CP1_PODS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'velero'] as const;
export type Cp1Pod = (typeof CP1_PODS)[number];

function apiserver(site: LabSite, node: LabNode): object {
  return staticPod('kube-apiserver', `registry.k8s.io/kube-apiserver:${VERSIONS.kubernetes}`, [
    'kube-apiserver',
    `--advertise-address=${node.ip}`,
    `--bind-address=${node.ip}`,
    '--secure-port=6443',
    `--etcd-servers=${site.nodes.map((n) => `https://${n.ip}:2379`).join(',')}`,
    `--etcd-cafile=${NODE_PKI}/etcd/ca.crt`,
    `--etcd-certfile=${NODE_PKI}/apiserver-etcd-client.crt`,
    `--etcd-keyfile=${NODE_PKI}/apiserver-etcd-client.key`,
    `--client-ca-file=${NODE_PKI}/ca.crt`,
    `--tls-cert-file=${NODE_PKI}/apiserver.crt`,
    `--tls-private-key-file=${NODE_PKI}/apiserver.key`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${NODE_PKI}/sa.pub`,
    `--service-account-signing-key-file=${NODE_PKI}/sa.key`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    '--profiling=false',
    `--cert-dir=/var/lib/kube-apiserver`,
  ]);
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
    `--root-ca-file=${NODE_PKI}/ca.crt`,
    `--service-account-private-key-file=${NODE_PKI}/sa.key`,
    '--use-service-account-credentials=true',
    `--cluster-signing-cert-file=${NODE_PKI}/ca.crt`,
    `--cluster-signing-key-file=${NODE_PKI}/ca.key`,
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
 * cp1's extra PKI, kubeconfigs, binaries and manifests, after the node's own (lab/nodes.ts). The
 * API server's manifest is written only on a `fresh` node, as etcd's is. kube-controller-manager,
 * kube-scheduler and kwok start right away (they wait for the API server themselves); Velero's
 * manifest is written by `writeVeleroManifest` once its CRDs and storage location exist.
 */
export function layoutControlPlane(
  site: LabSite,
  node: LabNode,
  cas: { etcd: { crt: string; key: string }; kube: { crt: string; key: string } },
  fresh: boolean,
): void {
  const r = (p: string) => join(node.root, p);
  const kubeCa = cas.kube;
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
  leaf(cas.etcd, join(k, 'apiserver-etcd-client'), { cn: 'kube-apiserver-etcd-client', usage: ['client'] });
  serviceAccountKeys(k);
  const binDir = r('usr/local/bin');
  linkTool(join(bin.kubeDir, 'kube-apiserver'), join(binDir, 'kube-apiserver'));
  if (fresh) writeFileSync(manifestPath(node, 'kube-apiserver'), stringify(apiserver(site, node)));

  const pki = paths.pki(site.name);
  // kubeadm keeps the cluster CA's key on control-plane nodes: the controller-manager signs CSRs with it.
  copyFileSync(kubeCa.key, r('etc/kubernetes/pki/ca.key'));
  for (const c of CLIENTS) {
    const base = join(pki, 'kubernetes', c.cert);
    leaf(kubeCa, base, { cn: c.cn, org: c.org, usage: ['client'] });
    writeFileSync(r(`etc/kubernetes/${c.file}`), kubeconfig(site, c.cn, kubeCa.crt, base), { mode: 0o600 });
  }
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
  const cp1 = cp1Of(site);
  writeManifest(cp1, 'velero', velero(cp1));
}
