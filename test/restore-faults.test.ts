// Faults injected into a running etcd restore on site A: a node's sshd dies after the stop step,
// the worker process is SIGKILLed between stop and start, the Temporal server restarts mid-run.
// Whatever an assertion does, each test ends with sshd back and its run ended by a worker that still
// serves it (a cancel undoes what it changed): site A must never stay stopped for the files after.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FailureType } from '../common/errors.ts';
import type { RestoreStatus } from '../common/restore.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { nodeLockFor } from '../gateways/restore-node.ts';
import { killSshd, restartTemporal, startSshd } from '../lab/lab.ts';
import { createGateways, type Gateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import { etcdRestore, statusQuery } from '../workflows/etcd-restore.ts';
import {
  ensureLabHealthy,
  itemsOf,
  decide,
  keysOn,
  labConfig,
  putKeys,
  signedInput,
  snapshotNow,
  temporalClient,
  until,
  workflows,
} from './support/lab.ts';

const cluster = 'site-a';
const nodes = ['cp1', 'cp2', 'cp3'];
const dir = mkdtempSync(join(tmpdir(), 'drctl-faults-'));
let gw: Gateways;
let client: Client;

beforeAll(async () => {
  // Site A with quorum, its API server, sshd on every node: what each fault is injected into.
  await ensureLabHealthy();
  gw = createGateways(labConfig());
  client = await temporalClient(labConfig());
});
afterAll(async () => {
  gw?.close();
  await client?.connection.close();
});

/**
 * Ends a run a test started while a worker still serves it: a run at its gate aborts, one past it
 * undoes every step (compensation runs to the end even when cancelled). A run that already ended
 * is left alone.
 */
async function settle(handle: WorkflowHandle | undefined) {
  if (!handle) return;
  const d = await handle.describe();
  if (d.status.name !== 'RUNNING') return;
  await handle.cancel();
  await handle.result().catch(() => undefined);
}

/** A worker in its own process, so it can be SIGKILLed like a crashed host. */
function workerProcess(config: DrctlConfig, name: string): ChildProcess {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(config));
  const log = openSync(join(dir, `${name}.log`), 'a');
  return spawn(process.execPath, ['bin/drctl.js', '--config', file, 'worker'], { stdio: ['ignore', log, log] });
}

function stepState(st: RestoreStatus, step: string) {
  return st.steps.find((s) => s.step === step)?.state;
}

const startRestore = async (taskQueue: string, snapshot: string) => {
  const workflowId = `fault-${Date.now()}`;
  return client.workflow.start(etcdRestore, {
    taskQueue,
    workflowId,
    args: [await signedInput({ config: labConfig() }, 'etcd-restore', workflowId, { cluster, snapshot, force: true })],
  });
};

async function approveAtGate(handle: WorkflowHandle<typeof etcdRestore>) {
  await until(
    'waiting-approval',
    () => handle.query(statusQuery),
    (s) => s.phase === 'waiting-approval',
    120_000,
    300,
  );
  await decide({ config: labConfig(), client }, handle, 'carol', true, 'fault test');
}

async function journals(plan: RestoreStatus['plan']) {
  return Promise.all(
    plan!.nodes.map(
      async (n) => (await gw.shell(cluster, n.node).exec(`cat ${n.workDir}/journal`, { check: true })).stdout,
    ),
  );
}

