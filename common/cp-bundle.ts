// The off-site control-plane bundle: what rebuilding a kubeadm control plane on new hardware needs
// besides etcd's data, stored with every snapshot. Without the cluster CA, the front-proxy CA, the
// etcd CA and the service-account key pair, a snapshot restored on new machines gives a cluster whose
// kubeconfigs, node credentials and service-account tokens no longer work (rke2 #2410 is the same
// wall). Two objects next to the snapshot:
//   <key>.bundle.enc    the files, encrypted on the worker (gateways/snapshot-crypto.ts's format):
//                       JSON { format, key, files: [{ name, node, path, mode, data (base64) }] }
//   <key>.bundle.json   its manifest, signed with the snapshot manifest's key: what, sha256, size,
//                       from which node, when, what is missing; no key material
// The manifest is written last: a bundle without a signed manifest is none. Pure code: workflows,
// the CLI and the store use it.

export const BUNDLE_FORMAT = 'drctl-cp-bundle/v1';
export const BUNDLE_MANIFEST_FORMAT = 'drctl-cp-bundle-manifest/v1';
export const BUNDLE_SUFFIX = '.bundle.enc';
export const BUNDLE_MANIFEST_SUFFIX = '.bundle.json';
export const bundleKeyOf = (snapshotKey: string) => `${snapshotKey}${BUNDLE_SUFFIX}`;
export const bundleManifestKeyOf = (snapshotKey: string) => `${snapshotKey}${BUNDLE_MANIFEST_SUFFIX}`;
export const isBundleKey = (key: string) => key.endsWith(BUNDLE_SUFFIX) || key.endsWith(BUNDLE_MANIFEST_SUFFIX);
export const snapshotKeyOfBundle = (key: string) =>
  key.endsWith(BUNDLE_SUFFIX) ? key.slice(0, -BUNDLE_SUFFIX.length) : key.slice(0, -BUNDLE_MANIFEST_SUFFIX.length);

/**
 * The node PKI kubeadm cannot regenerate without breaking trust: every other certificate of a
 * control-plane node is issued from these by `kubeadm init phase certs` (it keeps an existing CA).
 */
export const BUNDLE_PKI = [
  'ca.crt',
  'ca.key',
  'front-proxy-ca.crt',
  'front-proxy-ca.key',
  'etcd/ca.crt',
  'etcd/ca.key',
  'sa.key',
  'sa.pub',
] as const;

/** Where kubeadm keeps them (its defaults: a ClusterConfiguration may move certificatesDir). */
export const KUBEADM_PATHS = {
  pki: '/etc/kubernetes/pki',
  kubelet: '/var/lib/kubelet',
  adminKubeconfig: '/etc/kubernetes/admin.conf',
} as const;

/** Each node's kubelet configuration, as kubeadm wrote it. */
export const BUNDLE_KUBELET = ['config.yaml', 'kubeadm-flags.env'] as const;

export const CLUSTER_CONFIGURATION = 'kubeadm/ClusterConfiguration';

/** One item of a bundle, by the name rebuilding asks for it. */
export interface BundleItem {
  /** `pki/ca.key`, `kubeadm/ClusterConfiguration`, `kubelet/<node>/config.yaml` */
  name: string;
  /** The node it was read on. */
  node: string;
  /** Where (a path on the node; `configmap kube-system/kubeadm-config` for the ClusterConfiguration). */
  source: string;
  /** Octal file mode on the node ("600"), for laying it down again. */
  mode: string;
  sha256: string;
  size: number;
}

export interface BundleManifest {
  /** The snapshot it goes with. */
  key: string;
  cluster: string;
  /** The node the PKI and the ClusterConfiguration were read on. */
  fromNode: string;
  /** The cluster's control-plane nodes when it was taken. */
  nodes: string[];
  takenAt: string;
  items: BundleItem[];
  /** Required names (requiredItems) that could not be read, and why. */
  missing: { name: string; why: string }[];
  storedSha256: string;
  storedSize: number;
  encryptionKeyId: string;
  signingKeyId: string;
  signature: string;
}
export type UnsignedBundleManifest = Omit<BundleManifest, 'signature'>;

/** The encrypted object's plaintext. */
export interface BundleContent {
  format: typeof BUNDLE_FORMAT;
  key: string;
  files: (Pick<BundleItem, 'name' | 'node' | 'source' | 'mode'> & { data: string })[];
}

