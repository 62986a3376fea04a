// What `drctl lab up` writes before it starts anything, each file only where absent or when it
// would come out the same: the lab's directories, the operator's SSH key and login users, MinIO's
// credentials, the worker's snapshot encryption and signing keys, per site its CAs (kubeadm keeps
// them and issues the rest), its nodes' and bastion's disks (lab/nodes.ts, lab/controlplane.ts)
// and its admin kubeconfig, and PowerDNS's configuration (lab/pdns.ts).
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { layoutCp1Extras } from './controlplane.ts';
import { layoutBastion, layoutHostAccounts, layoutNode, sshKeygen } from './nodes.ts';
import { layoutPdns } from './pdns.ts';
import { ca, kubeconfig, leaf, serviceAccountKeys } from './pki.ts';
import { readState } from './processes.ts';
import { CLUSTERS, isSite, LAB_DIR, type LabCluster, paths, PEOPLE } from './topology.ts';

function layoutCluster(site: LabCluster, destroyed: boolean) {
  const pki = paths.pki(site.name);
  const etcdCa = ca(join(pki, 'etcd'), `${site.name}-etcd-ca`);
  const kubeCa = ca(join(pki, 'kubernetes'), `${site.name}-kubernetes-ca`);
  const frontProxy = ca(join(pki, 'front-proxy'), `${site.name}-front-proxy-ca`);
  serviceAccountKeys(join(pki, 'kubernetes'));
  // A destroyed site's hosts get what provisioning lays down, nothing of kubeadm's: its CAs come
  // back from the off-site bundle (`drctl cluster rebuild`), never from here.
  for (const node of site.nodes) {
    layoutNode(
      site,
      node,
      destroyed ? undefined : { kube: kubeCa, frontProxy, etcd: etcdCa, saDir: join(pki, 'kubernetes') },
    );
    if (node.first && isSite(site) && !destroyed) layoutCp1Extras(site, node, kubeCa);
  }
  if (site.bastion) layoutBastion(site.bastion);
  // Admin kubeconfig with a client certificate (system:masters), like kubeadm's admin.conf.
  mkdirSync(join(LAB_DIR, 'kube'), { recursive: true });
  const admin = join(pki, 'kubernetes', 'admin');
  leaf(kubeCa, admin, { cn: 'kubernetes-admin', org: 'system:masters', usage: ['client'] });
  writeFileSync(site.kubeconfig, kubeconfig(site, `admin-${site.name}`, kubeCa.crt, admin, `admin@${site.name}`), {
    mode: 0o600,
  });
}

export function layout() {
  for (const d of [
    LAB_DIR,
    paths.logs,
    join(LAB_DIR, 'ssh'),
    paths.minioData,
    join(LAB_DIR, 'temporal'),
    paths.pdnsDir,
  ])
    mkdirSync(d, { recursive: true });
  // Mount points for the nodes' private disks, and sshd's privilege-separation dir.
  for (const d of ['/etc/kubernetes', '/run/sshd', '/run/containerd']) mkdirSync(d, { recursive: true });
  if (!existsSync(paths.sshKey))
    sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'drctl-lab-operator', '-f', paths.sshKey]);
  writeFileSync(paths.authorizedKeys, readFileSync(`${paths.sshKey}.pub`, 'utf8'), { mode: 0o600 });
  for (const who of PEOPLE) {
    mkdirSync(dirname(paths.personKey(who)), { recursive: true, mode: 0o700 });
    if (!existsSync(paths.personKey(who)))
      sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', `${who}@drctl-lab`, '-f', paths.personKey(who)]);
  }
  layoutHostAccounts();
  raiseInotifyInstances();
  if (!existsSync(paths.minioCreds)) {
    writeFileSync(
      paths.minioCreds,
      stringify({ accessKeyId: 'drctl-lab', secretAccessKey: randomBytes(18).toString('base64url') }),
      { mode: 0o600 },
    );
  }
  layoutSnapshotKeys();
  const down = readState().sitesDown ?? {};
  for (const c of CLUSTERS) layoutCluster(c, !!down[c.name]?.destroyed);
  layoutPdns();
}

/**
 * The lab worker's snapshot keys, each 32 random bytes in base64 (`openssl rand -base64 32`), made
 * once and kept: snapshots in the lab's bucket stay restorable across `lab up`s.
 */
function layoutSnapshotKeys() {
  mkdirSync(paths.keysDir, { recursive: true, mode: 0o700 });
  chmodSync(paths.keysDir, 0o700);
  for (const file of [paths.snapshotEncryptionKey, paths.snapshotSigningKey]) {
    if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
  }
}

/**
 * Every kubelet (cAdvisor) and containerd takes inotify instances, all as root of this machine's
 * one user namespace: eleven kubelets with the stretched cluster outgrow the kernel's default of
 * 128 (measured: the fifth stretched member's kubelet died with "inotify_init: too many open
 * files"). A host runs one kubelet; this machine runs them all.
 */
function raiseInotifyInstances(want = 1024) {
  const file = '/proc/sys/fs/inotify/max_user_instances';
  if (Number(readFileSync(file, 'utf8')) < want) writeFileSync(file, String(want));
}
