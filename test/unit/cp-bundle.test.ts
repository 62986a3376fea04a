// The off-site control-plane bundle without a lab (common/cp-bundle.ts): the snapshot activity
// reading a node's CAs, service-account keys, ClusterConfiguration and kubelet configs through a
// fake shell; the bucket holding no plaintext; the signed manifest (no key material, tampering
// refused); the bundle read back file by file; `snapshot list`'s verdict per snapshot; retention
// deleting it with its snapshot.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createSnapshotActivities } from '../../activities/snapshot.ts';
import { bundleCell } from '../../client/commands/snapshot.ts';
import {
  bundleKeyOf,
  bundleManifestJson,
  bundleManifestKeyOf,
  parseBundleManifest,
  requiredItems,
  type BundleManifest,
} from '../../common/cp-bundle.ts';
import { FailureType } from '../../common/errors.ts';
import { ENCRYPTION_FORMAT, snapshotKey } from '../../common/snapshots.ts';
import type { Gateways } from '../../gateways/index.ts';
import { SnapshotKeys } from '../../gateways/snapshot-crypto.ts';
import { SnapshotStore } from '../../gateways/snapshot-store.ts';
import type { ExecOptions, RemoteShell } from '../../gateways/ssh.ts';
import { MemoryBucket } from './support/memory-bucket.ts';

const PREFIX = 'drctl/';
const keys = new SnapshotKeys(randomBytes(32), randomBytes(32));
const TAKEN = '2026-12-04T10:00:00.000Z';
const KEY = snapshotKey(PREFIX, 'site-a', new Date(TAKEN), 777);
const NODES = ['cp1', 'cp2', 'cp3'];
const CA_KEY = '-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretcakey\n-----END RSA PRIVATE KEY-----\n';
const SA_KEY = '-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretsakey\n-----END RSA PRIVATE KEY-----\n';

/** Each node's files, as kubeadm leaves them. */
function nodeFiles(node: string): Record<string, string> {
  return {
    '/etc/kubernetes/pki/ca.crt': `cluster ca cert\n`,
    '/etc/kubernetes/pki/ca.key': CA_KEY,
    '/etc/kubernetes/pki/front-proxy-ca.crt': 'front proxy ca cert\n',
    '/etc/kubernetes/pki/front-proxy-ca.key': 'front proxy ca key\n',
    '/etc/kubernetes/pki/etcd/ca.crt': 'etcd ca cert\n',
    '/etc/kubernetes/pki/etcd/ca.key': 'etcd ca key\n',
    '/etc/kubernetes/pki/sa.key': SA_KEY,
    '/etc/kubernetes/pki/sa.pub': 'sa pub\n',
    '/var/lib/kubelet/config.yaml': `kind: KubeletConfiguration\n# ${node}\n`,
    '/var/lib/kubelet/kubeadm-flags.env': `KUBELET_KUBEADM_ARGS="--node-ip=${node}"\n`,
  };
}
const CLUSTER_CONFIG = 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: site-a\n';

/** A node's shell answering the bundle's commands from `files`; `down` nodes throw as SSH would. */
function fakeShell(node: string, files: Record<string, string>, reads: string[]): RemoteShell {
  return {
    target: { label: `site-a/${node}` } as RemoteShell['target'],
    async exec(command: string, _o?: ExecOptions) {
      if (command.startsWith('kubectl '))
        return command.includes('kubeadm-config')
          ? { code: 0, stdout: CLUSTER_CONFIG, stderr: '' }
          : { code: 1, stdout: '', stderr: 'unexpected' };
      // `if [ -f 'P' ]; then stat -c '%a' 'P'; else echo missing; fi; …`
      const out = [...command.matchAll(/if \[ -f '?([^' ]+)'? \]/g)].map((m) =>
        m[1]! in files ? (m[1]!.endsWith('.key') ? '600' : '644') : 'missing',
      );
      return { code: 0, stdout: `${out.join('\n')}\n`, stderr: '' };
    },
    async readStream(path: string) {
      reads.push(`${node}:${path}`);
      if (!(path in files)) throw new Error(`no ${path}`);
      return Readable.from([Buffer.from(files[path]!)]);
    },
    async writeStream() {
      throw new Error('the bundle writes nothing to a node');
    },
    close() {},
  };
}

