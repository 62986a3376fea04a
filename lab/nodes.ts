// A control-plane node's disk, as `drctl lab up` lays it out on the lab host (the node bind-mounts
// it over /etc/kubernetes, /var/lib and /usr/local/bin: lab/supervisor.ts): kubeadm's etcd PKI, the
// site's etcd version in /usr/local/bin, its own sshd with its own host key, and the static pod
// manifests the supervisor runs. Every node runs sshd and etcd; cp1 also runs the rest of the
// site's control plane (lab/controlplane.ts).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { leaf } from './pki.ts';
import { bin, type LabNode, type LabSite, paths } from './topology.ts';

/** Where kubeadm keeps the PKI, inside a node. */
export const NODE_PKI = '/etc/kubernetes/pki';

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

/** A binary from the cache linked into the node's /usr/local/bin. */
export function linkTool(target: string, link: string) {
  rmSync(link, { force: true });
  symlinkSync(target, link);
}

export function sshKeygen(args: string[]) {
  execFileSync('ssh-keygen', args, { stdio: 'ignore' });
}

/** `ssh-keygen -lf` prints "256 SHA256:... comment (ED25519)": the pinned form drctl.yaml takes. */
export function hostKeyFingerprint(node: LabNode): string {
  const out = execFileSync('ssh-keygen', ['-lf', join(node.root, 'etc/ssh/ssh_host_ed25519_key.pub')], {
    encoding: 'utf8',
  });
  return out.split(' ')[1]!;
}

function etcdManifest(site: LabSite, node: LabNode): object {
  const cluster = site.nodes.map((n) => `${n.name}=https://${n.ip}:2380`).join(',');
  return staticPod('etcd', `registry.k8s.io/etcd:${site.etcdVersion.slice(1)}-0`, [
    'etcd',
    `--name=${node.name}`,
    '--data-dir=/var/lib/etcd',
    `--listen-client-urls=https://${node.ip}:2379`,
    `--advertise-client-urls=https://${node.ip}:2379`,
    `--listen-peer-urls=https://${node.ip}:2380`,
    `--initial-advertise-peer-urls=https://${node.ip}:2380`,
    `--initial-cluster=${cluster}`,
    '--initial-cluster-state=new',
    `--initial-cluster-token=${site.name}`,
    `--listen-metrics-urls=http://${node.ip}:2381`,
    `--cert-file=${NODE_PKI}/etcd/server.crt`,
    `--key-file=${NODE_PKI}/etcd/server.key`,
    `--trusted-ca-file=${NODE_PKI}/etcd/ca.crt`,
    '--client-cert-auth=true',
    `--peer-cert-file=${NODE_PKI}/etcd/peer.crt`,
    `--peer-key-file=${NODE_PKI}/etcd/peer.key`,
    `--peer-trusted-ca-file=${NODE_PKI}/etcd/ca.crt`,
    '--peer-client-cert-auth=true',
    '--snapshot-count=10000',
  ]);
}

function writeSshd(node: LabNode, clientPub: string) {
  const dir = join(node.root, 'etc/ssh');
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKey)) sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', `${node.id}`, '-f', hostKey]);
  writeFileSync(paths.authorizedKeys, clientPub, { mode: 0o600 });
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `ListenAddress ${node.ip}:22`,
      `HostKey ${hostKey}`,
      `PidFile ${join(node.root, 'run/sshd.pid')}`,
      `AuthorizedKeysFile ${paths.authorizedKeys}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PrintMotd no',
      'MaxSessions 64',
      'MaxStartups 64:30:128',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
}

/**
 * The node's directories, etcd certificates, tools and sshd. The etcd manifest is written only on
 * a `fresh` node (never laid out before): on a rerun it stays as it is, in place or parked.
 */
export function layoutNode(
  site: LabSite,
  node: LabNode,
  etcdCa: { crt: string; key: string },
  clientPub: string,
  fresh: boolean,
): void {
  const r = (p: string) => join(node.root, p);
  for (const d of [
    'etc/kubernetes/pki/etcd',
    'etc/kubernetes/manifests',
    'etc/ssh',
    'var/lib',
    'var/log',
    'usr/local/bin',
    'run',
  ]) {
    mkdirSync(r(d), { recursive: true });
  }
  const etcdPki = r('etc/kubernetes/pki/etcd');
  copyFileSync(etcdCa.crt, join(etcdPki, 'ca.crt'));
  const sans = { ips: [node.ip, '127.0.0.1'], dns: [node.name, `${node.name}.${site.name}.lab`, 'localhost'] };
  leaf(etcdCa, join(etcdPki, 'server'), { cn: node.name, ...sans, usage: ['server', 'client'] });
  leaf(etcdCa, join(etcdPki, 'peer'), { cn: node.name, ...sans, usage: ['server', 'client'] });
  leaf(etcdCa, join(etcdPki, 'healthcheck-client'), { cn: 'kube-etcd-healthcheck-client', usage: ['client'] });

  const binDir = r('usr/local/bin');
  for (const tool of ['etcd', 'etcdctl', 'etcdutl']) linkTool(join(bin.etcdDir(site.name), tool), join(binDir, tool));
  linkTool(join(bin.kubeDir, 'kubectl'), join(binDir, 'kubectl'));

  writeSshd(node, clientPub);
  if (fresh) writeFileSync(manifestPath(node, 'etcd'), stringify(etcdManifest(site, node)));
}
