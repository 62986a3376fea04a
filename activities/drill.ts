// DR drill activities: the plan from the worker's config, a read-only preflight, the cleanup proof
// and the evidence report in the off-site bucket. The drill's restore, verification and DNS steps
// are the failover's own activities (velero.ts, site-checks.ts, dns.ts), pointed at the DR site
// and the drill record instead of production.
import { renderDrillHtml } from '../common/drill-html.ts';
import {
  DRILL_CRITERIA,
  type DrillCriterion,
  type DrillPlan,
  type DrillPreflight,
  type DrillReport,
  drillReportKeys,
  failureCause,
} from '../common/drill.ts';
import { FailureType, failure } from '../common/errors.ts';
import type { Gateways } from '../gateways/index.ts';
import { recordsPointingAt } from './dns.ts';
import { siteReadiness } from './site-checks.ts';
import { createSnapshotActivities } from './snapshot.ts';
import { done, notYet, pollUntil } from './support.ts';
import { backupRef, newestCompleted } from './velero.ts';

export function createDrillActivities(gw: Gateways) {
  const planOf = (name: string) => {
    const d = gw.config.drills.find((x) => x.name === name);
    if (!d)
      throw failure(
        FailureType.PreflightFailed,
        `no drill plan '${name}' in the worker's config (plans: ${gw.config.drills.map((x) => x.name).join(', ') || 'none'})`,
      );
    return d;
  };

  return {
    /** The plan as the worker's config says, resolved: criteria, targets in seconds, approvers. */
    async loadDrillPlan(input: { plan: string }): Promise<DrillPlan> {
      const d = planOf(input.plan);
      const criteria: DrillCriterion[] =
        d.criteria ?? DRILL_CRITERIA.filter((c) => c !== 'etcd-restore' || d.etcdRestore);
      const tiers = [...new Set(d.workloads.map((w) => w.tier))];
      return {
        name: d.name,
        from: d.from,
        to: d.to,
        toCluster: gw.site(d.to).cluster.name,
        workloads: d.workloads,
        record: d.record,
        criteria,
        etcdRestore: d.etcdRestore,
        approvalTimeoutMs: d.approvalTimeout ?? gw.config.approvals.timeout,
        signoffTimeoutMs: d.signoffTimeout,
        verifyTimeoutMs: d.verifyTimeout,
        approvers: gw.config.approvals.approvers,
        twoPersonRule: gw.config.approvals.twoPersonRule,
        targets: Object.fromEntries(
          tiers.map((t) => [
            t,
            { rpoSeconds: gw.config.targets[t]!.rpo / 1000, rtoSeconds: gw.config.targets[t]!.rto / 1000 },
          ]),
        ),
        webUi: gw.config.temporal.webUi,
      };
    },

    /**
     * Read-only: is the DR site ready, which backup would be restored, what the drill record and
     * the source's workloads look like now. A namespace of the plan that already exists at the DR
     * site refuses the drill: restoring over it would touch something live.
     */
    async drillPreflight(input: { plan: DrillPlan }): Promise<DrillPreflight> {
      const { plan } = input;
      const to = gw.site(plan.to);
      const from = gw.site(plan.from);
      if (!to.appAddress)
        throw failure(FailureType.PreflightFailed, `site ${to.name} has no appAddress for the drill record`);
      const namespaces = [...new Set(plan.workloads.flatMap((w) => w.namespaces))];
      const kube = gw.kube(to.cluster.name);
      const [{ drReady }, backups, record, existing, source, snapshots, serving] = await Promise.all([
        siteReadiness(gw, to),
        gw.velero(to.name).backups(),
        gw.dns().getA(plan.record.name),
        kube.existingNamespaces(namespaces),
        sourceWorkloads(from.cluster.name, namespaces),
        plan.etcdRestore ? listEtcdSnapshots(to.cluster.name) : Promise.resolve(undefined),
        recordsPointingAt(gw, to.name),
      ]);
      const newest = newestCompleted(backups, namespaces, to.velero.storageLocation);
      return {
        plan,
        namespaces,
        drReady,
        backup: newest ? backupRef(newest) : undefined,
        existingAtTarget: existing,
        recordBefore: record?.addresses ?? [],
        toAddress: to.appAddress,
        sourceWorkloads: source.workloads,
        sourceDetail: source.detail,
        etcdSnapshot: snapshots?.[0],
        servingRecords: serving,
      };
    },

    /** Deployments at a site, for comparing the DR site's pods with the source's. */
    async siteDeployments(input: {
      site: string;
      namespaces: string[];
    }): Promise<{ name: string; available: number; replicas: number }[]> {
      const deployments = await gw.kube(gw.site(input.site).cluster.name).deploymentsIn(input.namespaces);
      return deployments.map((d) => ({
        name: `${d.namespace}/${d.name}`,
        available: d.available,
        replicas: d.replicas,
      }));
    },

    /**
     * Proof that the drill left nothing behind: the plan's namespaces are gone from the DR site
     * (waiting out their termination) and the drill record answers what it did before.
     */
    async drillCleanupCheck(input: {
      site: string;
      namespaces: string[];
      record: string;
      recordBefore: string[];
      timeoutMs?: number;
    }): Promise<{ ok: boolean; detail: string }> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      const wasBefore = input.recordBefore.join(',') || '(none)';
      return pollUntil<{ ok: boolean; detail: string }, { left: string[]; now: string[]; recordOk: boolean }>(
        {
          what: `${input.namespaces.join(', ')} gone from ${input.site} and ${input.record} back`,
          timeoutMs: input.timeoutMs ?? 60_000,
          every: 1000,
          // Not cleaned up in time is the drill's verdict, not this activity's failure.
          onTimeout: ({ left, now, recordOk }) => ({
            ok: false,
            detail: [
              left.length ? `still at ${input.site}: ${left.join(', ')}` : '',
              recordOk ? '' : `${input.record} is ${now.join(',') || '(none)'}, was ${wasBefore}`,
            ]
              .filter(Boolean)
              .join('; '),
          }),
          heartbeat: ({ left, recordOk }) => ({ left, recordOk }),
        },
        async () => {
          const left = await kube.existingNamespaces(input.namespaces);
          const now = (await gw.dns().getA(input.record))?.addresses ?? [];
          const recordOk = now.join(',') === [...input.recordBefore].sort().join(',');
          if (!left.length && recordOk)
            return done({
              ok: true,
              detail: `${input.namespaces.join(', ')} gone from ${input.site}; ${input.record} back to ${input.recordBefore.join(',') || '(no record)'}`,
            });
          return notYet({ left, now, recordOk });
        },
      );
    },

    /** Stores the report (JSON + self-contained HTML) in the off-site bucket. Same keys each time: idempotent. */
    async writeDrillReport(input: { report: DrillReport }): Promise<NonNullable<DrillReport['location']>> {
      const store = gw.store();
      const keys = drillReportKeys(gw.config.objectStore.prefix, input.report.plan, input.report.workflowId);
      const location = { bucket: gw.config.objectStore.bucket, ...keys };
      // A report that did not pass leads with why (the JSON's first fields after the verdict).
      const { kind, plan, workflowId, runId, outcome, ...rest } = input.report;
      const cause = failureCause(input.report);
      const report: DrillReport = {
        kind,
        plan,
        workflowId,
        runId,
        outcome,
        ...(cause ? { cause } : {}),
        ...rest,
        location,
      };
      const meta = { plan: report.plan, outcome: report.outcome, 'workflow-id': report.workflowId };
      await store.put(keys.json, `${JSON.stringify(report, null, 2)}\n`, meta);
      await store.put(keys.html, renderDrillHtml(report), meta);
      return location;
    },
  };

  async function sourceWorkloads(
    cluster: string,
    namespaces: string[],
  ): Promise<{ workloads?: Record<string, number>; detail: string }> {
    const kube = gw.kube(cluster);
    const ready = await kube.readyz(3000);
    if (!ready.ready) return { detail: `${cluster} API not reachable (${ready.detail.slice(0, 80)})` };
    const workloads = Object.fromEntries(
      (await kube.deploymentsIn(namespaces)).map((d) => [`${d.namespace}/${d.name}`, d.replicas]),
    );
    return { workloads, detail: `${Object.keys(workloads).length} deployment(s) at ${cluster}` };
  }

  async function listEtcdSnapshots(cluster: string): Promise<{ key: string; takenAt: string }[]> {
    const { snapshots } = await createSnapshotActivities(gw).listSnapshots(cluster);
    return snapshots.map((r) => ({ key: r.key, takenAt: r.takenAt }));
  }
}
