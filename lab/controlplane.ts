// What runs on a site's cp1 besides kubeadm's control plane: kwok (the site's three fake worker
// nodes) and the Velero server, as static pods of the lab's own images, each with a client
// certificate of its own (admin-equivalent: a lab shortcut) in a kubeconfig under /etc/kubernetes.
// cp1 is a host of its own, so their default ports are free; they still bind its address.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE_PATHS, kwokImage, veleroImage } from './images.ts';
import { staticPod, writeManifest } from './nodes.ts';
import { kubeconfig, leaf } from './pki.ts';
import { cp1Of, CP_PORTS, type LabNode, type LabSite, paths } from './topology.ts';

export const VELERO_NS = 'velero';
export const KWOK_NODES = [1, 2, 3].map((i) => `kwok-node-${i}`);
/** kwok's conventional taint and annotation for the nodes it fakes. */
export const KWOK_TAINT = { key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' };
/** What a pod needs to be scheduled onto kwok's nodes. */
export const KWOK_TOLERATION = { key: KWOK_TAINT.key, operator: 'Exists', effect: KWOK_TAINT.effect };

/** kubeadm's static pods, and the lab's on cp1, in start order; `lab site down --hard` parks all but etcd. */
export const CONTROL_PLANE_PODS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;
export const CP1_PODS = ['kwok', 'velero'] as const;
export type Cp1Pod = (typeof CP1_PODS)[number];

/** Identities of cp1's extra clients. */
const CLIENTS = [
  { file: 'kwok.conf', cert: 'kwok', cn: 'kwok-controller', org: 'system:masters' },
  { file: 'velero.conf', cert: 'velero', cn: 'velero-server', org: 'system:masters' },
];

function kwok(site: LabSite, node: LabNode): object {
  return staticPod(
    'kwok',
    kwokImage,
    [
      'kwok',
      '--kubeconfig=/etc/kubernetes/kwok.conf',
      // The binary has no built-in stages (kwokctl passes them); install.sh extracts kwokctl's defaults.
      `--config=${IMAGE_PATHS.kwokStages}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${KWOK_TAINT.key}=${KWOK_TAINT.value}`,
      `--cidr=${site.podCidr}`,
      `--node-ip=${node.ip}`,
      `--node-port=${CP_PORTS.kwok}`,
      `--server-address=${node.ip}:${CP_PORTS.kwok}`,
      '--node-lease-duration-seconds=40',
    ],
    { hostPaths: { '/etc/kubernetes/kwok.conf': 'File' } },
  );
}

function velero(node: LabNode): object {
  return staticPod(
    'velero',
    veleroImage,
    [
      'velero',
      'server',
      '--kubeconfig=/etc/kubernetes/velero.conf',
      `--namespace=${VELERO_NS}`,
      `--plugin-dir=${IMAGE_PATHS.veleroPlugins}`,
      `--metrics-address=${node.ip}:${CP_PORTS.veleroMetrics}`,
      `--profiler-address=${node.ip}:${CP_PORTS.veleroProfiler}`,
      // Both sites' locations name the same bucket: a backup taken at one site appears at the other
      // at its next sync. The period is a floor: Velero 1.18's sync loop wakes once a minute
      // (backupSyncReconcilePeriod), so a backup takes up to ~1 min to appear at the other site.
      '--backup-sync-period=5s',
      '--store-validation-frequency=10s',
      '--log-level=info',
    ],
    { hostPaths: { '/etc/kubernetes/velero.conf': 'File' } },
  );
}

/** cp1's kubeconfigs for kwok and Velero, and kwok's manifest (Velero's: `writeVeleroManifest`, once its CRDs and location exist). */
export function layoutCp1Extras(site: LabSite, node: LabNode, kubeCa: { crt: string; key: string }): void {
  const pki = paths.pki(site.name);
  for (const c of CLIENTS) {
    const base = join(pki, 'kubernetes', c.cert);
    leaf(kubeCa, base, { cn: c.cn, org: c.org, usage: ['client'] });
    writeFileSync(join(node.root, `etc/kubernetes/${c.file}`), kubeconfig(site, c.cn, kubeCa.crt, base), {
      mode: 0o600,
    });
  }
  mkdirSync(join(node.root, 'etc/kubernetes/manifests-parked'), { recursive: true });
  writeManifest(node, 'kwok', kwok(site, node));
}

export function writeVeleroManifest(site: LabSite): void {
  const cp1 = cp1Of(site);
  writeManifest(cp1, 'velero', velero(cp1));
}
