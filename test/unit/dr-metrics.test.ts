// The DR gauges from observations (pure), and the worker's registry around them: caching, the
// runbook counters, the text Prometheus scrapes. The lab test (test/metrics.test.ts) checks the
// same numbers against the lab's real bucket, Velero, DNS and Temporal.
import { describe, expect, it } from 'vitest';
import type { DrillReport } from '../../common/drill.ts';
import { drSamples, intervalOf, type Observations, recordSite, type Sample } from '../../common/dr-metrics.ts';
import type { ListedSnapshot } from '../../common/snapshots.ts';
import { WorkerMetrics } from '../../worker/metrics.ts';

const NOW = Date.parse('2026-12-03T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();
const snap = (s: number, verdict?: 'restorable' | 'unrestorable', over: Partial<ListedSnapshot> = {}) =>
  ({
    key: `k-${s}`,
    takenAt: ago(s),
    size: 1000 + s,
    revision: 5000 - s,
    ...(verdict
      ? { proof: { verdict, revision: 1, keys: 1, etcdVersion: '3.5.35', provedAt: ago(s), detail: '' } }
      : {}),
    ...over,
  }) as ListedSnapshot;

function observations(over: Partial<Observations> = {}): Observations {
  return {
    now: NOW,
    clusters: [
      {
        cluster: 'site-a',
        snapshots: { ok: true, value: [snap(60), snap(960, 'restorable'), snap(1860, 'restorable')] },
        lastRun: { ok: true, value: { phase: 'completed', endedAt: NOW - 55_000 } },
        schedule: { ok: true, value: { paused: false, intervalSeconds: 900 } },
        configuredEverySeconds: 900,
      },
      {
        cluster: 'site-b',
        snapshots: { ok: true, value: [] },
        lastRun: { ok: true, value: { phase: 'failed', endedAt: NOW - 10_000 } },
        schedule: { ok: true, value: undefined },
        configuredEverySeconds: 600,
      },
    ],
    backups: [
      {
        site: 'site-b',
        namespaces: ['demo-app'],
        tier: 'e-commerce',
        rpoTargetSeconds: 300,
        newest: { ok: true, value: { name: 'b1', startedAt: ago(120) } },
      },
      {
        site: 'site-b',
        namespaces: ['payments'],
        tier: 'internal',
        rpoTargetSeconds: 3600,
        newest: { ok: true, value: undefined },
      },
    ],
    drills: [
      { plan: 'quarterly', last: { ok: true, value: undefined } },
      {
        plan: 'payments',
        last: {
          ok: true,
          value: {
            outcome: 'failed',
            cause: { check: 'cluster DNS (kube-system/coredns) available', detail: '0/2', action: 'fix CoreDNS' },
            endedAt: ago(86_400),
            tiers: [{ tier: 'e-commerce', rtoSeconds: 42, rpoSeconds: 130 }],
          } as unknown as DrillReport,
        },
      },
    ],
    dns: [
      { record: 'app.example.com', addresses: { ok: true, value: ['127.0.10.100'] } },
      { record: 'drill.app.example.com', addresses: { ok: true, value: [] } },
    ],
    appAddresses: [
      { site: 'site-a', address: '127.0.10.100' },
      { site: 'site-b', address: '127.0.20.100' },
    ],
    healthWatch: { ok: true, value: false },
    targets: { 'e-commerce': { rpoSeconds: 300 }, internal: { rpoSeconds: 3600 } },
    ...over,
  };
}

const value = (samples: Sample[], gauge: Sample['gauge'], labels: Record<string, string> = {}) =>
  samples.filter((s) => s.gauge === gauge && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

describe('DR gauges from what the worker observed', () => {
  const s = drSamples(observations());

  it('snapshots: the newest one, the newest proven restorable, its proof; none at all is infinitely old', () => {
    expect(value(s, 'snapshotAge', { cluster: 'site-a' })[0]?.value).toBe(60);
    expect(value(s, 'snapshotRestorableAge', { cluster: 'site-a' })[0]?.value).toBe(960);
    expect(value(s, 'snapshotRestorableSize', { cluster: 'site-a' })[0]?.value).toBe(1960);
    expect(value(s, 'snapshotRestorableRevision', { cluster: 'site-a' })[0]?.value).toBe(4040);
    expect(value(s, 'snapshotNewestProof', { cluster: 'site-a' }).map((x) => x.labels.verdict)).toEqual(['untested']);
    expect(value(s, 'snapshotCount', { cluster: 'site-a' })[0]?.value).toBe(3);
    expect(value(s, 'snapshotAge', { cluster: 'site-b' })[0]?.value).toBe(Infinity);
    expect(value(s, 'snapshotRestorableAge', { cluster: 'site-b' })[0]?.value).toBe(Infinity);
    expect(value(s, 'snapshotRestorableSize', { cluster: 'site-b' })).toEqual([]);
    expect(value(s, 'snapshotNewestProof', { cluster: 'site-b' })).toEqual([]);
  });

  it("the last run's result; the schedule's interval, else the config's when there is no schedule", () => {
    expect(value(s, 'snapshotLastRunSuccess').map((x) => [x.labels.cluster, x.value])).toEqual([
      ['site-a', 1],
      ['site-b', 0],
    ]);
    expect(value(s, 'snapshotInterval').map((x) => [x.labels.cluster, x.value])).toEqual([
      ['site-a', 900],
      ['site-b', 600],
    ]);
    expect(value(s, 'snapshotSchedule').map((x) => [x.labels.cluster, x.labels.state])).toEqual([
      ['site-a', 'active'],
      ['site-b', 'missing'],
    ]);
  });

  it("backups: the data's age against the tier's RPO; a set with no backup at all is in breach", () => {
    expect(value(s, 'backupAge', { namespaces: 'demo-app' })[0]?.value).toBe(120);
    expect(value(s, 'rpoBreached', { namespaces: 'demo-app' })[0]?.value).toBe(0);
    expect(value(s, 'backupAge', { namespaces: 'payments' })[0]?.value).toBe(Infinity);
    expect(value(s, 'rpoBreached', { namespaces: 'payments' })[0]?.value).toBe(1);
    expect(value(s, 'rpoTarget').map((x) => [x.labels.tier, x.value])).toEqual([
      ['e-commerce', 300],
      ['internal', 3600],
    ]);
    const stale = drSamples(
      observations({
        backups: [{ ...observations().backups[0]!, newest: { ok: true, value: { name: 'b0', startedAt: ago(301) } } }],
      }),
    );
    expect(value(stale, 'rpoBreached')[0]?.value).toBe(1);
  });

  it('drills: a plan that never ran ends at 0 (the no-drill alert fires); the last one’s verdict and figures', () => {
    expect(value(s, 'drillLastEnd', { plan: 'quarterly' })[0]?.value).toBe(0);
    expect(value(s, 'drillLastPassed', { plan: 'quarterly' })).toEqual([]);
    expect(value(s, 'drillLastEnd', { plan: 'payments' })[0]?.value).toBe((NOW - 86_400_000) / 1000);
    expect(value(s, 'drillLastPassed', { plan: 'payments' })[0]?.value).toBe(0);
    expect(value(s, 'drillLastCause', { plan: 'payments' }).map((x) => x.labels.check)).toEqual([
      'cluster DNS (kube-system/coredns) available',
    ]);
    expect(value(s, 'drillLastRto', { plan: 'payments', tier: 'e-commerce' })[0]?.value).toBe(42);
    expect(value(s, 'drillLastRpo', { plan: 'payments', tier: 'e-commerce' })[0]?.value).toBe(130);
  });

  it('DNS: the site each record serves; the health watch', () => {
    expect(value(s, 'dnsRecordSite').map((x) => [x.labels.record, x.labels.site])).toEqual([
      ['app.example.com', 'site-a'],
      ['drill.app.example.com', 'none'],
    ]);
    expect(recordSite(['127.0.10.100', '127.0.20.100'], observations().appAddresses)).toBe('unknown');
    expect(recordSite(['10.9.9.9'], observations().appAddresses)).toBe('unknown');
    expect(value(s, 'healthWatchRunning')[0]?.value).toBe(0);
  });

  it('a source that could not be read is down and adds no numbers of its own (never a guess)', () => {
    const o = observations();
    o.clusters[0]!.snapshots = { ok: false, error: 'bucket unreachable' };
    o.backups[0]!.newest = { ok: false, error: 'API down' };
    o.dns[0]!.addresses = { ok: false, error: 'DNS API down' };
    const f = drSamples(o);
    expect(value(f, 'collectUp', { source: 'snapshots/site-a' })[0]?.value).toBe(0);
    expect(value(f, 'collectUp', { source: 'snapshots/site-b' })[0]?.value).toBe(1);
    expect(value(f, 'snapshotAge', { cluster: 'site-a' })).toEqual([]);
    expect(value(f, 'rpoBreached', { namespaces: 'demo-app' })).toEqual([]);
    expect(value(f, 'collectUp', { source: 'dns' })[0]?.value).toBe(0);
    expect(value(f, 'dnsRecordSite', { record: 'app.example.com' })).toEqual([]);
  });

  it("a schedule's interval from its next two actions (calendars too)", () => {
    expect(intervalOf([new Date(NOW), new Date(NOW + 900_000), new Date(NOW + 1_800_000)])).toBe(900);
    expect(intervalOf([new Date(NOW)])).toBeUndefined();
  });
});

describe("the worker's registry", () => {
  it('collects at most once per refresh, renders Prometheus text, counts runs by runbook and phase', async () => {
    let collections = 0;
    const m = new WorkerMetrics(async () => {
      collections++;
      return observations();
    }, 60_000);
    const [a, b] = await Promise.all([m.render(), m.render()]);
    expect(collections).toBe(1);
    expect(b).toBe(a);
    expect(a).toContain('drctl_etcd_snapshot_age_seconds{cluster="site-b"} +Inf');
    expect(a).toContain('drctl_rpo_breached{site="site-b",namespaces="payments",tier="internal"} 1');
    expect(a).toContain('drctl_dns_record_site{record="app.example.com",site="site-a"} 1');
    m.runEnded({ runbook: 'etcd-restore', phase: 'compensated', seconds: 42 });
    m.runEnded({ runbook: 'etcd-restore', phase: 'completed', seconds: 7 });
    m.runEnded({ runbook: 'etcd-restore', phase: 'completed', seconds: 9 });
    const c = await m.render();
    expect(collections).toBe(1);
    expect(c).toContain('drctl_runbook_runs_total{runbook="etcd-restore",phase="completed"} 2');
    expect(c).toContain('drctl_runbook_runs_total{runbook="etcd-restore",phase="compensated"} 1');
    expect(c).toContain('drctl_runbook_duration_seconds_bucket{le="60",runbook="etcd-restore",phase="compensated"} 1');
  });

  it('a collection that fails answers the scrape with an error and is tried again on the next', async () => {
    let n = 0;
    const m = new WorkerMetrics(async () => {
      if (n++ === 0) throw new Error('temporal down');
      return observations();
    }, 60_000);
    await expect(m.render()).rejects.toThrow('temporal down');
    expect(await m.render()).toContain('drctl_health_watch_running 0');
  });
});
