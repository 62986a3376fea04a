// Runbook: DR drill. Proves, without touching production, that the DR site can take over:
//   1 preflight (read-only)  2 go/no-go  3 etcd restore drill on the DR cluster (optional)
//   4 Velero restore into the DR site  5 post-restore verification, pods against the source
//   6 switch the DRILL record (never the production one) to the DR site, prove the app answers
//   7 measure RTO/RPO per tier  8 clean up — always, also after a failure or a cancel
//   9 evidence report (JSON + HTML) in the off-site bucket  10 sign-off by an approver
// Each change registers its undo right before it runs; cleanup runs them in reverse and then proves
// the DR site and the drill record are as they were.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import {
  DRILL_STEPS,
  type DrillFacts,
  type DrillInput,
  type DrillOutcome,
  type DrillReport,
  type DrillStatus,
  type DrillStep,
  type DrillStepRecord,
  podsMatch,
  type SignOff,
  tierResults,
  verdicts,
} from '../common/drill.ts';
import { FailureType, rootMessage } from '../common/errors.ts';
import type { CheckResult } from '../common/failover.ts';
import { runTag } from '../common/restore.ts';
import { approveSignal, waitForDecision } from './approval.ts';
import { long, quick, undo } from './site-activities.ts';
import { stepRunner } from './steps.ts';
import { etcdRestore } from './etcd-restore.ts';

export { approveSignal, decideUpdate, rejectSignal } from './approval.ts';
export const drillStatusQuery = defineQuery<DrillStatus>('status');
/** Web UI: Signal → `signoff`, input `{"by": "carol", "comment": "RTO fine, RPO tight"}`. */
export const signoffSignal = defineSignal<[{ by: string; comment?: string }]>('signoff');
/** CLI: the same, refused at once unless an approver signs while the drill waits for sign-off. */
export const signoffUpdate = defineUpdate<SignOff, [{ by: string; comment?: string }]>('sign');