function setup(opts: { down?: string[]; drop?: string[] } = {}) {
  const bucket = new MemoryBucket();
  const snapshots = new SnapshotStore(bucket, keys, PREFIX);
  const reads: string[] = [];
  const gw = {
    config: { objectStore: { prefix: PREFIX, bucket: bucket.bucket } },
    snapshots: () => snapshots,
    cluster: (c: string) => ({ name: c, nodes: NODES.map((name) => ({ name })) }),
    shell: (_c: string, node: string) => {
      if (opts.down?.includes(node))
        throw Object.assign(new Error(`${node}: connect ECONNREFUSED`), { type: 'SshUnreachable' });
      const files = nodeFiles(node);
      for (const d of opts.drop ?? []) delete files[d];
      return fakeShell(node, files, reads);
    },
  } as unknown as Gateways;
  return { bucket, snapshots, reads, activities: createSnapshotActivities(gw) };
}

async function commitSnapshot(snapshots: SnapshotStore, bucket: MemoryBucket) {
  await bucket.put(KEY, Buffer.from('encrypted snapshot bytes'));
  return snapshots.commit({
    key: KEY,
    cluster: 'site-a',
    member: 'cp2',
    revision: 777,
    etcdHash: 1,
    totalKey: 10,
    totalSize: 1000,
    sha256: 'a'.repeat(64),
    size: 1024,
    etcdVersion: '3.5.35',
    takenAt: TAKEN,
    storedSha256: createHash('sha256').update('encrypted snapshot bytes').digest('hex'),
    storedSize: 24,
    encryption: ENCRYPTION_FORMAT,
    encryptionKeyId: keys.encryptionKeyId,
  });
}