describe('etcd restore under faults (site A)', () => {
  it(
    "one node's sshd dies after the stop step → compensation → the cluster is back, healthy, on its pre-restore data",
    { timeout: 600_000 },
    async () => {
      const taskQueue = `faults-sshd-${Date.now()}`;
      const w = await createWorker(labConfig(taskQueue), await workflows());
      const serving = w.worker.run();
      let handle: WorkflowHandle<typeof etcdRestore> | undefined;
      try {
        const prefix = `/drctl-fault/${Date.now()}/`;
        await putKeys(gw, cluster, { [`${prefix}old`]: 'before-snapshot' });
        const snap = await snapshotNow(client, taskQueue, gw, cluster);
        await putKeys(gw, cluster, { [`${prefix}new`]: 'after-snapshot' });
        handle = await startRestore(taskQueue, snap.key);
        await approveAtGate(handle);
        const h = handle;
        await until(
          'stop step done',
          () => h.query(statusQuery),
          (s) => stepState(s, 'stop') === 'done',
          120_000,
          50,
        );
        expect(killSshd('site-a/cp3').length).toBeGreaterThan(0);
        // While cp3 is unreachable the run fails and starts undoing; it cannot finish without cp3.
        await until(
          'compensating',
          () => h.query(statusQuery),
          (s) => s.phase === 'compensating',
          240_000,
          500,
        );
        await sleep(3000);
        expect((await h.query(statusQuery)).phase).toBe('compensating');
        await startSshd('site-a/cp3');
        const err = await h.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const f = (err as WorkflowFailedError).cause as Error & { type?: string; cause?: Error };
        expect(f).toMatchObject({
          type: 'Compensated',
          message: expect.stringMatching(
            /compensated: every node is back on its pre-restore data and the cluster has quorum$/,
          ),
        });
        // What failed: cp3, unreachable over SSH (ActivityFailure ← the activity's own failure).
        expect(f.cause?.cause).toMatchObject({
          type: FailureType.SshUnreachable,
          message: expect.stringContaining('site-a/cp3'),
        });
        const st = await h.query(statusQuery);
        expect(st.phase).toBe('compensated');
        // The step that met the dead sshd failed on cp3 (move-aside, or the restore right after it).
        const failed = st.steps.filter((s) => s.state === 'failed').map((s) => s.step);
        expect(failed.length, JSON.stringify(st.steps)).toBe(1);
        expect(['move-aside', 'restore']).toContain(failed[0]);
        expect(itemsOf(st.steps.find((s) => s.step === failed[0]))['cp3']).toMatch(/^failed: /);
        // Every undo registered so far ran, in reverse order: the move-aside's, then the stop's two.
        const compensate = st.steps.find((s) => s.step === 'compensate');
        expect(compensate?.state).toBe('done');
        expect(Object.entries(itemsOf(compensate))).toEqual([
          ['stop etcd, remove the restored dir, move the original back', 'done'],
          ['start etcd and prove the pre-restore cluster is back', 'done'],
          ['start kube-apiserver and restart the controllers', 'done'],
          ['remove the staged snapshot', 'done'],
        ]);
        // Pre-restore data on every member, including the write made after the snapshot.
        for (const n of nodes) {
          expect(await keysOn(gw, cluster, n, prefix), n).toEqual({
            [`${prefix}old`]: 'before-snapshot',
            [`${prefix}new`]: 'after-snapshot',
          });
          expect((await gw.etcd(cluster, n).health()).health, n).toBe(true);
        }
        expect((await gw.kube(cluster).readyz()).ready).toBe(true);
        for (const n of st.plan!.nodes) {
          const aside = await gw.shell(cluster, n.node).exec(`test -e ${n.asideDir} && echo left || echo gone`);
          expect(aside.stdout.trim(), `${n.node} aside dir`).toBe('gone');
        }
      } finally {
        await startSshd('site-a/cp3');
        await settle(handle);
        w.worker.shutdown();
        await serving;
        w.gateways.close();
        await w.connection.close();
      }
    },
  );

  it(
    'the worker is SIGKILLed between stop and start → a new worker resumes and completes; no destructive step ran twice',
    { timeout: 600_000 },
    async () => {
      const taskQueue = `faults-worker-${Date.now()}`;
      const config = labConfig(taskQueue);
      let worker = workerProcess(config, 'worker-1');
      let handle: WorkflowHandle<typeof etcdRestore> | undefined;
      try {
        const prefix = `/drctl-fault/${Date.now()}/`;
        await putKeys(gw, cluster, { [`${prefix}kept`]: 'yes' });
        const snap = await snapshotNow(client, taskQueue, gw, cluster);
        await putKeys(gw, cluster, { [`${prefix}lost`]: 'yes' });
        handle = await startRestore(taskQueue, snap.key);
        await approveAtGate(handle);
        const h = handle;
        await until(
          'move-aside under way',
          () => h.query(statusQuery),
          (s) => stepState(s, 'move-aside') === 'running' || stepState(s, 'move-aside') === 'done',
          120_000,
          20,
        );
        worker.kill('SIGKILL');
        await sleep(2000);
        worker = workerProcess(config, 'worker-2');
        const result = await h.result();
        expect(result.outcome).toBe('completed');
        // The snapshot's data: the key written before it, not the one written after it.
        for (const n of nodes) expect(await keysOn(gw, cluster, n, prefix), n).toEqual({ [`${prefix}kept`]: 'yes' });
        for (const [i, j] of (await journals((await h.query(statusQuery)).plan)).entries()) {
          expect(j.match(/ moved-aside /g), `${nodes[i]}: ${j}`).toHaveLength(1);
          expect(j.match(/ restored /g), `${nodes[i]}: ${j}`).toHaveLength(1);
          expect(j.match(/ stopped etcd/g), `${nodes[i]}: ${j}`).toHaveLength(1);
        }
      } finally {
        await settle(handle);
        worker.kill('SIGTERM');
      }
    },
  );

  it(
    'a worker killed while a node-side step is slowed (the node held by another step): the retry adopts the job, which runs once',
    { timeout: 600_000 },
    async () => {
      const taskQueue = `faults-slow-${Date.now()}`;
      const config = labConfig(taskQueue);
      let worker = workerProcess(config, 'slow-1');
      let handle: WorkflowHandle<typeof etcdRestore> | undefined;
      const cp1 = gw.node(cluster, 'cp1');
      try {
        const snap = await snapshotNow(client, taskQueue, gw, cluster);
        handle = await startRestore(taskQueue, snap.key);
        const h = handle;
        await until(
          'waiting-approval',
          () => h.query(statusQuery),
          (s) => s.phase === 'waiting-approval',
          120_000,
          300,
        );
        // Another drctl step holds cp1 for 45 s, as a slow one would: cp1's stop waits for the node.
        const hold = await gw
          .shell(cluster, 'cp1')
          .exec(`setsid flock ${nodeLockFor(cp1.etcd.dataDir)} sleep 45 < /dev/null > /dev/null 2>&1 &`);
        expect(hold.code, hold.stderr).toBe(0);
        await decide({ config: labConfig(), client }, h, 'carol', true, 'fault test');
        await until(
          'stop under way',
          () => h.query(statusQuery),
          (s) => stepState(s, 'stop') === 'running',
          120_000,
          50,
        );
        await sleep(3000);
        expect(stepState(await h.query(statusQuery), 'stop')).toBe('running');
        worker.kill('SIGKILL');
        await sleep(2000);
        worker = workerProcess(config, 'slow-2');
        const result = await h.result();
        expect(result.outcome).toBe('completed');
        const [j1, ...others] = await journals((await h.query(statusQuery)).plan);
        // The retry found cp1's stop still waiting for the node and waited for it: one stop, no second.
        expect(j1!.match(/ adopted stopping /g)?.length, j1).toBeGreaterThanOrEqual(1);
        for (const [i, j] of [j1!, ...others].entries()) {
          expect(j.match(/ moved-aside /g), `${nodes[i]}: ${j}`).toHaveLength(1);
          expect(j.match(/ restored /g), `${nodes[i]}: ${j}`).toHaveLength(1);
          expect(j.match(/ stopped etcd/g), `${nodes[i]}: ${j}`).toHaveLength(1);
          expect(j.match(/ stopped kube-apiserver/g), `${nodes[i]}: ${j}`).toHaveLength(1);
        }
      } finally {
        await settle(handle);
        worker.kill('SIGTERM');
      }
    },
  );

  it(
    "the Temporal server restarts mid-run → the run continues to completion on the snapshot's data",
    { timeout: 600_000 },
    async () => {
      const taskQueue = `faults-temporal-${Date.now()}`;
      const worker = workerProcess(labConfig(taskQueue), 'worker-3');
      let handle: WorkflowHandle<typeof etcdRestore> | undefined;
      try {
        const prefix = `/drctl-fault/${Date.now()}/`;
        await putKeys(gw, cluster, { [`${prefix}kept`]: 'before-snapshot' });
        const snap = await snapshotNow(client, taskQueue, gw, cluster);
        await putKeys(gw, cluster, { [`${prefix}lost`]: 'after-snapshot' });
        handle = await startRestore(taskQueue, snap.key);
        await approveAtGate(handle);
        const h = handle;
        await until(
          'restore under way',
          () => h.query(statusQuery),
          (s) => ['stop', 'move-aside', 'restore'].some((x) => stepState(s, x) === 'running'),
          120_000,
          50,
        );
        await restartTemporal(2000);
        const result = await until(
          'result after the restart',
          () => h.result(),
          () => true,
          300_000,
          1000,
        );
        expect(result.outcome).toBe('completed');
        for (const n of nodes) {
          expect((await gw.etcd(cluster, n).health()).health, n).toBe(true);
          expect(await keysOn(gw, cluster, n, prefix), n).toEqual({ [`${prefix}kept`]: 'before-snapshot' });
        }
        expect((await gw.kube(cluster).readyz()).ready).toBe(true);
      } finally {
        await settle(handle).catch(() => undefined);
        worker.kill('SIGTERM');
      }
    },
  );
});
