// Faults injected into a running etcd restore on site A: a node's sshd dies after the stop step,
// the worker process is SIGKILLed between stop and start, the Temporal server restarts mid-run.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { RestoreStatus } from '../common/restore.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { killSshd, restartTemporal, startSshd } from '../lab/lab.ts';
import { createGateways, type Gateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import { decideUpdate, etcdRestore, statusQuery } from '../workflows/etcd-restore.ts';
import { keysOn, labConfig, putKeys, snapshotNow, temporalClient, until } from './support/lab.ts';

const cluster = 'site-a';
const nodes = ['cp1', 'cp2', 'cp3'];
const dir = mkdtempSync(join(tmpdir(), 'drctl-faults-'));
let gw: Gateways;
let client: Client;

beforeAll(async () => {
  gw = createGateways(labConfig());
  client = await temporalClient(labConfig());
});
afterAll(async () => {
  gw.close();
  await client.connection.close();
});

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

async function startApproved(taskQueue: string, snapshot: string) {
  const id = `fault-${Date.now()}`;
  const handle = await client.workflow.start(etcdRestore, {
    taskQueue,
    workflowId: id,
    args: [{ cluster, snapshot, requestedBy: 'alice', force: true }],
  });
  await until(
    'waiting-approval',
    () => handle.query(statusQuery),
    (s) => s.phase === 'waiting-approval',
    120_000,
    300,
  );
  await handle.executeUpdate(decideUpdate, { args: [{ approve: true, by: 'carol', reason: 'fault test' }] });
  return handle;
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
      const w = await createWorker(labConfig(taskQueue));
      await w.worker.runUntil(async () => {
        const prefix = `/drctl-fault/${Date.now()}/`;
        await putKeys(gw, cluster, { [`${prefix}old`]: 'before-snapshot' });
        const snap = await snapshotNow(client, taskQueue, gw, cluster);
        await putKeys(gw, cluster, { [`${prefix}new`]: 'after-snapshot' });
        const handle = await startApproved(taskQueue, snap.key);
        await until(
          'stop step done',
          () => handle.query(statusQuery),
          (s) => stepState(s, 'stop') === 'done',
          120_000,
          50,
        );
        expect(killSshd('site-a/cp3').length).toBeGreaterThan(0);
        // While cp3 is unreachable the run fails and starts undoing; it cannot finish without cp3.
        await until(
          'compensating',
          () => handle.query(statusQuery),
          (s) => s.phase === 'compensating',
          240_000,
          500,
        );
        await sleep(3000);
        expect((await handle.query(statusQuery)).phase).toBe('compensating');
        await startSshd('site-a/cp3');
        const err = await handle.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(WorkflowFailedError);
        expect(((err as WorkflowFailedError).cause as Error).message).toMatch(
          /compensated: every node is back on its pre-restore data/,
        );
        const st = await handle.query(statusQuery);
        expect(st.phase).toBe('compensated');
        expect(stepState(st, 'compensate')).toBe('done');
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
      });
      w.gateways.close();
      await w.connection.close();
    },
  );

  it(
    'the worker is SIGKILLed between stop and start → a new worker resumes and completes; no destructive step ran twice',
    { timeout: 600_000 },
    async () => {
      const taskQueue = `faults-worker-${Date.now()}`;
      const config = labConfig(taskQueue);
      let worker = workerProcess(config, 'worker-1');
      try {
        const prefix = `/drctl-fault/${Date.now()}/`;
        await putKeys(gw, cluster, { [`${prefix}kept`]: 'yes' });
        const snap = await snapshotNow(client, taskQueue, gw, cluster);
        await putKeys(gw, cluster, { [`${prefix}lost`]: 'yes' });
        const handle = await startApproved(taskQueue, snap.key);
        await until(
          'move-aside under way',
          () => handle.query(statusQuery),
          (s) => stepState(s, 'move-aside') === 'running' || stepState(s, 'move-aside') === 'done',
          120_000,
          20,
        );
        worker.kill('SIGKILL');
        await sleep(2000);
        worker = workerProcess(config, 'worker-2');
        const result = await handle.result();
        expect(result.outcome).toBe('completed');
        for (const n of nodes) expect(await keysOn(gw, cluster, n, prefix), n).toEqual({ [`${prefix}kept`]: 'yes' });
        for (const [i, j] of (await journals((await handle.query(statusQuery)).plan)).entries()) {
          expect(j.match(/ moved-aside /g), `${nodes[i]}: ${j}`).toHaveLength(1);
          expect(j.match(/ restored /g), `${nodes[i]}: ${j}`).toHaveLength(1);
          expect(j.match(/ stopped etcd/g), `${nodes[i]}: ${j}`).toHaveLength(1);
        }
      } finally {
        worker.kill('SIGTERM');
      }
    },
  );

  it('the Temporal server restarts mid-run → the run continues to completion', { timeout: 600_000 }, async () => {
    const taskQueue = `faults-temporal-${Date.now()}`;
    const worker = workerProcess(labConfig(taskQueue), 'worker-3');
    try {
      const snap = await snapshotNow(client, taskQueue, gw, cluster);
      const handle = await startApproved(taskQueue, snap.key);
      await until(
        'restore under way',
        () => handle.query(statusQuery),
        (s) => ['stop', 'move-aside', 'restore'].some((x) => stepState(s, x) === 'running'),
        120_000,
        50,
      );
      await restartTemporal(2000);
      const result = await until(
        'result after the restart',
        () => handle.result(),
        () => true,
        300_000,
        1000,
      );
      expect(result.outcome).toBe('completed');
      const health = await Promise.all(nodes.map((n) => gw.etcd(cluster, n).health()));
      expect(health.every((h) => h.health)).toBe(true);
    } finally {
      worker.kill('SIGTERM');
    }
  });
});