describe('the control-plane bundle stored with a snapshot', () => {
  it('holds every item a rebuild needs, encrypted: no key in the bucket, the manifest or the returned summary', async () => {
    const { bucket, snapshots, reads, activities } = setup();
    await commitSnapshot(snapshots, bucket);
    const summary = await activities.storeControlPlaneBundle({ cluster: 'site-a', node: 'cp2', key: KEY });
    expect(summary).toMatchObject({ complete: true, fromNode: 'cp2', items: requiredItems(NODES).length, missing: [] });
    // The PKI from the snapshot's node, each node's kubelet config from that node.
    expect(reads).toContain('cp2:/etc/kubernetes/pki/ca.key');
    expect(reads).toContain('cp3:/var/lib/kubelet/config.yaml');
    expect(reads.filter((r) => r.includes('/pki/') && !r.startsWith('cp2:'))).toEqual([]);
    // The manifest is the commit: written after the object.
    const puts = bucket.calls.filter((c) => c.startsWith('put '));
    expect(puts.slice(-2)).toEqual([`put ${bundleKeyOf(KEY)}`, `put ${bundleManifestKeyOf(KEY)}`]);
    for (const secret of ['PRIVATE KEY', 'MIIEsecret', 'front proxy ca key']) {
      expect(bucket.objects.get(bundleKeyOf(KEY))!.body.includes(secret)).toBe(false);
      expect(bucket.objects.get(bundleManifestKeyOf(KEY))!.body.includes(secret)).toBe(false);
      expect(JSON.stringify(summary)).not.toContain(secret);
    }
    const back = await snapshots.readBundle(KEY);
    expect(back.files.get('pki/ca.key')!.toString()).toBe(CA_KEY);
    expect(back.files.get('pki/sa.key')!.toString()).toBe(SA_KEY);
    expect(back.files.get('kubeadm/ClusterConfiguration')!.toString()).toBe(CLUSTER_CONFIG);
    expect(back.files.get('kubelet/cp1/kubeadm-flags.env')!.toString()).toContain('--node-ip=cp1');
    expect(back.manifest.items.find((i) => i.name === 'pki/ca.key')).toMatchObject({ mode: '600', node: 'cp2' });
    // `snapshot list`: complete.
    const listed = await snapshots.list('site-a');
    expect(listed.ignored).toEqual([]);
    expect(bundleCell(listed.snapshots[0]!.bundle)).toBe(`complete (${requiredItems(NODES).length} items from cp2)`);
  });

  it('a retry finds the stored bundle and reads no node again', async () => {
    const { bucket, snapshots, reads, activities } = setup();
    await commitSnapshot(snapshots, bucket);
    await activities.storeControlPlaneBundle({ cluster: 'site-a', node: 'cp2', key: KEY });
    const n = reads.length;
    const again = await activities.storeControlPlaneBundle({ cluster: 'site-a', node: 'cp2', key: KEY });
    expect(again.complete).toBe(true);
    expect(reads.length).toBe(n);
  });

  it('a node that does not answer, or a missing key: stored, but INCOMPLETE and named so', async () => {
    const { bucket, snapshots, activities } = setup({ down: ['cp3'], drop: ['/etc/kubernetes/pki/sa.key'] });
    await commitSnapshot(snapshots, bucket);
    const s = await activities.storeControlPlaneBundle({ cluster: 'site-a', node: 'cp2', key: KEY });
    expect(s.complete).toBe(false);
    expect(s.missing).toEqual([
      'pki/sa.key: no such file on site-a/cp2',
      'kubelet/cp3/config.yaml: cp3: connect ECONNREFUSED',
      'kubelet/cp3/kubeadm-flags.env: cp3: connect ECONNREFUSED',
    ]);
    const listed = await snapshots.list('site-a');
    expect(bundleCell(listed.snapshots[0]!.bundle)).toMatch(/^INCOMPLETE: pki\/sa.key: no such file/);
  });

  it('a snapshot without a bundle is listed as not enough for a rebuild; readBundle refuses it', async () => {
    const { bucket, snapshots } = setup();
    await commitSnapshot(snapshots, bucket);
    const listed = await snapshots.list('site-a');
    expect(listed.snapshots[0]!.bundle).toBeUndefined();
    expect(bundleCell(undefined)).toBe('NONE: not enough for a rebuild');
    await expect(snapshots.readBundle(KEY)).rejects.toMatchObject({ type: FailureType.SnapshotNotFound });
  });

  it('a tampered manifest, a corrupt object or another key is refused and reported, never used', async () => {
    const { bucket, snapshots, activities } = setup();
    await commitSnapshot(snapshots, bucket);
    await activities.storeControlPlaneBundle({ cluster: 'site-a', node: 'cp2', key: KEY });
    const mkey = bundleManifestKeyOf(KEY);
    const original = bucket.objects.get(mkey)!.body;
    const data = bucket.objects.get(bundleKeyOf(KEY))!.body;

    // An item's hash changed in the manifest: its signature no longer verifies.
    const m = parseBundleManifest(original.toString()) as BundleManifest;
    const forged = {
      ...m,
      items: m.items.map((i) => (i.name === 'pki/ca.key' ? { ...i, sha256: 'f'.repeat(64) } : i)),
    };
    await bucket.put(mkey, bundleManifestJson(forged));
    await expect(snapshots.readBundle(KEY)).rejects.toMatchObject({ type: FailureType.SnapshotUntrusted });
    let listed = await snapshots.list('site-a');
    expect(listed.snapshots[0]!.bundle).toBeUndefined();
    expect(listed.ignored).toEqual([{ key: mkey, why: expect.stringMatching(/signature does not verify/) }]);

    // A flipped byte in the encrypted object.
    await bucket.put(mkey, original);
    const flipped = Buffer.from(data);
    flipped[flipped.length - 40]! ^= 1;
    await bucket.put(bundleKeyOf(KEY), flipped);
    await expect(snapshots.readBundle(KEY)).rejects.toMatchObject({ type: FailureType.SnapshotCorrupt });

    // Signed with another worker's key.
    await bucket.put(bundleKeyOf(KEY), data);
    const other = new SnapshotKeys(randomBytes(32), randomBytes(32));
    await bucket.put(mkey, bundleManifestJson(other.signBundle({ ...m, encryptionKeyId: keys.encryptionKeyId })));
    listed = await snapshots.list('site-a');
    expect(listed.ignored[0]!.why).toMatch(/does not verify/);
  });

  it('retention deletes the bundle with its snapshot', async () => {
    const { bucket, snapshots, activities } = setup();
    await commitSnapshot(snapshots, bucket);
    await activities.storeControlPlaneBundle({ cluster: 'site-a', node: 'cp2', key: KEY });
    await snapshots.remove(KEY);
    expect([...bucket.objects.keys()]).toEqual([]);
  });
});
