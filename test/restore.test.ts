// etcd quorum restore against the lab: real etcd 3.5 (site A) and 3.6 (site B) members over SSH,
// real kube-apiservers, real MinIO, the real Temporal server and drctl's worker.
import { AppsV1Api, CoreV1Api, makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreResult, RestoreStatus } from '../common/restore.ts';
import type { SnapshotRef } from '../common/snapshots.ts';
import type { Gateways } from '../worker/gateways.ts';
import { etcdRestore, statusQuery } from '../workflows/etcd-restore.ts';
import {
  decide,
  signedInput,
  ensureLabHealthy,
  etcdOn,
  keysOn,
  putKeys,
  snapshotNow,
  startTestEnv,
  type TestEnv,
  until,
} from './support/lab.ts';
import { type Client, type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';

let env: TestEnv;
let gw: Gateways;
let client: Client;
let taskQueue: string;

/** A Deployment that runs, for the roll after the restore (the lab's Velero Deployment is at 0). */
const PROBE = 'restore-probe';

beforeAll(async () => {
  // Both clusters with quorum, their API servers, controllers and Velero running.
  await ensureLabHealthy();
  env = await startTestEnv('restore-test', (c) => {
    for (const s of c.sites) s.cluster.rolloutAfterRestore = ['velero/velero', `default/${PROBE}`];
  });
  ({ gw, client, taskQueue } = env);
});
afterAll(() => env?.close());

/** What the gate answered `by`'s signed approval: the update must be refused by the workflow, not fail otherwise. */
async function refusal(handle: WorkflowHandle<typeof etcdRestore>, by: string): Promise<unknown> {
  const err = await decide(env, handle, by).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `an approval by ${by}`).toBeInstanceOf(WorkflowUpdateFailedError);
  return (err as WorkflowUpdateFailedError).cause;
}

const waitPhase = (id: string, phase: RestoreStatus['phase']) =>
  until(
    `${id} in phase ${phase}`,
    () => client.workflow.getHandle(id).query(statusQuery),
    (s) => s.phase === phase,
    180_000,
    500,
  );

