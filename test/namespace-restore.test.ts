// Restoring a deleted namespace in place against the lab (the seed's question 2): real Velero at
// site A (its backups in the MinIO bucket), its real kube-controller-manager binding the restored
// claim to the Retain volume the deleted claim left, real PowerDNS and the site's app endpoint.
// Starts from the failover baseline (site A serving demo-app, DNS on A) and leaves it so.
import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy } from '@kubernetes/client-node';
import { type Client, type WorkflowHandle, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createFailoverActivities } from '../activities/failover.ts';
import { CLAIM_UID_BEFORE, RELEASED_BY } from '../activities/namespace-restore.ts';
import { RESTORED_BY } from '../activities/velero.ts';
import { FailureType } from '../common/errors.ts';
import type { NamespaceRestoreInput, NamespaceRestoreStatus } from '../common/namespace-restore.ts';
import { demoApp } from '../lab/demo-app.ts';
import { ensure, objectApi } from '../lab/kube.ts';
import { paths, SITES } from '../lab/topology.ts';
import type { Gateways } from '../worker/gateways.ts';
import { namespaceRestore, statusQuery } from '../workflows/namespace-restore.ts';
import { NS, RECORD, resetFailoverLab } from './support/failover.ts';
import { decide, drctlCli, keyFingerprint, signedInput, startTestEnv, type TestEnv, until } from './support/lab.ts';

const PV = 'demo-data-pv';
let env: TestEnv;
let gw: Gateways;
let client: Client;

beforeAll(async () => {
  env = await startTestEnv('namespace-restore');
  ({ gw, client } = env);
}, 300_000);

/** demo-app back at site A if a failed test left it deleted (the tests after this file need it). */
async function ensureDemoApp() {
  if (await gw.kube('site-a').namespacePhase(NS)) return;
  const pv = (await gw.kube('site-a').persistentVolumes()).find((v) => v.name === PV);
  if (pv?.phase === 'Released')
    await gw
      .kube('site-a')
      .patchVolume(PV, { claimUid: null, annotations: { [RELEASED_BY]: null, [CLAIM_UID_BEFORE]: null } });
  const api = objectApi(SITES.find((s) => s.name === 'site-a')!);
  const { first, then } = demoApp();
  for (const o of [...first, ...then]) await ensure(api, o);
}

afterAll(async () => {
  await ensureDemoApp().catch((e: unknown) => process.stderr.write(`[namespace-restore] ${String(e)}\n`));
  await env?.close();
}, 300_000);

beforeEach(async () => {
  await ensureDemoApp();
  await resetFailoverLab(gw, env.config);
}, 300_000);

const start = async (input: Partial<NamespaceRestoreInput> = {}) => {
  const id = `namespace-restore-test-${Date.now()}`;
  return client.workflow.start(namespaceRestore, {
    taskQueue: env.taskQueue,
    workflowId: id,
    args: [
      await signedInput(env, 'namespace-restore', id, {
        site: 'site-a',
        namespaces: [NS],
        reason: 'test',
        ...input,
      }),
    ],
  });
};

const gateOf = (h: WorkflowHandle) =>
  until(
    'the gate (or a refusal)',
    () => h.query(statusQuery),
    (s: NamespaceRestoreStatus) => s.phase !== 'running',
    120_000,
    250,
  );

async function failureOf(p: Promise<unknown>) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as { type?: string; message: string };
}

/** kubectl delete namespace demo-app at site A, as the on-call engineer did at 10:42; when it was. */
async function deleteDemoApp(): Promise<string> {
  const at = new Date().toISOString();
  await gw.kube('site-a').deleteNamespace(NS, 180_000);
  return at;
}

const volume = async () => (await gw.kube('site-a').persistentVolumes()).find((v) => v.name === PV)!;
const appThroughName = async () => {
  const a = env.config.sites.find((s) => s.name === 'site-a')!;
  const u = new URL(a.appEndpoint!);
  u.hostname = (await gw.dns().resolveA(RECORD)).addresses[0]!;
  return fetch(u, { headers: { host: `${RECORD}:${u.port}` } }).then(
    (r) => r.status,
    () => 0,
  );
};

