// Control-plane rebuild activities (`drctl cluster rebuild`): the off-site source checked whole, each
// new host read, the bundle's PKI laid, kubeadm's phases run, the kubelet given its config, the
// result verified, and the undo that returns a host to what provisioning left. The bundle's files
// are read from the bucket and decrypted here, on the worker, for each step that lays them: no key,
// nor a hash of one, crosses into the workflow. The etcd restore itself is the restore's activities.
import { parse as parseYaml } from 'yaml';
import { CLUSTER_CONFIGURATION, KUBEADM_PATHS, requiredItems } from '../common/cp-bundle.ts';
import { FailureType, failure, rootMessage } from '../common/errors.ts';
import { pickLatest } from '../common/snapshot-proof.ts';
import type { HostPreflight, RebuildSource, RebuildVerification } from '../common/rebuild.ts';
import type { Gateways } from '../gateways/index.ts';
import { advertiseAddressOf, bundleFilesUnder, kubeadmRebuildConfig } from '../gateways/rebuild-node.ts';
import { heartbeating } from './support.ts';

interface NodeRef {
  cluster: string;
  node: string;
}

/** The ClusterConfiguration's controlPlaneEndpoint, when it has one. */
function controlPlaneEndpointOf(cc: Buffer | undefined): { controlPlaneEndpoint?: string } {
  if (!cc) return {};
  const ep = (parseYaml(cc.toString('utf8')) as { controlPlaneEndpoint?: unknown } | null)?.controlPlaneEndpoint;
  return typeof ep === 'string' && ep ? { controlPlaneEndpoint: ep } : {};
}

