// DR drills against the lab: real Velero at both sites, real PowerDNS, the lab's app endpoints, the
// Temporal Web UI in a real Chromium. Every test starts from the failover baseline (site A serving,
// nothing at site B, both records on site A) and must leave it so.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, type WorkflowHandle, WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure, defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { type DrillReport, type DrillStatus, failureCause } from '../common/drill.ts';
import { drillSummary } from '../client/render.ts';
import { FailureType } from '../common/errors.ts';
import { RESTORED_BY } from '../activities/velero.ts';
import { runTag } from '../common/restore.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { objectApi } from '../lab/kube.ts';
import { paths, SITES } from '../lab/topology.ts';
import type { Gateways } from '../worker/gateways.ts';
import { drDrill, statusQuery } from '../workflows/drill.ts';
import { siteFailover, statusQuery as failoverStatus } from '../workflows/site-failover.ts';
import { launchBrowser, screenshot, signalFromWebUi } from './support/browser.ts';
import { DRILL_RECORD, failoverState, labCli, NS, RECORD, resetFailoverLab } from './support/failover.ts';
import {
  decide,
  drctlCli,
  ensureLabHealthy,
  itemsOf,
  keyFingerprint,
  personKey,
  signedDecision,
  signedInput,
  snapshotNow,
  startTestEnv,
  type TestEnv,
  until,
  withWorker as withVariantWorker,
} from './support/lab.ts';

const PLAN = 'quarterly';

let env: TestEnv;
let gw: Gateways;
let client: Client;
let A: string;
let B: string;
let cfgFile: string;
const dir = mkdtempSync(join(tmpdir(), 'drctl-drill-'));

beforeAll(async () => {
  // The etcd restore drill needs site B's members and sshd; every test then sets up the failover baseline.
  await ensureLabHealthy();
  env = await startTestEnv('drill');
  ({ gw, client } = env);
  A = env.config.sites.find((s) => s.name === 'site-a')!.appAddress!;
  B = env.config.sites.find((s) => s.name === 'site-b')!.appAddress!;
  // The CLI starts drills on this file's task queue: the test's own worker.
  const raw = parse(readFileSync(paths.config, 'utf8')) as { temporal: Record<string, unknown> };
  raw.temporal.taskQueue = env.taskQueue;
  cfgFile = join(dir, 'drctl.yaml');
  writeFileSync(cfgFile, stringify(raw));
}, 300_000);
afterAll(() => env?.close());

const cli = (...args: string[]) => drctlCli(['--config', cfgFile, ...args]);

const baseline = () => resetFailoverLab(gw, env.config);

/** Site B and both records exactly as the baseline: what every drill must leave behind. */
async function drState() {
  const s = await failoverState(gw);
  return { ...s, drill: (await gw.dns().resolveA(DRILL_RECORD)).addresses };
}
const BASELINE = () => ({
  dns: [A],
  drill: [A],
  replicasA: [3],
  fencedA: false,
  bslA: 'ReadWrite',
  bslB: 'ReadWrite',
  pausedA: false,
  nsB: undefined,
});

const phase = (h: WorkflowHandle, want: DrillStatus['phase'][], timeoutMs = 240_000) =>
  until(
    `drill phase ${want.join('|')}`,
    () => h.query(statusQuery),
    (s) => want.includes(s.phase),
    timeoutMs,
    300,
  );

const streamText = async (s: AsyncIterable<Buffer | string>) => {
  let out = '';
  for await (const c of s) out += c.toString();
  return out;
};

const withWorker = <T>(change: (c: DrctlConfig) => void, fn: (taskQueue: string) => Promise<T>) =>
  withVariantWorker('drill', change, fn);

/** The undos a drill registers for its Velero restore into site B, in the order cleanup runs them. */
const restoreUndos = (runId: string) => [
  `delete what restore drctl-drill-${runTag(runId)} created at site-b`,
  'site-b backup location mode back',
];

/** The cleanup step's per-undo entries in the status query, in the order they ran. */
const cleanupItems = (st: DrillStatus) => Object.entries(itemsOf(st.steps.find((s) => s.step === 'cleanup')));

/** How a run that must fail failed (the assertions on it fail when it did not). */
const failureOf = (h: WorkflowHandle) =>
  h.result().then(
    () => ({}) as WorkflowFailedError,
    (e: unknown) => e as WorkflowFailedError,
  );

