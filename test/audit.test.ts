// `drctl audit` against the lab: each row of the seed's "Common Mistakes" table is broken in the
// real lab (a DNS TTL, a Velero schedule, an RBAC binding, a snapshot schedule, a storage location
// in the site's own network, namespace protection), turns red, and is put back; the fix for
// namespace protection is a gated runbook whose policy the API server then enforces; the report
// is kept in the bucket and the lab's workers export it (drctl_audit_check).
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditActivities } from '../activities/audit.ts';
import {
  type AuditCheck,
  type AuditReport,
  type AuditResult,
  PROTECTED_LABEL,
  PROTECTION_POLICY,
} from '../common/audit.ts';
import type { RunbookStatus } from '../common/runbook.ts';
import { SCHEDULE } from '../lab/velero.ts';
import { paths, SITES, workerMetricsAddress } from '../lab/topology.ts';
import { createGateways } from '../worker/gateways.ts';
import { protectNamespaces, readinessAudit, statusQuery } from '../workflows/audit.ts';
import { NS, RECORD } from './support/failover.ts';
import { decide, drctlCli, ensureLabHealthy, signedInput, startTestEnv, type TestEnv, until } from './support/lab.ts';

let env: TestEnv;
let n = 0;

beforeAll(async () => {
  await ensureLabHealthy();
  env = await startTestEnv('audit');
  await unprotect();
});

afterAll(async () => {
  // Whatever a test left: demo-app deletable again (other tests delete and restore it), no schedule.
  await unprotect().catch(() => undefined);
  for (const c of ['site-a', 'site-b'])
    await drctlCli(['--config', paths.config, 'snapshot', 'schedule', 'delete', '--cluster', c]);
  await env?.close();
});

async function unprotect() {
  const kube = env.gw.kube('site-a');
  await kube.deleteAdmissionPolicy(PROTECTION_POLICY);
  await kube.unlabelNamespace(NS, [PROTECTED_LABEL.key]);
}

const audit = (): Promise<AuditReport & { key: string }> =>
  env.client.workflow.execute(readinessAudit, {
    taskQueue: env.taskQueue,
    workflowId: `audit-test-${Date.now()}-${n++}`,
    args: [{ requestedBy: 'test' }],
  });

const resultOf = (r: AuditReport, check: AuditCheck, target: string): AuditResult => {
  const row = r.rows.find((x) => x.check === check && x.target === target);
  if (!row) throw new Error(`no ${check} row for ${target}: ${JSON.stringify(r.rows.map((x) => [x.check, x.target]))}`);
  return row.result;
};

/** The row's result before, while broken, and after being put back. */
async function breakAndFix(
  check: AuditCheck,
  target: string,
  brk: () => Promise<unknown>,
  fix: () => Promise<unknown>,
): Promise<AuditResult[]> {
  const before = resultOf(await audit(), check, target);
  await brk();
  let broken: AuditResult;
  try {
    broken = resultOf(await audit(), check, target);
  } finally {
    await fix();
  }
  return [before, broken, resultOf(await audit(), check, target)];
}

const veleroSchedule = () => env.gw.velero('site-a');

