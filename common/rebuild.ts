// `drctl cluster rebuild`: a burned site's control plane on new hardware, from the off-site snapshot
// and its control-plane bundle (common/cp-bundle.ts). Pure code: the workflow, the CLI and the
// activities share these types and the preflight's verdict.
import type { Signed } from './signed.ts';
import type { BundleSummary } from './cp-bundle.ts';
import type { SnapshotRef } from './snapshots.ts';

export const REBUILD_STEPS = [
  'lease',
  'preflight',
  'approval',
  'recheck',
  'lay-pki',
  'kubeadm-phases',
  'restore-etcd',
  'start',
  'verify',
  'cleanup',
] as const;
export type RebuildStep = (typeof REBUILD_STEPS)[number];

export interface RebuildInput {
  cluster: string;
  /** 'latest' (the newest snapshot proven restorable with a complete bundle) or a snapshot key. */
  snapshot: string;
  requestedBy: string;
  request?: Signed;
  approvalTimeoutMs?: number;
  /** Revisions the restored etcd jumps ahead (default: as a restore's, so informers relist). */
  bumpRevision?: number;
  dryRun?: boolean;
}

/** The off-site source, checked whole before any host is touched: no key material, names only. */
export interface RebuildSource {
  snapshot: SnapshotRef;
  bundle: BundleSummary;
  /** The bundle's item names (pki/ca.key, kubelet/cp1/config.yaml, …). */
  items: string[];
  /** Snapshots passed over for 'latest' and why (newer, but no complete bundle / not proven). */
  passedOver: string[];
  /** The bundle's ClusterConfiguration `controlPlaneEndpoint` (absent in runs before it was read). */
  controlPlaneEndpoint?: string;
}

/** The host of a kubeadm `controlPlaneEndpoint` (`host`, `host:port`, `[v6]:port`) and whether it is an IP literal. */
export function endpointHost(endpoint: string): { host: string; ip: boolean } {
  const e = endpoint.trim();
  const host = e.startsWith('[')
    ? e.slice(1, e.indexOf(']') > 0 ? e.indexOf(']') : undefined)
    : e.split(':').length === 2
      ? e.split(':')[0]!
      : e;
  return { host, ip: /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':') };
}

/** One new host as the preflight read it. */
export interface HostPreflight {
  node: string;
  address: string;
  reachable: boolean;
  error?: string;
  /** A control plane or etcd data found: this host is not new (a restore, not a rebuild). */
  leftovers: string[];
  hostname?: string;
  kubeadm?: string;
  kubelet?: string;
  images?: number;
  freeBytes?: number;
}

export interface RebuildEvidence {
  cluster: string;
  snapshotKey: string;
  snapshotTakenAt: string;
  /** The control plane's RPO: how old the data it comes back with is. */
  snapshotAgeSeconds: number;
  revision: number;
  /** The bundle, and its item names. */
  bundle: BundleSummary & { names: string[] };
  passedOver: string[];
  hosts: HostPreflight[];
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface RebuildResult {
  outcome: 'completed' | 'dry-run';
  snapshotKey: string;
  revision: number;
  /** Filled by the verify step. */
  verified?: RebuildVerification;
  timings?: Record<string, number>;
}

export interface RebuildVerification {
  apiserver: string;
  /** The cluster's kube-system/kubeadm-config ClusterConfiguration is the bundle's, byte for byte. */
  kubeadmConfigMatches: boolean;
  nodes: { name: string; ready: boolean }[];
  /** Velero's BackupStorageLocations as the rebuilt API serves them (phase when Velero reported one). */
  backupLocations: { name: string; phase?: string }[];
  revision: number;
  leader: string;
}

/** Why the hosts and the source refuse a rebuild (empty: go on). */
export function rebuildProblems(source: RebuildSource, hosts: HostPreflight[], needBytes: number): string[] {
  const problems: string[] = [];
  if (!source.bundle.complete)
    problems.push(
      `the control-plane bundle of ${source.snapshot.key} is incomplete: ${source.bundle.missing.join('; ')}`,
    );
  // Kubeconfigs issued before the fire, and the kubelets' own, name the control-plane endpoint: an
  // address none of the new hosts has would leave them pointing at the burned one.
  if (source.controlPlaneEndpoint) {
    const { host, ip } = endpointHost(source.controlPlaneEndpoint);
    if (ip && !hosts.some((h) => h.address === host))
      problems.push(
        `the bundle's controlPlaneEndpoint ${source.controlPlaneEndpoint} is an address none of the new hosts has (${hosts.map((h) => h.address).join(', ')}): every kubeconfig and kubelet points at it. Give one new host that address, or rebuild onto hosts behind a name or VIP that moves (README: Site lost)`,
      );
  }
  for (const h of hosts) {
    if (!h.reachable) problems.push(`${h.node}: unreachable: ${h.error}`);
    else {
      if (h.leftovers.length)
        problems.push(
          `${h.node}: not a new host (${h.leftovers.join(', ')}): a node that still has a control plane or etcd data is restored (drctl etcd restore), not rebuilt`,
        );
      if (!h.kubeadm)
        problems.push(`${h.node}: no kubeadm on the host (provisioning lays kubeadm, kubelet and containerd)`);
      if (!h.kubelet) problems.push(`${h.node}: no kubelet on the host`);
      if ((h.freeBytes ?? 0) < needBytes)
        problems.push(
          `${h.node}: ${h.freeBytes} bytes free for etcd's data; needs ${needBytes} (staged + restored snapshot)`,
        );
      if (!source.items.includes(`kubelet/${h.node}/config.yaml`))
        problems.push(`${h.node}: the bundle has no kubelet config for it (a node the cluster did not have)`);
    }
  }
  return problems;
}

/** What changed between the preflight and the recheck (empty: as approved). */
export function rebuildChanges(before: HostPreflight[], now: HostPreflight[], sourceNow?: string): string[] {
  const changes: string[] = [];
  if (sourceNow) changes.push(`the snapshot or its bundle: ${sourceNow}`);
  for (const b of before) {
    const n = now.find((x) => x.node === b.node);
    if (!n?.reachable) changes.push(`${b.node}: no longer reachable (${n?.error ?? 'gone'})`);
    else if (n.leftovers.length) changes.push(`${b.node}: no longer new: ${n.leftovers.join(', ')}`);
  }
  return changes;
}