/** A run that must end cancelled: its failure is the cancel itself, not an error that came first. */
async function cancelled(h: WorkflowHandle) {
  await h.cancel();
  const err = await h.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
  return h.query(statusQuery);
}

/** A drill requested by alice, her request signed with her key (as `drctl drill run` does). */
const startDrill = async (taskQueue: string) => {
  const workflowId = `drill-test-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;
  return client.workflow.start(drDrill, {
    taskQueue,
    workflowId,
    args: [await signedInput(env, 'drill', workflowId, { plan: PLAN, reason: 'test' })],
  });
};

describe('DR drill', () => {
  it(
    'end to end: go/no-go from the Web UI, restore into B, only the drill record moves, report matches the history, stored off-site, signed off',
    { timeout: 600_000 },
    async () => {
      await baseline();
      expect(await drState()).toEqual(BASELINE());
      const started = await cli(
        'drill',
        'run',
        '--plan',
        PLAN,
        '--key',
        personKey('alice'),
        '--reason',
        'Q4 drill',
        '--json',
      );
      expect(started.status, started.stderr).toBe(0);
      const { workflowId } = JSON.parse(started.stdout) as { workflowId: string };
      const h = client.workflow.getHandle(workflowId);
      const gate = await phase(h, ['waiting-approval']);
      expect(gate.evidence).toMatchObject({
        from: 'site-a',
        to: 'site-b',
        namespaces: [NS],
        record: DRILL_RECORD,
        recordBefore: [A],
        recordDuring: [B],
      });

      // Both records, sampled all through the drill: production never moves, the drill record does.
      const seen = { prod: new Set<string>(), drill: new Set<string>() };
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          // The server's database (its API), not its answers: a packet cache could hide a blip.
          const [p, d] = await Promise.all([gw.dns().getA(RECORD), gw.dns().getA(DRILL_RECORD)]);
          seen.prod.add(p?.addresses.join(',') ?? '');
          seen.drill.add(d?.addresses.join(',') ?? '');
          await sleep(40);
        }
      })();

      // Go, from the Web UI's Signal action in a real browser.
      const browser = await launchBrowser();
      let report: DrillReport;
      try {
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        const bobsGo = await signedDecision(env, workflowId, 'bob', 'approve', 'go from the Web UI');
        await signalFromWebUi(page, {
          webUi: env.config.temporal.webUi!,
          namespace: 'default',
          workflowId,
          signal: 'approve',
          // What `drctl approve <id> --sign-only` printed for bob, pasted as the signal's input.
          input: bobsGo,
        });
        const st = await phase(h, ['waiting-signoff', 'completed', 'aborted']);
        sampling = false;
        await sampler;
        expect(st.phase, st.error).toBe('waiting-signoff');
        report = st.report!;
        expect(report.outcome, JSON.stringify(report.verdicts)).toBe('passed');
        expect(report.verdicts.map((v) => [v.criterion, v.ok])).toEqual(
          [
            'backup-present',
            'restore-complete',
            'pods-match-source',
            'app-serves',
            'rpo-met',
            'rto-met',
            'cleanup',
          ].map((c) => [c, true]),
        );
        expect(report.tiers).toEqual([
          expect.objectContaining({
            tier: 'e-commerce',
            namespaces: [NS],
            rpoTargetSeconds: 300,
            rtoTargetSeconds: 900,
            rpoMet: true,
            rtoMet: true,
          }),
        ]);
        console.log(
          `drill RTO ${report.tiers[0]!.rtoSeconds!.toFixed(1)} s, RPO ${report.tiers[0]!.rpoSeconds} s, approval wait ${report.approvalWaitSeconds!.toFixed(1)} s; ` +
            report.timeline
              .filter((s) => s.seconds !== undefined)
              .map((s) => `${s.step} ${s.seconds!.toFixed(1)}s`)
              .join(', '),
        );
        expect([...seen.prod]).toEqual([A]);
        expect([...seen.drill]).toEqual(expect.arrayContaining([A, B]));
        expect(await drState()).toEqual(BASELINE());

        // The report against the run's own history.
        const history = await h.fetchHistory();
        const events = history.events ?? [];
        const at = (e: (typeof events)[number]) =>
          Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);
        const arg = <T>(p: { payloads?: Payload[] | null } | null | undefined) =>
          defaultPayloadConverter.fromPayload<T>(p!.payloads![0]!);
        const signals = events.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'approve');
        expect(signals).toHaveLength(1);
        expect(arg<unknown>(signals[0]!.workflowExecutionSignaledEventAttributes!.input)).toEqual(bobsGo);
        expect(report.approvals).toEqual([
          expect.objectContaining({
            by: 'bob',
            approve: true,
            accepted: true,
            reason: 'go from the Web UI',
            fingerprint: keyFingerprint('bob'),
            evidence: gate.gate!.evidenceDigest,
          }),
        ]);
        expect(report.gate).toMatchObject({ requester: { by: 'alice' }, unsignedAllowed: false, approvalsNeeded: 1 });
        const activities = events
          .filter((e) => e.activityTaskScheduledEventAttributes)
          .map((e) => ({
            type: e.activityTaskScheduledEventAttributes!.activityType!.name!,
            at: at(e),
            input: e.activityTaskScheduledEventAttributes!.input,
          }));
        expect(activities.map((a) => a.type)).toEqual([
          'loadDrillPlan', // the lease: which site the plan drills into
          'loadDrillPlan',
          'drillPreflight',
          'openGate', // the evidence's digest, the request's signature
          'verifyDecision', // bob's signed go
          'drillPreflight', // recheck: the world as approved
          'setStorageLocationMode',
          'veleroRestore',
          'backupContents',
          'verifySite',
          'siteDeployments',
          'switchDns',
          'verifyDns',
          'switchDns',
          'removeRestored',
          'restoreStorageLocationMode',
          'drillCleanupCheck',
          'writeDrillReport',
          'digestEvidence', // the report a sign-off is signed over
        ]);
        const restoreInput = arg<{ backup: string; restoreName: string; namespaces: string[] }>(
          activities.find((a) => a.type === 'veleroRestore')!.input,
        );
        expect(restoreInput).toMatchObject({ backup: report.backup!.name, namespaces: [NS] });
        const step = (name: string) => report.timeline.find((s) => s.step === name)!;
        expect(step('restore').detail).toContain(restoreInput.restoreName);
        // The timeline's clock agrees with the server's: the go came before the restore started.
        expect(at(signals[0]!)).toBeLessThanOrEqual(Date.parse(step('restore').startedAt!));
        expect(Date.parse(step('restore').startedAt!)).toBeLessThanOrEqual(
          activities.find((a) => a.type === 'veleroRestore')!.at + 1000,
        );
        expect(Date.parse(report.startedAt)).toBe(at(events[0]!));
        const switched = arg<{ records: { name: string }[]; addresses: string[] }>(
          activities.find((a) => a.type === 'switchDns')!.input,
        );
        expect(switched).toEqual({ records: [{ name: DRILL_RECORD, ttl: 30 }], addresses: [B] });
        expect(report.compensations).toEqual(
          [`${DRILL_RECORD} back to ${A}`, ...restoreUndos((await h.describe()).runId)].map((name) => ({
            name,
            state: 'done',
          })),
        );

        // Stored off-site: the same JSON, and the HTML page.
        expect(report.location!.json).toBe(`drctl/drills/${PLAN}/${workflowId}/report.json`);
        expect(JSON.parse(await streamText(await gw.store().get(report.location!.json)))).toEqual(report);
        const html = await streamText(await gw.store().get(report.location!.html));
        expect(html).toContain(`data-metric="e-commerce RTO" data-value="${report.tiers[0]!.rtoSeconds}"`);

        // Sign-off: a signer who is no approver is refused at once; an approver signs with her key.
        const refused = await cli('drill', 'sign', workflowId, '--key', personKey('dave'));
        expect(`${refused.status} ${refused.stderr.trim()}`).toBe(
          `2 error: ${workflowId}: dave is not an approver (allowlist: alice, bob, carol)`,
        );
        const signed = await cli(
          'drill',
          'sign',
          workflowId,
          '--key',
          personKey('carol'),
          '--comment',
          'RTO well inside target',
        );
        expect(signed.status, signed.stderr).toBe(0);
        const final = await h.result();
        expect(final.signOff).toMatchObject({
          by: 'carol',
          comment: 'RTO well inside target',
          fingerprint: keyFingerprint('carol'),
        });
        expect(JSON.parse(await streamText(await gw.store().get(final.location!.json))).signOff).toMatchObject({
          by: 'carol',
        });

        // The CLI's report and history.
        const out = join(dir, 'report.html');
        expect((await cli('drill', 'report', workflowId, '--out', out)).status).toBe(0);
        const hist = await cli('drill', 'history', '--plan', PLAN, '--json');
        expect(hist.status, hist.stderr).toBe(0);
        expect(
          (JSON.parse(hist.stdout) as { workflowId: string }[]).find((r) => r.workflowId === workflowId),
        ).toMatchObject({ outcome: 'passed', failed: [], signedOffBy: 'carol' });

        // The HTML report in the browser: its figures, and a screenshot kept as an artefact.
        const rp = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        await rp.goto(pathToFileURL(out).toString());
        expect(await rp.locator('#outcome').textContent()).toBe('PASSED');
        expect(await rp.locator('#signoff').textContent()).toContain(`carol with key ${keyFingerprint('carol')}`);
        expect(await rp.locator('#unsigned').count()).toBe(0);
        const bar = rp.locator('rect[data-metric="e-commerce RPO"]');
        expect(Number(await bar.getAttribute('data-value'))).toBe(final.tiers[0]!.rpoSeconds);
        expect(await rp.locator('#verdicts tbody tr').count()).toBe(7);
        expect(await rp.getByText(`${final.tiers[0]!.rtoSeconds!.toFixed(1)} s / target 15.0 min ✔`).count()).toBe(1);
        console.log(`report screenshot: ${await screenshot(rp, 'drill-report')}`);
      } finally {
        sampling = false;
        await sampler;
        await browser.close();
      }
    },
  );

  it(
    'cleanup always runs: a failure in verification and a cancel mid-drill both leave site B and DNS as before',
    { timeout: 600_000 },
    async () => {
      await baseline();
      // B's app endpoint never answers: verification fails (after 10 s), or waits until the cancel.
      await labCli('site', 'down', 'site-b');
      try {
        await withWorker(
          (c) => (c.drills[0]!.verifyTimeout = 10_000),
          async (tq) => {
            const h = await startDrill(tq);
            await phase(h, ['waiting-approval']);
            await decide(env, h, 'bob', true, 'go');
            const st = await phase(h, ['waiting-signoff', 'completed']);
            const r = st.report!;
            expect(r.outcome).toBe('failed');
            const verdict = Object.fromEntries(r.verdicts.map((v) => [v.criterion, v.ok]));
            expect(verdict).toMatchObject({
              'backup-present': true,
              'restore-complete': true,
              'app-serves': false,
              'rto-met': false,
              cleanup: true,
            });
            expect(r.failures.join('\n')).toMatch(/app endpoint http:\/\/127\.0\.20\.100:8080\/healthz: ECONNREFUSED/);
            // The report leads with why, and what to do; no figure is a '?' (issue: reports that say why).
            expect(failureCause(r)).toMatchObject({
              check: 'app endpoint http://127.0.20.100:8080/healthz',
              action: expect.stringContaining(
                "the app's health endpoint at site-b does not answer",
              ) as unknown as string,
            });
            const summary = drillSummary(r);
            expect(summary.split('\n')[1]).toMatch(
              /^ {2}WHY: app endpoint http:\/\/127\.0\.20\.100:8080\/healthz: .*ECONNREFUSED/,
            );
            expect(summary).not.toContain('?');
            const stored = JSON.parse(await streamText(await gw.store().get(r.location!.json))) as Record<
              string,
              unknown
            >;
            expect(Object.keys(stored).slice(0, 6)).toEqual([
              'kind',
              'plan',
              'workflowId',
              'runId',
              'outcome',
              'cause',
            ]);
            expect(stored.cause).toEqual(failureCause(r));
            expect(r.timeline.find((s) => s.step === 'verify')!.state).toBe('failed');
            expect(r.timeline.find((s) => s.step === 'switch-drill-record')!.state).toBe('pending');
            // The restore's two undos ran, in reverse; the drill record never moved, so it had none.
            expect(cleanupItems(st)).toEqual(restoreUndos(h.firstExecutionRunId).map((u) => [u, 'done']));
            expect(r.compensations).toEqual(
              restoreUndos(h.firstExecutionRunId).map((name) => ({ name, state: 'done' })),
            );
            await h.terminate('test done');
          },
        );
        expect(await drState()).toEqual(BASELINE());

        // Cancelled at a named step: while verify waits for B's app (up to the plan's 3 min), so the
        // restore is done and its undos registered, and the drill record has not moved.
        const h = await startDrill(env.taskQueue);
        await phase(h, ['waiting-approval']);
        await decide(env, h, 'carol');
        await until(
          'the drill in its verify step',
          () => h.query(statusQuery),
          (s) => s.steps.find((x) => x.step === 'verify')!.state === 'running',
          120_000,
          100,
        );
        const st = await cancelled(h);
        const r = st.report!;
        expect(r.outcome).toBe('cancelled');
        expect(r.timeline.find((s) => s.step === 'restore')!.state).toBe('done');
        expect(r.timeline.find((s) => s.step === 'switch-drill-record')!.state).toBe('pending');
        expect(cleanupItems(st)).toEqual(restoreUndos(h.firstExecutionRunId).map((u) => [u, 'done']));
        expect(r.compensations).toEqual(restoreUndos(h.firstExecutionRunId).map((name) => ({ name, state: 'done' })));
        expect(r.verdicts.find((v) => v.criterion === 'cleanup')).toMatchObject({ ok: true });
      } finally {
        await labCli('site', 'up', 'site-b');
      }
      expect(await drState()).toEqual(BASELINE());
    },
  );

  it(
    'one runbook per site: a second drill is refused naming the first; a real failover preempts a drill mid-way, whose cleanup removes only what it restored',
    { timeout: 600_000 },
    async () => {
      await baseline();
      // B's app endpoint down: the drill waits in its verify step when the failover comes.
      await labCli('site', 'down', 'site-b');
      try {
        const h = await startDrill(env.taskQueue);
        await phase(h, ['waiting-approval']);
        // A second drill of the same DR site is refused at once, naming the first; it changed nothing.
        const second = await startDrill(env.taskQueue);
        const refused = await failureOf(second);
        expect(refused).toBeInstanceOf(WorkflowFailedError);
        expect(refused.cause).toMatchObject({
          type: FailureType.LeaseHeld,
          message: expect.stringMatching(
            new RegExp(
              `^site-b is held by drill ${h.workflowId} \\(DR drill ${PLAN}, requested by alice, since [^)]+\\): one runbook per site at a time`,
            ),
          ),
        });
        expect((await second.query(statusQuery)).steps.find((s) => s.step === 'preflight')!.state).toBe('pending');

        await decide(env, h, 'bob', true, 'go');
        await until(
          'the drill in its verify step',
          () => h.query(statusQuery),
          (s) => s.steps.find((x) => x.step === 'verify')!.state === 'running',
          120_000,
          100,
        );
        const drillRestore = `drctl-drill-${runTag(h.firstExecutionRunId)}`;
        expect((await gw.kube('site-b').namespace(NS))?.labels[RESTORED_BY]).toBe(drillRestore);

        // A real failover A → B: it cancels the drill, waits for its cleanup, then takes both sites.
        const fid = `failover-test-${Date.now()}`;
        const failover = await client.workflow.start(siteFailover, {
          taskQueue: env.taskQueue,
          workflowId: fid,
          args: [
            await signedInput(env, 'site-failover', fid, { from: 'site-a', to: 'site-b', reason: 'site A burns' }),
          ],
        });
        const err = await h.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
        const drill = await h.query(statusQuery);
        expect(drill.report!.outcome).toBe('cancelled');
        expect(cleanupItems(drill)).toEqual(restoreUndos(h.firstExecutionRunId).map((u) => [u, 'done']));
        await labCli('site', 'up', 'site-b');
        const gate = await until(
          'the failover at its gate',
          () => failover.query(failoverStatus),
          (s) => s.phase !== 'running',
          120_000,
          250,
        );
        expect(gate.phase).toBe('waiting-approval');
        expect(itemsOf(gate.steps.find((s) => s.step === 'lease'))).toEqual({
          'site-a': 'held',
          'site-b': `held (preempted ${h.workflowId})`,
        });
        // What the drill restored was removed before the failover looked: B is empty at its preflight.
        expect(gate.evidence!.warnings.join('\n')).not.toMatch(/already at site-b/);

        // While the failover holds both sites, a failback is refused, naming it.
        const fbId = `failback-test-${Date.now()}`;
        const fb = await client.workflow.start(siteFailover, {
          taskQueue: env.taskQueue,
          workflowId: fbId,
          args: [
            await signedInput(env, 'site-failover', fbId, {
              from: 'site-b',
              to: 'site-a',
              backupFirst: true,
              reason: 'test',
            }),
          ],
        });
        const fbErr = await failureOf(fb);
        // It takes both sites at once, and the failover holds both: either refusal may come first.
        expect(fbErr.cause).toMatchObject({
          type: FailureType.LeaseHeld,
          message: expect.stringMatching(
            new RegExp(`^site-[ab] is held by site-failover ${fid} \\(failover site-a → site-b`),
          ),
        });

        await decide(env, failover, 'bob', true, 'go');
        const report = await failover.result();
        expect(report.outcome).toBe('completed');
        // Now B serves what the failover restored, under the failover's mark, not the drill's.
        expect((await gw.kube('site-b').namespace(NS))?.labels[RESTORED_BY]).toBe(report.restoreName);
        expect((await drState()).dns).toEqual([B]);
      } finally {
        await labCli('site', 'up', 'site-b');
      }
    },
  );

  it(
    "with etcdRestore: the DR cluster's newest off-site snapshot restored onto itself (a child runbook the drill's go approves), then the app drill",
    { timeout: 600_000 },
    async () => {
      await baseline();
      const snap = await snapshotNow(client, env.taskQueue, gw, 'site-b');
      await withWorker(
        (c) => {
          c.drills[0]!.etcdRestore = true;
        },
        async (tq) => {
          const h = await startDrill(tq);
          const gate = await phase(h, ['waiting-approval']);
          expect(gate.evidence!.etcdSnapshot).toBe(snap.key);
          await decide(env, h, 'bob', true, 'go');
          const st = await phase(h, ['waiting-signoff', 'completed'], 480_000);
          const r = st.report!;
          expect(r.outcome, JSON.stringify(r.verdicts)).toBe('passed');
          expect(r.verdicts.map((v) => v.criterion)).toContain('etcd-restore');
          expect(r.etcd).toMatchObject({
            cluster: 'site-b',
            workflowId: `${h.workflowId}-etcd`,
            outcome: 'completed',
            snapshot: snap.key,
          });
          // Every member restored from that snapshot: one revision, above the snapshot's (bumped), same key count.
          const members = [...r.etcd!.detail!.matchAll(/(cp\d) rev (\d+), (\d+) keys/g)].map((m) => ({
            node: m[1],
            rev: Number(m[2]),
            keys: Number(m[3]),
          }));
          expect(members.map((m) => m.node)).toEqual(['cp1', 'cp2', 'cp3']);
          expect(new Set(members.map((m) => m.rev)).size).toBe(1);
          expect(members[0]!.rev).toBeGreaterThan(snap.revision);
          expect(new Set(members.map((m) => m.keys)).size).toBe(1);
          // The child was approved by the drill's approver, not by its requester.
          const child = await client.workflow.getHandle(`${h.workflowId}-etcd`).result();
          expect(child.approval).toMatchObject({ by: 'bob', approve: true, accepted: true });
          console.log(
            `etcd restore drill ${r.etcd!.seconds!.toFixed(1)} s; app RTO ${r.tiers[0]!.rtoSeconds!.toFixed(1)} s`,
          );
          await h.terminate('test done');
        },
      );
      expect(await drState()).toEqual(BASELINE());
    },
  );

  it(
    'refuses to drill into namespaces that already exist at the DR site (it would touch live objects)',
    { timeout: 120_000 },
    async () => {
      // The DR site up (its readiness comes first in the preflight) and the namespace freshly made there.
      await labCli('site', 'up', 'site-b');
      await gw.kube('site-b').deleteNamespace(NS, 120_000);
      const api = objectApi(SITES.find((s) => s.name === 'site-b')!);
      const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } };
      await api.create(ns);
      try {
        const h = await startDrill(env.taskQueue);
        const err = await failureOf(h);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        expect((err.cause as { cause?: unknown })?.cause ?? err.cause).toMatchObject({
          type: FailureType.PreflightFailed,
          message: expect.stringMatching(/demo-app already exist at site-b: is it serving\?/),
        });
      } finally {
        await gw.kube('site-b').deleteNamespace(NS, 120_000);
      }
    },
  );

  it(
    'a schedule per plan: created quarterly, triggered, an overlapping trigger skipped, paused, deleted',
    { timeout: 300_000 },
    async () => {
      await baseline();
      // A schedule an interrupted earlier run left would make this one's create an update.
      await client.schedule
        .getHandle(`drill-${PLAN}`)
        .delete()
        .catch(() => undefined);
      const created = await cli('drill', 'schedule', '--plan', PLAN, '--json');
      expect(created.status, created.stderr).toBe(0);
      const s = JSON.parse(created.stdout) as {
        scheduleId: string;
        schedule: string;
        overlap: string;
        paused: boolean;
        nextActionTimes: string[];
      };
      expect(s).toMatchObject({ scheduleId: `drill-${PLAN}`, paused: false });
      expect(s.schedule).toMatch(/0 6 1 1,4,7,10 \*/);
      const next = new Date(s.nextActionTimes[0]!);
      expect([0, 3, 6, 9]).toContain(next.getUTCMonth());
      expect([next.getUTCDate(), next.getUTCHours(), next.getUTCMinutes()]).toEqual([1, 6, 0]);
      try {
        expect((await cli('drill', 'trigger', '--plan', PLAN)).status).toBe(0);
        const describe = () => client.schedule.getHandle(`drill-${PLAN}`).describe();
        const running = await until(
          'the scheduled drill running',
          describe,
          (d) => d.info.runningActions.length === 1,
          60_000,
          300,
        );
        const first = running.info.runningActions[0]!.workflow.workflowId;
        await phase(client.workflow.getHandle(first), ['waiting-approval']);
        expect((await cli('drill', 'trigger', '--plan', PLAN)).status).toBe(0);
        const skipped = await until(
          'the overlapping trigger skipped',
          describe,
          (d) => d.info.numActionsSkippedOverlap >= 1,
          30_000,
          300,
        );
        expect(skipped.info.runningActions.map((a) => a.workflow.workflowId)).toEqual([first]);
        expect((await cli('drill', 'pause', '--plan', PLAN, '--note', 'change freeze')).status).toBe(0);
        const list = JSON.parse((await cli('drill', 'list', '--json')).stdout) as {
          scheduleId: string;
          paused: boolean;
          note: string;
          numActionsSkippedOverlap: number;
          running: string[];
        }[];
        expect(list.find((x) => x.scheduleId === `drill-${PLAN}`)).toMatchObject({
          paused: true,
          note: 'change freeze',
          numActionsSkippedOverlap: 1,
          running: [first],
        });
        // A scheduled drill was asked for by nobody in particular: any approver may approve it, alice too
        // (who could not approve a drill she ran herself).
        const h = client.workflow.getHandle(first);
        expect((await h.query(statusQuery)).requestedBy).toBe(`schedule:drill-${PLAN}`);
        expect((await h.query(statusQuery)).gate).toMatchObject({ approvalsNeeded: 1 });
        const approved = await cli('approve', first, '--key', personKey('alice'), '--reason', 'go');
        expect(`${approved.status} ${approved.stdout.trim()}`, approved.stderr).toBe(
          `0 approved ${first} as alice (${keyFingerprint('alice')})`,
        );
        const past = await until(
          'the scheduled drill past its gate',
          () => h.query(statusQuery),
          (st) => st.steps.find((x) => x.step === 'restore')!.state !== 'pending',
          60_000,
          200,
        );
        expect(past.steps.find((x) => x.step === 'approval')).toMatchObject({
          state: 'done',
          detail: `approved by alice (${keyFingerprint('alice')})`,
        });
        expect(past.decisions).toEqual([expect.objectContaining({ by: 'alice', approve: true, accepted: true })]);
        // Nothing may stay at site B: a cancel cleans the drill up wherever it is.
        const st = await cancelled(h);
        expect(st.report!.outcome).toBe('cancelled');
        expect(
          st.report!.compensations.every((c) => c.state === 'done'),
          JSON.stringify(st.report!.compensations),
        ).toBe(true);
        expect(st.report!.verdicts.find((v) => v.criterion === 'cleanup')).toMatchObject({ ok: true });
      } finally {
        expect((await cli('drill', 'delete', '--plan', PLAN)).status).toBe(0);
      }
      expect((await cli('drill', 'trigger', '--plan', PLAN)).status).toBe(1);
      expect(await drState()).toEqual(BASELINE());
    },
  );
});
