// Runbook: restore deleted namespaces in place, at the same site (the seed's question 2:
// `kubectl delete namespace production` at 10:42, the last backup at 10:00).
//   0 the site's lease (a drill there is preempted)
//   1 preflight (read-only): the site ready; each namespace absent or Active (Terminating is refused:
//     Velero cannot restore into it); the newest Completed backup finished before the loss; what it
//     holds; the Retain volumes the deleted claims left behind
//   2 go/no-go with the evidence: the changes lost (backup start → loss), what comes back, how
//   3 the retained volumes made bindable again (their stale claim uid removed)
//   4 Velero restore into the same cluster, existing resources left as they are (IN_PLACE_POLICY)
//   5 the post-restore checklist, and the app answering through every record that points at the site
//   6 report: the RPO (changes lost) and the time to a verified app
// Each step registers its undo beside it (the kernel, workflows/runbook.ts). A failure or cancel
// after the gate removes the namespaces the restore created (they were missing before the run, and
// only those labelled with this restore's name) and gives the volumes their claim uid back: the site
// ends as it was before the run, and the backup still holds everything.
import { defineQuery, workflowInfo } from '@temporalio/workflow';
import { FailureType } from '../common/errors.ts';
import type { CheckResult } from '../common/failover.ts';
import {
  changesLostSeconds,
  IN_PLACE_POLICY,
  IN_PLACE_POLICY_WHY,
  NAMESPACE_RESTORE_STEPS,
  type NamespaceRestoreEvidence,
  type NamespaceRestoreInput,
  type NamespaceRestoreReport,
  type NamespaceRestoreStatus,
} from '../common/namespace-restore.ts';
import { runTag } from '../common/restore.ts';
import { long, quick, undo } from './activity-options.ts';
import { refuse, Runbook } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<NamespaceRestoreStatus>('status');

