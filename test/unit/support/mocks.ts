// The mocked activities the unit project's runbook tests (and scripts/record-unit-histories.ts) run
// the workflows with: what each runbook reads, shaped as the real activities return it.
import type { Activities } from '../../../activities/index.ts';
import type { RecoverMemberState } from '../../../common/etcd-recover.ts';
import { createLeaseActivities } from '../../../activities/lease.ts';
import type { Gateways } from '../../../gateways/index.ts';

export type Impl = Partial<Record<keyof Activities, (input: never) => unknown>>;

const nodes = ['cp1', 'cp2', 'cp3'];

/**
 * The approval activities for control-flow tests: the requester counts as proven and `{"by": X}`
 * as X's signed decision. Signatures themselves are tested with the real activities
 * (signed-approvals.test.ts).
 */
export const approvalImpl: Impl = {
  openGate: () => ({
    evidenceDigest: 'e'.repeat(64),
    unsignedAllowed: false,
    requester: { ok: true, signer: { by: 'alice', fingerprint: 'SHA256:mock-alice' } },
  }),
  verifyDecision: (i: { sent: { by?: string; reason?: string } }) =>
    i.sent?.by
      ? { ok: true, signer: { by: i.sent.by, fingerprint: `SHA256:mock-${i.sent.by}` }, reason: i.sent.reason }
      : { ok: false, why: 'unsigned' },
  digestEvidence: () => 'r'.repeat(64),
  // Leases are real child workflows on the test server; who holds one is read from it as the worker does.
  siteOfCluster: (i: { cluster: string }) => i.cluster,
  leaseHolder: (i: { site: string }) =>
    createLeaseActivities({ site: () => undefined } as unknown as Gateways).leaseHolder(i),
};

export const restoreImpl: Impl = {
  ...approvalImpl,
  describeCluster: () => ({
    cluster: 'c1',
    nodes: nodes.map((n, i) => ({
      name: n,
      memberName: n,
      peerUrl: `https://127.0.9.${i + 1}:2380`,
      clientUrl: `https://127.0.9.${i + 1}:2379`,
      dataDir: '/var/lib/etcd',
      apiserver: true,
    })),
  }),
  loadApprovalPolicy: () => ({ approvers: ['alice', 'bob'], twoPersonRule: true, timeoutMs: 3_600_000 }),
  resolveSnapshot: () => ({
    key: 'snapshots/c1/s.db',
    takenAt: new Date().toISOString(),
    revision: 100,
    etcdHash: 1,
    sha256: 'ab',
    size: 1000,
    member: 'cp2',
    etcdVersion: '3.5.35',
  }),
  restorePreflightNode: (r: { node: string }) => ({
    node: r.node,
    reachable: true,
    etcdVersion: '3.5.35',
    tool: 'etcdutl',
    supportsBumpRevision: true,
    freeBytes: 1e10,
    etcdHealthy: false,
    revision: 150,
  }),
  stageSnapshot: () => ({ skipped: false }),
  checkStagedSnapshot: () => ({ sha256: 'ab', revision: 100 }),
  moveDataDirAside: () => 'moved',
  restoreMember: () => 'restored',
  verifyQuorum: () => ({ revision: 1_000_000_200, leader: 'cp1' }),
  countKeys: () => nodes.map((node) => ({ node, keys: 10, revision: 1_000_000_200 })),
  waitApiserverReady: () => 'ready',
  restartControllers: () => 'cp1/kube-controller-manager',
};

export const failoverImpl: Impl = {
  ...approvalImpl,
  loadApprovalPolicy: restoreImpl.loadApprovalPolicy,
  failoverPreflight: () => ({
    drReady: [{ check: 'api', ok: true, detail: 'ready' }],
    primaryReachable: true,
    primaryDetail: 'ok',
    backup: { name: 'b1', ageSeconds: 10, completedAt: new Date().toISOString() },
    namespaces: ['demo-app'],
    storageLocation: { name: 'default' },
    rpoTargetMs: 300_000,
    rtoTargetMs: 900_000,
    rpoPolicy: 'refuse',
    warnings: [],
    existingAtTarget: [],
    records: [{ name: 'app.example.com', addresses: ['127.0.10.100'], ttl: 30 }],
    toAddress: '127.0.20.100',
    fromAddress: '127.0.10.100',
  }),
  fencePrimary: () => ({ fenced: ['Deployment demo-app/nginx 3→0'] }),
  unfencePrimary: () => ['Deployment demo-app/nginx →3'],
  namespacesAt: () => [],
  veleroRestore: () => ({ phase: 'Completed', warnings: 0, itemsRestored: 10 }),
  backupContents: () => ({}),
  verifySite: () => [{ check: 'deployments', ok: true, detail: '1/1 available' }],
  switchDns: (i: { records: { name: string }[] }) => i.records.map((r) => ({ name: r.name, before: ['127.0.10.100'] })),
  verifyDns: () => [],
  probeApp: () => ({ ok: true, detail: '200' }),
  promoteSite: () => [],
};

