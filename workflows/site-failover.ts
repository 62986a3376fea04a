// Runbook: site failover (and failback) with Velero and DNS.
//   0 both sites' leases (a drill at either is preempted)  1 preflight (read-only)
//   2 back up the source (failback only)  3 go/no-go
//   4 fence the old primary: Deployments and StatefulSets to 0, CronJobs suspended, its backup
//     location read-only (a fence-on-return still waiting to fence the target is superseded first)
//   5 Velero restore at the target  6 post-restore verification
//   7 DNS switch, proven by the authoritative answer and the app answering through the name
//   8 failback only: the site it left back to standby (what drctl restored there deleted)
//   9 report the achieved RTO/RPO; an old primary that could not be fenced (its API server did not
//     answer) gets a fence-on-return (workflows/fence-on-return.ts) that fences it when it answers
// Every step registers its undo beside it (the kernel, workflows/runbook.ts). A failure or cancel
// after the gate undoes newest first, and DNS always ends on a site that serves:
//   - before the DNS switch: what the restore created at the target removed (only the namespaces
//     it created, labelled drctl.io/restored-by=<its restore>; those that existed are stopped,
//     never deleted), the target's backup location mode back, the old primary unfenced. DNS never
//     moved.
//   - after it, the DNS undo runs first, and unfences the old primary BEFORE it decides (fenced,
//     the old primary cannot answer), giving it the verify timeout to answer:
//       the old site answers   → DNS back to it; then the rest is undone as above: compensated.
//       only the target does   → roll forward: DNS stays on the target, the old primary is fenced
//                                again (or gets a fence-on-return), the target is promoted, and
//                                nothing older is undone (the kernel's `keep`): rolled-forward.
//       neither answers        → the same roll-forward (nothing DNS points at is ever deleted), and
//                                the run ends needs-attention with both sites' answers.
import {
  ChildWorkflowCancellationType,
  defineQuery,
  getExternalWorkflowHandle,
  isCancellation,
  ParentClosePolicy,
  patched,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { FailureType, rootMessage } from '../common/errors.ts';
import {
  type BackupRef,
  type CheckResult,
  dnsOnUndo,
  FAILOVER_STEPS,
  type FailoverEvidence,
  type FailoverInput,
  type FailoverReport,
  type FailoverStatus,
  type FenceOnReturnInput,
  fenceOnReturnId,
  rpoVerdict,
  type Supersede,
} from '../common/failover.ts';
import { FENCED_BY } from '../common/fence.ts';
import { runTag } from '../common/restore.ts';
import { long, quick, undo } from './activity-options.ts';
import { fenceOnReturn, supersedeSignal } from './fence-on-return.ts';
import { refuse, Runbook } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<FailoverStatus>('status');

/** How long an undo waits for an unfenced old primary to answer when the preflight did not say. */
const SERVE_WAIT_MS = 2 * 60_000;

/** The app's answer at a site, looked at until it is 200 or `ms` have passed (durable timers, backing off). */
async function waitToServe(site: string, ms: number): Promise<{ ok: boolean; detail: string }> {
  const deadline = Date.now() + ms;
  let wait = 1000;
  for (;;) {
    const p = await undo.probeApp({ site });
    if (p.ok || Date.now() >= deadline) return p;
    await sleep(Math.max(1, Math.min(wait, deadline - Date.now())));
    wait = Math.min(wait * 2, 10_000);
  }
}

/** Starts the fence-on-return of a site, abandoned (it outlives this run); one already waiting is left as it is. */
async function startFenceOnReturn(
  rb: Pick<Runbook, 'childSearchAttributes'>,
  args: FenceOnReturnInput,
): Promise<string> {
  const workflowId = fenceOnReturnId(args.site);
  try {
    await startChild(fenceOnReturn, {
      workflowId,
      parentClosePolicy: ParentClosePolicy.ABANDON,
      cancellationType: ChildWorkflowCancellationType.ABANDON,
      typedSearchAttributes: rb.childSearchAttributes('fence-on-return', args.startedBy),
      args: [args],
    });
    return `${workflowId} started: fences ${args.site} as soon as its API server answers (drctl status ${workflowId})`;
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return `${workflowId} already waits to fence ${args.site}`;
  }
}

/** Stops a fence-on-return waiting to fence `site` (this run makes it primary); false when none waits. */
async function supersedeFenceOnReturn(site: string, by: Supersede): Promise<boolean> {
  try {
    await getExternalWorkflowHandle(fenceOnReturnId(site)).signal(supersedeSignal, by);
    return true;
  } catch (err) {
    if (isCancellation(err)) throw err;
    return false; // no such run, or it has ended
  }
}

export async function siteFailover(input: FailoverInput): Promise<FailoverReport> {
  const { from, to } = input;
  const info = workflowInfo();
  const tagOfRun = runTag(info.runId);
  const tag = `${info.workflowId}.${tagOfRun}`;
  const what = input.backupFirst ? 'failback' : 'failover';
  const restoreName = `drctl-${what}-${tagOfRun}`;
  const startedAt = new Date(info.startTime).toISOString();
  const rb = new Runbook<FailoverEvidence, Pick<FailoverStatus, 'from' | 'to' | 'checks'>>(
    {
      runbook: 'site-failover',
      title: `${what} ${from} → ${to}`,
      steps: FAILOVER_STEPS,
      requestedBy: input.requestedBy,
      sites: [from, to],
      input,
    },
    { from, to },
  );
  const { run, skip } = rb;

  return rb.execute(
    async () => {
      // 0. Both sites' leases: one runbook per site at a time; a drill at either is preempted.
      await rb.lease(async () => [from, to]);

      // 1. Preflight: read-only.
      const { pre, policy } = await run('preflight', async (s) => {
        const [pre, policy] = await Promise.all([
          quick.failoverPreflight({ from, to, namespaces: input.namespaces }),
          quick.loadApprovalPolicy(),
        ]);
        for (const c of pre.drReady) s.items[c.check] = `${c.ok ? 'ok' : 'FAIL'}: ${c.detail}`;
        const bad = pre.drReady.filter((c) => !c.ok);
        if (bad.length)
          throw refuse(
            FailureType.PreflightFailed,
            `preflight failed at ${to}:\n${bad.map((c) => `${c.check}: ${c.detail}`).join('\n')}`,
          );
        if (input.backupFirst && !pre.primaryReachable)
          throw refuse(
            FailureType.PreflightFailed,
            `failback backs up ${from} first, but its API server is not reachable (${pre.primaryDetail})`,
          );
        if (!input.backupFirst && !pre.backup)
          throw refuse(
            FailureType.PreflightFailed,
            `no Completed Velero backup of ${pre.namespaces.join(', ')} in location ${pre.storageLocation.name} is visible at ${to}`,
          );
        s.detail = `${pre.backup ? `newest backup ${pre.backup.name} (${pre.backup.ageSeconds} s old)` : 'no backup yet'}; ${from} ${pre.primaryReachable ? 'reachable' : 'unreachable'}`;
        return { pre, policy };
      });

      // 2. Failback: a fresh backup of the site serving now, visible at the other one.
      let backup: BackupRef;
      if (input.backupFirst) {
        backup = await run('backup-source', async (s) => {
          const b = await long.takeBackup({
            site: from,
            seenBy: to,
            name: `drctl-failback-${tagOfRun}`,
            namespaces: pre.namespaces,
          });
          s.detail = `${b.name} completed ${b.completedAt}, ${b.itemsBackedUp ?? '?'} items`;
          return b;
        });
      } else {
        skip('backup-source', 'failover restores the newest existing backup');
        backup = pre.backup!;
      }
      const rpo = rpoVerdict(backup.ageSeconds, pre.rpoTargetMs, pre.rpoPolicy);
      const warnings = [...pre.warnings];
      if (!rpo.ok) {
        if (rpo.refuse)
          throw refuse(
            FailureType.BackupTooOld,
            `${rpo.message}; policy is refuse (set failover.rpoPolicy: warn to go on anyway)`,
          );
        warnings.push(`${rpo.message} (policy: warn)`);
      }
      if (pre.existingAtTarget.length)
        warnings.push(
          `already at ${to}: ${pre.existingAtTarget.join(', ')} (the restore updates them; an undo scales them to 0 rather than deleting them)`,
        );
      if (!pre.primaryReachable)
        warnings.push(
          `${from} is not reachable: it cannot be fenced now; once DNS has moved, ${fenceOnReturnId(from)} fences it as soon as it answers`,
        );

      // 3. Go/no-go, with the evidence.
      const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
      rb.status.evidence = {
        backup,
        expectedRpoSeconds: backup.ageSeconds,
        rpoTargetSeconds: pre.rpoTargetMs / 1000,
        rtoTargetSeconds: pre.rtoTargetMs / 1000,
        namespaces: pre.namespaces,
        records: pre.records.map((r) => ({ name: r.name, from: r.addresses, to: [pre.toAddress], ttl: r.ttl })),
        primaryReachable: pre.primaryReachable,
        warnings,
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      const gateStart = Date.now();
      // Auto-approval is the worker config's, and only for a failover the health watch started
      // (its parent): no input can ask for it.
      const watch = info.parent?.workflowId.startsWith('health-watch-') ? info.parent.workflowId : undefined;
      let approval;
      if (policy.autoApproveWatchFailovers && watch) {
        approval = {
          by: 'health-watch',
          reason: 'failover.healthWatch.autoApprove is on in the worker config',
          approve: true,
          at: new Date().toISOString(),
          accepted: true,
        };
        rb.passGate(
          approval,
          `auto-approved: started by ${watch}, and the worker config's failover.healthWatch.autoApprove is on`,
        );
      } else {
        approval = await rb.gate(policy, timeoutMs, what);
      }
      const approvalWaitSeconds = (Date.now() - gateStart) / 1000;
      const records = pre.records.map((r) => ({ name: r.name, ttl: r.ttl }));
      let checks: CheckResult[] = [];

      // The old primary's fence: what this run changed there, so an undo lifts exactly that.
      // `changed` is set before the fence runs (a fence that fails half-way changed something).
      const fence = { changed: false, unfenced: false };
      const fenceArgs = { site: from, namespaces: pre.namespaces, tag };
      const unfenceFrom = async (): Promise<string[]> => {
        if (!fence.changed || fence.unfenced) return [];
        const done = await undo.unfencePrimary(fenceArgs);
        fence.unfenced = true;
        return done;
      };
      const watchFrom = () => startFenceOnReturn(rb, { ...fenceArgs, startedBy: info.workflowId, servingSite: to });
      const fenceCheck = `${from}: ${pre.namespaces.join(', ')} Deployments and StatefulSets back at their replicas and CronJobs' suspend as before (annotations ${FENCED_BY}=${tag}), its backup location's accessMode as before`;

      // 4. Fence the old primary, so two sites never serve or back up at once.
      await run('fence-primary', async (s) => {
        // A fence-on-return still waiting to fence the target (an earlier failover away from it)
        // would fence the site this run makes primary: superseded first; its undo starts one again.
        const by = { by: info.workflowId, reason: `${what} ${from} → ${to} makes ${to} primary` };
        if (await supersedeFenceOnReturn(to, by)) {
          s.items[fenceOnReturnId(to)] = 'superseded';
          rb.undo(
            `${fenceOnReturnId(to)} started again`,
            () =>
              startFenceOnReturn(rb, {
                site: to,
                namespaces: pre.namespaces,
                tag,
                startedBy: info.workflowId,
                servingSite: from,
              }),
            `${to}: fenced (Deployments and StatefulSets at 0, CronJobs suspended, backup location ReadOnly) while DNS points at ${from}`,
          );
        }
        rb.undo(`unfence ${from}`, unfenceFrom, fenceCheck);
        fence.changed = true;
        const r = await quick.fencePrimary(fenceArgs);
        if (r.skipped) fence.changed = false;
        for (const f of r.fenced) s.items[f] = 'fenced';
        s.detail = r.skipped
          ? `${r.skipped}; ${fenceOnReturnId(from)} fences it when it answers, once DNS has moved`
          : `${r.fenced.length} change(s)`;
      });

      // 5. Velero restore at the target, its backup location read-only meanwhile (Velero's DR advice).
      //    An undo removes only the namespaces this restore creates: those absent right before it.
      const restored = await run('restore', async (s) => {
        rb.undo(
          `${to} backup location mode back`,
          () => undo.restoreStorageLocationMode({ site: to, tag }),
          `${to}: its Velero backup location's accessMode as before the run (\`velero backup-location get\`)`,
        );
        await quick.setStorageLocationMode({ site: to, mode: 'ReadOnly', tag });
        const existed = await quick.namespacesAt({ site: to, namespaces: pre.namespaces });
        const created = pre.namespaces.filter((ns) => !existed.includes(ns));
        rb.undo(
          `remove what restore ${restoreName} created at ${to}`,
          () => undo.removeRestored({ site: to, restoreName, created, existed, tag }),
          `${to}, once DNS points at ${from} again (never while it points at ${to}): namespaces ${created.join(', ') || '(none)'} removed, ${existed.join(', ') || '(none)'} stopped (0 replicas, CronJobs suspended)`,
        );
        const r = await long.veleroRestore({ site: to, backup: backup.name, namespaces: pre.namespaces, restoreName });
        s.detail = `${restoreName} from ${backup.name}: ${r.phase}, ${r.itemsRestored ?? '?'} items, ${r.warnings} warning(s)`;
        return r;
      });

      // 6. Post-restore verification: the apps really serve, not just "pods Ready".
      checks = await run('verify', async (s) => {
        const expected = await quick.backupContents({ site: to, backup: backup.name });
        const c = await long.verifySite({ site: to, namespaces: pre.namespaces, expected });
        for (const x of c) s.items[x.check] = x.detail;
        return c;
      });
      rb.status.checks = checks;

      // 7. DNS: move the records, then prove the authoritative answer and the app behind the name.
      await run('switch-dns', async (s) => {
        const dnsUndo = `DNS back to ${from} if it serves once unfenced, else kept on ${to}`;
        rb.undo(
          dnsUndo,
          async () => {
            const c = rb.step('compensate');
            // Fenced by this run, the old primary cannot answer: unfence it first, and give it the
            // verify timeout to answer (its pods start again).
            const lifting = fence.changed && !fence.unfenced;
            let oldUp: { ok: boolean; detail: string };
            try {
              const lifted = await unfenceFrom();
              if (lifting) c.items[dnsUndo] = `${from} unfenced (${lifted.length} change(s)); waiting for it to answer`;
              oldUp = await waitToServe(from, lifting ? (pre.verifyTimeoutMs ?? SERVE_WAIT_MS) : 0);
            } catch (err) {
              oldUp = { ok: false, detail: `could not be unfenced: ${rootMessage(err)}` };
            }
            const newUp = await undo.probeApp({ site: to });
            const where = dnsOnUndo(oldUp.ok, newUp.ok);
            if (where === 'revert') {
              await undo.switchDns({ records, addresses: [pre.fromAddress] });
              c.items[dnsUndo] = `back on ${from}, which answers (${oldUp.detail})`;
              return;
            }
            // Roll forward: DNS stays where something may serve, and nothing older is undone
            // (the next undo would delete what DNS points at).
            const kept =
              `${where === 'forward' ? `${from} does not answer (${oldUp.detail}) and ${to} does (${newUp.detail})` : `neither ${from} (${oldUp.detail}) nor ${to} (${newUp.detail}) answers`}: ` +
              `DNS stays on ${to} (${pre.toAddress}), restore ${restoreName} is kept there`;
            rb.keep(`${kept}; ${from} is being fenced again`);
            await undo.switchDns({ records, addresses: [pre.toAddress] });
            const refence = await undo.fencePrimary(fenceArgs);
            if (refence.skipped) {
              c.items[fenceOnReturnId(from)] = await watchFrom();
              rb.keep(`${kept}; ${from}'s API server does not answer: ${fenceOnReturnId(from)} fences it when it does`);
            } else {
              Object.assign(fence, { changed: true, unfenced: false });
              rb.keep(`${kept}; ${from} fenced again`);
            }
            c.items[`fence ${from} again`] = refence.skipped ?? `${refence.fenced.length} change(s)`;
            for (const d of await undo.promoteSite({ site: to, namespaces: pre.namespaces }))
              c.items[`promote ${to}: ${d}`] = 'done';
            c.items[dnsUndo] = `kept on ${to}: ${where === 'forward' ? `${to} answers` : 'NO SITE ANSWERS'}`;
            if (where === 'neither')
              throw refuse(
                FailureType.NoSiteServes,
                `neither ${from} (${oldUp.detail}) nor ${to} (${newUp.detail}) answers as the app; DNS stays on ${to}, nothing was deleted`,
              );
          },
          `${records.map((r) => r.name).join(', ')} must answer a site whose app answers (its appEndpoint /healthz): ${pre.fromAddress} (${from}, unfenced) if ${from} answers, else ${pre.toAddress} (${to}) with ${from} fenced. ` +
            `Delete nothing at the site DNS points at. If neither answers: ${to}'s pods, EndpointSlices and app endpoint (restore ${restoreName}); ${from}'s API server and app`,
        );
        const before = await quick.switchDns({ records, addresses: [pre.toAddress] });
        for (const b of before) s.items[b.name] = `${b.before.join(',') || '(none)'} → ${pre.toAddress}`;
        const dnsChecks = await long.verifyDns({
          records: records.map((r) => r.name),
          addresses: [pre.toAddress],
          site: to,
        });
        checks = [...checks, ...dnsChecks];
        rb.status.checks = checks;
      });
      const servingAt = new Date().toISOString();

      // 8. A failback returns the site it left to standby, as before the failover: what a drctl
      //    restore created there is deleted (the backup this run took first holds it), its backup
      //    location read-write again. Past the point of no return: a failure is a warning, not an undo.
      //    (Runs that passed this point before the step existed replay without it.)
      if (patched('failback-standby')) {
        if (!input.backupFirst) skip('standby', `a failover keeps ${from} fenced: its failback returns it to standby`);
        else
          await run('standby', async (s) => {
            for (const d of await long.returnToStandby({ site: from, namespaces: pre.namespaces })) s.items[d] = 'done';
            for (const d of await undo.restoreStorageLocationMode({ site: from, tag })) s.items[d] = 'done';
            s.detail = `${from} is standby again`;
          }).catch((err: unknown) => {
            if (isCancellation(err)) throw err;
            warnings.push(
              `${from} was not returned to standby (${rootMessage(err)}): it keeps the fenced copy; delete its drctl-restored namespaces by hand`,
            );
          });
      }

      // 9. The target now serves and is the one to back up: its location read-write again.
      return run('report', async (s) => {
        for (const d of await quick.promoteSite({ site: to, namespaces: pre.namespaces })) s.items[d] = 'done';
        // An old primary this run could not fence is fenced when it answers again (DNS is on `to` now).
        if (!fence.changed) {
          const watching = await watchFrom();
          s.items[fenceOnReturnId(from)] = watching;
          warnings.push(`${from} was not fenced (unreachable): ${watching}`);
        }
        const rtoFrom = input.declaredAt ?? startedAt;
        const rtoSeconds = (Date.parse(servingAt) - Date.parse(rtoFrom)) / 1000;
        const r: FailoverReport = {
          outcome: 'completed',
          from,
          to,
          backup,
          restoreName,
          startedAt,
          rtoFrom,
          servingAt,
          rtoSeconds,
          rpoSeconds: backup.ageSeconds,
          rtoTargetSeconds: pre.rtoTargetMs / 1000,
          rpoTargetSeconds: pre.rpoTargetMs / 1000,
          rtoMet: rtoSeconds * 1000 <= pre.rtoTargetMs,
          rpoMet: rpo.ok,
          approvalWaitSeconds,
          steps: Object.entries(rb.timings()).map(([step, ms]) => ({ step, seconds: ms / 1000 })),
          checks,
          approval,
          warnings,
        };
        s.detail = `RTO ${rtoSeconds.toFixed(1)} s (target ${r.rtoTargetSeconds} s), RPO ${r.rpoSeconds} s (target ${r.rpoTargetSeconds} s); ${restored.itemsRestored ?? '?'} items restored`;
        return r;
      });
    },
    (cause) =>
      `${what} ${from} → ${to} failed (${cause}); compensated: DNS, ${to}'s restored objects, backup locations and ${from}'s workloads are back as they were`,
  );
}
