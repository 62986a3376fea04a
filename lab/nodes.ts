// A control-plane node's disk, as an operator's provisioning leaves it before `kubeadm init/join`
// (lab/kubeadm.ts): containerd's configuration, crictl's, the node agents on its PATH (kubelet,
// kubeadm, crictl, kubectl; no etcd tool, no kube-apiserver: those live in images), its own sshd
// with its own host key, its hostname and hosts file, the site's certificate authorities where
// kubeadm looks for them (kubeadm keeps an existing CA and issues every other certificate
// itself), and on one node per site an ext4 image for /var/lib/etcd (a dedicated etcd disk). The
// node's init (lab/supervisor.ts) bind-mounts it all in place.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { pauseImage } from './images.ts';
import { bin, type LabBastion, type LabNode, type LabCluster, LOGIN, paths } from './topology.ts';

/** Where kubeadm keeps the PKI, inside a node. */
export const NODE_PKI = '/etc/kubernetes/pki';
/** The containerd socket on every node (and the containerd namespace the kubelet's containers live in). */
export const CONTAINERD_SOCK = '/run/containerd/containerd.sock';

export interface SiteCas {
  kube: { crt: string; key: string };
  frontProxy: { crt: string; key: string };
  etcd: { crt: string; key: string };
  /** Directory holding sa.key and sa.pub. */
  saDir: string;
}

export function staticPod(
  name: string,
  image: string,
  command: string[],
  opts: { env?: Record<string, string>; hostPaths?: Record<string, string> } = {},
): object {
  const container: Record<string, unknown> = { name, image, command };
  if (opts.env && Object.keys(opts.env).length)
    container.env = Object.entries(opts.env).map(([k, value]) => ({ name: k, value }));
  const mounts = Object.entries(opts.hostPaths ?? {});
  container.volumeMounts = mounts.map(([path], i) => ({ name: `host-${i}`, mountPath: path, readOnly: true }));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'kube-system', labels: { component: name, tier: 'control-plane' } },
    spec: {
      hostNetwork: true,
      priorityClassName: 'system-node-critical',
      containers: [container],
      volumes: mounts.map(([path, type], i) => ({ name: `host-${i}`, hostPath: { path, type } })),
    },
  };
}

export const manifestPath = (node: LabNode, name: string) =>
  join(node.root, 'etc/kubernetes/manifests', `${name}.yaml`);
export const parkedPath = (node: LabNode, name: string) =>
  join(node.root, 'etc/kubernetes/manifests-parked', `${name}.yaml`);

/**
 * Writes a static pod manifest unless it is parked (moved aside on purpose: by `lab site down
 * --hard` or a restore runbook, which will move it back). Rewriting identical content changes
 * nothing: the kubelet restarts a pod only when its manifest changes.
 */
export function writeManifest(node: LabNode, name: string, pod: object): void {
  if (existsSync(parkedPath(node, name))) return;
  const file = manifestPath(node, name);
  const text = stringify(pod);
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
  mkdirSync(join(node.root, 'etc/kubernetes/manifests'), { recursive: true });
  writeFileSync(`${file}.tmp`, text);
  copyFileSync(`${file}.tmp`, file);
  rmSync(`${file}.tmp`);
}

/** A binary from the cache linked into the node's /usr/local/bin. */
export function linkTool(target: string, link: string) {
  rmSync(link, { force: true });
  symlinkSync(target, link);
}

export function sshKeygen(args: string[]) {
  execFileSync('ssh-keygen', args, { stdio: 'ignore' });
}

/** `ssh-keygen -lf` prints "256 SHA256:... comment (ED25519)": the pinned form drctl.yaml takes. */
export function hostKeyFingerprint(host: { root: string }): string {
  const out = execFileSync('ssh-keygen', ['-lf', join(host.root, 'etc/ssh/ssh_host_ed25519_key.pub')], {
    encoding: 'utf8',
  });
  return out.split(' ')[1]!;
}

