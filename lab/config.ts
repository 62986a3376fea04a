// What drctl sees of the lab: the drctl.yaml `lab up` writes (both sites' nodes with their pinned
// SSH host keys, the off-site bucket, PowerDNS, approvers, the failover and drill settings), and
// the shell exports `drctl lab env` prints to poke at one site by hand.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostKeyFingerprint } from './nodes.ts';
import { VELERO_NS } from './controlplane.ts';
import { pdnsApi } from './pdns.ts';
import { minioCreds } from './services.ts';
import {
  APPROVERS,
  bin,
  isSite,
  type LabCluster,
  type LabNode,
  LOGIN,
  PEOPLE,
  onHost,
  paths,
  SERVICES,
  siteNamed,
  SITES,
  STRETCHED,
  VERSIONS,
} from './topology.ts';
import { QUARTERLY } from '../config/schema.ts';
import { minorOf } from '../common/snapshot-proof.ts';

export const LAB_TASK_QUEUE = 'drctl';

export function labConfig(): object {
  return {
    temporal: {
      address: `${SERVICES.temporal.ip}:${SERVICES.temporal.port}`,
      namespace: 'default',
      taskQueue: LAB_TASK_QUEUE,
      webUi: `http://${SERVICES.temporal.ip}:${SERVICES.temporal.uiPort}`,
    },
    sites: SITES.map((site) => ({
      name: site.name,
      role: site.role,
      appEndpoint: `http://${site.appAddress}:${site.appPort}/healthz`,
      appAddress: site.appAddress,
      velero: { namespace: VELERO_NS, storageLocation: 'default' },
      cluster: {
        name: site.name,
        kubeconfig: site.kubeconfig,
        nodes: site.nodes.map((node) => nodeConfig(site, node)),
      },
    })),
    // The stretched cluster (`drctl lab stretched up`): its nodes each name the site they stand in.
    clusters: [
      {
        name: STRETCHED.name,
        kubeconfig: STRETCHED.kubeconfig,
        nodes: STRETCHED.nodes.map((node) => ({ ...nodeConfig(STRETCHED, node), site: node.location })),
        rolloutAfterRestore: [],
      },
    ],
    objectStore: {
      endpoint: `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`,
      bucket: SERVICES.minio.bucket,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { file: paths.minioCreds },
    },
    // By reference: the keys are files under the lab's state dir (lab/layout.ts), 0600.
    snapshots: {
      encryptionKey: { file: paths.snapshotEncryptionKey },
      signingKey: { file: paths.snapshotSigningKey },
      // The worker proves each snapshot restorable with the etcd of the cluster's minor version
      // (the lab's own builds: site A runs 3.5, site B 3.6).
      prove: {
        etcd: Object.fromEntries(
          Object.values(VERSIONS.etcd).map((v) => [minorOf(v.replace(/^v/, '')), bin.etcdVersionDir(v)]),
        ),
      },
    },
    // Each worker serves /metrics at its own address (lab/up-down.ts); a scrape sees state at most 5 s old.
    metrics: { refresh: '5s' },
    approvals: {
      approvers: [...APPROVERS],
      twoPersonRule: true,
      timeout: '1h',
      signers: Object.fromEntries(
        PEOPLE.map((who) => [who, readFileSync(`${paths.personKey(who)}.pub`, 'utf8').trim()]),
      ),
    },
    dns: {
      powerdns: { api: pdnsApi, apiKey: { file: paths.pdnsApiKey }, serverId: 'localhost' },
      nameserver: `${SERVICES.pdns.ip}:${SERVICES.pdns.port}`,
      zone: SERVICES.pdns.zone,
      records: [{ name: SERVICES.pdns.records[0], ttl: SERVICES.pdns.ttl }],
    },
    failover: {
      namespaces: ['demo-app'],
      tier: 'e-commerce',
      rpoPolicy: 'refuse',
      restoreTimeout: '5m',
      healthWatch: { interval: '10s', failuresToDown: 3, successesToUp: 5, autoFailover: true, autoApprove: false },
    },
    drills: [
      {
        name: 'quarterly',
        from: 'site-a',
        to: 'site-b',
        workloads: [{ tier: 'e-commerce', namespaces: ['demo-app'] }],
        record: { name: SERVICES.pdns.records[1], ttl: SERVICES.pdns.ttl },
        etcdRestore: false,
        schedule: QUARTERLY,
        verifyTimeout: '3m',
      },
    ],
  };
}