describe('restore a deleted namespace in place', () => {
  it(
    'demo-app deleted at site A comes back from the backup taken before the deletion: its volume and data, the app through its name',
    { timeout: 420_000 },
    async () => {
      const pvBefore = await volume();
      expect(pvBefore.phase).toBe('Bound');
      // A Secret made after the last backup: a change the restore loses, as the gate says it will.
      const api = objectApi(SITES.find((s) => s.name === 'site-a')!);
      const lateSecret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'made-after-backup', namespace: NS } };
      await ensure(api, lateSecret);
      const secretAt = Date.now();
      await sleep(1500);
      const deletedAt = await deleteDemoApp();
      expect(await appThroughName()).toBe(503);
      const released = await volume();
      expect(released.phase).toBe('Released'); // its data is kept (Retain), but it names the deleted claim

      const h = await start({ before: deletedAt });
      const st = await gateOf(h);
      expect(st.phase).toBe('waiting-approval');
      const e = st.evidence!;
      // The newest backup finished before the deletion: resetFailoverLab's (or a newer scheduled one).
      expect(Date.parse(e.backup.completedAt)).toBeLessThanOrEqual(Date.parse(deletedAt));
      expect(e.changesLostSeconds).toBe(Math.round((Date.parse(deletedAt) - Date.parse(e.backup.startedAt)) / 1000));
      expect(e.present).toEqual([{ namespace: NS, phase: 'absent' }]);
      expect(e.contents).toMatchObject({ 'v1/Namespace': 1, 'v1/Secret': expect.any(Number) });
      expect(e.volumes).toEqual([
        { name: PV, claim: `${NS}/demo-data`, phase: 'Released', staleUid: released.claim!.uid },
      ]);
      expect(e.records).toEqual([RECORD]);
      expect(e.policy).toMatch(/existingResourcePolicy 'none'/);

      // `drctl status` shows the evidence a person decides on.
      const shown = await drctlCli(['--config', paths.config, 'status', h.workflowId]);
      expect(shown.stdout).toMatch(
        new RegExp(`backup ${e.backup.name} started .* of changes before ${deletedAt} are lost`),
      );
      expect(shown.stdout).toMatch(/volume demo-data-pv \(Released\) keeps the data of demo-app\/demo-data/);

      const d = await decide(env, h, 'bob');
      expect(d).toMatchObject({ accepted: true, fingerprint: keyFingerprint('bob') });
      const r = await h.result();
      expect(r).toMatchObject({
        outcome: 'completed',
        site: 'site-a',
        namespaces: [NS],
        volumesRebound: [PV],
        rpoSeconds: e.changesLostSeconds,
      });
      const checks = Object.fromEntries(r.checks.map((c) => [c.check, c.ok]));
      expect(checks).toMatchObject({
        [`${NS}: deployments available`]: true,
        [`${NS}: pvcs bound`]: true,
        [`app answers through ${RECORD}`]: true,
      });
      // The same volume (its data) bound to the restored claim, the run's marks gone from it.
      const after = await volume();
      expect(after).toMatchObject({ phase: 'Bound', claim: { namespace: NS, name: 'demo-data' } });
      expect(after.claim!.uid).not.toBe(released.claim!.uid);
      expect(after.annotations[RELEASED_BY]).toBeUndefined();
      expect(after.annotations[CLAIM_UID_BEFORE]).toBeUndefined();
      expect((await gw.kube('site-a').namespace(NS))!.labels[RESTORED_BY]).toBe(r.restoreName);
      expect(await appThroughName()).toBe(200);
      // Lost, unless the lab's 2-minute Schedule happened to back it up before the deletion.
      const backedUp = Date.parse(e.backup.startedAt) > secretAt;
      expect((await gw.kube('site-a').names('Secret', NS)).includes('made-after-backup')).toBe(backedUp);
    },
  );

  it('a namespace still Terminating is refused before anything changes', { timeout: 240_000 }, async () => {
    // A finalizer no controller removes holds demo-app in Terminating (a stuck operator's, say).
    const api = objectApi(SITES.find((s) => s.name === 'site-a')!);
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'held', namespace: NS, finalizers: ['example.com/held'] },
    };
    await ensure(api, cm);
    try {
      await gw
        .kube('site-a')
        .deleteNamespace(NS, 1000)
        .catch(() => undefined);
      expect(await gw.kube('site-a').namespacePhase(NS)).toBe('Terminating');
      const pv = await volume();
      const h = await start();
      const f = await failureOf(h.result());
      expect(f).toMatchObject({
        type: FailureType.PreflightFailed,
        message: expect.stringMatching(
          /^demo-app still being deleted \(Terminating\) at site-a: Velero cannot restore/,
        ),
      });
      expect(await volume()).toEqual(pv);
    } finally {
      await api.patch(
        { ...cm, metadata: { ...cm.metadata, finalizers: [] } },
        undefined,
        undefined,
        undefined,
        undefined,
        PatchStrategy.MergePatch,
      );
      await until(
        'demo-app gone',
        () => gw.kube('site-a').namespacePhase(NS),
        (p) => p === undefined,
        120_000,
        500,
      );
    }
  });

  it(
    'cancelled after the restore, the run removes the namespace it created and gives the volume its old claim back',
    { timeout: 420_000 },
    async () => {
      await deleteDemoApp();
      const released = await volume();
      // A whole-cluster backup taken after the deletion holds nothing of demo-app: without --before,
      // it is passed over. (A backup of only demo-app, now missing, ends PartiallyFailed in Velero.)
      const empty = `after-deletion-${Date.now()}`;
      await createFailoverActivities(gw).takeBackup({
        site: 'site-a',
        seenBy: 'site-a',
        name: empty,
        namespaces: ['*'],
      });
      const h = await start();
      const st = await gateOf(h);
      expect(st.phase).toBe('waiting-approval');
      expect(st.evidence!.backup.name).not.toBe(empty);
      expect(st.evidence!.warnings).toContainEqual(
        expect.stringMatching(new RegExp(`^backup ${empty} .* skipped: it holds nothing of demo-app`)),
      );
      await decide(env, h, 'carol');
      await until(
        'the restore done',
        () => h.query(statusQuery),
        (s: NamespaceRestoreStatus) => s.steps.find((x) => x.step === 'restore')?.state === 'done',
        180_000,
        200,
      );
      await h.cancel();
      const f = await failureOf(h.result());
      expect((f as { name?: string }).name).toBe('CancelledFailure');
      const ended = await h.query(statusQuery);
      expect(ended.phase).toBe('compensated');
      const undone = ended.steps.find((x) => x.step === 'compensate')!.items;
      expect(Object.keys(undone)).toEqual([
        expect.stringMatching(/^remove what restore drctl-ns-restore-\w+ created at site-a$/),
        'volumes at site-a name their old claims again',
      ]);
      expect(await gw.kube('site-a').namespacePhase(NS)).toBeUndefined();
      const pv = await volume();
      expect(pv.phase).not.toBe('Bound');
      expect(pv.annotations[RELEASED_BY]).toBeUndefined();
      expect(pv.claim?.uid).toBeTruthy();
      expect(released.claim?.uid).toBeTruthy();
    },
  );
});