/** sshd as a hardened host runs it: keys only; root login off where the site says so; on a site with a bastion, SSH only from it. */
function writeSshd(
  host: { root: string; ip: string },
  comment: string,
  opts: { permitRootLogin: boolean; onlyFrom?: string },
) {
  const dir = join(host.root, 'etc/ssh');
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(host.root, 'run'), { recursive: true });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKey)) sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', hostKey]);
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `ListenAddress ${host.ip}:22`,
      `HostKey ${hostKey}`,
      `PidFile ${join(host.root, 'run/sshd.pid')}`,
      // The login users' own (their home's .ssh), and root's from the lab's file.
      `AuthorizedKeysFile .ssh/authorized_keys ${paths.authorizedKeys}`,
      `PermitRootLogin ${opts.permitRootLogin ? 'prohibit-password' : 'no'}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PrintMotd no',
      'MaxSessions 64',
      'MaxStartups 64:30:128',
      'Subsystem sftp internal-sftp',
      ...(opts.onlyFrom ? [`AllowUsers *@${opts.onlyFrom}`] : []),
      '',
    ].join('\n'),
  );
}

function containerdConfig(): string {
  // restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so a negative oom_score_adj (every
  // pod sandbox asks for one) would fail in runc (../shared/FACTS.md). The pause image is the
  // lab's own; nothing is ever pulled.
  return `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "${CONTAINERD_SOCK}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`;
}

const CRICTL_YAML = `runtime-endpoint: unix://${CONTAINERD_SOCK}\nimage-endpoint: unix://${CONTAINERD_SOCK}\ntimeout: 10\n`;

/** What the nodes share with this machine (one /etc): the login users, their sudo rights, the mount targets of the nodes' own files. */
export function layoutHostAccounts(): void {
  for (const user of [LOGIN.user, LOGIN.noSudoUser]) {
    try {
      execFileSync('id', [user], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', user]);
    }
    // '*' rather than useradd's '!': a locked account may not log in even with a key (sshd without PAM).
    execFileSync('usermod', ['-p', '*', user]);
    // The operator's key, readable by the user (sshd reads authorized keys as the user).
    const home = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).split(':')[5]!;
    mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    writeFileSync(join(home, '.ssh/authorized_keys'), readFileSync(`${paths.sshKey}.pub`, 'utf8'), { mode: 0o600 });
    execFileSync('chown', ['-R', `${user}:${user}`, join(home, '.ssh')]);
  }
  const sudoers = '/etc/sudoers.d/drctl-lab';
  const rule = `# drctl lab: the operator login on every node (${LOGIN.noSudoUser} has no rule on purpose)\n${LOGIN.user} ALL=(root) NOPASSWD: ALL\n`;
  if (!existsSync(sudoers) || readFileSync(sudoers, 'utf8') !== rule) writeFileSync(sudoers, rule, { mode: 0o440 });
  if (!existsSync('/etc/crictl.yaml')) writeFileSync('/etc/crictl.yaml', CRICTL_YAML);
  // A CNI configuration, so containerd reports the network ready and the nodes turn Ready: the
  // control plane's pods all use the host's network, so the plugin is never called for them.
  mkdirSync('/etc/cni/net.d', { recursive: true });
  const cni = '/etc/cni/net.d/10-drctl-lab.conflist';
  if (!existsSync(cni))
    writeFileSync(
      cni,
      JSON.stringify({ cniVersion: '1.0.0', name: 'drctl-lab', plugins: [{ type: 'loopback' }] }, null, 2),
    );
  if (!existsSync('/etc/hostname')) writeFileSync('/etc/hostname', 'localhost\n');
}

/**
 * The node's disk before kubeadm: directories, CAs, tools, containerd, sshd, hostname, the etcd
 * disk. Without `cas`, only what an operator's provisioning leaves on a new host (OS, sshd,
 * containerd, kubelet, kubeadm, kubectl, crictl, an empty etcd disk; kubeadm's package's empty
 * manifest dir): a destroyed site's hosts (lab/site-loss.ts siteDestroy).
 */
