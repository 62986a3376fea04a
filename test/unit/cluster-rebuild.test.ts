// `drctl cluster rebuild`: the preflight's verdicts (pure) and the runbook's control flow on the
// time-skipping test server with mocked activities. The real thing, on hosts wiped by `lab site
// destroy`, is test/rebuild.test.ts.
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeConfig } from '../../config/schema.ts';
import { endpointHost, rebuildChanges, rebuildProblems, type RebuildSource } from '../../common/rebuild.ts';
import type { RunbookStatus } from '../../common/runbook.ts';
import { kubeadmRebuildConfig, RebuildNode } from '../../gateways/rebuild-node.ts';
import { localShell } from './support/local-shell.ts';
import { newHost, once, REBUILD_ITEMS, rebuildImpl } from './support/mocks.ts';
import { type Calls, mockActivities, outcomeOf, timeSkipping, withWorker } from './support/time-skipping.ts';

const SOURCE = (rebuildImpl.resolveRebuildSource as () => RebuildSource)();

describe('rebuildProblems', () => {
  it('new hosts and a complete bundle: no problem', () => {
    expect(
      rebuildProblems(
        SOURCE,
        ['cp1', 'cp2', 'cp3'].map((n) => newHost(n)),
        1e9,
      ),
    ).toEqual([]);
  });

  it('a host with a control plane is a restore, not a rebuild; unreachable, tool-less, full or unknown hosts are named', () => {
    const p = rebuildProblems(
      SOURCE,
      [
        newHost('cp1', { leftovers: ['/etc/kubernetes/pki', 'a running etcd process'] }),
        newHost('cp2', { reachable: false, error: 'connect ECONNREFUSED' }),
        newHost('cp3', { kubeadm: undefined, freeBytes: 10 }),
        newHost('cp4'),
      ],
      1e9,
    );
    expect(p).toEqual([
      'cp1: not a new host (/etc/kubernetes/pki, a running etcd process): a node that still has a control plane or etcd data is restored (drctl etcd restore), not rebuilt',
      'cp2: unreachable: connect ECONNREFUSED',
      'cp3: no kubeadm on the host (provisioning lays kubeadm, kubelet and containerd)',
      "cp3: 10 bytes free for etcd's data; needs 1000000000 (staged + restored snapshot)",
      'cp4: the bundle has no kubelet config for it (a node the cluster did not have)',
    ]);
  });

  it('an incomplete bundle is refused, naming what is missing', () => {
    const src = { ...SOURCE, bundle: { ...SOURCE.bundle, complete: false, missing: ['pki/sa.key: no such file'] } };
    expect(rebuildProblems(src, [newHost('cp1')], 1)).toEqual([
      `the control-plane bundle of ${SOURCE.snapshot.key} is incomplete: pki/sa.key: no such file`,
    ]);
  });

  it('a host that is no longer new, or gone, after the gate is a change since approval', () => {
    const before = ['cp1', 'cp2'].map((n) => newHost(n));
    expect(
      rebuildChanges(before, [
        newHost('cp1', { leftovers: ['/var/lib/etcd/member'] }),
        newHost('cp2', { reachable: false, error: 'timeout' }),
      ]),
    ).toEqual(['cp1: no longer new: /var/lib/etcd/member', 'cp2: no longer reachable (timeout)']);
    expect(rebuildChanges(before, before, 'bundle now incomplete')).toEqual([
      'the snapshot or its bundle: bundle now incomplete',
    ]);
  });
});

// ---------------------------------------------------------------- the runbook's control flow

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
beforeAll(async () => {
  ({ env, bundle } = await timeSkipping());
}, 120_000);
afterAll(async () => {
  await env?.teardown();
});

let seq = 0;
const status = (h: WorkflowHandle) => h.query<RunbookStatus>('status');

