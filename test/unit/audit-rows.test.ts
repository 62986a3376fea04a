// The readiness audit's judging (common/audit.ts), row by row, from observations; the cron
// intervals it reads off Velero schedules. The lab test (test/audit.test.ts) breaks each row in the
// real lab; this pins the edges.
import { describe, expect, it } from 'vitest';
import { cronIntervalSeconds, veleroSchedule } from '../../activities/audit.ts';
import { type AuditObservations, auditRows, sameDomain, type SiteAudit, systemSubject } from '../../common/audit.ts';
import type { DrillReport } from '../../common/drill.ts';

const NOW = Date.parse('2026-12-03T12:00:00Z');
const ok = <T>(value: T) => ({ ok: true as const, value });
const site = (over: Partial<SiteAudit> = {}): SiteAudit => ({
  site: 'site-a',
  cluster: 'site-a',
  hosts: ['10.0.10.11', '10.0.10.12'],
  storageHost: ok('s3.backup.example.net'),
  veleroSchedules: ok([
    {
      name: 'shop',
      cron: '*/2 * * * *',
      paused: false,
      includedNamespaces: ['shop'],
      intervalSeconds: 120,
      fsBackup: true,
      snapshotVolumes: false,
      ttlSeconds: 7 * 86_400,
    },
  ]),
  snapshotSchedule: ok({ paused: false, intervalSeconds: 900 }),
  protection: ok({ policy: true, binding: true, labelled: { shop: true } }),
  deleters: ok(['Group:system:masters', 'ServiceAccount:velero/velero']),
  ...over,
});
const obs = (over: Partial<AuditObservations> = {}): AuditObservations => ({
  now: NOW,
  offsiteHost: 's3.backup.example.net',
  sites: [site()],
  records: [{ name: 'app.example.com', ttl: ok(30) }],
  drills: [{ plan: 'q', last: ok({ outcome: 'passed', endedAt: '2026-11-01T00:00:00Z' } as DrillReport) }],
  protectedSets: [{ from: 'site-a', namespaces: ['shop'], tier: 'e-commerce', rpoSeconds: 300 }],
  snapshotRetention: { keep: 700, everySeconds: 900 },
  ...over,
});
const result = (o: AuditObservations, check: string, target?: string) =>
  auditRows(o)
    .filter((r) => r.check === check && (target === undefined || r.target === target))
    .map((r) => r.result);

