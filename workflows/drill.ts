// Runbook: DR drill. Proves, without touching production, that the DR site can take over:
//   0 the DR site's lease (a real failover or restore preempts the drill: cancelled, cleaned up)
//   1 preflight (read-only; a DR site that serves traffic never gets an etcd restore drill)
//   2 go/no-go  2b recheck the preflight  3 etcd restore drill on the DR cluster (optional)
//   4 Velero restore into the DR site  5 post-restore verification, pods against the source
//   6 switch the DRILL record (never the production one) to the DR site, prove the app answers
//   7 measure RTO/RPO per tier  8 clean up — always, also after a failure or a cancel; then the
//     lease is released (only what the drill's restore created and labelled is deleted)
//   9 evidence report (JSON + HTML) in the off-site bucket  10 sign-off by an approver
//   11 the signed report replaces the unsigned one
// Each change registers its undo right before it runs; cleanup runs them all in reverse (one that
// fails does not stop the others) and then proves the DR site and the drill record are as before.
import {
  CancellationScope,
  defineSignal,
  defineUpdate,
  isCancellation,
  ParentClosePolicy,
  patched,
  setHandler,
  startChild,
  workflowInfo,
  defineQuery,
} from '@temporalio/workflow';
import {
  DRILL_STEPS,
  drillChanges,
  type DrillEvidence,
  type DrillFacts,
  type DrillInput,
  type DrillOutcome,
  type DrillReport,
  type DrillStatus,
  podsMatch,
  type SignOff,
  tierResults,
  verdicts,
} from '../common/drill.ts';
import { FailureType, rootMessage } from '../common/errors.ts';
import type { CheckResult } from '../common/failover.ts';
import { runTag } from '../common/restore.ts';
import type { DecisionRecord } from '../common/runbook.ts';
import { long, quick, undo } from './activity-options.ts';
import { etcdRestore } from './etcd-restore.ts';
import { refuse, Runbook, signerText } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<DrillStatus>('status');
/** Web UI: Signal → `signoff`, input: the JSON `drctl drill sign <id> --sign-only` prints. */
export const signoffSignal = defineSignal<[unknown]>('signoff');
/** CLI: the same signed sign-off; the answer is the verdict, an error when refused. */
export const signoffUpdate = defineUpdate<DecisionRecord, [unknown]>('sign');