/** Shell exports to poke at one site by hand with etcdctl, kubectl or an S3 client. */
export function env(siteName: string): string {
  const site = siteNamed(siteName);
  const n1 = site.nodes[0]!;
  const c = minioCreds();
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const vars: [string, string][] = [
    ['DRCTL_CONFIG', paths.config],
    ['TEMPORAL_ADDRESS', `${SERVICES.temporal.ip}:${SERVICES.temporal.port}`],
    ['ETCDCTL_ENDPOINTS', site.nodes.map((n) => `https://${n.ip}:2379`).join(',')],
    ['ETCDCTL_CACERT', onHost(n1, '/etc/kubernetes/pki/etcd/ca.crt')],
    ['ETCDCTL_CERT', onHost(n1, '/etc/kubernetes/pki/etcd/healthcheck-client.crt')],
    ['ETCDCTL_KEY', onHost(n1, '/etc/kubernetes/pki/etcd/healthcheck-client.key')],
    ['KUBECONFIG', site.kubeconfig],
    ['AWS_ENDPOINT_URL', `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`],
    ['AWS_ACCESS_KEY_ID', c.accessKeyId],
    ['AWS_SECRET_ACCESS_KEY', c.secretAccessKey],
    ['AWS_REGION', 'us-east-1'],
    ['DRCTL_BUCKET', SERVICES.minio.bucket],
    ['PDNS_API', pdnsApi],
    ['PATH', `${bin.etcdDir(site.name)}:${bin.kubeDir}:${dirname(bin.velero)}:$PATH`],
  ];
  return vars.map(([k, v]) => `export ${k}=${k === 'PATH' ? `"${v}"` : q(v)}`).join('\n');
}

/** A lab node as drctl.yaml names it: how to log in (pinned host keys), its etcd member, its control plane. */
function nodeConfig(cluster: LabCluster, node: LabNode): object {
  const bastion = node.jump ?? cluster.bastion;
  return {
    name: node.name,
    // Site A: root with a key. Site B, hardened: root login off, the operator's login with sudo,
    // and SSH only through the site's bastion (both hops' host keys pinned).
    ssh: {
      host: node.ip,
      port: 22,
      user: node.login.user,
      ...(node.login.sudo ? { sudo: true } : {}),
      privateKeyPath: paths.sshKey,
      hostKeyFingerprint: hostKeyFingerprint(node),
      ...(bastion
        ? {
            jump: {
              host: bastion.ip,
              port: 22,
              user: LOGIN.user,
              privateKeyPath: paths.sshKey,
              hostKeyFingerprint: hostKeyFingerprint(bastion),
            },
          }
        : {}),
    },
    etcd: {
      memberName: node.name,
      clientUrl: `https://${node.ip}:2379`,
      peerUrl: `https://${node.ip}:2380`,
      dataDir: '/var/lib/etcd',
      // kubeadm hosts have no etcd tool: etcdctl and etcdutl run from the node's etcd image.
      tools: { from: 'image' },
    },
    // The lab runs the Velero server as a static pod on each site's cp1 (lab/controlplane.ts).
    controlPlane: {
      profile: 'kubeadm',
      // No systemd on a lab node: its supervisor restarts a kubelet that exits, 2 s later, as
      // kubeadm's unit does (Restart=always).
      kubeletRestart: 'pkill -x kubelet',
      restartAfterRestore: [
        'kube-controller-manager',
        'kube-scheduler',
        ...(node.first && isSite(cluster) ? ['velero'] : []),
      ],
    },
    apiserver: node.runsApiserver,
  };
}