export function layoutNode(site: LabCluster, node: LabNode, cas: SiteCas | undefined): void {
  const r = (p: string) => join(node.root, p);
  for (const d of [
    ...(cas ? ['etc/kubernetes/pki/etcd', 'etc/kubernetes/manifests-parked', 'etc/kubernetes/kubeadm/patches'] : []),
    'etc/kubernetes/manifests',
    'etc/ssh',
    'etc/containerd',
    'var/lib',
    'var/log',
    'usr/local/bin',
    'run/containerd',
  ]) {
    mkdirSync(r(d), { recursive: true });
  }
  // The CAs kubeadm keeps (it issues every other certificate from them), the same on every node
  // of the site, as kubeadm's "manual certificate distribution" has them copied before a join.
  const pki = r('etc/kubernetes/pki');
  const place = (src: string, dst: string) => {
    if (!existsSync(dst)) copyFileSync(src, dst);
  };
  if (cas) {
    place(cas.kube.crt, join(pki, 'ca.crt'));
    place(cas.kube.key, join(pki, 'ca.key'));
    place(cas.frontProxy.crt, join(pki, 'front-proxy-ca.crt'));
    place(cas.frontProxy.key, join(pki, 'front-proxy-ca.key'));
    place(cas.etcd.crt, join(pki, 'etcd/ca.crt'));
    place(cas.etcd.key, join(pki, 'etcd/ca.key'));
    place(join(cas.saDir, 'sa.key'), join(pki, 'sa.key'));
    place(join(cas.saDir, 'sa.pub'), join(pki, 'sa.pub'));
  }

  const binDir = r('usr/local/bin');
  for (const gone of [
    'etcd',
    'etcdctl',
    'etcdutl',
    'kube-apiserver',
    'kube-controller-manager',
    'kube-scheduler',
    'kwok',
    'velero',
  ])
    rmSync(join(binDir, gone), { force: true });
  linkTool(join(bin.nodeDir, 'kubelet'), join(binDir, 'kubelet'));
  linkTool(join(bin.nodeDir, 'kubeadm'), join(binDir, 'kubeadm'));
  linkTool(bin.crictl, join(binDir, 'crictl'));
  linkTool(join(bin.kubeDir, 'kubectl'), join(binDir, 'kubectl'));

  writeFileSync(r('etc/containerd/config.toml'), containerdConfig());
  writeFileSync(r('etc/crictl.yaml'), CRICTL_YAML);
  writeFileSync(r('etc/hostname'), `${node.name}\n`);
  writeFileSync(
    r('etc/hosts'),
    `127.0.0.1 localhost\n${node.ip} ${node.name} ${node.name}.${site.name}.lab\n${site.nodes
      .filter((n) => n !== node)
      .map((n) => `${n.ip} ${n.name}.${site.name}.lab`)
      .join('\n')}\n`,
  );
  writeSshd(node, node.id, {
    permitRootLogin: node.login.permitRootLogin,
    onlyFrom: (node.jump ?? site.bastion)?.ip,
  });
  if (node.etcdDisk) {
    const disk = r('disks/etcd.img');
    if (!existsSync(disk)) {
      mkdirSync(r('disks'), { recursive: true });
      // Sparse. Sized as a real etcd disk must be: above etcd's 2 GiB backend quota with room for
      // a defrag's copy and the WAL. A 2 GB disk filled up under the snapshot benchmark (900 MB of
      // data, then a defrag) and took its member down with a WAL it could not repair.
      execFileSync('truncate', ['-s', '8G', `${disk}.tmp`]);
      execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'etcd', `${disk}.tmp`]);
      execFileSync('mv', [`${disk}.tmp`, disk]);
    }
  }
}

export function layoutBastion(b: LabBastion): void {
  writeSshd(b, b.id, { permitRootLogin: false });
}
