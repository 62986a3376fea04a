// `drctl etcd recover`: the decisions (pure) and the runbook's control flow on the time-skipping
// test server with mocked activities. The real thing, against real etcd members after a site is
// killed, is test/stretched.test.ts.
import type { WorkflowFailedError } from '@temporalio/client';
import { type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestationOf, planRecover } from '../../common/etcd-recover.ts';
import { manifestWithFlags } from '../../common/etcd-tuning.ts';
import type { RunbookStatus } from '../../common/runbook.ts';
import { etcdCommandOf, flagOf, parseMemberMetrics } from '../../gateways/recover-node.ts';
import { lostMember as lost, member, once, recoverImpl, rejoinImpl, SITE_A_LOST } from './support/mocks.ts';
import { type Calls, mockActivities, outcomeOf, timeSkipping, withWorker } from './support/time-skipping.ts';

describe('planRecover', () => {
  it('keeps the survivor with the highest committed raft index, adds the other back, drops the lost ones (attested)', () => {
    const { plan, refusal } = planRecover(SITE_A_LOST);
    expect(refusal).toBeUndefined();
    expect(plan).toMatchObject({
      keep: 'b2',
      addBack: ['b1'],
      revisionKept: 91,
      raftIndexKept: 121,
      dropped: [
        { node: 'a1', fence: 'attestation' },
        { node: 'a2', fence: 'attestation' },
        { node: 'a3', fence: 'attestation' },
      ],
    });
  });

  it('a lost member whose host answers is parked; one already parked is left', () => {
    const members = [
      member('a1', { etcdRunning: false, hasLeader: undefined }),
      member('a2', { parked: true, etcdRunning: false, hasLeader: undefined }),
      lost('a3'),
      ...SITE_A_LOST.slice(3),
    ];
    expect(planRecover(members).plan?.dropped.map((d) => `${d.node}:${d.fence}`)).toEqual([
      'a1:park-manifest',
      'a2:already-parked',
      'a3:attestation',
    ]);
  });

  it('refuses while any member has a leader: quorum is reachable, nothing is forced', () => {
    const r = planRecover([...SITE_A_LOST.slice(0, 4), member('b2', { raftIndex: 121, hasLeader: true })]);
    expect(r.plan).toBeUndefined();
    expect(r.refusal).toMatch(/^quorum is reachable: b2 has a leader/);
  });

  it('refuses when the members answering are a majority, or when none answers with its data', () => {
    const majority = ['a1', 'a2', 'b1'].map((n, i) => member(n, { raftIndex: 10 + i }));
    expect(planRecover([...majority, lost('a3'), lost('b2')]).refusal).toMatch(/a majority, yet none has a leader/);
    expect(planRecover([lost('a1'), member('b1', { etcdRunning: false, hasLeader: undefined })]).refusal).toMatch(
      /^no member answers with its data: a1: refused; b1: etcd not answering/,
    );
  });
});