async function rebuild(
  impl = rebuildImpl,
  failures: Parameters<typeof mockActivities>[2] = [],
): Promise<{ calls: Calls; st: RunbookStatus; error?: { type?: string; message: string }; result?: unknown }> {
  const calls: Calls = [];
  const tq = `tq-rebuild-${++seq}`;
  return withWorker(env, bundle, mockActivities(impl, calls, failures), tq, async () => {
    const h = await env.client.workflow.start('clusterRebuild', {
      taskQueue: tq,
      workflowId: `cluster-rebuild-${Date.now()}-${seq}`,
      args: [{ cluster: 'c1', snapshot: 'latest', requestedBy: 'alice' }],
    });
    for (let i = 0; i < 200; i++) {
      const st = await status(h);
      if (st.phase !== 'running') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if ((await status(h)).phase === 'waiting-approval') await h.signal('approve', { by: 'bob', reason: 'go' });
    const out = await outcomeOf(h);
    return { calls, st: await status(h), ...out };
  });
}

const CHANGES =
  /layRebuildPki|runKubeadmPhases|stageSnapshot|moveDataDirAside|restoreMember|startRebuiltKubelet|resetRebuiltHost/;
const changes = (calls: Calls) =>
  calls.filter((c) => CHANGES.test(c.name)).map((c) => `${c.name} ${(c.input as { node: string }).node}`);

describe("the bundle's controlPlaneEndpoint against the new hosts' addresses", () => {
  const hosts = ['cp1', 'cp2', 'cp3'].map((n) => newHost(n));
  const problems = (controlPlaneEndpoint?: string) => rebuildProblems({ ...SOURCE, controlPlaneEndpoint }, hosts, 1e9);

  it('the host of host, host:port and [v6]:port; IP literals told apart from names', () => {
    expect(endpointHost('172.30.10.1:6443')).toEqual({ host: '172.30.10.1', ip: true });
    expect(endpointHost('172.30.10.1')).toEqual({ host: '172.30.10.1', ip: true });
    expect(endpointHost('[fd00::1]:6443')).toEqual({ host: 'fd00::1', ip: true });
    expect(endpointHost('fd00::1')).toEqual({ host: 'fd00::1', ip: true });
    expect(endpointHost('api.site-a.example:6443')).toEqual({ host: 'api.site-a.example', ip: false });
  });

  it("one of the new hosts' addresses, a name, or none (a run before it was read): no problem", () => {
    expect(problems('127.0.9.1:6443')).toEqual([]);
    expect(problems('api.site-a.example:6443')).toEqual([]);
    expect(problems(undefined)).toEqual([]);
    const v6 = [newHost('cp1', { address: 'fd00::1' })];
    expect(rebuildProblems({ ...SOURCE, controlPlaneEndpoint: '[fd00::1]:6443' }, v6, 1e9)).toEqual([]);
  });

  it('an address none of the new hosts has is refused, naming it and the way out', () => {
    expect(problems('10.0.10.1:6443')).toEqual([
      "the bundle's controlPlaneEndpoint 10.0.10.1:6443 is an address none of the new hosts has (127.0.9.1, 127.0.9.2, 127.0.9.3): every kubeconfig and kubelet points at it. Give one new host that address, or rebuild onto hosts behind a name or VIP that moves (README: Site lost)",
    ]);
  });
});

describe('RebuildNode.layFiles, run with bash against a temp dir', () => {
  const root = mkdtempSync(join(tmpdir(), 'drctl-lay-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const node = { etcd: { dataDir: join(root, 'etcd') } } as NodeConfig;
  const files = (dir: string) =>
    ['ca.crt', 'ca.key', 'etcd/ca.crt', 'etcd/ca.key', 'sa.key', 'sa.pub'].map((f) => ({
      path: join(root, dir, f),
      mode: f.endsWith('.key') ? '0600' : '0644',
      data: Buffer.from(`${f} of ${dir}\n`),
    }));

  it('writes every file with its mode in three commands whatever the count; a retry keeps them all', async () => {
    const shell = localShell();
    const lay = new RebuildNode(shell, node);
    const want = files('a');
    const r = await lay.layFiles(want);
    expect(r).toEqual({ written: want.map((f) => f.path), kept: [] });
    for (const f of want) {
      expect(readFileSync(f.path, 'utf8')).toBe(f.data.toString());
      expect((statSync(f.path).mode & 0o777).toString(8).padStart(4, '0')).toBe(f.mode);
    }
    // The sums, the directories, the renames; one `cat` per file.
    expect(shell.commands.filter((c) => !c.includes('cat >'))).toHaveLength(3);
    expect(shell.commands.filter((c) => c.includes('cat >'))).toHaveLength(want.length);
    expect(await lay.layFiles(want)).toEqual({ written: [], kept: want.map((f) => f.path) });
  });

  it('a file already there with other bytes is refused before anything is written', async () => {
    const want = files('b');
    await new RebuildNode(localShell(), node).layFiles(want.slice(0, 1));
    writeFileSync(want[3]!.path.replace('etcd/ca.key', 'sa.key'), 'someone else');
    await expect(new RebuildNode(localShell(), node).layFiles(want)).rejects.toThrow(
      /sa\.key is already there with other content: not this run's; nothing was overwritten/,
    );
    expect(() => statSync(want[1]!.path)).toThrow();
  });
});

describe('kubeadmRebuildConfig', () => {
  const node = {
    etcd: { memberName: 'cp2', peerUrl: 'https://10.0.10.2:2380' },
    containerd: { address: '/run/containerd/containerd.sock' },
  } as NodeConfig;

  it("this node's InitConfiguration, then the bundle's ClusterConfiguration as the cluster held it", () => {
    const cc = 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: site-a\n';
    const docs = parseAllDocuments(kubeadmRebuildConfig(node, cc)).map((d) => d.toJS() as Record<string, unknown>);
    expect(docs[0]).toEqual({
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'InitConfiguration',
      localAPIEndpoint: { advertiseAddress: '10.0.10.2', bindPort: 6443 },
      nodeRegistration: { name: 'cp2', criSocket: 'unix:///run/containerd/containerd.sock' },
    });
    expect(kubeadmRebuildConfig(node, cc).endsWith(`---\n${cc}`)).toBe(true);
  });

  it('an IPv6 peer URL advertises its address without the brackets', () => {
    const v6 = { ...node, etcd: { ...node.etcd, peerUrl: 'https://[fd00::2]:2380' } } as NodeConfig;
    const [init] = parseAllDocuments(kubeadmRebuildConfig(v6, 'clusterName: x\n')).map(
      (d) => d.toJS() as { localAPIEndpoint: { advertiseAddress: string } },
    );
    expect(init!.localAPIEndpoint.advertiseAddress).toBe('fd00::2');
  });

  it('a ClusterConfiguration without apiVersion and kind gets them', () => {
    const docs = parseAllDocuments(kubeadmRebuildConfig(node, 'clusterName: site-a\n')).map(
      (d) => d.toJS() as Record<string, unknown>,
    );
    expect(docs[1]).toEqual({
      clusterName: 'site-a',
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'ClusterConfiguration',
    });
  });
});

describe('cluster rebuild runbook', () => {
  it('approved: PKI, kubeadm phases, the etcd restore and the kubelets, on every host, then verified', async () => {
    const { calls, st, result } = await rebuild();
    expect(st.phase).toBe('completed');
    expect(result).toMatchObject({
      outcome: 'completed',
      revision: 100,
      verified: {
        kubeadmConfigMatches: true,
        leader: 'cp1',
        backupLocations: [{ name: 'default', phase: 'Available' }],
      },
    });
    expect(st.evidence).toMatchObject({ revision: 100, bundle: { complete: true, names: REBUILD_ITEMS } });
    const order = changes(calls).map((c) => c.split(' ')[0]);
    // Each step on every host before the next step starts.
    expect([...new Set(order)]).toEqual([
      'layRebuildPki',
      'runKubeadmPhases',
      'stageSnapshot',
      'moveDataDirAside',
      'restoreMember',
      'startRebuiltKubelet',
    ]);
    expect(order.filter((c) => c === 'layRebuildPki')).toHaveLength(3);
    expect(order).not.toContain('resetRebuiltHost');
    expect(st.steps.map((s) => `${s.step}:${s.state}`)).toEqual([
      'lease:done',
      'preflight:done',
      'approval:done',
      'recheck:done',
      'lay-pki:done',
      'kubeadm-phases:done',
      'restore-etcd:done',
      'start:done',
      'verify:done',
      'cleanup:done',
    ]);
  });

  it('a host that still has a control plane: refused at preflight, nothing touched, no gate', async () => {
    const { calls, st, error } = await rebuild({
      ...rebuildImpl,
      rebuildPreflightHost: (i: { node: string }) =>
        i.node === 'cp2' ? newHost('cp2', { leftovers: ['/etc/kubernetes/manifests/etcd.yaml'] }) : newHost(i.node),
    });
    expect(error?.type).toBe('PreflightFailed');
    expect(error?.message).toContain('cp2: not a new host (/etc/kubernetes/manifests/etcd.yaml)');
    expect(st.decisions).toEqual([]);
    expect(changes(calls)).toEqual([]);
  });

  it('a failure after the first change resets every host to what provisioning left', async () => {
    const { calls, st, error } = await rebuild(rebuildImpl, [
      { activity: 'restoreMember', when: once((i) => i.node === 'cp3') },
    ]);
    expect(error?.type).toBe('Compensated');
    expect(st.phase).toBe('compensated');
    expect(
      changes(calls)
        .filter((c) => c.startsWith('resetRebuiltHost'))
        .sort(),
    ).toEqual(['resetRebuiltHost cp1', 'resetRebuiltHost cp2', 'resetRebuiltHost cp3']);
    expect(changes(calls)).not.toContain('startRebuiltKubelet cp1');
  });

  it('a host that stopped being new while the gate waited: nothing changed', async () => {
    let reads = 0;
    const { calls, error } = await rebuild({
      ...rebuildImpl,
      rebuildPreflightHost: (i: { node: string }) =>
        i.node === 'cp1' && ++reads > 1 ? newHost('cp1', { leftovers: ['a running etcd process'] }) : newHost(i.node),
    });
    expect(error?.type).toBe('ChangedSinceApproval');
    expect(error?.message).toContain('cp1: no longer new: a running etcd process');
    expect(changes(calls)).toEqual([]);
  });
});
