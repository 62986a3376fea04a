// Runbook: site failover (and failback) with Velero and DNS.
//   1 preflight (read-only)  2 back up the source (failback only)  3 go/no-go
//   4 fence the old primary  5 Velero restore at the target  6 post-restore verification
//   7 DNS switch, proven by the authoritative answer and the app answering through the name
//   8 report the achieved RTO/RPO
// A failure or cancel after step 3 undoes in reverse: DNS back (never to a site that is down while
// the other serves), what the restore created removed, backup locations' modes back, the old
// primary unfenced.
import { workflowInfo, defineQuery } from '@temporalio/workflow';
import { FailureType } from '../common/errors.ts';
import {
  type BackupRef,
  type CheckResult,
  dnsOnUndo,
  FAILOVER_STEPS,
  type FailoverEvidence,
  type FailoverInput,
  type FailoverReport,
  type FailoverStatus,
  rpoVerdict,
} from '../common/failover.ts';
import { runTag } from '../common/restore.ts';
import { long, quick, undo } from './activity-options.ts';
import { refuse, Runbook } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<FailoverStatus>('status');

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
        warnings.push(`${from} is not reachable: it cannot be fenced; make sure it stays down`);

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

      // 4. Fence the old primary, so two sites never serve or back up at once.
      await run('fence-primary', async (s) => {
        rb.undo(
          `unfence ${from}`,
          () => undo.unfencePrimary({ site: from, namespaces: pre.namespaces, tag }),
          `${from}: ${pre.namespaces.join(', ')} Deployments back at their replicas (annotation drctl.io/fenced-by=${tag}) and its backup location ReadWrite`,
        );
        const r = await quick.fencePrimary({ site: from, namespaces: pre.namespaces, tag });
        for (const f of r.fenced) s.items[f] = 'fenced';
        s.detail = r.skipped ?? `${r.fenced.length} change(s)`;
      });

      // 5. Velero restore at the target, its backup location read-only meanwhile (Velero's DR advice).
      const created = pre.namespaces.filter((ns) => !pre.existingAtTarget.includes(ns));
      const restored = await run('restore', async (s) => {
        rb.undo(
          `${to} backup location mode back`,
          () => undo.restoreStorageLocationMode({ site: to, tag }),
          `${to}: its Velero backup location's accessMode as before the run (\`velero backup-location get\`)`,
        );
        await quick.setStorageLocationMode({ site: to, mode: 'ReadOnly', tag });
        rb.undo(
          `remove what restore ${restoreName} created at ${to}`,
          () => undo.removeRestored({ site: to, restoreName, created, existed: pre.existingAtTarget, tag }),
          `${to}: namespaces ${created.join(', ') || '(none)'} removed, ${pre.existingAtTarget.join(', ') || '(none)'} scaled to 0`,
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
        rb.undo(
          'DNS back (unless that would point at a dead site)',
          async () => {
            const [oldUp, newUp] = await Promise.all([undo.probeApp({ site: from }), undo.probeApp({ site: to })]);
            if (dnsOnUndo(oldUp.ok, newUp.ok) === 'revert') {
              await undo.switchDns({ records, addresses: [pre.fromAddress] });
            } else {
              rb.step('compensate').items['DNS kept on target'] =
                `${from} is down (${oldUp.detail}) and ${to} answers: DNS stays on ${to}`;
            }
          },
          `${records.map((r) => r.name).join(', ')}: answers ${pre.fromAddress} (${from}) or, if ${from} is down, ${pre.toAddress}`,
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

      // 8. The target now serves and is the one to back up: its location read-write again.
      return run('report', async (s) => {
        for (const d of await quick.promoteSite({ site: to, namespaces: pre.namespaces })) s.items[d] = 'done';
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