describe.each([
  { cluster: 'site-a', version: /^3\.5\./ },
  { cluster: 'site-b', version: /^3\.6\./ },
])('quorum restore of $cluster', ({ cluster, version }) => {
  it(
    "every member ends with exactly the snapshot's keys; Kubernetes objects made after the snapshot are gone",
    { timeout: 600_000 },
    async () => {
      const prefix = `/drctl-test/${Date.now()}/`;
      const core = gw.kube(cluster).kc.makeApiClient(CoreV1Api);
      const before = `before-${Date.now()}`;
      const after = `after-${Date.now()}`;
      await putKeys(gw, cluster, { [`${prefix}a`]: '1', [`${prefix}b`]: '2', [`${prefix}c`]: '3' });
      await core.createNamespacedConfigMap({
        namespace: 'default',
        body: { metadata: { name: before }, data: { x: '1' } },
      });
      // An informer watching across the restore, restarted on errors as controllers do.
      const informer = makeInformer<V1ConfigMap>(gw.kube(cluster).kc, '/api/v1/namespaces/default/configmaps', () =>
        core.listNamespacedConfigMap({ namespace: 'default' }),
      );
      let watchErrors = 0;
      let stopped = false;
      informer.on('error', () => {
        watchErrors++;
        if (!stopped) setTimeout(() => void informer.start().catch(() => undefined), 1000);
      });
      await informer.start();
      const cached = () =>
        informer
          .list()
          .map((c) => c.metadata?.name ?? '')
          .sort();

      // A scheduled Velero backup the snapshot catches InProgress (the lab's schedule runs every
      // 2 min): once restored, nothing processes it, and Velero skips the schedule while one of its
      // backups is InProgress, until the server restarts and marks it Failed.
      const velero = gw.velero(cluster);
      const orphan = `orphan-${Date.now()}`;
      await velero.create('backups', 'Backup', {
        metadata: { name: orphan, labels: { 'velero.io/schedule-name': 'drctl-test-orphan' } },
        spec: { includedNamespaces: ['drctl-test-orphan'], storageLocation: 'default' },
        status: { phase: 'InProgress' },
      });
      const apps = gw.kube(cluster).kc.makeApiClient(AppsV1Api);
      await apps.deleteNamespacedDeployment({ namespace: 'default', name: PROBE }).catch(() => undefined);
      await apps.createNamespacedDeployment({
        namespace: 'default',
        body: {
          metadata: { name: PROBE },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: PROBE } },
            template: {
              metadata: { labels: { app: PROBE } },
              spec: { containers: [{ name: 'probe', image: 'busybox' }] },
            },
          },
        },
      });
      const snap: SnapshotRef = await snapshotNow(client, taskQueue, gw, cluster).finally(() =>
        velero.delete('backups', orphan),
      );
      expect(snap.etcdVersion).toMatch(version);

      // After the snapshot: more writes, an overwrite, a delete and a new Kubernetes object.
      await putKeys(gw, cluster, { [`${prefix}d`]: '4', [`${prefix}a`]: 'changed' });
      await etcdOn(gw, cluster, 'cp1', ['del', `${prefix}b`]);
      await core.createNamespacedConfigMap({
        namespace: 'default',
        body: { metadata: { name: after }, data: { x: '2' } },
      });
      await until(
        'the informer sees the post-snapshot object',
        async () => cached(),
        (c) => c.includes(after),
        30_000,
      );

      const id = `restore-${cluster}-${Date.now()}`;
      const handle = await client.workflow.start(etcdRestore, {
        taskQueue,
        workflowId: id,
        args: [
          await signedInput(env, 'etcd-restore', id, {
            cluster,
            snapshot: snap.key,
            force: true,
            approvalTimeoutMs: 10 * 60_000,
          }),
        ],
      });
      const waiting = await waitPhase(id, 'waiting-approval');
      expect(waiting.evidence).toMatchObject({
        snapshotKey: snap.key,
        revision: snap.revision,
        etcdHash: snap.etcdHash,
        quorumAtPreflight: true,
      });
      expect(waiting.evidence!.writesLost).toBeGreaterThanOrEqual(3);
      expect(waiting.evidence!.perNode.map((n) => n.node)).toEqual(['cp1', 'cp2', 'cp3']);
      for (const n of waiting.evidence!.perNode) {
        expect(n.command).toContain(`--name=${n.node}`);
        expect(n.command).toContain('--bump-revision=1000000000 --mark-compacted');
      }

      // The gate: alice's own (signed) approval and a signer who is no approver are refused; bob opens it.
      expect(waiting.gate?.requester?.by).toBe('alice');
      const self = await refusal(handle, 'alice');
      expect(self).toBeInstanceOf(ApplicationFailure);
      expect((self as Error).message).toBe('two-person rule: alice requested this restore and cannot approve it');
      const unlisted = await refusal(handle, 'dave');
      expect(unlisted).toBeInstanceOf(ApplicationFailure);
      expect((unlisted as Error).message).toBe('dave is not an approver (allowlist: alice, bob, carol)');
      // Recorded as refused, with the verified signer; the gate still closed.
      const gate = await handle.query(statusQuery);
      expect(gate.phase).toBe('waiting-approval');
      expect(gate.decisions.map((d) => [d.by, d.accepted, !!d.fingerprint])).toEqual([
        ['alice', false, true],
        ['dave', false, true],
      ]);
      await decide(env, handle, 'bob', true, 'test restore');

      const result: RestoreResult = await handle.result();
      expect(result.outcome).toBe('completed');
      expect(result.approval).toMatchObject({ by: 'bob', accepted: true });
      const final = await handle.query(statusQuery);
      expect(final.phase).toBe('completed');
      expect(final.steps.every((s) => s.state === 'done')).toBe(true);
      // The static pods whose state predates the restore were restarted once the API server was ready,
      // and the restarted Velero server failed the backup the snapshot held InProgress.
      // Deployments: the probe is rolled, Velero's (scaled to 0 in the lab) is skipped.
      // kubeadm runs the controllers on every control-plane node (Velero is the lab's, on cp1). A
      // controller that lost its leader lease while the API servers were down has exited, and its
      // kubelet starts it fresh: restarted or not running, each one is named, none is left out.
      const restarted = final.steps.find((s) => s.step === 'restart-controllers')!.detail!;
      expect(restarted).toContain(`deployment default/${PROBE}`);
      for (const pod of [
        'cp1/velero',
        ...['cp1', 'cp2', 'cp3'].flatMap((n) => [`${n}/kube-controller-manager`, `${n}/kube-scheduler`]),
      ])
        expect(restarted).toContain(pod);
      expect(final.steps.find((s) => s.step === 'restart-controllers')!.detail).not.toContain(
        'deployment velero/velero',
      );
      const probe = await apps.readNamespacedDeployment({ namespace: 'default', name: PROBE });
      expect(
        Date.parse(probe.spec?.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt'] ?? ''),
      ).toBeGreaterThan(Date.parse(final.steps.find((s) => s.step === 'restart-controllers')!.startedAt!));
      await apps.deleteNamespacedDeployment({ namespace: 'default', name: PROBE });
      try {
        const b = await until(
          `Velero fails ${orphan}`,
          () => velero.get('backups', orphan),
          (o) => o?.status?.phase !== 'InProgress',
          60_000,
          500,
        );
        expect(b?.status).toMatchObject({
          phase: 'Failed',
          failureReason: expect.stringContaining('during the server starting'),
        });
      } finally {
        await velero.delete('backups', orphan);
      }

      for (const node of ['cp1', 'cp2', 'cp3']) {
        expect(await keysOn(gw, cluster, node, prefix), node).toEqual({
          [`${prefix}a`]: '1',
          [`${prefix}b`]: '2',
          [`${prefix}c`]: '3',
        });
      }
      for (const v of result.verification!) expect(v.revision).toBeGreaterThanOrEqual(snap.revision + 1_000_000_000);
      const names = (await core.listNamespacedConfigMap({ namespace: 'default' })).items.map((c) => c.metadata?.name);
      expect(names).toContain(before);
      expect(names).not.toContain(after);
      // The informer ends consistent with the restored state: it dropped the object the restore undid.
      try {
        const server = () =>
          core
            .listNamespacedConfigMap({ namespace: 'default' })
            .then((l) => l.items.map((c) => c.metadata?.name ?? '').sort());
        await until(
          'informer cache == API server',
          async () => ({ cache: cached(), server: await server() }),
          (v) => JSON.stringify(v.cache) === JSON.stringify(v.server),
          120_000,
          500,
        );
        expect(cached()).not.toContain(after);
        expect(cached()).toContain(before);
        expect(watchErrors).toBeGreaterThan(0);
      } finally {
        stopped = true;
        await informer.stop();
      }

      // cp2's /var/lib/etcd is a disk of its own: its contents were moved aside and restored within
      // that filesystem, and the mount point itself stayed where it was.
      const cp2 = result.plan.nodes.find((n) => n.node === 'cp2')!;
      expect(cp2.layout).toBe('contents');
      const mount = await gw
        .shell(cluster, 'cp2')
        .exec(`findmnt -n -o SOURCE,FSTYPE --target ${cp2.dataDir}; ls -A ${cp2.dataDir}`, { check: true });
      expect(mount.stdout).toMatch(/^\/dev\/loop\d+\s+ext4\n/);
      expect(mount.stdout).toContain('member');
      for (const n of result.plan.nodes.filter((x) => x.node !== 'cp2'))
        expect(n.layout ?? 'rename', n.node).toBe('rename');

      // Each destructive step ran exactly once per node.
      for (const n of result.plan.nodes) {
        const j = await gw.shell(cluster, n.node).exec(`cat ${n.workDir}/journal`, { check: true });
        expect(j.stdout.match(/ moved-aside /g), n.node).toHaveLength(1);
        expect(j.stdout.match(/ restored /g), n.node).toHaveLength(1);
        // The API server holds its clients' watches open after SIGTERM (kube-apiserver's default):
        // drctl stopped its container after the 1 s grace instead of waiting out the kubelet's 30 s.
        if (n.apiserver) {
          expect(j.stdout.match(/ stopped kube-apiserver/g), n.node).toHaveLength(1);
          expect(j.stdout, n.node).toContain(' killed kube-apiserver, still draining after 1 s');
        }
      }
    },
  );
});