describe('attestation and manifests', () => {
  it('an approval attests only with the attest: prefix and some text', () => {
    expect(attestationOf('attest: site A is powered off')).toBe('site A is powered off');
    expect(attestationOf('ATTEST:  breakers open (ok)')).toBe('breakers open (ok)');
    expect(attestationOf('attest:')).toBeUndefined();
    expect(attestationOf('go ahead')).toBeUndefined();
    expect(attestationOf(undefined)).toBeUndefined();
  });

  const MANIFEST = [
    'apiVersion: v1',
    'kind: Pod',
    'spec:',
    '  containers:',
    '  - command:',
    '    - etcd',
    '    - --data-dir=/var/lib/etcd',
    '    - --initial-cluster=a1=https://172.30.10.11:2380',
    '    - --listen-metrics-urls=http://127.0.0.1:2381',
    '    - --name=b1',
    '    image: registry.k8s.io/etcd:3.5.35-0',
    '    name: etcd',
    '',
  ].join('\n');

  it('join flags: --initial-cluster replaced, --initial-cluster-state added, the rest byte for byte', () => {
    const out = manifestWithFlags(MANIFEST, {
      'initial-cluster': 'b2=https://172.30.20.12:2380,b1=https://172.30.20.11:2380',
      'initial-cluster-state': 'existing',
    });
    expect(out).toBe(
      MANIFEST.replace('    - --data-dir', '    - --initial-cluster-state=existing\n    - --data-dir').replace(
        'a1=https://172.30.10.11:2380',
        'b2=https://172.30.20.12:2380,b1=https://172.30.20.11:2380',
      ),
    );
    // Setting them again changes nothing.
    expect(manifestWithFlags(out, { 'initial-cluster-state': 'existing' })).toBe(out);
  });

  it('reads what a member holds from its /metrics lines; a page without them is no reading', () => {
    const page = [
      'etcd_debugging_mvcc_current_revision 1203',
      'etcd_server_has_leader 0',
      'etcd_server_id{server_id="62869b92fd9f14e8"} 1',
      'etcd_server_proposals_applied_total 1400',
      'etcd_server_proposals_committed_total 0',
    ].join('\n');
    expect(parseMemberMetrics(page)).toEqual({
      hasLeader: false,
      memberId: '62869b92fd9f14e8',
      revision: 1203,
      committed: 0,
      applied: 1400,
    });
    expect(parseMemberMetrics('no answer on http://127.0.0.1:2381')).toBeUndefined();
  });

  it("reads the etcd container's command from the manifest; a manifest without one is refused", () => {
    const cmd = etcdCommandOf(MANIFEST);
    expect(cmd[0]).toBe('etcd');
    expect(flagOf(cmd, 'listen-metrics-urls')).toBe('http://127.0.0.1:2381');
    expect(flagOf(cmd, 'name')).toBe('b1');
    expect(() => etcdCommandOf('kind: Pod\nspec: {containers: [{name: etcd, command: [sh]}]}')).toThrow(
      /no etcd container/,
    );
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
async function until(h: WorkflowHandle, phase: string): Promise<RunbookStatus> {
  for (let i = 0; i < 200; i++) {
    const st = await status(h);
    if (st.phase === phase) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never reached ${phase}: ${(await status(h)).phase}`);
}

async function recover(
  reasons: string[],
  failures: Parameters<typeof mockActivities>[2] = [],
): Promise<{ calls: Calls; st: RunbookStatus; error?: { type?: string; message: string }; result?: unknown }> {
  const calls: Calls = [];
  const tq = `tq-recover-${++seq}`;
  return withWorker(env, bundle, mockActivities(recoverImpl, calls, failures), tq, async () => {
    const h = await env.client.workflow.start('etcdRecover', {
      taskQueue: tq,
      workflowId: `etcd-recover-${Date.now()}-${seq}`,
      args: [{ cluster: 'stretched', requestedBy: 'alice' }],
    });
    const gate = await until(h, 'waiting-approval');
    expect(gate.evidence).toMatchObject({ attestationNeeded: ['a1', 'a2', 'a3'], revisionsBeyondSnapshot: 51 });
    for (const reason of reasons) await h.signal('approve', { by: 'bob', reason });
    if (!reasons.some((r) => r.startsWith('attest:'))) {
      // The gate stays shut: the refused approval is recorded with why.
      for (let i = 0; i < 100 && (await status(h)).decisions.length < reasons.length; i++)
        await new Promise((r) => setTimeout(r, 50));
      const st = await status(h);
      // Cancelled at the gate: it ends aborted and gives the cluster's lease back.
      await h.cancel();
      await h.result().catch(() => undefined);
      return { calls, st };
    }
    const out = await outcomeOf(h);
    return { calls, st: await status(h), ...out };
  });
}

const CHANGES =
  /stopComponent|moveDataDirAside|copyAsideBack|forceNewCluster|addMember|setJoinFlags|startComponent|startEtcd/;

describe('etcd recover runbook', () => {
  it('an approval that does not attest the unreachable members are fenced is refused; the gate stays shut, nothing changes', async () => {
    const { calls, st } = await recover(['go']);
    expect(st.phase).toBe('waiting-approval');
    expect(st.decisions).toMatchObject([{ by: 'bob', accepted: false }]);
    expect(st.decisions[0]?.why).toMatch(/^a1, a2, a3 cannot be reached: approve with --attest/);
    expect(calls.filter((c) => CHANGES.test(c.name))).toEqual([]);
  });

  it('attested: the freshest survivor forced to one member on a copy of its data, the other added back wiped', async () => {
    const { calls, st, result } = await recover(['go', 'attest: site A is powered off']);
    expect(result).toMatchObject({ outcome: 'recovered', attestation: 'site A is powered off' });
    expect(st.phase).toBe('completed');
    const changes = calls
      .filter((c) => CHANGES.test(c.name))
      .map((c) => `${c.name} ${(c.input as { node: string }).node}`);
    expect(changes).toEqual([
      // The API servers parked first, every other survivor stopped, then the freshest one.
      'stopComponent b2',
      'stopComponent b1',
      'stopComponent b1',
      'stopComponent b2',
      'moveDataDirAside b2',
      'copyAsideBack b2',
      'forceNewCluster b2',
      'startComponent b2',
      'moveDataDirAside b1',
      'addMember b1',
      'setJoinFlags b1',
      'startComponent b1',
      // The API servers back, as new pods: out of their crash back-off.
      'startComponent b2',
      'startComponent b1',
    ]);
    expect(st.steps.find((s) => s.step === 'fence')?.items.a1).toContain(
      'fenced by attestation "site A is powered off" (bob)',
    );
  });

  it("a failure adding the second survivor back undoes both, newest first: each one's original data (and manifest) back, started", async () => {
    const { st, error, calls } = await recover(
      ['attest: site A is powered off'],
      [{ activity: 'startComponent', when: once((i) => i.node === 'b1') }],
    );
    expect(error?.type).toBe('Compensated');
    expect(st.phase).toBe('compensated');
    expect(Object.keys(st.steps.find((s) => s.step === 'compensate')?.items ?? {})).toEqual([
      'b2: its original data back',
      'b1: its original data and manifest back',
      'b1: kube-apiserver started again',
      'b2: kube-apiserver started again',
    ]);
    const undos = calls
      .slice(calls.findIndex((c) => c.name === 'putOriginalBack') - 1)
      .map((c) => `${c.name} ${(c.input as { node: string }).node}`);
    expect(undos).toEqual([
      'stopComponent b2',
      'putOriginalBack b2',
      'startComponent b2',
      'stopComponent b1',
      'putOriginalBack b1',
      'restoreEtcdManifest b1',
      'startComponent b1',
      'startComponent b1',
      'startComponent b2',
    ]);
  });
});

describe('etcd rejoin runbook', () => {
  async function rejoin(failures: Parameters<typeof mockActivities>[2] = []) {
    const calls: Calls = [];
    const tq = `tq-rejoin-${++seq}`;
    return withWorker(env, bundle, mockActivities(rejoinImpl, calls, failures), tq, async () => {
      const h = await env.client.workflow.start('etcdRejoin', {
        taskQueue: tq,
        workflowId: `etcd-rejoin-${Date.now()}-${seq}`,
        args: [{ cluster: 'stretched', node: 'a1', requestedBy: 'alice' }],
      });
      const gate = await until(h, 'waiting-approval');
      expect(gate.evidence).toMatchObject({ node: 'a1', via: 'b1', members: ['b1', 'b2', 'a1'] });
      await h.signal('approve', { by: 'bob', reason: 'test' });
      const out = await h.result().then(
        (result: unknown) => ({ result, error: undefined }),
        (e: unknown) => ({ result: undefined, error: ((e as WorkflowFailedError).cause as { type?: string }).type }),
      );
      return { calls, st: await status(h), ...out };
    });
  }
  const nodeOf = (c: { input: unknown }) => (c.input as { node: string }).node;

  it('wipes the returning member (its data moved aside), adds it through a member with a leader, starts it', async () => {
    const { calls, result } = await rejoin();
    expect(result).toMatchObject({ outcome: 'rejoined', node: 'a1', oldDataAt: '/var/lib/etcd.drctl-t' });
    expect(calls.filter((c) => CHANGES.test(c.name)).map((c) => `${c.name} ${nodeOf(c)}`)).toEqual([
      'stopComponent a1',
      'moveDataDirAside a1',
      'addMember a1',
      'setJoinFlags a1',
      'startEtcd a1',
    ]);
    expect(calls.find((c) => c.name === 'addMember')?.input).toMatchObject({ via: 'b1', node: 'a1' });
  });

  it('a member that does not come up is removed again and left stopped; its old data stays aside', async () => {
    const { calls, st, error } = await rejoin([{ activity: 'verifyQuorum', when: once(() => true) }]);
    expect(error).toBe('Compensated');
    expect(st.phase).toBe('compensated');
    const after = calls
      .slice(calls.findIndex((c) => c.name === 'verifyQuorum') + 1)
      .map((c) => `${c.name} ${nodeOf(c)}`);
    expect(after).toEqual(['removeMember a1', 'stopComponent a1']);
    expect(calls.some((c) => c.name === 'putOriginalBack')).toBe(false);
  });
});