export const namespaceRestoreImpl: Impl = {
  ...failoverImpl,
  namespaceRestorePreflight: (i: { site: string; namespaces: string[]; before: string }) => ({
    site: i.site,
    namespaces: i.namespaces,
    before: i.before,
    drReady: [{ check: 'api', ok: true, detail: 'ready' }],
    present: i.namespaces.map((namespace) => ({ namespace, phase: namespace === 'stuck' ? 'Terminating' : 'absent' })),
    backup: {
      name: 'b1',
      ageSeconds: 600,
      startedAt: new Date(Date.parse(i.before) - 600_000).toISOString(),
      completedAt: new Date(Date.parse(i.before) - 590_000).toISOString(),
      includedNamespaces: i.namespaces,
    },
    contents: { 'v1/Namespace': 1 },
    volumes: [{ name: 'pv1', claim: 'demo-app/data', phase: 'Released', staleUid: 'u1' }],
    records: ['app.example.com'],
    siteAddress: '127.0.10.100',
    tier: 'e-commerce',
    rpoTargetSeconds: 3600,
    warnings: [],
  }),
  releaseRetainedVolumes: () => ['pv1'],
  settleReleasedVolumes: () => ['pv1 Bound'],
  removeRestored: () => ['namespace demo-app deleted'],
};

export const protectImpl: Impl = {
  ...failoverImpl,
  protectionPreflight: () => ({
    cluster: 'site-a',
    namespaces: [
      { name: 'demo-app', exists: true, labelled: false },
      { name: 'shop', exists: true, labelled: true },
    ],
    policy: false,
    binding: false,
  }),
  installProtectionPolicy: () => ({ policy: true, binding: true }),
  verifyProtection: (i: { namespaces: string[] }) =>
    Object.fromEntries(i.namespaces.map((ns) => [ns, 'delete denied: labelled protected=true'])),
};

export const drillImpl: Impl = {
  ...approvalImpl,
  ...failoverImpl,
  loadDrillPlan: () => ({
    name: 'q',
    from: 'site-a',
    to: 'site-b',
    toCluster: 'site-b',
    etcdRestore: false,
    record: { name: 'drill.app.example.com', ttl: 30 },
    workloads: [{ tier: 'e-commerce', namespaces: ['demo-app'] }],
    targets: { 'e-commerce': { rpoSeconds: 300, rtoSeconds: 900 } },
    criteria: ['backup-present', 'restore-complete', 'app-serves', 'cleanup'],
    approvers: ['alice', 'bob'],
    twoPersonRule: true,
    approvalTimeoutMs: 3_600_000,
    signoffTimeoutMs: 7 * 24 * 3_600_000,
    verifyTimeoutMs: 60_000,
  }),
  drillPreflight: (i: { plan: unknown }) => ({
    plan: i.plan,
    drReady: [{ check: 'api', ok: true, detail: 'ready' }],
    existingAtTarget: [],
    backup: { name: 'b1', ageSeconds: 10, completedAt: new Date().toISOString() },
    namespaces: ['demo-app'],
    sourceWorkloads: { nginx: 1 },
    sourceDetail: '1 deployment',
    recordBefore: ['127.0.10.100'],
    toAddress: '127.0.20.100',
  }),
  siteDeployments: () => [{ name: 'nginx', available: 1 }],
  drillCleanupCheck: () => ({ ok: true, detail: 'demo-app gone, record back' }),
  writeDrillReport: () => ({ bucket: 'b', json: 'r.json', html: 'r.html' }),
};

/** Fails only the first call that matches: the undo calling the same activity must succeed. */
export function once(match: (input: { component?: string; node?: string }) => boolean) {
  let done = false;
  return (input: never) => {
    if (done || !match(input)) return false;
    return (done = true);
  };
}

// ---- etcd recover (test/unit/etcd-recover.test.ts): site A's three members lost, b1 and b2 without a leader

export const member = (node: string, over: Partial<RecoverMemberState> = {}): RecoverMemberState => ({
  node,
  site: node.startsWith('a') ? 'site-a' : 'site-b',
  memberName: node,
  peerUrl: `https://10.0.0.${node.charCodeAt(0)}${node.slice(1)}:2380`,
  reachable: true,
  etcdRunning: true,
  hasLeader: false,
  ...over,
});
export const lostMember = (node: string) =>
  member(node, { reachable: false, etcdRunning: false, hasLeader: undefined, error: 'refused' });
export const SITE_A_LOST = [
  lostMember('a1'),
  lostMember('a2'),
  lostMember('a3'),
  member('b1', { raftIndex: 120, revision: 90, walWrittenAt: '2026-12-04T10:00:00.000Z' }),
  member('b2', { raftIndex: 121, revision: 91 }),
];

