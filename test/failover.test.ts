// Site failover against the lab: real Velero at both sites (MinIO bucket between them), real
// kube-apiservers with controllers and kwok nodes, real PowerDNS, the lab's app endpoints.
// Every test starts from the same baseline: DNS on site A, site A serving, nothing at site B.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FENCED_REPLICAS } from '../activities/failover.ts';
import { FailureType } from '../common/errors.ts';
import { type FailoverInput, type FailoverStatus, fenceOnReturnId } from '../common/failover.ts';
import { runTag } from '../common/restore.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { paths } from '../lab/topology.ts';
import type { Gateways } from '../worker/gateways.ts';
import { healthWatch, statusQuery as watchStatus } from '../workflows/health-watch.ts';
import { statusQuery, rejectSignal, siteFailover } from '../workflows/site-failover.ts';
import { failoverState, labCli, NS, RECORD, resetFailoverLab } from './support/failover.ts';
import {
  decide,
  drctlCli,
  itemsOf,
  labConfig,
  personKey,
  signedDecision,
  signedInput,
  startTestEnv,
  type TestEnv,
  until,
  withWorker as withVariantWorker,
} from './support/lab.ts';

let env: TestEnv;
let gw: Gateways;
let client: Client;
let A: string;
let B: string;
const dir = mkdtempSync(join(tmpdir(), 'drctl-failover-'));

beforeAll(async () => {
  env = await startTestEnv('failover');
  ({ gw, client } = env);
  A = env.config.sites.find((s) => s.name === 'site-a')!.appAddress!;
  B = env.config.sites.find((s) => s.name === 'site-b')!.appAddress!;
}, 300_000);
afterAll(() => env?.close());

const lab = labCli;
const baseline = async () => {
  // A fence-on-return (a failover that could not fence its old primary) would fence that site later.
  for (const site of ['site-a', 'site-b'])
    await client.workflow
      .getHandle(fenceOnReturnId(site))
      .terminate('failover test baseline')
      .catch(() => undefined);
  await resetFailoverLab(gw, env.config);
};
const siteState = () => failoverState(gw);
const BASELINE = () => ({
  dns: [A],
  replicasA: [3],
  fencedA: false,
  bslA: 'ReadWrite',
  bslB: 'ReadWrite',
  pausedA: false,
  nsB: undefined,
});

const withWorker = <T>(change: (c: DrctlConfig) => void, fn: (taskQueue: string) => Promise<T>) =>
  withVariantWorker('failover', change, fn);

/** A failover requested by alice, her request signed with her key (as `drctl failover` does). */
const start = async (
  taskQueue: string,
  args: Partial<FailoverInput> = {},
  id = `failover-test-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`,
) =>
  client.workflow.start(siteFailover, {
    taskQueue,
    workflowId: id,
    args: [await signedInput(env, 'site-failover', id, { from: 'site-a', to: 'site-b', reason: 'test', ...args })],
  });
/** `who`'s signed rejection, sent as the Web UI sends it (the `reject` signal). */
const rejectAs = async (h: WorkflowHandle, who: string, reason: string) =>
  h.signal(rejectSignal, await signedDecision(env, h.workflowId, who, 'reject', reason));

async function failureOf(
  p: Promise<unknown>,
): Promise<{ type?: string; message: string; cause?: { type?: string; message: string } }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as { type?: string; message: string };
}

const waiting = (h: { query: (q: typeof statusQuery) => Promise<FailoverStatus> }) =>
  until(
    'waiting for approval',
    () => h.query(statusQuery),
    (s) => s.phase === 'waiting-approval' || s.phase === 'failed',
    120_000,
    250,
  );

beforeEach(baseline, 300_000);