export async function drDrill(input: DrillInput): Promise<DrillReport> {
  const info = workflowInfo();
  const tagOfRun = runTag(info.runId);
  const tag = `${info.workflowId}.${tagOfRun}`;
  const restoreName = `drctl-drill-${tagOfRun}`;
  const startedAt = new Date(info.startTime).toISOString();
  const rb = new Runbook<DrillEvidence, Pick<DrillStatus, 'plan' | 'report'>>(
    {
      runbook: 'drill',
      title: `DR drill ${input.plan}`,
      steps: DRILL_STEPS,
      requestedBy: input.requestedBy,
      undoStep: 'cleanup',
      input,
    },
    { plan: input.plan },
  );
  const { run, skip, status } = rb;
  const abort = (err: unknown): never => {
    status.error = rootMessage(err);
    rb.setPhase('aborted');
    throw err;
  };

  try {
    return await (async (): Promise<DrillReport> => {
      // 0. The DR site's lease: one runbook per site at a time. A real failover or restore that wants
      //    the site cancels this drill (its cleanup removes only what it created) and takes it.
      await rb.lease(async () => [(await quick.loadDrillPlan({ plan: input.plan })).to]).catch(abort);

      // 1. Preflight: read-only. A drill that would touch something live stops here.
      const pre = await run('preflight', async (s) => {
        const plan = await quick.loadDrillPlan({ plan: input.plan });
        status.sites = [plan.from, plan.to];
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
        if (plan.etcdRestore && p.servingRecords?.length)
          throw refuse(
            FailureType.PreflightFailed,
            `${p.servingRecords.join(', ')} point(s) at ${plan.to}: its cluster serves traffic, and a drill never restores etcd on a cluster that serves`,
          );
        s.detail = `${p.backup ? `newest backup ${p.backup.name} (${p.backup.ageSeconds} s old)` : 'no backup'}; ${p.sourceDetail}`;
        return p;
      }).catch(abort);
      const { plan } = pre;
      const warnings: string[] = [];
      if (!pre.backup)
        warnings.push(`no completed backup of ${pre.namespaces.join(', ')} visible at ${plan.to}: nothing to restore`);
      if (!pre.sourceWorkloads)
        warnings.push(`${plan.from}: ${pre.sourceDetail}; pods cannot be compared with the source`);
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
      const approval = await rb.gate(plan, timeoutMs, 'drill').catch(abort);
      const approvalWaitSeconds = (Date.now() - gateStart) / 1000;

      // 2b. The gate may have waited an hour: before the first change, the preflight again. A drill
      //     whose DR site or drill record changed meanwhile aborts with nothing changed.
      //     (Runs that passed their gate before this step existed replay without it.)
      if (patched('recheck-after-gate')) {
        await run('recheck', async (s) => {
          const now = await quick.drillPreflight({ plan });
          for (const c of now.drReady) s.items[c.check] = `${c.ok ? 'ok' : 'FAIL'}: ${c.detail}`;
          const changes = drillChanges(pre, now);
          if (changes.length)
            throw refuse(
              FailureType.ChangedSinceApproval,
              `the DR site changed while the gate waited; nothing was changed:\n${changes.join('\n')}`,
            );
          s.detail = `as approved: ${pre.namespaces.join(', ')} absent at ${plan.to}, ${plan.record.name} → ${pre.recordBefore.join(',') || '(no record)'}`;
        }).catch(abort);
      }

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
          const snapshot = pre.etcdSnapshot.key;
          const childId = `${info.workflowId}-etcd`;
          facts.etcd = { cluster, workflowId: childId, outcome: 'running', snapshot };
          await run('etcd-restore', async (s) => {
            const t0 = Date.now();
            const child = await startChild(etcdRestore, {
              workflowId: childId,
              // The drill ending in any way (a cancel, a terminate, a failure) asks the restore to
              // cancel, which undoes what it changed; the default (TERMINATE) would leave it half-done.
              parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
              typedSearchAttributes: rb.childSearchAttributes('etcd-restore', input.requestedBy),
              // The drill's approval covers it (the gate's evidence names the snapshot); the child
              // honours it only because this drill is its parent.
              args: [
                {
                  cluster,
                  snapshot,
                  requestedBy: input.requestedBy,
                  force: true,
                  approvalTimeoutMs: 10 * 60_000,
                  approvedByParent: { ...approval, reason: `part of DR drill ${info.workflowId}` },
                },
              ],
            });
            try {
              const r = await child.result();
              const members = (r.verification ?? [])
                .map((m) => `${m.node} rev ${m.revision}, ${m.keys} keys`)
                .join('; ');
              facts.etcd = { ...facts.etcd!, outcome: 'completed', seconds: (Date.now() - t0) / 1000, detail: members };
              s.detail = `${snapshot} restored on every member of ${cluster} in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
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
          rb.undo(
            `${plan.to} backup location mode back`,
            () => undo.restoreStorageLocationMode({ site: plan.to, tag }),
            `${plan.to}: its Velero backup location's accessMode as before the drill`,
          );
          await quick.setStorageLocationMode({ site: plan.to, mode: 'ReadOnly', tag });
          rb.undo(
            `delete what restore ${restoreName} created at ${plan.to}`,
            () => undo.removeRestored({ site: plan.to, restoreName, created: pre.namespaces, existed: [], tag }),
            `${plan.to}: namespaces ${pre.namespaces.join(', ')} deleted (restored by ${restoreName})`,
          );
          const r = await long.veleroRestore({
            site: plan.to,
            backup: backup.name,
            namespaces: pre.namespaces,
            restoreName,
          });
          facts.restore = {
            phase: r.phase,
            errors: r.errors,
            itemsRestored: r.itemsRestored,
            totalItems: r.totalItems,
          };
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
          rb.undo(
            `${record.name} back to ${pre.recordBefore.join(',') || '(no record)'}`,
            () => undo.switchDns({ records: [record], addresses: pre.recordBefore }),
            `${record.name}: answers ${pre.recordBefore.join(',') || 'nothing (no record)'}`,
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
      rb.setPhase('cleaning-up');
      const attention = await rb
        .compensate({
          independent: true,
          then: async (s) => {
            facts.cleanup = await undo.drillCleanupCheck({
              site: plan.to,
              namespaces: pre.namespaces,
              record: plan.record.name,
              recordBefore: pre.recordBefore,
            });
            s.detail = [s.detail, facts.cleanup.detail].filter(Boolean).join('; ');
            if (!facts.cleanup.ok) failures.push(`cleanup incomplete: ${facts.cleanup.detail}`);
          },
        })
        .catch((err: unknown) => {
          failures.push(`cleanup: ${rootMessage(err)}`);
          return [];
        });
      for (const a of attention) failures.push(`cleanup: ${a.undo} failed (${a.error}); check ${a.check}`);
      // The DR site is as before: another runbook may take it (the report and sign-off touch no site).
      await rb.release();
      const undone: DrillReport['compensations'] = Object.entries(rb.step('cleanup').items).map(([name, state]) =>
        state === 'done' ? { name, state: 'done' } : { name, state: 'failed', detail: state },
      );

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
        timeline: [],
        // A copy: decisions sent while the report waits for sign-off must not change what is signed.
        approvals: [...status.decisions],
        gate: status.gate,
        failures,
        compensations: undone,
        etcd: facts.etcd,
        warnings,
      };
      /** Writes the report off-site as the step `name`, which the written timeline shows as done. */
      const publish = (name: 'report' | 'signed-report') =>
        CancellationScope.nonCancellable(() =>
          rb.run(name, async (s) => {
            report.endedAt = new Date().toISOString();
            report.timeline = status.steps.map((x) =>
              x.step === name
                ? { ...x, state: 'done', endedAt: report.endedAt, items: {} }
                : { ...x, items: { ...x.items } },
            );
            report.location = await undo.writeDrillReport({ report });
            s.detail = `s3://${report.location.bucket}/${report.location.html}`;
            status.report = report;
          }),
        );
      await publish('report');
      if (cancelled) {
        for (const s of ['sign-off', 'signed-report']) skip(s, 'the drill was cancelled');
        rb.setPhase('completed');
        throw cancelled;
      }

      // 10. Sign-off: an approver reads the report and signs it (or it stands unsigned after the timeout).
      const signOff = await run('sign-off', async (s): Promise<SignOff | undefined> => {
        const evidence = await quick.digestEvidence({ evidence: status.report });
        const [signed] =
          (await rb.waitForPerson({
            phase: 'waiting-signoff',
            waitingFor: `sign-off of the report by one of ${plan.approvers.join(', ')}, signed over report ${evidence.slice(0, 12)}`,
            timeoutMs: plan.signoffTimeoutMs,
            evidence,
            listen: (consider) => {
              setHandler(signoffSignal, (d) => void consider(d, 'signoff'), {
                description:
                  'Sign the drill report off: paste the JSON that `drctl drill sign <id> --sign-only` prints',
              });
              setHandler(signoffUpdate, (d) => consider(d, 'signoff', true), {
                description: "The CLI's signed sign-off: answers at once with the verdict",
                validator: (_d) => rb.refuseUnlessWaiting('waiting-signoff'),
              });
            },
            allow: (by) =>
              plan.approvers.includes(by)
                ? undefined
                : `${by} is not an approver (allowlist: ${plan.approvers.join(', ')})`,
            done: (so) => so.length > 0,
          })) ?? [];
        s.detail = signed
          ? `signed off by ${signerText(signed)}${signed.reason ? `: ${signed.reason}` : ''}`
          : `no sign-off within ${Math.round(plan.signoffTimeoutMs / 3_600_000)} h`;
        return signed
          ? {
              by: signed.by,
              comment: signed.reason,
              at: signed.at,
              fingerprint: signed.fingerprint,
              evidence: signed.evidence,
              unsigned: signed.unsigned,
            }
          : undefined;
      });
      rb.setPhase('running');

      // 11. The report again, now with its sign-off (or marked as standing unsigned).
      report.signOff = signOff;
      await publish('signed-report');
      rb.setPhase('completed');
      return report;
    })();
  } finally {
    // Every way out lets go of the DR site (the server also ends the lease of a run that closed).
    await rb.release();
  }
}
