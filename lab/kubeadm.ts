// Each site's control plane, laid out by the real kubeadm on its nodes: `kubeadm init` on cp1 and
// `kubeadm join --control-plane` on cp2 and cp3, with the lab's own image repository (images
// imported into each node's containerd from lab/images.ts; nothing is pulled). Per node only what
// kubeadm takes per node: its advertise address and name, and a patch giving its kubelet its own
// cgroup root. Runs only where kubeadm has not run yet (admin.conf / kubelet.conf are its marks),
// so a warm `lab up` does nothing here: the kubelets bring the static pods back.
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import {
  etcdImage,
  IMAGE_REPO,
  imageSpecs,
  imageTar,
  kubeImage,
  kwokImage,
  pauseImage,
  veleroImage,
} from './images.ts';
import { nodeCommand } from './namespaces.ts';
import { CONTAINERD_SOCK } from './nodes.ts';
import { cp1Of, isSite, LAB_NET, type LabCluster, type LabNode, VERSIONS } from './topology.ts';

const run = promisify(execFile);

/** Runs `argv` on the node as root (all of the node's namespaces). */
export async function onNode(node: LabNode, argv: string[], timeoutMs = 300_000): Promise<string> {
  const [cmd, ...rest] = [...nodeCommand(node), ...argv];
  try {
    const { stdout } = await run(cmd!, rest, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(
      `${node.id}: \`${argv.join(' ')}\` failed: ${(e.stderr || e.stdout || e.message).trim().slice(-3000)}`,
    );
  }
}

/** The preflight checks a lab node fails by construction, each for a reason the README gives. */
const IGNORED_PREFLIGHT = [
  'SystemVerification', // cgroup v1 (kubelet told failCgroupV1: false) and no /lib/modules configs
  'Swap',
  'FileExisting-conntrack', // no kube-proxy, no conntrack needed
  'FileExisting-socat',
  'Service-Kubelet', // no systemd: the node's init runs the kubelet
  'KubeletVersion',
  'Port-10250', // the kubelet may already listen (it is started before kubeadm, as systemd would)
  'DirAvailable--var-lib-etcd', // the dedicated etcd disk's mount point holds lost+found
  'Mem',
  'NumCPU',
];

function images(site: LabCluster, node: LabNode): string[] {
  return [
    etcdImage(site.etcdVersion),
    ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map(kubeImage),
    pauseImage,
    ...(node.first && isSite(site) ? [kwokImage, veleroImage] : []),
  ];
}

/** Imports the node's images into its containerd (namespace k8s.io, the kubelet's), the missing ones only. */
export async function ensureImages(site: LabCluster, node: LabNode): Promise<void> {
  const want = images(site, node);
  let have: string[] = [];
  for (let i = 0; ; i++) {
    try {
      have = (await onNode(node, ['ctr', '-a', CONTAINERD_SOCK, '-n', 'k8s.io', 'images', 'ls', '-q'])).split('\n');
      break;
    } catch (err) {
      if (i >= 100) throw err; // containerd not up yet
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const specs = imageSpecs(Object.values(VERSIONS.etcd));
  for (const ref of want.filter((r) => !have.includes(r))) {
    const spec = specs.find((s) => s.ref === ref)!;
    await onNode(node, ['ctr', '-a', CONTAINERD_SOCK, '-n', 'k8s.io', 'images', 'import', imageTar(spec)]);
  }
}

function kubeletConfig(): object {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    cgroupDriver: 'cgroupfs',
    // This machine has cgroup v1 only; kubelet 1.35 refuses it unless told (KEP-5573).
    failCgroupV1: false,
    failSwapOn: false,
    // The images cannot be pulled again: never collect them; and a full lab disk must not evict etcd.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
  };
}

function clusterConfig(site: LabCluster): object {
  const cp1 = cp1Of(site);
  return {
    apiVersion: 'kubeadm.k8s.io/v1beta4',
    kind: 'ClusterConfiguration',
    clusterName: site.name,
    kubernetesVersion: VERSIONS.kubernetes,
    imageRepository: IMAGE_REPO,
    controlPlaneEndpoint: `${cp1.ip}:6443`,
    etcd: {
      local: {
        imageTag: etcdImage(site.etcdVersion).split(':')[1],
        dataDir: '/var/lib/etcd',
        // A member that reaches another through a proxy or NAT (the stretched cluster's link) is
        // seen from the proxy's address, and etcd checks a peer certificate's IP SANs against the
        // connection's remote address: that address goes into every peer (and server) certificate.
        ...(isSite(site) ? {} : { peerCertSANs: [LAB_NET.hostIp], serverCertSANs: [LAB_NET.hostIp] }),
      },
    },
    networking: { serviceSubnet: '10.96.0.0/16', dnsDomain: 'cluster.local' },
    controllerManager: {
      extraArgs: [
        // A kubelet re-reports its pods' readiness when its node comes back; kwok does not. So a
        // short API outage (an etcd restore of this site) must not get the kwok nodes marked
        // NotReady: their pods would stay Ready=False for good.
        { name: 'node-monitor-grace-period', value: '10m' },
      ],
    },
  };
}

function nodeRegistration(node: LabNode): object {
  return {
    name: node.name,
    criSocket: `unix://${CONTAINERD_SOCK}`,
    imagePullPolicy: 'Never',
    ignorePreflightErrors: IGNORED_PREFLIGHT,
    kubeletExtraArgs: [{ name: 'node-ip', value: node.ip }],
  };
}

/** kubeadm's config for the node, and its per-node patch (the kubelet's own cgroup root). */
function writeKubeadmConfig(site: LabCluster, node: LabNode, join_?: { token: string; caHash: string }): string {
  const dir = 'etc/kubernetes/kubeadm';
  writeFileSync(
    `${node.root}/${dir}/patches/kubeletconfiguration+strategic.yaml`,
    stringify({ cgroupRoot: node.cgroupRoot }),
  );
  const patches = { directory: `/${dir}/patches` };
  const endpoint = { advertiseAddress: node.ip, bindPort: 6443 };
  const docs = join_
    ? [
        {
          apiVersion: 'kubeadm.k8s.io/v1beta4',
          kind: 'JoinConfiguration',
          discovery: {
            bootstrapToken: {
              apiServerEndpoint: `${cp1Of(site).ip}:6443`,
              token: join_.token,
              caCertHashes: [join_.caHash],
            },
          },
          nodeRegistration: nodeRegistration(node),
          controlPlane: { localAPIEndpoint: endpoint },
          patches,
        },
      ]
    : [
        {
          apiVersion: 'kubeadm.k8s.io/v1beta4',
          kind: 'InitConfiguration',
          localAPIEndpoint: endpoint,
          nodeRegistration: nodeRegistration(node),
          patches,
          // No bootstrap token here: each join gets its own, short-lived (kubeadm token create).
          bootstrapTokens: [],
        },
        clusterConfig(site),
        kubeletConfig(),
      ];
  const file = `${dir}/${join_ ? 'join' : 'init'}.yaml`;
  writeFileSync(join(node.root, file), docs.map((d) => stringify(d)).join('---\n'), { mode: 0o600 });
  return `/${file}`;
}

/** sha256 of the cluster CA's public key, as kubeadm's --discovery-token-ca-cert-hash wants it. */
async function caHash(cp1: LabNode): Promise<string> {
  const out = await onNode(cp1, [
    'sh',
    '-c',
    'openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum',
  ]);
  return `sha256:${out.split(' ')[0]}`;
}

export const kubeadmDone = (node: LabNode) =>
  existsSync(join(node.root, 'etc/kubernetes', node.first ? 'admin.conf' : 'kubelet.conf'));

/**
 * Lays out the site's control plane where kubeadm has not yet: init on cp1, then each other node
 * joins in turn (kubeadm adds its etcd member as a learner and promotes it: one at a time).
 */
export async function bootstrapSite(site: LabCluster, log: (m: string) => void): Promise<void> {
  const todo = site.nodes.filter((n) => !kubeadmDone(n));
  if (!todo.length) return;
  await Promise.all(site.nodes.map((n) => ensureImages(site, n)));
  const cp1 = cp1Of(site);
  if (!kubeadmDone(cp1)) {
    const t = Date.now();
    await onNode(cp1, [
      'kubeadm',
      'init',
      '--config',
      writeKubeadmConfig(site, cp1),
      '--skip-phases=addon/kube-proxy,addon/coredns',
    ]);
    log(`${cp1.id}: kubeadm init done (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  }
  for (const node of site.nodes.filter((n) => !n.first && !kubeadmDone(n))) {
    const t = Date.now();
    const token = (await onNode(cp1, ['kubeadm', 'token', 'create', '--ttl', '10m'])).trim();
    const cfg = writeKubeadmConfig(site, node, { token, caHash: await caHash(cp1) });
    await onNode(node, ['kubeadm', 'join', '--config', cfg]);
    log(`${node.id}: kubeadm join --control-plane done (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  }
}