const STRETCHED_NODES = ['a1', 'a2', 'a3', 'b1', 'b2'];
export const recoverImpl: Impl = {
  ...approvalImpl,
  loadApprovalPolicy: restoreImpl.loadApprovalPolicy,
  describeEtcdLayout: () =>
    STRETCHED_NODES.map((n) => ({ node: n, host: n, peerPort: 2380, site: n[0] === 'a' ? 'site-a' : 'site-b' })),
  readRecoverMember: (i: { node: string }) => SITE_A_LOST.find((m) => m.node === i.node),
  listSnapshots: () => ({
    snapshots: [{ key: 's/1', takenAt: '2026-12-04T09:50:00.000Z', revision: 40 }],
    ignored: [],
  }),
  recoverMemberPlan: (i: { node: string }) => ({
    node: i.node,
    memberName: i.node,
    peerUrl: `https://${i.node}:2380`,
    clientUrl: `https://${i.node}:2379`,
    dataDir: '/var/lib/etcd',
    asideDir: '/var/lib/etcd.drctl-t',
    workDir: '/var/lib/drctl-recover-t',
    stagedSnapshot: '',
    tool: 'etcdutl',
    markCompacted: false,
    apiserver: true,
    restoreCommand: '',
  }),
  stopComponent: () => 'stopped',
  startComponent: () => 'started',
  moveDataDirAside: () => 'moved',
  copyAsideBack: () => 'copied',
  forceNewCluster: () => 'forced',
  addMember: () => ({
    outcome: 'added',
    initialCluster: 'b2=https://b2:2380,b1=https://b1:2380',
    members: ['b2', 'b1'],
  }),
  setJoinFlags: () => 'written',
  promoteMember: () => 'promoted',
  verifyQuorum: (i: { plan: { nodes: { memberName: string; peerUrl: string }[] } }) => ({
    revision: 95,
    leader: 'b2',
    members: i.plan.nodes.map((n) => `${n.memberName}=${n.peerUrl}`),
  }),
  waitApiserverReady: () => 'ok',
  putOriginalBack: () => 'put-back',
  restoreEtcdManifest: () => 'restored',
};

// ---- etcd rejoin: b1 and b2 a cluster of two with a leader, a1 back with its old data
export const rejoinImpl: Impl = {
  ...recoverImpl,
  readRecoverMember: (i: { node: string }) =>
    i.node === 'a1'
      ? member('a1', { raftIndex: 80, revision: 60 })
      : i.node.startsWith('a')
        ? lostMember(i.node)
        : member(i.node, { raftIndex: 200, revision: 150, hasLeader: true }),
  listMembers: () => [
    { name: 'b1', peerUrl: member('b1').peerUrl },
    { name: 'b2', peerUrl: member('b2').peerUrl },
    { name: 'a1', peerUrl: member('a1').peerUrl },
  ],
  addMember: () => ({ outcome: 'added', initialCluster: 'b1=x,b2=y,a1=z', members: ['b1', 'b2', 'a1'] }),
  removeMember: () => 'removed',
  startEtcd: () => 'started',
};

// ---- cluster rebuild: three new hosts, a snapshot with a complete bundle
export const REBUILD_ITEMS = [
  'pki/ca.crt',
  'pki/ca.key',
  'kubeadm/ClusterConfiguration',
  ...nodes.flatMap((n) => [`kubelet/${n}/config.yaml`, `kubelet/${n}/kubeadm-flags.env`]),
];
export const newHost = (node: string, over: Record<string, unknown> = {}) => ({
  node,
  address: `127.0.9.${nodes.indexOf(node) + 1}`,
  reachable: true,
  leftovers: [],
  hostname: node,
  kubeadm: 'v1.35.4',
  kubelet: 'v1.35.4',
  images: 5,
  freeBytes: 1e10,
  ...over,
});
export const rebuildImpl: Impl = {
  ...restoreImpl,
  resolveRebuildSource: () => ({
    snapshot: (restoreImpl.resolveSnapshot as () => unknown)(),
    bundle: {
      complete: true,
      fromNode: 'cp2',
      takenAt: '2026-12-04T10:00:00.000Z',
      items: REBUILD_ITEMS.length,
      missing: [],
    },
    items: REBUILD_ITEMS,
    passedOver: [],
  }),
  rebuildPreflightHost: (i: { node: string }) => newHost(i.node),
  layRebuildPki: () => '8 written',
  runKubeadmPhases: () => ['== certs all', '[certs] Using existing ca certificate authority'],
  startRebuiltKubelet: () => 'started',
  verifyRebuilt: () => ({
    kubeadmConfigMatches: true,
    nodes: nodes.map((name) => ({ name, ready: true })),
    backupLocations: [{ name: 'default', phase: 'Available' }],
  }),
  resetRebuiltHost: () => 'reset',
  cleanupStaged: () => ({ pruned: [] }),
};