/** What a rebuild needs, by name, for a cluster of these nodes. */
export function requiredItems(nodes: readonly string[]): string[] {
  return [
    ...BUNDLE_PKI.map((f) => `pki/${f}`),
    CLUSTER_CONFIGURATION,
    ...nodes.flatMap((n) => BUNDLE_KUBELET.map((f) => `kubelet/${n}/${f}`)),
  ];
}

/** What `snapshot list` and a rebuild's preflight show of a bundle. */
export interface BundleSummary {
  complete: boolean;
  fromNode: string;
  takenAt: string;
  items: number;
  missing: string[];
}

export const bundleSummaryOf = (m: BundleManifest): BundleSummary => ({
  complete: m.missing.length === 0,
  fromNode: m.fromNode,
  takenAt: m.takenAt,
  items: m.items.length,
  missing: m.missing.map((x) => `${x.name}: ${x.why}`),
});

const FIELDS = [
  'key',
  'cluster',
  'fromNode',
  'nodes',
  'takenAt',
  'items',
  'missing',
  'storedSha256',
  'storedSize',
  'encryptionKeyId',
  'signingKeyId',
] as const satisfies readonly (keyof UnsignedBundleManifest)[];

/** The text the signature is over: the format, then [name, value] pairs in a fixed order. */
export function bundleSignedText(m: UnsignedBundleManifest): string {
  const items = m.items.map((i) => [i.name, i.node, i.source, i.mode, i.sha256, i.size]);
  const missing = m.missing.map((x) => [x.name, x.why]);
  return `${BUNDLE_MANIFEST_FORMAT}\n${JSON.stringify(
    FIELDS.map((f) => [f, f === 'items' ? items : f === 'missing' ? missing : m[f]]),
  )}`;
}

export function bundleManifestJson(m: BundleManifest): string {
  const body = Object.fromEntries(FIELDS.map((f) => [f, m[f]]));
  return `${JSON.stringify({ format: BUNDLE_MANIFEST_FORMAT, ...body, signature: m.signature }, null, 2)}\n`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A bundle manifest's fields, each of its type, or why not (the signature is checked with the key). */
export function parseBundleManifest(text: string): BundleManifest | { problem: string } {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return { problem: 'bundle manifest is not JSON' };
  }
  if (!isObject(o) || o.format !== BUNDLE_MANIFEST_FORMAT) return { problem: `not a ${BUNDLE_MANIFEST_FORMAT}` };
  for (const f of ['key', 'cluster', 'fromNode', 'takenAt', 'storedSha256', 'encryptionKeyId', 'signingKeyId'])
    if (typeof o[f] !== 'string') return { problem: `bundle manifest field ${f} is missing or not a string` };
  if (!(typeof o.storedSize === 'number' && Number.isSafeInteger(o.storedSize) && o.storedSize >= 0))
    return { problem: 'bundle manifest field storedSize is not a size' };
  if (!Array.isArray(o.nodes) || !o.nodes.every((n) => typeof n === 'string'))
    return { problem: 'bundle manifest field nodes is not a list of names' };
  const itemOk = (i: unknown) =>
    isObject(i) &&
    ['name', 'node', 'source', 'mode', 'sha256'].every((f) => typeof i[f] === 'string') &&
    HEX64.test(i.sha256 as string) &&
    typeof i.size === 'number' &&
    Number.isSafeInteger(i.size);
  if (!Array.isArray(o.items) || !o.items.every(itemOk)) return { problem: 'bundle manifest field items is malformed' };
  if (
    !Array.isArray(o.missing) ||
    !o.missing.every((x) => isObject(x) && typeof x.name === 'string' && typeof x.why === 'string')
  )
    return { problem: 'bundle manifest field missing is malformed' };
  if (!HEX64.test(o.storedSha256 as string)) return { problem: 'bundle manifest storedSha256 is not 64 hex digits' };
  if (typeof o.signature !== 'string' || !HEX64.test(o.signature)) return { problem: 'unsigned bundle manifest' };
  const items = (o.items as Record<string, unknown>[]).map((i) => ({
    name: i.name,
    node: i.node,
    source: i.source,
    mode: i.mode,
    sha256: i.sha256,
    size: i.size,
  }));
  const missing = (o.missing as Record<string, unknown>[]).map((x) => ({ name: x.name, why: x.why }));
  return { ...Object.fromEntries([...FIELDS, 'signature'].map((f) => [f, o[f]])), items, missing } as BundleManifest;
}