export function createRebuildActivities(gw: Gateways) {
  /** The bundle of `key`, decrypted and checked file by file (gateways/snapshot-store.ts). */
  const bundleOf = (key: string) => gw.snapshots().readBundle(key);

  return {
    /**
     * The snapshot and its control-plane bundle, checked whole before any host is touched: signed,
     * the snapshot proven restorable (or untested, said so), the bundle complete for this cluster's
     * nodes, decrypted, every file's sha256 as signed. 'latest': the newest snapshot that has a
     * complete bundle (newer ones without are named in `passedOver`).
     */
    async resolveRebuildSource(input: { cluster: string; snapshot: string }): Promise<RebuildSource> {
      const snaps = gw.snapshots();
      const nodes = gw.cluster(input.cluster).nodes.map((n) => n.name);
      const passedOver: string[] = [];
      let key = input.snapshot;
      if (input.snapshot === 'latest') {
        const { snapshots } = await snaps.list(input.cluster);
        const usable = snapshots.filter((s) => {
          if (s.bundle?.complete) return true;
          passedOver.push(
            `${s.key}: ${s.bundle ? `bundle incomplete (${s.bundle.missing.join('; ')})` : 'no control-plane bundle'}`,
          );
          return false;
        });
        const { pick, passedOver: unproven } = pickLatest(usable);
        passedOver.push(
          ...unproven.map((s) => `${s.key}: ${s.proof ? 'proven unrestorable' : 'not proven restorable'}`),
        );
        if (!pick)
          throw failure(
            FailureType.SnapshotNotFound,
            `${input.cluster}: no snapshot with a complete control-plane bundle in s3://${snaps.bucket.bucket} (${passedOver.length} passed over${passedOver.length ? `: ${passedOver.join('; ')}` : ''})`,
          );
        key = pick.key;
      }
      const snapshot = await snaps.resolve(input.cluster, key);
      const b = await bundleOf(snapshot.key);
      const want = requiredItems(nodes);
      const have = new Set(b.manifest.items.map((i) => i.name));
      const lacking = want.filter((n) => !have.has(n));
      return {
        snapshot,
        bundle: {
          complete: lacking.length === 0 && b.manifest.missing.length === 0,
          fromNode: b.manifest.fromNode,
          takenAt: b.manifest.takenAt,
          items: b.manifest.items.length,
          missing: [
            ...b.manifest.missing.map((m) => `${m.name}: ${m.why}`),
            ...lacking
              .filter((n) => !b.manifest.missing.some((m) => m.name === n))
              .map((n) => `${n}: not in the bundle`),
          ],
        },
        items: b.manifest.items.map((i) => i.name),
        passedOver,
        ...controlPlaneEndpointOf(b.files.get(CLUSTER_CONFIGURATION)),
      };
    },

    /** Read-only: is the host new (no control plane, no etcd data), and does it have what provisioning lays? */
    async rebuildPreflightHost(input: NodeRef): Promise<HostPreflight> {
      const n = gw.node(input.cluster, input.node);
      const base = { node: input.node, address: advertiseAddressOf(n) };
      try {
        const look = await gw.rebuildNode(input.cluster, input.node).look();
        return { ...base, reachable: true, ...look };
      } catch (err) {
        // A wrong host key stays wrong: new hardware has new keys, the config must pin them.
        const type = (err as { type?: string }).type;
        if (type === FailureType.HostKeyMismatch || type === FailureType.MissingPrivilege) throw err;
        return { ...base, reachable: false, error: rootMessage(err), leftovers: [] };
      }
    },

    /** The bundle's CAs and service-account key pair under /etc/kubernetes/pki, each with its mode. */
    async layRebuildPki(input: NodeRef & { key: string }): Promise<string> {
      const b = await bundleOf(input.key);
      const r = await gw
        .rebuildNode(input.cluster, input.node)
        .layFiles(bundleFilesUnder(b, 'pki/', KUBEADM_PATHS.pki));
      return `${r.written.length} written${r.kept.length ? `, ${r.kept.length} already there` : ''}`;
    },

    /**
     * kubeadm's phases on the node (certs, kubeconfig, etcd local, control-plane) with the bundle's
     * ClusterConfiguration and this node's InitConfiguration (its name and address).
     */
    async runKubeadmPhases(input: NodeRef & { key: string; tag: string }): Promise<string[]> {
      const b = await bundleOf(input.key);
      const n = gw.node(input.cluster, input.node);
      const config = kubeadmRebuildConfig(n, b.files.get(CLUSTER_CONFIGURATION)!.toString('utf8'));
      return heartbeating(
        'kubeadm init phase',
        gw.rebuildNode(input.cluster, input.node).kubeadmPhases(input.tag, config),
      );
    },

    /** The node's kubelet config from the bundle; the kubelet starts the static pods. */
    async startRebuiltKubelet(input: NodeRef & { key: string }): Promise<'started' | 'already-configured'> {
      const b = await bundleOf(input.key);
      return gw
        .rebuildNode(input.cluster, input.node)
        .startKubelet(bundleFilesUnder(b, `kubelet/${input.node}/`, KUBEADM_PATHS.kubelet));
    },

    /** Undo: the host back to what provisioning left (gateways/rebuild-node.ts reset). */
    async resetRebuiltHost(input: NodeRef & { tag: string; workDir: string }): Promise<'reset'> {
      const r = await heartbeating(
        'reset host',
        gw.rebuildNode(input.cluster, input.node).reset(input.tag, input.workDir),
      );
      if (r === 'timed-out')
        throw failure(
          FailureType.NeedsAttention,
          `${input.cluster}/${input.node}: its static pods did not stop within 90 s of their manifests being removed; the host is not reset`,
        );
      return r;
    },

    /**
     * What the rebuilt API serves, read with the worker's own kubeconfig (issued before the fire:
     * it authenticates only if the cluster CA came back): the kubeadm-config ClusterConfiguration
     * compared with the bundle's, the nodes, Velero's storage locations.
     */
    async verifyRebuilt(input: {
      cluster: string;
      key: string;
    }): Promise<Omit<RebuildVerification, 'apiserver' | 'revision' | 'leader'>> {
      const kube = gw.kube(input.cluster);
      const b = await bundleOf(input.key);
      const data = await kube.configMapData('kube-system', 'kubeadm-config');
      const held = data?.ClusterConfiguration?.trim();
      const kubeadmConfigMatches = held === b.files.get(CLUSTER_CONFIGURATION)?.toString('utf8').trim();
      const nodes = await kube.nodes();
      const site = gw.config.sites.find((s) => s.cluster.name === input.cluster)?.name;
      let backupLocations: RebuildVerification['backupLocations'] = [];
      if (site)
        backupLocations = (await gw.velero(site).list('backupstoragelocations')).map((l) => ({
          name: l.metadata.name,
          ...((l.status as { phase?: string } | undefined)?.phase
            ? { phase: (l.status as { phase: string }).phase }
            : {}),
        }));
      return { kubeadmConfigMatches, nodes, backupLocations };
    },
  };
}