export async function namespaceRestore(input: NamespaceRestoreInput): Promise<NamespaceRestoreReport> {
  const { site } = input;
  const info = workflowInfo();
  const tagOfRun = runTag(info.runId);
  const tag = `${info.workflowId}.${tagOfRun}`;
  const restoreName = `drctl-ns-restore-${tagOfRun}`;
  const startedAt = info.startTime.getTime();
  const rb = new Runbook<NamespaceRestoreEvidence, Pick<NamespaceRestoreStatus, 'site' | 'checks'>>(
    {
      runbook: 'namespace-restore',
      title: `restore ${input.namespaces.join(', ')} at ${site}`,
      steps: NAMESPACE_RESTORE_STEPS,
      requestedBy: input.requestedBy,
      sites: [site],
      input,
    },
    { site },
  );
  const { run } = rb;

  return rb.execute(
    async () => {
      // 0. The site's lease: one runbook per site at a time.
      await rb.lease(async () => [site]);

      // 1. Preflight: read-only.
      const { pre, policy } = await run('preflight', async (s) => {
        const [pre, policy] = await Promise.all([
          quick.namespaceRestorePreflight({
            site,
            namespaces: input.namespaces,
            before: input.before ?? new Date(startedAt).toISOString(),
          }),
          quick.loadApprovalPolicy(),
        ]);
        for (const c of pre.drReady) s.items[c.check] = `${c.ok ? 'ok' : 'FAIL'}: ${c.detail}`;
        for (const p of pre.present) s.items[`namespace ${p.namespace}`] = p.phase;
        const bad = pre.drReady.filter((c) => !c.ok);
        if (bad.length)
          throw refuse(
            FailureType.PreflightFailed,
            `preflight failed at ${site}:\n${bad.map((c) => `${c.check}: ${c.detail}`).join('\n')}`,
          );
        const terminating = pre.present.filter((p) => p.phase === 'Terminating');
        if (terminating.length)
          throw refuse(
            FailureType.PreflightFailed,
            `${terminating.map((p) => p.namespace).join(', ')} still being deleted (Terminating) at ${site}: Velero cannot restore into a namespace being deleted; wait until it is gone (\`kubectl get ns\`), or clear what holds its finalizers`,
          );
        if (!pre.backup)
          throw refuse(
            FailureType.PreflightFailed,
            `no Completed Velero backup of ${input.namespaces.join(', ')} in location ${site}'s storage location finished before ${pre.before}`,
          );
        s.detail = `backup ${pre.backup.name} started ${pre.backup.startedAt}; ${pre.volumes.length} retained volume(s)`;
        return { pre, policy };
      });
      const backup = pre.backup!;

      // 2. Go/no-go, with the evidence: how many minutes of changes the restore loses, and what it brings back.
      const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
      const lost = changesLostSeconds(backup.startedAt, pre.before);
      const warnings = [...pre.warnings];
      if (pre.rpoTargetSeconds !== undefined && lost > pre.rpoTargetSeconds)
        warnings.push(
          `${Math.round(lost / 60)} min of changes lost is over tier ${pre.tier}'s RPO target of ${pre.rpoTargetSeconds} s`,
        );
      rb.status.evidence = {
        site,
        namespaces: input.namespaces,
        backup,
        before: pre.before,
        changesLostSeconds: lost,
        rpoTargetSeconds: pre.rpoTargetSeconds,
        contents: pre.contents,
        present: pre.present.map((p) => ({ namespace: p.namespace, phase: p.phase })),
        volumes: pre.volumes,
        policy: IN_PLACE_POLICY_WHY,
        records: pre.records,
        warnings,
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      const gateStart = Date.now();
      const approval = await rb.gate(policy, timeoutMs, 'namespace restore');
      const approvalWaitSeconds = (Date.now() - gateStart) / 1000;

      // 3. The volumes the deleted claims left behind, bindable by the restored claims.
      const rebound = await run('release-volumes', async (s) => {
        rb.undo(
          `volumes at ${site} name their old claims again`,
          () => undo.settleReleasedVolumes({ site, tag, undo: true }),
          `${site}: PersistentVolumes annotated drctl.io/released-by=${tag} are Released with spec.claimRef.uid as in drctl.io/claim-uid-before`,
        );
        const v = await quick.releaseRetainedVolumes({ site, namespaces: input.namespaces, tag });
        for (const name of v) s.items[name] = 'claim uid removed: Available for its restored claim';
        s.detail = v.length ? `${v.length} volume(s) released for their claims` : 'no retained volume to release';
        return v;
      });

      // 4. Velero restore into the same cluster: only what is missing is created.
      const restored = await run('restore', async (s) => {
        const existed = pre.present.filter((p) => p.phase === 'Active').map((p) => p.namespace);
        const created = input.namespaces.filter((ns) => !existed.includes(ns));
        rb.undo(
          `remove what restore ${restoreName} created at ${site}`,
          () => undo.removeRestored({ site, restoreName, created, existed, tag, inPlace: true }),
          `${site}: namespaces ${created.join(', ') || '(none)'} absent again (only if labelled drctl.io/restored-by=${restoreName}); Velero restore ${restoreName} deleted`,
        );
        const r = await long.veleroRestore({
          site,
          backup: backup.name,
          namespaces: input.namespaces,
          restoreName,
          existingResourcePolicy: IN_PLACE_POLICY,
        });
        s.detail = `${restoreName} from ${backup.name}: ${r.phase}, ${r.itemsRestored ?? '?'} items, ${r.warnings} warning(s)`;
        return r;
      });

      // 5. The post-restore checklist, and the app answering through every record pointing at the site.
      const checks = await run('verify', async (s) => {
        const expected = await quick.backupContents({ site, backup: backup.name });
        let c: CheckResult[] = await long.verifySite({ site, namespaces: input.namespaces, expected });
        if (pre.records.length && pre.siteAddress)
          c = [...c, ...(await long.verifyDns({ records: pre.records, addresses: [pre.siteAddress], site }))];
        else s.items['app through its name'] = `no app record points at ${site}: not checked`;
        for (const x of c) s.items[x.check] = x.detail;
        rb.status.checks = c;
        return c;
      });

      // 6. Report: the changes lost, and the time to a verified app.
      return run('report', async (s) => {
        for (const d of await quick.settleReleasedVolumes({ site, tag, undo: false })) s.items[d] = 'bound';
        const rtoSeconds = (Date.now() - startedAt) / 1000;
        const r: NamespaceRestoreReport = {
          outcome: 'completed',
          site,
          namespaces: input.namespaces,
          backup,
          restoreName,
          before: pre.before,
          rpoSeconds: lost,
          rpoTargetSeconds: pre.rpoTargetSeconds,
          rpoMet: pre.rpoTargetSeconds === undefined ? undefined : lost <= pre.rpoTargetSeconds,
          rtoSeconds,
          approvalWaitSeconds,
          volumesRebound: rebound,
          itemsRestored: restored.itemsRestored,
          checks,
          steps: Object.entries(rb.timings()).map(([step, ms]) => ({ step, seconds: ms / 1000 })),
          approval,
          warnings,
        };
        s.detail = `RPO ${lost} s of changes lost (backup ${backup.name}); app verified ${rtoSeconds.toFixed(1)} s after the start (${approvalWaitSeconds.toFixed(1)} s waiting for go/no-go)`;
        return r;
      });
    },
    (cause) =>
      `restore of ${input.namespaces.join(', ')} at ${site} failed (${cause}); compensated: what it created is removed, the volumes name their old claims again`,
  );
}