export async function drDrill(input: DrillInput): Promise<DrillReport> {
  const info = workflowInfo();
  const tagOfRun = runTag(info.runId);
  const tag = `${info.workflowId}.${tagOfRun}`;
  const restoreName = `drctl-drill-${tagOfRun}`;
  const startedAt = new Date(info.startTime).toISOString();
  const status: DrillStatus = {
    plan: input.plan,
    phase: 'running',
    requestedBy: input.requestedBy,
    decisions: [],
    steps: DRILL_STEPS.map((step) => ({ step, state: 'pending', items: {} })),
  };
  setHandler(drillStatusQuery, () => status, {
    description: 'Phase, evidence, progress of every step and, at the end, the report',
  });

  const step = (name: DrillStep): DrillStepRecord => status.steps.find((x) => x.step === name)!;
  const run = stepRunner(step, (_, ms, s) => (s.seconds = ms / 1000));
  const skip = (name: DrillStep, why: string) => Object.assign(step(name), { state: 'skipped', detail: why });
  const refuse = (type: FailureType, message: string) =>
    ApplicationFailure.create({ type, message, nonRetryable: true });
  const abort = (err: unknown): never => {
    status.phase = 'aborted';
    status.error = rootMessage(err);
    throw err;
  };

  // 1. Preflight: read-only. A drill that would touch something live stops here.
  const pre = await run('preflight', async (s) => {
    const plan = await quick.loadDrillPlan({ plan: input.plan });
    const p = await quick.drillPreflight({ plan });
    for (const c of p.drReady) s.items[c.check] = `${c.ok ? 'ok' : 'FAIL'}: ${c.detail}`;
    const bad = p.drReady.filter((c) => !c.ok);
    if (bad.length)
      throw refuse(
        FailureType.PreflightFailed,
        `DR site ${plan.to} is not ready:\n${bad.map((c) => `${c.check}: ${c.detail}`).join('\n')}`,
      );
    if (p.existingAtTarget.length) {
      throw refuse(
        FailureType.PreflightFailed,
        `${p.existingAtTarget.join(', ')} already exist at ${plan.to}: is it serving? A drill restores only into namespaces that do not exist there`,
      );
    }
    s.detail = `${p.backup ? `newest backup ${p.backup.name} (${p.backup.ageSeconds} s old)` : 'no backup'}; ${p.sourceDetail}`;
    return p;
  }).catch(abort);
  const { plan } = pre;
  const warnings: string[] = [];
  if (!pre.backup)
    warnings.push(`no completed backup of ${pre.namespaces.join(', ')} visible at ${plan.to}: nothing to restore`);
  if (!pre.sourceWorkloads) warnings.push(`${plan.from}: ${pre.sourceDetail}; pods cannot be compared with the source`);
  if (plan.etcdRestore && !pre.etcdSnapshot)
    warnings.push(`no off-site etcd snapshot of ${plan.to}'s cluster: the etcd restore drill will fail`);

  // 2. Go/no-go, with the evidence; a scheduled drill tells people it waits.
  const timeoutMs = input.approvalTimeoutMs ?? plan.approvalTimeoutMs;
  status.evidence = {
    from: plan.from,
    to: plan.to,
    namespaces: pre.namespaces,
    backup: pre.backup,
    record: plan.record.name,
    recordBefore: pre.recordBefore,
    recordDuring: [pre.toAddress],
    etcdSnapshot: plan.etcdRestore ? (pre.etcdSnapshot?.key ?? '(none)') : undefined,
    approvers: plan.approvers,
    approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
    warnings,
  };
  if (input.requestedBy.startsWith('schedule:')) {
    await quick.notify({
      event: 'drill-waiting-approval',
      text: `DR drill ${plan.name} (${plan.from} → ${plan.to}) waits for go/no-go`,
      workflowId: info.workflowId,
      url: plan.webUi,
    });
  }
  const gateStart = Date.now();
  const approval = await run('approval', async (s) => {
    const d = await waitForDecision(status, plan, input.requestedBy, timeoutMs, 'drill');
    s.detail = `${d.approve ? 'approved' : 'rejected'} by ${d.by}${d.reason ? `: ${d.reason}` : ''}`;
    return d;
  }).catch(abort);
  const approvalWaitSeconds = (Date.now() - gateStart) / 1000;
  if (!approval.approve)
    abort(
      refuse(
        FailureType.ApprovalRejected,
        `rejected by ${approval.by}${approval.reason ? `: ${approval.reason}` : ''}; nothing was changed`,
      ),
    );
  status.phase = 'running';

  const compensations: { name: string; fn: () => Promise<unknown> }[] = [];
  const onCleanup = (name: string, fn: () => Promise<unknown>) => compensations.unshift({ name, fn });
  const facts: DrillFacts = { backup: pre.backup, tiers: [] };
  const failures: string[] = [];
  let checks: CheckResult[] = [];
  let clockStartedAt: string | undefined;
  let servingAt: string | undefined;
  let cancelled: unknown;

  try {
    // 3. etcd: restore the DR cluster's newest off-site snapshot onto itself (a backup never
    // restored is not a backup). The etcd runbook undoes itself if it fails; the drill goes on.
    if (plan.etcdRestore && pre.etcdSnapshot) {
      const cluster = plan.toCluster;
      const childId = `${info.workflowId}-etcd`;
      facts.etcd = { cluster, workflowId: childId, outcome: 'running', snapshot: pre.etcdSnapshot.key };
      await run('etcd-restore', async (s) => {
        const t0 = Date.now();
        const child = await startChild(etcdRestore, {
          workflowId: childId,
          args: [
            {
              cluster,
              snapshot: pre.etcdSnapshot!.key,
              requestedBy: input.requestedBy,
              force: true,
              approvalTimeoutMs: 10 * 60_000,
            },
          ],
        });
        // The drill's approver approved this too (the gate's evidence names the snapshot).
        await child.signal(approveSignal, { by: approval.by, reason: `part of DR drill ${info.workflowId}` });
        try {
          const r = await child.result();
          const members = (r.verification ?? []).map((m) => `${m.node} rev ${m.revision}, ${m.keys} keys`).join('; ');
          facts.etcd = {
            ...facts.etcd!,
            outcome: 'completed',
            seconds: (Date.now() - t0) / 1000,
            detail: members || undefined,
          };
          s.detail = `${pre.etcdSnapshot!.key} restored on every member of ${cluster} in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
        } catch (err) {
          if (isCancellation(err)) throw err;
          facts.etcd = {
            ...facts.etcd!,
            outcome: 'failed',
            seconds: (Date.now() - t0) / 1000,
            detail: rootMessage(err),
          };
          failures.push(`etcd restore drill: ${rootMessage(err)}`);
          throw err;
        }
      }).catch((err: unknown) => {
        if (isCancellation(err)) throw err;
      });
    } else if (plan.etcdRestore) {
      facts.etcd = {
        cluster: plan.toCluster,
        workflowId: '-',
        outcome: 'failed',
        detail: 'no off-site snapshot of the DR cluster',
      };
      skip('etcd-restore', 'no off-site snapshot of the DR cluster');
    } else {
      skip('etcd-restore', 'not in this plan');
    }

    if (!pre.backup)
      throw refuse(
        FailureType.PreflightFailed,
        `no completed backup of ${pre.namespaces.join(', ')} visible at ${plan.to}`,
      );
    const backup = pre.backup;

    // 4. Velero restore into the DR site; its backup location read-only meanwhile.
    await run('restore', async (s) => {
      clockStartedAt = new Date().toISOString();
      onCleanup(`${plan.to} backup location mode back`, () => undo.restoreStorageLocationMode({ site: plan.to, tag }));
      await quick.setStorageLocationMode({ site: plan.to, mode: 'ReadOnly', tag });
      onCleanup(`delete what restore ${restoreName} created at ${plan.to}`, () =>
        undo.removeRestored({ site: plan.to, restoreName, created: pre.namespaces, existed: [], tag }),
      );
      const r = await long.veleroRestore({
        site: plan.to,
        backup: backup.name,
        namespaces: pre.namespaces,
        restoreName,
      });
      facts.restore = { phase: r.phase, errors: r.errors, itemsRestored: r.itemsRestored, totalItems: r.totalItems };
      s.detail = `${restoreName} from ${backup.name}: ${r.phase}, ${r.itemsRestored ?? '?'}/${r.totalItems ?? '?'} items, ${r.warnings} warning(s)`;
    });

    // 5. Verification: the checklist at the DR site, and its pods against the source's.
    await run('verify', async (s) => {
      const expected = await quick.backupContents({ site: plan.to, backup: backup.name });
      try {
        checks = await long.verifySite({
          site: plan.to,
          namespaces: pre.namespaces,
          expected,
          timeoutMs: plan.verifyTimeoutMs,
        });
      } finally {
        const dr = await quick.siteDeployments({ site: plan.to, namespaces: pre.namespaces });
        facts.podsMatch = podsMatch(pre.sourceWorkloads, dr);
        s.items['pods against the source'] = facts.podsMatch.detail;
      }
      for (const c of checks) s.items[c.check] = c.detail;
    });

    // 6. The drill record (never the production one) to the DR site; the app must answer through it.
    await run('switch-drill-record', async (s) => {
      const record = { name: plan.record.name, ttl: plan.record.ttl };
      onCleanup(`${record.name} back to ${pre.recordBefore.join(',') || '(no record)'}`, () =>
        undo.switchDns({ records: [record], addresses: pre.recordBefore }),
      );
      await quick.switchDns({ records: [record], addresses: [pre.toAddress] });
      s.items[record.name] = `${pre.recordBefore.join(',') || '(none)'} → ${pre.toAddress}`;
      const dns = await long.verifyDns({ records: [record.name], addresses: [pre.toAddress], site: plan.to });
      checks = [...checks, ...dns];
      facts.appServes = dns.find((c) => c.check.startsWith('app answers through'));
      servingAt = new Date().toISOString();
    });

    // 7. Measure: RTO from the restore's start to the app answering through the record.
    await run('measure', async (s) => {
      const rto = (Date.parse(servingAt!) - Date.parse(clockStartedAt!)) / 1000;
      facts.tiers = tierResults(plan, backup.ageSeconds, rto);
      s.detail = facts.tiers
        .map(
          (t) =>
            `${t.tier}: RTO ${rto.toFixed(1)} s / ${t.rtoTargetSeconds} s, RPO ${t.rpoSeconds} s / ${t.rpoTargetSeconds} s`,
        )
        .join('; ');
    });
  } catch (err) {
    if (isCancellation(err)) cancelled = err;
    else failures.push(rootMessage(err));
  }
  if (!facts.tiers.length) facts.tiers = tierResults(plan, pre.backup?.ageSeconds, undefined);

  // 8. Cleanup: always, also on cancel; then the proof that the DR site and DNS are as before.
  status.phase = 'cleaning-up';
  const undone: DrillReport['compensations'] = [];
  await CancellationScope.nonCancellable(() =>
    run('cleanup', async (s) => {
      for (const c of compensations) {
        s.items[c.name] = 'running';
        try {
          await c.fn();
          s.items[c.name] = 'done';
          undone.push({ name: c.name, state: 'done' });
        } catch (err) {
          s.items[c.name] = `failed: ${rootMessage(err)}`;
          undone.push({ name: c.name, state: 'failed', detail: rootMessage(err) });
        }
      }
      facts.cleanup = await undo.drillCleanupCheck({
        site: plan.to,
        namespaces: pre.namespaces,
        record: plan.record.name,
        recordBefore: pre.recordBefore,
      });
      s.detail = facts.cleanup.detail;
      if (!facts.cleanup.ok) failures.push(`cleanup incomplete: ${facts.cleanup.detail}`);
    }),
  ).catch((err: unknown) => failures.push(`cleanup: ${rootMessage(err)}`));

  // 9. The evidence report, in the off-site bucket.
  const v = verdicts(plan.criteria, facts);
  const outcome: DrillOutcome = cancelled
    ? 'cancelled'
    : v.every((x) => x.ok) && !failures.length
      ? 'passed'
      : 'failed';
  const report: DrillReport = {
    kind: 'drctl.drill-report/v1',
    plan: plan.name,
    workflowId: info.workflowId,
    runId: info.runId,
    outcome,
    requestedBy: input.requestedBy,
    reason: input.reason,
    from: plan.from,
    to: plan.to,
    record: plan.record.name,
    namespaces: pre.namespaces,
    startedAt,
    endedAt: '',
    clockStartedAt,
    servingAt,
    approvalWaitSeconds,
    backup: pre.backup,
    tiers: facts.tiers,
    verdicts: v,
    checks,
    timeline: status.steps,
    approvals: status.decisions,
    failures,
    compensations: undone,
    etcd: facts.etcd,
    warnings,
  };
  const publish = () =>
    CancellationScope.nonCancellable(() =>
      run('report', async (s) => {
        report.endedAt = new Date().toISOString();
        // The report step itself ends with this write: recorded as done in what is written.
        report.timeline = status.steps.map((x) =>
          x.step === 'report'
            ? { ...x, state: 'done', endedAt: report.endedAt, items: {} }
            : { ...x, items: { ...x.items } },
        );
        report.location = await undo.writeDrillReport({ report });
        s.detail = `s3://${report.location.bucket}/${report.location.html}`;
        status.report = report;
      }),
    );
  await publish();
  if (cancelled) {
    status.phase = 'completed';
    throw cancelled;
  }

  // 10. Sign-off: an approver reads the report and signs it (or it stands unsigned after the timeout).
  let signOff: SignOff | undefined;
  const signRefusal = (d: { by: string }) => {
    if (!d || typeof d.by !== 'string' || !d.by) return 'a sign-off needs {"by": "<approver>"}';
    if (status.phase !== 'waiting-signoff') return `not waiting for sign-off (phase: ${status.phase})`;
    if (!plan.approvers.includes(d.by)) return `${d.by} is not an approver (allowlist: ${plan.approvers.join(', ')})`;
    return undefined;
  };
  const sign = (d: { by: string; comment?: string }): SignOff => {
    const rec: SignOff = { by: d.by, comment: d.comment, at: new Date().toISOString() };
    if (!signRefusal(d) && !signOff) signOff = rec;
    return rec;
  };
  status.phase = 'waiting-signoff';
  setHandler(signoffSignal, (d) => void sign(d), {
    description: 'Sign the drill report off. Input {"by": "<approver>", "comment": "..."}',
  });
  setHandler(signoffUpdate, sign, {
    description: "The CLI's sign-off: refused at once unless an approver signs",
    validator: (d) => {
      const why = signRefusal(d);
      if (why) throw new Error(why);
    },
  });
  await run('sign-off', async (s) => {
    const signed = await condition(() => signOff !== undefined, plan.signoffTimeoutMs);
    s.detail = signed
      ? `signed off by ${signOff!.by}${signOff!.comment ? `: ${signOff!.comment}` : ''}`
      : `no sign-off within ${Math.round(plan.signoffTimeoutMs / 3_600_000)} h`;
  });
  report.signOff = signOff;
  step('report').state = 'pending';
  await publish();
  status.phase = 'completed';
  return report;
}