describe('site failover', () => {
  it(
    'a backup older than the RPO target is refused under policy refuse, and only warned under warn',
    { timeout: 300_000 },
    async () => {
      await withWorker(
        (c) => (c.failover!.tier = 'payment'),
        async (tq) => {
          const f = await failureOf((await start(tq)).result());
          expect(f).toMatchObject({
            type: FailureType.BackupTooOld,
            message: expect.stringMatching(/over the RPO target of 0 s; policy is refuse/),
          });
        },
      );
      await withWorker(
        (c) => {
          c.failover!.tier = 'payment';
          c.failover!.rpoPolicy = 'warn';
        },
        async (tq) => {
          const h = await start(tq);
          const st = await waiting(h);
          expect(st.phase).toBe('waiting-approval');
          expect(st.evidence!.warnings.join('\n')).toMatch(/over the RPO target of 0 s \(policy: warn\)/);
          await rejectAs(h, 'bob', 'drill only');
          expect(await failureOf(h.result())).toMatchObject({
            type: FailureType.ApprovalRejected,
            message: 'rejected by bob: drill only; nothing was changed',
          });
        },
      );
      expect(await siteState()).toEqual(BASELINE());
    },
  );

  it(
    'a failure in post-restore verification is compensated: DNS on A, nothing left at B, A unfenced',
    { timeout: 400_000 },
    async () => {
      await lab('site', 'down', 'site-b'); // B's app endpoint never answers: verification must fail
      await withWorker(
        (c) => (c.failover!.verifyTimeout = 15_000),
        async (tq) => {
          const h = await start(tq);
          expect((await waiting(h)).phase).toBe('waiting-approval');
          await decide(env, h, 'bob', true, 'go');
          const f = await failureOf(h.result());
          expect(f.type).toBe('Compensated');
          expect(f.message).toMatch(
            /^failover site-a → site-b failed \(.*\); compensated: DNS, site-b's restored objects, backup locations and site-a's workloads are back as they were$/s,
          );
          // Compensated ← ActivityFailure ← the activity's own failure.
          const root = (f.cause as { cause?: unknown } | undefined)?.cause;
          expect(root).toMatchObject({
            type: FailureType.VerificationFailed,
            message: expect.stringMatching(/app endpoint http:\/\/127\.0\.20\.100:8080\/healthz: ECONNREFUSED/),
          });
          // Everything but the app endpoint was fine: the restore itself worked.
          expect((root as Error).message.split('\n')).toHaveLength(2);
          const st = await h.query(statusQuery);
          expect(st.phase).toBe('compensated');
          expect(st.steps.find((s) => s.step === 'restore')!.state).toBe('done');
          expect(st.steps.find((s) => s.step === 'switch-dns')!.state).toBe('pending');
          // Every undo registered before the failure ran, in reverse; DNS never moved, so it had none.
          const compensate = st.steps.find((s) => s.step === 'compensate');
          expect(compensate?.state).toBe('done');
          expect(Object.entries(itemsOf(compensate))).toEqual([
            [`remove what restore drctl-failover-${runTag(h.firstExecutionRunId)} created at site-b`, 'done'],
            ['site-b backup location mode back', 'done'],
            ['unfence site-a', 'done'],
          ]);
        },
      );
      expect(await siteState()).toEqual(BASELINE());
    },
  );

  // How the failure after the DNS switch is injected: the test's worker (a config variant, its own
  // task queue) asks a DNS server that does not answer (dns.nameserver 127.0.0.1:1). Everything
  // before the switch reads and writes the record through the PowerDNS API, as does the switch
  // itself, so the record really moves to B; only the switch's proof (verifyDns, a DNS query to
  // dns.nameserver) fails, after its 30 s, non-retryable (VerificationFailed). The test's own
  // gateways use the lab's real nameserver.
  const deafNameserver = (c: DrctlConfig) => (c.dns!.nameserver = '127.0.0.1:1');
  const dnsUndo = 'DNS back to site-a if it serves once unfenced, else kept on site-b';
  const healthz = (site: string) =>
    fetch(env.config.sites.find((s) => s.name === site)!.appEndpoint!).then(
      (r) => r.status,
      () => 0,
    );

  it(
    'a failure injected after the DNS switch ends with DNS on a serving site: A unfenced first, DNS back on A, then B emptied',
    { timeout: 400_000 },
    async () => {
      await withWorker(deafNameserver, async (tq) => {
        const h = await start(tq);
        expect((await waiting(h)).phase).toBe('waiting-approval');
        await decide(env, h, 'bob', true, 'go');
        const f = await failureOf(h.result());
        expect(f.type).toBe('Compensated');
        const root = (f.cause as { cause?: unknown } | undefined)?.cause;
        expect(root).toMatchObject({
          type: FailureType.VerificationFailed,
          message: expect.stringMatching(/^DNS switch not effective:/),
        });
        const st = await h.query(statusQuery);
        expect(st.phase).toBe('compensated');
        // The record did move to B before the proof failed.
        expect(itemsOf(st.steps.find((s) => s.step === 'switch-dns'))[RECORD]).toBe(`${A} → ${B}`);
        // DNS went back to A only once A was unfenced and answered; B's namespace was removed after.
        const undone = Object.entries(itemsOf(st.steps.find((s) => s.step === 'compensate')));
        expect(undone).toEqual([
          [dnsUndo, expect.stringMatching(/^back on site-a, which answers \(HTTP 200/)],
          [`remove what restore drctl-failover-${runTag(h.firstExecutionRunId)} created at site-b`, 'done'],
          ['site-b backup location mode back', 'done'],
          ['unfence site-a', 'done'],
        ]);
      });
      expect(await siteState()).toEqual(BASELINE());
      expect(await healthz('site-a')).toBe(200);
    },
  );

  it(
    "a cancel after the DNS switch with A's app down ends with DNS on B, which serves: rolled forward, B kept, A fenced again",
    { timeout: 400_000 },
    async () => {
      await lab('site', 'down', 'site-a'); // A's app endpoint stops; its API server still answers (fenced)
      await withWorker(
        (c) => {
          deafNameserver(c); // the switch's proof waits its 30 s: the cancel arrives meanwhile
          c.failover!.verifyTimeout = 15_000; // how long the undo gives A to answer once unfenced
        },
        async (tq) => {
          const h = await start(tq);
          expect((await waiting(h)).phase).toBe('waiting-approval');
          await decide(env, h, 'bob', true, 'go');
          await until(
            'the DNS switch',
            () => h.query(statusQuery),
            (s) => itemsOf(s.steps.find((x) => x.step === 'switch-dns'))[RECORD] !== undefined,
            300_000,
            250,
          );
          expect((await gw.dns().resolveA(RECORD)).addresses).toEqual([B]);
          await h.cancel();
          const err = await h.result().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(WorkflowFailedError);
          expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
          const st = await h.query(statusQuery);
          expect(st.phase).toBe('rolled-forward');
          expect(st.rolledForward).toMatch(
            /^site-a does not answer \(.*\) and site-b does \(HTTP 200.*\): DNS stays on site-b \(127\.0\.20\.100\), restore drctl-failover-\w+ is kept there; site-a fenced again$/,
          );
          const undone = itemsOf(st.steps.find((s) => s.step === 'compensate'));
          expect(undone[dnsUndo]).toBe('kept on site-b: site-b answers');
          expect(
            Object.entries(undone)
              .filter(([, v]) => v === 'kept: rolled forward')
              .map(([k]) => k),
          ).toEqual([
            `remove what restore drctl-failover-${runTag(h.firstExecutionRunId)} created at site-b`,
            'site-b backup location mode back',
            'unfence site-a',
          ]);
        },
      );
      // As after a completed failover: DNS on B, which serves; A fenced; B's location read-write.
      expect(await siteState()).toEqual({
        dns: [B],
        replicasA: [0],
        fencedA: true,
        bslA: 'ReadOnly',
        bslB: 'ReadWrite',
        pausedA: true,
        nsB: 'Active',
      });
      expect(await healthz('site-b')).toBe(200);
    },
  );

  it("fails over with site A's app down (approved from the CLI), then fails back", { timeout: 600_000 }, async () => {
    await lab('site', 'down', 'site-a');
    const h = await start(env.taskQueue);
    const st = await waiting(h);
    expect(st.phase).toBe('waiting-approval');
    expect(st.evidence).toMatchObject({
      namespaces: [NS],
      records: [{ name: RECORD, from: [A], to: [B] }],
      primaryReachable: true,
    });
    expect(st.evidence!.backup!.name).toBeTruthy();
    const refused = await drctlCli(['--config', paths.config, 'approve', h.workflowId, '--key', personKey('alice')]);
    expect(`${refused.status} ${refused.stderr.trim()}`).toBe(
      `2 error: ${h.workflowId}: two-person rule: alice requested this failover and cannot approve it`,
    );
    const ok = await drctlCli([
      '--config',
      paths.config,
      'approve',
      h.workflowId,
      '--key',
      personKey('bob'),
      '--reason',
      'site A app is down',
    ]);
    expect(ok.status, ok.stderr).toBe(0);
    const report = await h.result();
    expect(report).toMatchObject({ outcome: 'completed', from: 'site-a', to: 'site-b', rpoMet: true });
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.map((c) => c.check)).toEqual(
      expect.arrayContaining([`${NS}: endpointslices populated`, `${NS}: pvcs bound`, `app answers through ${RECORD}`]),
    );
    console.log(
      `failover RTO ${report.rtoSeconds.toFixed(1)} s (approval wait ${report.approvalWaitSeconds.toFixed(1)} s), RPO ${report.rpoSeconds} s; steps ${report.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)}s`).join(', ')}`,
    );
    expect((await gw.dns().resolveA(RECORD)).addresses).toEqual([B]);
    const after = await siteState();
    expect(after).toMatchObject({
      dns: [B],
      replicasA: [0],
      fencedA: true,
      bslA: 'ReadOnly',
      bslB: 'ReadWrite',
      pausedA: true,
      nsB: 'Active',
    });
    expect((await drctlCli(['--config', paths.config, 'status', h.workflowId])).stdout).toContain('COMPLETED');

    // The lab after a failover, as a person finds it: `lab up` (the command that brings a worker
    // back) works in this state. Site A's app answers 503 by design (fenced, DNS on B), site B's 200.
    await lab('site', 'up', 'site-a');
    const relab = await drctlCli(['lab', 'up', '--json']);
    expect(relab.status, relab.stderr).toBe(0);
    const comps = JSON.parse((await drctlCli(['lab', 'status', '--json'])).stdout) as {
      name: string;
      healthy: boolean;
      detail: string;
    }[];
    expect(comps.find((c) => c.name === 'site-a/app')).toMatchObject({
      healthy: true,
      detail: expect.stringMatching(/^HTTP 503/),
    });
    expect(comps.find((c) => c.name === 'site-b/app')).toMatchObject({
      healthy: true,
      detail: expect.stringMatching(/^HTTP 200/),
    });

    // Failback: back up B first, restore at A, DNS back to A; B fenced.
    const fb = await start(env.taskQueue, { from: 'site-b', to: 'site-a', backupFirst: true });
    expect((await waiting(fb)).phase).toBe('waiting-approval');
    await decide(env, fb, 'carol', true, 'A repaired');
    const back = await fb.result();
    expect(back).toMatchObject({ outcome: 'completed', from: 'site-b', to: 'site-a' });
    expect(back.backup.name).toMatch(/^drctl-failback-/);
    expect((await gw.dns().resolveA(RECORD)).addresses).toEqual([A]);
    // B is standby again, as before the failover: the namespace the failover's restore created
    // there (and labelled) is deleted, its backup location read-write; a drill may use it again.
    const standby = (await fb.query(statusQuery)).steps.find((s) => s.step === 'standby')!;
    expect(standby.state).toBe('done');
    expect(Object.keys(itemsOf(standby))).toEqual(
      expect.arrayContaining([`namespace ${NS} deleted (restored by ${report.restoreName})`]),
    );
    expect(await siteState()).toEqual(BASELINE());
  });

  it(
    "site A's worker killed mid-failover: site B's worker on the same task queue finishes it; nothing destructive ran twice",
    { timeout: 600_000 },
    async () => {
      const taskQueue = `failover-kill-${Date.now()}`;
      const config = labConfig(taskQueue);
      const file = join(dir, 'worker.yaml');
      writeFileSync(file, stringify(config));
      // One worker "at" each site, as the README's "Where drctl runs" says to deploy them.
      const spawnWorker = (site: string): ChildProcess =>
        spawn(process.execPath, ['bin/drctl.js', '--config', file, 'worker', '--site', site], {
          stdio: [
            'ignore',
            openSync(join(dir, `worker-${site}.log`), 'a'),
            openSync(join(dir, `worker-${site}.log`), 'a'),
          ],
        });
      const workerA = spawnWorker('site-a');
      const workerB = spawnWorker('site-b');
      try {
        const h = await start(taskQueue);
        expect((await waiting(h)).phase).toBe('waiting-approval');
        await decide(env, h, 'bob');
        await until(
          'restore under way',
          () => h.query(statusQuery),
          (s) => s.steps.find((x) => x.step === 'restore')?.state === 'running',
          120_000,
          50,
        );
        workerA.kill('SIGKILL');
        // What A finished before it died is in the history by now; everything after is someone else's.
        await new Promise((r) => setTimeout(r, 500));
        const seenBeforeKill = (await h.fetchHistory()).events?.length ?? 0;
        const report = await h.result();
        expect(report.outcome).toBe('completed');
        // Every activity started after the kill ran on site B's worker.
        const events = (await h.fetchHistory()).events ?? [];
        const after = events
          .slice(seenBeforeKill)
          .map((e) => e.activityTaskStartedEventAttributes?.identity)
          .filter((i): i is string => !!i);
        expect(after.length).toBeGreaterThan(0);
        for (const i of after) expect(i).toBe(`drctl-worker@site-b ${workerB.pid}@${hostname()}`);
        // Fenced once: the annotation still records the replicas from before the fence (3, not 0).
        const depsA = await gw.kube('site-a').deployments(NS);
        expect(depsA.map((d) => [d.replicas, d.annotations[FENCED_REPLICAS]])).toEqual([[0, '3']]);
        const restores = (await gw.velero('site-b').list('restores')).filter(
          (r) => r.metadata.name === report.restoreName,
        );
        expect(restores).toHaveLength(1);
      } finally {
        workerA.kill('SIGKILL');
        workerB.kill('SIGTERM');
      }
    },
  );
});

describe('health watch', () => {
  let server: Server;
  let mode: 'flap' | 'down' | 'up' = 'flap';
  let n = 0;
  const hooks: unknown[] = [];
  const addr = '127.0.10.150';

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.method === 'POST') {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => (hooks.push(JSON.parse(body)), res.end('ok')));
        return;
      }
      n++;
      // flap: fail, fail, ok, fail, fail, ok ... never three failures in a row.
      const ok = mode === 'up' || (mode === 'flap' && n % 3 === 0);
      res.writeHead(ok ? 200 : 503).end(ok ? 'ok' : 'down');
    });
    await new Promise<void>((r) => server.listen(8080, addr, r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it(
    'a flapping endpoint does not trigger; three failures in a row start a failover that waits at the gate, and notify',
    { timeout: 300_000 },
    async () => {
      await withWorker(
        (c) => {
          c.sites[0]!.appEndpoint = `http://${addr}:8080/healthz`;
          c.failover!.healthWatch.interval = 500;
          c.failover!.healthWatch.webhook = `http://${addr}:8080/hook`;
        },
        async (tq) => {
          const watch = await client.workflow.start(healthWatch, {
            taskQueue: tq,
            workflowId: `watch-test-${Date.now()}`,
            args: [{ record: RECORD, roundsPerRun: 8 }],
          });
          try {
            // 12 rounds of flapping (across a continue-as-new): site A stays up, no failover.
            const flapped = await until(
              '12 rounds',
              () => watch.query(watchStatus).then((s) => s.watch),
              (s) => s.rounds >= 12,
              60_000,
              200,
            );
            expect(flapped.serving).toBe('site-a');
            expect(flapped.sites['site-a']!.up).toBe(true);
            expect(flapped.failovers).toEqual([]);
            mode = 'down';
            const down = await until(
              'failover started',
              () => watch.query(watchStatus).then((s) => s.watch),
              (s) => s.failovers.length > 0,
              60_000,
              200,
            );
            expect(down.sites['site-a']).toMatchObject({ up: false });
            expect(down.events.at(-1)).toMatchObject({ site: 'site-a', state: 'down' });
            const fo = client.workflow.getHandle(down.failovers[0]!.workflowId);
            const st = await waiting(fo);
            expect(st).toMatchObject({
              phase: 'waiting-approval',
              requestedBy: 'health-watch',
              from: 'site-a',
              to: 'site-b',
            });
            await until(
              'webhook called',
              async () => hooks.length,
              (x) => x > 0,
              10_000,
              100,
            );
            expect(hooks[0]).toMatchObject({ event: 'failover-started', workflowId: down.failovers[0]!.workflowId });
            await rejectAs(fo, 'bob', 'test');
            expect(await failureOf(fo.result())).toMatchObject({
              type: FailureType.ApprovalRejected,
              message: 'rejected by bob: test; nothing was changed',
            });
          } finally {
            await watch.terminate('test over');
          }
        },
      );
      expect(await siteState()).toEqual(BASELINE());
    },
  );
});