describe('the readiness audit against the lab', () => {
  it('a DNS TTL of an hour fails dns-ttl; 30 s passes again', async () => {
    const rec = (await env.gw.dns().getA(RECORD))!;
    expect(
      await breakAndFix(
        'dns-ttl',
        RECORD,
        () => env.gw.dns().setA({ ...rec, ttl: 3600 }),
        () => env.gw.dns().setA(rec),
      ),
    ).toEqual(['pass', 'fail', 'pass']);
  });

  it('a Velero schedule slower than the tier RPO fails backup-interval; with its volumes backed up pv-backups passes', async () => {
    const target = `site-a: ${NS}`;
    const spec = (await veleroSchedule().get('schedules', SCHEDULE))!.spec as { schedule: string };
    expect(spec.schedule).toBe('*/2 * * * *');
    expect(
      await breakAndFix(
        'backup-interval',
        target,
        () => veleroSchedule().mergePatch('schedules', SCHEDULE, { spec: { schedule: '*/10 * * * *' } }),
        () => veleroSchedule().mergePatch('schedules', SCHEDULE, { spec: { schedule: '*/2 * * * *' } }),
      ),
    ).toEqual(['pass', 'fail', 'pass']);
    // The lab's pods have no node agent (kwok): the demo app's volume data is not in its backups.
    // Said so, turned green by asking for file-system backup, and put back at once (a backup
    // taken meanwhile would try it and fail).
    expect(
      await breakAndFix(
        'pv-backups',
        target,
        () =>
          veleroSchedule().mergePatch('schedules', SCHEDULE, {
            spec: { template: { defaultVolumesToFsBackup: true } },
          }),
        () =>
          veleroSchedule().mergePatch('schedules', SCHEDULE, {
            spec: { template: { defaultVolumesToFsBackup: null } },
          }),
      ),
    ).toEqual(['fail', 'pass', 'fail']);
    // Velero retention: a 3-day ttl fails, the lab's week passes.
    expect(
      await breakAndFix(
        'snapshot-retention',
        `${target} (Velero)`,
        () => veleroSchedule().mergePatch('schedules', SCHEDULE, { spec: { template: { ttl: '72h0m0s' } } }),
        () => veleroSchedule().mergePatch('schedules', SCHEDULE, { spec: { template: { ttl: '168h0m0s' } } }),
      ),
    ).toEqual(['pass', 'fail', 'pass']);
  });

  it('an etcd snapshot schedule makes backup-methods and etcd retention pass; without it both fail', async () => {
    const schedule = (c: string, ...a: string[]) =>
      drctlCli(['--config', paths.config, 'snapshot', 'schedule', ...a, '--cluster', c]).then((r) => {
        if (r.status !== 0) throw new Error(r.stderr);
      });
    // Daily, kept 20: three weeks of snapshots. Without a schedule: the config's 15 min x 20 = 5 h.
    const r = await breakAndFix(
      'backup-methods',
      'site-b',
      () => schedule('site-b', '--every', '24h'),
      () => schedule('site-b', 'delete'),
    );
    expect(r).toEqual(['fail', 'pass', 'fail']);
    expect(
      await breakAndFix(
        'snapshot-retention',
        'site-a (etcd)',
        () => schedule('site-a', '--every', '24h'),
        () => schedule('site-a', 'delete'),
      ),
    ).toEqual(['fail', 'pass', 'fail']);
  });

  it('someone bound to a role that deletes namespaces is named; without the binding only the system may', async () => {
    const rbac = env.gw.kube('site-a').kc.makeApiClient(RbacAuthorizationV1Api);
    const name = `drctl-audit-test-${Date.now()}`;
    expect(
      await breakAndFix(
        'namespace-deleters',
        'site-a',
        async () => {
          await rbac.createClusterRole({
            body: {
              metadata: { name },
              rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'delete'] }],
            },
          });
          await rbac.createClusterRoleBinding({
            body: {
              metadata: { name },
              roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
              subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory' }],
            },
          });
        },
        async () => {
          await rbac.deleteClusterRoleBinding({ name });
          await rbac.deleteClusterRole({ name });
        },
      ),
    ).toEqual(['pass', 'warn', 'pass']);
  });

  it("backups at an address in the site's own network fail backup-domain", async () => {
    // The off-site endpoint moved next to site-a's nodes (a config an operator could write): read
    // by the audit's own activity (the bucket cannot be reached there, so nothing is recorded).
    const node = SITES[0]!.nodes[0]!;
    const config = { ...env.config, objectStore: { ...env.config.objectStore, endpoint: `http://${node.ip}:9` } };
    const gw = createGateways(config);
    try {
      const r = await createAuditActivities(gw).auditReadiness();
      expect(resultOf(r, 'backup-domain', 'site-a off-site bucket')).toBe('fail');
      expect(r.rows.find((x) => x.target === 'site-a off-site bucket')?.seen).toContain(
        `${node.ip} is in site-a's failure domain`,
      );
      expect(resultOf(r, 'backup-domain', 'site-b off-site bucket')).toBe('pass');
    } finally {
      gw.close();
    }
    expect(resultOf(await audit(), 'backup-domain', 'site-a off-site bucket')).toBe('pass');
  });

  it('drill-recency follows the bucket: a plan never drilled fails', async () => {
    const r = await createAuditActivities(
      createGateways({
        ...env.config,
        drills: [...env.config.drills, { ...env.config.drills[0]!, name: `never-${Date.now()}` }],
      }),
    ).auditReadiness();
    const never = r.rows.find((x) => x.check === 'drill-recency' && x.target.startsWith('never-'));
    expect(never).toMatchObject({ result: 'fail', seen: 'never drilled' });
  });

  it('protect-namespaces: rejected it changes nothing; approved, the API server denies deleting demo-app', async () => {
    const start = async () => {
      const id = `protect-test-${Date.now()}`;
      const h = await env.client.workflow.start(protectNamespaces, {
        taskQueue: env.taskQueue,
        workflowId: id,
        args: [await signedInput(env, 'protect-namespaces', id, { site: 'site-a', reason: 'audit test' }, 'dave')],
      });
      await until(
        'the gate',
        () => h.query(statusQuery),
        (s: RunbookStatus) => s.phase === 'waiting-approval',
        60_000,
        250,
      );
      return h as WorkflowHandle;
    };
    const kube = env.gw.kube('site-a');
    const before = resultOf(await audit(), 'namespace-protection', 'site-a');
    expect(before).toBe('fail');

    const rejected = await start();
    await decide(env, rejected, 'bob', false, 'not today');
    await expect(rejected.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(await kube.admissionPolicy(PROTECTION_POLICY)).toEqual({});
    expect((await kube.namespace(NS))?.labels[PROTECTED_LABEL.key]).toBeUndefined();

    const h = await start();
    const ev = (await h.query(statusQuery)).evidence as { creates: string[]; labels: string[] };
    expect(ev.creates).toEqual([
      `ValidatingAdmissionPolicy ${PROTECTION_POLICY}`,
      `ValidatingAdmissionPolicyBinding ${PROTECTION_POLICY}`,
    ]);
    expect(ev.labels).toEqual([`${NS}: protected=true`]);
    await decide(env, h, 'bob');
    const done = (await h.result()) as { labelled: string[]; verified: Record<string, string> };
    expect(done.labelled).toEqual([NS]);
    expect(done.verified[NS]).toMatch(/delete denied: .*is labelled protected=true/);
    // The API server itself refuses (a dry run: nothing would be deleted if it did not).
    expect(await kube.dryRunDeleteNamespace(NS)).toMatchObject({ allowed: false });
    const report = await audit();
    expect(resultOf(report, 'namespace-protection', 'site-a')).toBe('pass');

    // The report is in the bucket, and the lab's workers export it.
    const url = `http://${workerMetricsAddress(SITES[0]!)}/metrics`;
    await until(
      'drctl_audit_check from the newest report',
      async () => (await fetch(url)).text(),
      (t) => t.includes(`drctl_audit_check{check="namespace-protection",target="site-a",result="pass"} 1`),
      30_000,
      1000,
    );

    // Broken again by hand (the label removed): red.
    await kube.unlabelNamespace(NS, [PROTECTED_LABEL.key]);
    expect(resultOf(await audit(), 'namespace-protection', 'site-a')).toBe('fail');
    await unprotect();
    // Deletable again once the API server drops the policy (it takes it a moment to notice).
    await until(
      'demo-app deletable again',
      () => kube.dryRunDeleteNamespace(NS),
      (r) => r.allowed,
      30_000,
      500,
    );
  }, 240_000);
});