describe('the readiness audit, row by row', () => {
  it('a well-kept setup passes every row', () => {
    expect(auditRows(obs()).filter((r) => r.result !== 'pass')).toEqual([]);
  });

  it('backups next to the nodes (same host or /24) fail backup-domain', () => {
    expect(result(obs({ offsiteHost: '10.0.10.99' }), 'backup-domain', 'site-a off-site bucket')).toEqual(['fail']);
    expect(result(obs({ sites: [site({ storageHost: ok('10.0.10.11') })] }), 'backup-domain')).toEqual([
      'pass',
      'fail',
    ]);
    expect(sameDomain('127.0.10.5', '127.0.10.6')).toBe(false);
  });

  it('DNS TTL over 60 s fails; a missing record fails; an unreadable one warns', () => {
    expect(result(obs({ records: [{ name: 'a', ttl: ok(3600) }] }), 'dns-ttl')).toEqual(['fail']);
    expect(result(obs({ records: [{ name: 'a', ttl: ok(60) }] }), 'dns-ttl')).toEqual(['pass']);
    expect(result(obs({ records: [{ name: 'a', ttl: ok(undefined) }] }), 'dns-ttl')).toEqual(['fail']);
    expect(result(obs({ records: [{ name: 'a', ttl: { ok: false, error: 'x' } }] }), 'dns-ttl')).toEqual(['warn']);
  });

  it('no drill, an old drill, a failed drill, no plan: fail', () => {
    const drill = (outcome: string, endedAt: string) => ok({ outcome, endedAt } as DrillReport);
    expect(result(obs({ drills: [{ plan: 'q', last: ok(undefined) }] }), 'drill-recency')).toEqual(['fail']);
    expect(
      result(obs({ drills: [{ plan: 'q', last: drill('passed', '2026-08-01T00:00:00Z') }] }), 'drill-recency'),
    ).toEqual(['fail']);
    expect(
      result(obs({ drills: [{ plan: 'q', last: drill('failed', '2026-11-30T00:00:00Z') }] }), 'drill-recency'),
    ).toEqual(['fail']);
    expect(result(obs({ drills: [] }), 'drill-recency')).toEqual(['fail']);
  });

  it('Velero: no schedule, too slow for the RPO, objects only, short ttl', () => {
    const v = (o: object) =>
      obs({
        sites: [
          site({
            veleroSchedules: ok([{ ...(site().veleroSchedules as { value: object[] }).value[0]!, ...o }] as never),
          }),
        ],
      });
    expect(result(v({ includedNamespaces: ['other'] }), 'backup-interval')).toEqual(['fail']);
    expect(result(v({ paused: true }), 'pv-backups')).toEqual(['fail']);
    expect(result(v({ intervalSeconds: 600 }), 'backup-interval')).toEqual(['fail']);
    expect(result(v({ includedNamespaces: ['*'] }), 'backup-interval')).toEqual(['pass']);
    expect(result(v({ fsBackup: false }), 'pv-backups')).toEqual(['fail']);
    expect(result(v({ fsBackup: false, snapshotVolumes: true }), 'pv-backups')).toEqual(['pass']);
    expect(result(v({ ttlSeconds: 3 * 86_400 }), 'snapshot-retention', 'site-a: shop (Velero)')).toEqual(['fail']);
    const zero = obs({ protectedSets: [{ from: 'site-a', namespaces: ['shop'], tier: 'payment', rpoSeconds: 0 }] });
    expect(result(zero, 'backup-interval')).toEqual(['warn']);
  });

  it('etcd: no schedule or a paused one fails backup-methods; retention is keep x interval, capped by maxAge', () => {
    expect(result(obs({ sites: [site({ snapshotSchedule: ok(undefined) })] }), 'backup-methods')).toEqual(['fail']);
    expect(
      result(
        obs({ sites: [site({ snapshotSchedule: ok({ paused: true, intervalSeconds: 900 }) })] }),
        'backup-methods',
      ),
    ).toEqual(['fail']);
    expect(
      result(obs({ snapshotRetention: { keep: 20, everySeconds: 900 } }), 'snapshot-retention', 'site-a (etcd)'),
    ).toEqual(['fail']);
    expect(
      result(
        obs({ snapshotRetention: { keep: 700, everySeconds: 900, maxAgeSeconds: 86_400 } }),
        'snapshot-retention',
        'site-a (etcd)',
      ),
    ).toEqual(['fail']);
  });

  it('namespace protection: policy, binding and label each needed; people who may delete namespaces warn', () => {
    expect(
      result(
        obs({ sites: [site({ protection: ok({ policy: true, binding: false, labelled: { shop: true } }) })] }),
        'namespace-protection',
      ),
    ).toEqual(['fail']);
    expect(
      result(
        obs({ sites: [site({ protection: ok({ policy: true, binding: true, labelled: { shop: false } }) })] }),
        'namespace-protection',
      ),
    ).toEqual(['fail']);
    expect(
      result(obs({ sites: [site({ deleters: ok(['Group:system:masters', 'User:mallory']) })] }), 'namespace-deleters'),
    ).toEqual(['warn']);
    expect(systemSubject('ServiceAccount:kube-system/namespace-controller')).toBe(true);
    expect(systemSubject('ServiceAccount:shop/deployer')).toBe(false);
  });
});

describe('Velero schedules as the audit reads them', () => {
  it('cron and @every intervals; Velero defaults', () => {
    expect(cronIntervalSeconds('*/2 * * * *')).toBe(120);
    expect(cronIntervalSeconds('0 */6 * * *')).toBe(6 * 3600);
    expect(cronIntervalSeconds('@every 5m')).toBe(300);
    expect(cronIntervalSeconds('not a cron')).toBeUndefined();
    const s = veleroSchedule({
      metadata: { name: 'x' },
      spec: { schedule: '@every 1h', template: { ttl: '168h0m0s' } },
    } as never);
    expect(s).toMatchObject({
      intervalSeconds: 3600,
      ttlSeconds: 7 * 86_400,
      includedNamespaces: ['*'],
      fsBackup: false,
    });
    expect(veleroSchedule({ metadata: { name: 'y' }, spec: { schedule: '0 1 * * *' } } as never).ttlSeconds).toBe(
      30 * 86_400,
    );
  });
});
