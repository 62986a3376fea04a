// The mocked activities the unit project's runbook tests (and scripts/record-unit-histories.ts) run
// the workflows with: what each runbook reads, shaped as the real activities return it.
import type { Activities } from '../../../activities/index.ts';
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
