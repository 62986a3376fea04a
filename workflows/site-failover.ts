// Runbook: site failover (and failback) with Velero and DNS.
//   1 preflight (read-only)  2 back up the source (failback only)  3 go/no-go
//   4 fence the old primary  5 Velero restore at the target  6 post-restore verification
//   7 DNS switch, proven by the authoritative answer and the app answering through the name
//   8 report the achieved RTO/RPO
// A failure or cancel after step 3 undoes in reverse: DNS back (never to a site that is down while
// the other serves), what the restore created removed, backup locations' modes back, the old
// primary unfenced. Each undo is registered right before its step runs.
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
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
  type FailoverStep,
  type FailoverStepStatus,
  rpoVerdict,
} from '../common/failover.ts';
import { type DecisionRecord, runTag } from '../common/restore.ts';
import { waitForDecision } from './approval.ts';
import { long, quick, undo } from './site-activities.ts';
import { stepRunner } from './steps.ts';

export { approveSignal, decideUpdate, rejectSignal } from './approval.ts';
export const failoverStatusQuery = defineQuery<FailoverStatus>('status');

export async function siteFailover(input: FailoverInput): Promise<FailoverReport> {
  const { from, to } = input;
  const info = workflowInfo();
  const tagOfRun = runTag(info.runId);
  const tag = `${info.workflowId}.${tagOfRun}`;
  const restoreName = `drctl-${input.backupFirst ? 'failback' : 'failover'}-${tagOfRun}`;
  const startedAt = new Date(info.startTime).toISOString();
  const status: FailoverStatus = {
    from,
    to,
    phase: 'running',
    requestedBy: input.requestedBy,
    steps: FAILOVER_STEPS.map((step) => ({ step, state: 'pending', nodes: {} })),
    decisions: [],
  };
  setHandler(failoverStatusQuery, () => status, { description: 'Phase, evidence, checks and progress of every step' });

  const step = (name: FailoverStep | 'compensate'): FailoverStepStatus => {
    let s = status.steps.find((x) => x.step === name);
    if (!s) status.steps.push((s = { step: name, state: 'pending', nodes: {} }));
    return s;
  };
  const seconds: { step: string; seconds: number }[] = [];
  const run = stepRunner(step, (name, ms) => seconds.push({ step: name, seconds: ms / 1000 }));
  const skip = (name: FailoverStep, why: string) => Object.assign(step(name), { state: 'skipped', detail: why });
  const fail = (err: unknown): never => {
    status.phase = 'failed';
    status.error = (err as Error).message;
    throw err;
  };
  const refuse = (type: FailureType, message: string) =>
    ApplicationFailure.create({ type, message, nonRetryable: true });

  // 1. Preflight: read-only.
  const { pre, policy } = await run('preflight', async (s) => {
    const [pre, policy] = await Promise.all([
      quick.failoverPreflight({ from, to, namespaces: input.namespaces }),
      quick.loadApprovalPolicy(),
    ]);
    for (const c of pre.drReady) s.nodes[c.check] = `${c.ok ? 'ok' : 'FAIL'}: ${c.detail}`;
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
  }).catch(fail);

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
    }).catch(fail);
  } else {
    skip('backup-source', 'failover restores the newest existing backup');
    backup = pre.backup!;
  }
  const rpo = rpoVerdict(backup.ageSeconds, pre.rpoTargetMs, pre.rpoPolicy);
  const warnings = [...pre.warnings];
  if (!rpo.ok) {
    if (rpo.refuse)
      fail(
        refuse(
          FailureType.BackupTooOld,
          `${rpo.message}; policy is refuse (set failover.rpoPolicy: warn to go on anyway)`,
        ),
      );
    warnings.push(`${rpo.message} (policy: warn)`);
  }
  if (pre.existingAtTarget.length)
    warnings.push(
      `already at ${to}: ${pre.existingAtTarget.join(', ')} (the restore updates them; an undo scales them to 0 rather than deleting them)`,
    );
  if (!pre.primaryReachable) warnings.push(`${from} is not reachable: it cannot be fenced; make sure it stays down`);

  // 3. Go/no-go, with the evidence.
  const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
  const evidence: FailoverEvidence = {
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
  status.evidence = evidence;
  let approval: DecisionRecord;
  const gateStart = Date.now();
  if (input.autoApprove) {
    approval = {
      by: 'health-watch',
      reason: 'failover.healthWatch.autoApprove is on',
      approve: true,
      at: new Date().toISOString(),
      accepted: true,
    };
    skip('approval', "auto-approved by the config's policy");
  } else {
    try {
      approval = await run('approval', async (s) => {
        const d = await waitForDecision(status, policy, input.requestedBy, timeoutMs, 'failover');
        s.detail = `${d.approve ? 'approved' : 'rejected'} by ${d.by}${d.reason ? `: ${d.reason}` : ''}`;
        return d;
      });
    } catch (err) {
      status.phase = 'aborted';
      throw err;
    }
  }
  const approvalWaitSeconds = (Date.now() - gateStart) / 1000;
  status.approval = approval;
  if (!approval.approve) {
    status.phase = 'aborted';
    throw refuse(
      FailureType.ApprovalRejected,
      `rejected by ${approval.by}${approval.reason ? `: ${approval.reason}` : ''}; nothing was changed`,
    );
  }
  status.phase = 'running';

  const compensations: { name: string; fn: () => Promise<unknown> }[] = [];
  const onFailure = (name: string, fn: () => Promise<unknown>) => compensations.unshift({ name, fn });
  const records = pre.records.map((r) => ({ name: r.name, ttl: r.ttl }));
  let checks: CheckResult[] = [];

  try {
    // 4. Fence the old primary, so two sites never serve or back up at once.
    await run('fence-primary', async (s) => {
      onFailure(`unfence ${from}`, () => undo.unfencePrimary({ site: from, namespaces: pre.namespaces, tag }));
      const r = await quick.fencePrimary({ site: from, namespaces: pre.namespaces, tag });
      for (const f of r.fenced) s.nodes[f] = 'fenced';
      s.detail = r.skipped ?? `${r.fenced.length} change(s)`;
    });

    // 5. Velero restore at the target, its backup location read-only meanwhile (Velero's DR advice).
    const created = pre.namespaces.filter((ns) => !pre.existingAtTarget.includes(ns));
    const restored = await run('restore', async (s) => {
      onFailure(`${to} backup location mode back`, () => undo.restoreStorageLocationMode({ site: to, tag }));
      await quick.setStorageLocationMode({ site: to, mode: 'ReadOnly', tag });
      onFailure(`remove what restore ${restoreName} created at ${to}`, () =>
        undo.removeRestored({ site: to, restoreName, created, existed: pre.existingAtTarget, tag }),
      );
      const r = await long.veleroRestore({ site: to, backup: backup.name, namespaces: pre.namespaces, restoreName });
      s.detail = `${restoreName} from ${backup.name}: ${r.phase}, ${r.itemsRestored ?? '?'} items, ${r.warnings} warning(s)`;
      return r;
    });

    // 6. Post-restore verification: the apps really serve, not just "pods Ready".
    checks = await run('verify', async (s) => {
      const expected = await quick.backupContents({ site: to, backup: backup.name });
      const c = await long.verifySite({ site: to, namespaces: pre.namespaces, expected });
      for (const x of c) s.nodes[x.check] = x.detail;
      return c;
    });
    status.checks = checks;

    // 7. DNS: move the records, then prove the authoritative answer and the app behind the name.
    await run('switch-dns', async (s) => {
      onFailure('DNS back (unless that would point at a dead site)', async () => {
        const [oldUp, newUp] = await Promise.all([undo.probeApp({ site: from }), undo.probeApp({ site: to })]);
        if (dnsOnUndo(oldUp.ok, newUp.ok) === 'revert') {
          await undo.switchDns({ records, addresses: [pre.fromAddress] });
        } else {
          step('compensate').nodes['DNS kept on target'] =
            `${from} is down (${oldUp.detail}) and ${to} answers: DNS stays on ${to}`;
        }
      });
      const before = await quick.switchDns({ records, addresses: [pre.toAddress] });
      for (const b of before) s.nodes[b.name] = `${b.before.join(',') || '(none)'} → ${pre.toAddress}`;
      const dnsChecks = await long.verifyDns({
        records: records.map((r) => r.name),
        addresses: [pre.toAddress],
        site: to,
      });
      checks = [...checks, ...dnsChecks];
      status.checks = checks;
    });
    const servingAt = new Date().toISOString();

    // 8. The target now serves and is the one to back up: its location read-write again.
    const report = await run('report', async (s) => {
      for (const d of await quick.promoteSite({ site: to, namespaces: pre.namespaces })) s.nodes[d] = 'done';
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
        steps: seconds.slice(),
        checks,
        approval,
        warnings,
      };
      s.detail = `RTO ${rtoSeconds.toFixed(1)} s (target ${r.rtoTargetSeconds} s), RPO ${r.rpoSeconds} s (target ${r.rpoTargetSeconds} s); ${restored.itemsRestored ?? '?'} items restored`;
      return r;
    });
    status.phase = 'completed';
    return report;
  } catch (err) {
    status.phase = 'compensating';
    status.error = (err as Error).message;
    await CancellationScope.nonCancellable(() =>
      run('compensate', async (s) => {
        for (const c of compensations) {
          s.nodes[c.name] = 'running';
          await c.fn();
          if (s.nodes[c.name] === 'running') s.nodes[c.name] = 'done';
        }
      }),
    );
    status.phase = 'compensated';
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.create({
      type: 'FailoverCompensated',
      nonRetryable: true,
      message: `failover ${from} → ${to} failed (${(err as Error).message}); compensated: DNS, ${to}'s restored objects, backup locations and ${from}'s workloads are back as they were`,
      cause: err as Error,
    });
  }
}
