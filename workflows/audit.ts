// Runbooks of the readiness audit.
// readinessAudit (`drctl audit`, and the daily Schedule):
//   1 audit: the seed's "Common Mistakes" table checked against the live setup (read-only)
//   2 record: the report kept in the off-site bucket (the workers' drctl_audit_check shows the newest)
// protectNamespaces (`drctl audit --fix protect-namespaces --site S`):
//   0 the site's lease
//   1 preflight (read-only): the namespaces the site serves, whether the policy and labels exist
//   2 go/no-go with what will be created and labelled
//   3 install-policy: the ValidatingAdmissionPolicy + binding that deny deleting protected namespaces
//   4 label-namespaces: protected=true on each served namespace
//   5 verify: a server-side dry-run delete of each is denied
// Undo beside each step, in reverse: only what this run created or labelled is removed.
import { defineQuery } from '@temporalio/workflow';
import {
  AUDIT_STEPS,
  type AuditReport,
  PROTECT_STEPS,
  PROTECTED_LABEL,
  type ProtectEvidence,
  type ProtectInput,
  PROTECTION_POLICY,
  type ProtectResult,
} from '../common/audit.ts';
import { FailureType } from '../common/errors.ts';
import type { RunbookStatus } from '../common/runbook.ts';
import { quick, undo } from './activity-options.ts';
import { refuse, Runbook } from './runbook.ts';

export { approveSignal, decideUpdate, rejectSignal } from './runbook.ts';
export const statusQuery = defineQuery<RunbookStatus>('status');

export async function readinessAudit(input: { requestedBy?: string } = {}): Promise<AuditReport & { key: string }> {
  const rb = new Runbook<unknown, object>(
    {
      runbook: 'audit',
      title: 'DR readiness audit',
      steps: [...AUDIT_STEPS],
      requestedBy: input.requestedBy,
      sites: [],
    },
    {},
  );
  return rb.execute(
    async () => {
      const report = await rb.run('audit', async (s) => {
        const r = await quick.auditReadiness();
        for (const row of r.rows) s.items[`${row.check} ${row.target}`] = `${row.result}: ${row.seen}`;
        s.detail = `${r.counts.fail} fail, ${r.counts.warn} warn, ${r.counts.pass} pass`;
        return r;
      });
      const { key } = await rb.run('record', async (s) => {
        const w = await quick.writeAuditReport({ report });
        s.detail = w.key;
        return w;
      });
      return { ...report, key };
    },
    (cause) => `audit failed (${cause})`,
  );
}

export async function protectNamespaces(input: ProtectInput): Promise<ProtectResult> {
  const { site } = input;
  const rb = new Runbook<ProtectEvidence, object>(
    {
      runbook: 'protect-namespaces',
      title: `protect the namespaces ${site} serves against deletion`,
      steps: [...PROTECT_STEPS],
      requestedBy: input.requestedBy,
      sites: [site],
      input,
    },
    {},
  );
  const { run } = rb;
  return rb.execute(
    async () => {
      // 0. The site's lease.
      await rb.lease(async () => [site]);

      // 1. Preflight: read-only.
      const { pre, policy } = await run('preflight', async (s) => {
        const [pre, policy] = await Promise.all([quick.protectionPreflight({ site }), quick.loadApprovalPolicy()]);
        for (const n of pre.namespaces)
          s.items[n.name] = !n.exists ? 'missing' : n.labelled ? 'labelled already' : 'to label';
        s.items[PROTECTION_POLICY] = pre.policy && pre.binding ? 'installed already' : 'to install';
        return { pre, policy };
      });
      const missing = pre.namespaces.filter((n) => !n.exists).map((n) => n.name);
      const toLabel = pre.namespaces.filter((n) => n.exists && !n.labelled).map((n) => n.name);
      if (!toLabel.length && pre.policy && pre.binding)
        throw refuse(
          FailureType.PreflightFailed,
          `nothing to do at ${site}: ${PROTECTION_POLICY} is installed and every served namespace is labelled`,
        );

      // 2. Go/no-go.
      const timeoutMs = input.approvalTimeoutMs ?? policy.timeoutMs;
      rb.status.evidence = {
        site,
        cluster: pre.cluster,
        policy: PROTECTION_POLICY,
        creates: [
          ...(!pre.policy ? [`ValidatingAdmissionPolicy ${PROTECTION_POLICY}`] : []),
          ...(!pre.binding ? [`ValidatingAdmissionPolicyBinding ${PROTECTION_POLICY}`] : []),
        ],
        labels: toLabel.map((ns) => `${ns}: ${PROTECTED_LABEL.key}=${PROTECTED_LABEL.value}`),
        already: pre.namespaces.filter((n) => n.labelled).map((n) => n.name),
        missing,
        approvers: policy.approvers,
        twoPersonRule: policy.twoPersonRule,
        approvalDeadline: new Date(Date.now() + timeoutMs).toISOString(),
      };
      await rb.gate(policy, timeoutMs, 'namespace protection');

      // 3. The policy and its binding.
      const created = await run('install-policy', async (s) => {
        const made = { policy: !pre.policy, binding: !pre.binding };
        rb.undo(
          `remove ${PROTECTION_POLICY} at ${site} (only what this run created)`,
          () => undo.removeProtectionPolicy({ site, created: made }),
          `${pre.cluster}: kubectl get validatingadmissionpolicy,validatingadmissionpolicybinding ${PROTECTION_POLICY}`,
        );
        const r = await quick.installProtectionPolicy({ site });
        s.detail = `policy ${r.policy ? 'created' : 'was there'}, binding ${r.binding ? 'created' : 'was there'}`;
        return { policy: made.policy && r.policy, binding: made.binding && r.binding };
      });

      // 4. The label on each served namespace.
      await run('label-namespaces', async (s) => {
        rb.undo(
          `remove ${PROTECTED_LABEL.key}=${PROTECTED_LABEL.value} from ${toLabel.join(', ') || '(none)'}`,
          () => undo.unlabelProtected({ site, namespaces: toLabel }),
          `${pre.cluster}: kubectl get ns -L ${PROTECTED_LABEL.key}`,
        );
        await quick.labelProtected({ site, namespaces: toLabel });
        for (const ns of toLabel) s.items[ns] = `${PROTECTED_LABEL.key}=${PROTECTED_LABEL.value}`;
      });

      // 5. Proof: deleting each (dry run) is denied.
      const protectedNs = pre.namespaces.filter((n) => n.exists).map((n) => n.name);
      const verified = await run('verify', async (s) => {
        const v = await quick.verifyProtection({ site, namespaces: protectedNs });
        Object.assign(s.items, v);
        return v;
      });
      return { outcome: 'completed', site, created, labelled: toLabel, verified };
    },
    (cause) =>
      `protecting namespaces at ${site} failed (${cause}); compensated: what this run created or labelled is removed`,
  );
}
