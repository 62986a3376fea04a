// The lab's workers serve Prometheus metrics (each at its own address, lab/topology.ts): the DR
// state they export matches the lab's real bucket, Velero, DNS and Temporal; the text passes the
// real `promtool check metrics`; and a snapshot schedule that stops shows: the snapshot age
// crosses two intervals, the schedule reads paused, and the run the schedule did is counted.
import { spawn } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newestCompleted } from '../activities/velero.ts';
import type { ListedSnapshot } from '../common/snapshots.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { bin, paths, SITES, workerMetricsAddress } from '../lab/topology.ts';
import { createGateways, type Gateways } from '../worker/gateways.ts';
import { NS, RECORD } from './support/failover.ts';
import { drctlCli, ensureLabHealthy, labConfig, temporalClient, until } from './support/lab.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus' text format, enough of it for these gauges and counters. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
    );
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

const pick = (s: Sample[], name: string, labels: Record<string, string> = {}) =>
  s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
const one = (s: Sample[], name: string, labels: Record<string, string> = {}) => {
  const found = pick(s, name, labels);
  if (found.length !== 1) throw new Error(`${name}${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]!.value;
};

const urls = SITES.map((s) => `http://${workerMetricsAddress(s)}/metrics`);
const scrape = async (url: string) => {
  const r = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  expect(r.status).toBe(200);
  return r.text();
};

function promtoolCheck(text: string, ...flags: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(bin.promtool, ['check', 'metrics', ...flags]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
    p.stdin.end(text);
  });
}

async function cli(...args: string[]) {
  const r = await drctlCli(['--config', paths.config, ...args]);
  if (r.status !== 0) throw new Error(`drctl ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

const snapshotsOf = async (cluster: string) =>
  (JSON.parse(await cli('snapshot', 'list', '--cluster', cluster, '--json')) as { snapshots: ListedSnapshot[] })
    .snapshots;

let config: DrctlConfig;
let gw: Gateways;
let client: Client;

beforeAll(async () => {
  await ensureLabHealthy();
  config = labConfig();
  gw = createGateways(config);
  client = await temporalClient(config);
});

afterAll(async () => {
  // Whatever a test left: no schedule keeps snapshotting site-a every minute.
  await drctlCli(['--config', paths.config, 'snapshot', 'schedule', 'delete', '--cluster', 'site-a']);
  gw?.close();
  await client?.connection.close();
});

describe('worker metrics against the lab', () => {
  it("each site's worker serves the DR state as the lab has it, in a format promtool accepts", async () => {
    const texts = await Promise.all(urls.map(scrape));
    for (const t of texts) {
      // The whole page parses; drctl's own families also pass promtool's naming lint (prom-client's
      // process and Node.js families, drctl_worker_*, carry its own names, some of which it flags).
      expect((await promtoolCheck(t, '--lint=none', '--extended')).code).toBe(0);
      const own = t
        .split('\n')
        .filter((l) => !/^(# (HELP|TYPE) )?drctl_worker_/.test(l))
        .join('\n');
      expect(own).toContain('drctl_rpo_breached');
      expect(await promtoolCheck(own)).toEqual({ code: 0, out: '' });
    }
    // Read after the scrape: what the metrics say was true at most `metrics.refresh` earlier.
    const s = parseMetrics(texts[0]!);
    const now = Date.now();
    const slack = config.metrics.refresh / 1000 + 15;
    expect(pick(s, 'drctl_collect_up').filter((x) => x.value !== 1)).toEqual([]);

    // Snapshots: the bucket's newest proven one, by revision and size; its age.
    for (const cluster of ['site-a', 'site-b']) {
      const listed = await snapshotsOf(cluster);
      const proven = listed.find((x) => x.proof?.verdict === 'restorable');
      expect(one(s, 'drctl_etcd_snapshots_kept', { cluster })).toBe(listed.length);
      if (!proven) {
        expect(one(s, 'drctl_etcd_snapshot_restorable_age_seconds', { cluster })).toBe(Infinity);
        continue;
      }
      expect(one(s, 'drctl_etcd_snapshot_restorable_revision', { cluster })).toBe(proven.revision);
      expect(one(s, 'drctl_etcd_snapshot_restorable_size_bytes', { cluster })).toBe(proven.size);
      const age = (now - Date.parse(proven.takenAt)) / 1000;
      expect(one(s, 'drctl_etcd_snapshot_restorable_age_seconds', { cluster })).toBeGreaterThan(age - slack);
      expect(one(s, 'drctl_etcd_snapshot_restorable_age_seconds', { cluster })).toBeLessThanOrEqual(age + 1);
    }

    // Velero: the newest Completed backup of demo-app that site-b (the DR site) sees.
    const backups = await gw.velero('site-b').backups();
    const newest = newestCompleted(backups, [NS], config.sites[1]!.velero.storageLocation)!;
    expect(newest).toBeDefined();
    const labels = { site: 'site-b', namespaces: NS, tier: 'e-commerce' };
    const exported = one(s, 'drctl_velero_backup_age_seconds', labels);
    // The worker's reading is up to one refresh old: a backup that completed since may be newer than
    // the one it saw. So the exported age is that of a Completed backup started before the scrape,
    // within the refresh's slack (a schedule fires every 2 minutes: never two in one refresh).
    const ages = backups
      .filter((b) => b.phase === 'Completed' && b.startedAt && (b.completedAt ? Date.parse(b.completedAt) : 0) <= now)
      .map((b) => (now - Date.parse(b.startedAt!)) / 1000);
    expect(ages.length).toBeGreaterThan(0);
    expect(
      ages.some((age) => exported > age - slack && exported <= age + 1),
      `exported ${exported} s; Completed backups' ages ${ages.map((a) => a.toFixed(1)).join(', ')}`,
    ).toBe(true);
    const backupAge = (now - Date.parse(newest.startedAt!)) / 1000;
    expect(exported).toBeGreaterThan(backupAge - slack);
    expect(one(s, 'drctl_rpo_target_seconds', { tier: 'e-commerce' })).toBe(300);
    expect(one(s, 'drctl_rpo_breached', labels)).toBe(exported > 300 ? 1 : 0);

    // DNS: a real query to the authoritative server, and the site whose app address it answers.
    const { addresses } = await gw.dns().resolveA(RECORD);
    const serving = config.sites.find((x) => addresses.includes(x.appAddress!))!.name;
    expect(pick(s, 'drctl_dns_record_site', { record: RECORD }).map((x) => [x.labels.site, x.value])).toEqual([
      [serving, 1],
    ]);

    // The health watch, as Temporal's visibility has it.
    const { count } = await client.workflow.count(`WorkflowType = 'healthWatch' AND ExecutionStatus = 'Running'`);
    expect(one(s, 'drctl_health_watch_running')).toBe(count > 0 ? 1 : 0);

    // Both workers see the same state (two places to scrape, one truth).
    const b = parseMetrics(texts[1]!);
    expect(one(b, 'drctl_dns_record_site', { record: RECORD, site: serving })).toBe(1);
    expect(one(b, 'drctl_etcd_snapshots_kept', { cluster: 'site-a' })).toBe(
      one(s, 'drctl_etcd_snapshots_kept', { cluster: 'site-a' }),
    );
  });

  it('a snapshot schedule that stops: its run is counted, it reads paused, and the age crosses two intervals', async () => {
    const runsDone = async () =>
      (await Promise.all(urls.map(scrape)))
        .flatMap(parseMetrics)
        .filter(
          (x) =>
            x.name === 'drctl_runbook_runs_total' &&
            x.labels.runbook === 'etcd-snapshot' &&
            x.labels.phase === 'completed',
        )
        .reduce((a, x) => a + x.value, 0);
    const runsBefore = await runsDone();
    const t0 = Date.now();
    await cli('snapshot', 'schedule', '--cluster', 'site-a', '--every', '1m', '--json');
    await cli('snapshot', 'schedule', 'trigger', '--cluster', 'site-a');
    const fresh = await until(
      'a proven snapshot of site-a taken by the schedule',
      () => snapshotsOf('site-a'),
      (l) => Date.parse(l[0]?.takenAt ?? '0') >= t0 - 1000 && l[0]?.proof?.verdict === 'restorable',
      120_000,
      2000,
    );
    await cli('snapshot', 'schedule', 'pause', '--cluster', 'site-a', '--note', 'metrics test: stopped on purpose');
    // A run the schedule started at a minute boundary before the pause may still finish.
    await until(
      'no snapshot run of site-a running',
      () =>
        client.workflow.count(
          `WorkflowType = 'etcdSnapshot' AND DrctlCluster = 'site-a' AND ExecutionStatus = 'Running'`,
        ),
      (c) => c.count === 0,
      120_000,
      1000,
    );
    const newest = (await snapshotsOf('site-a'))[0] ?? fresh[0]!;
    const takenAt = Date.parse(newest.takenAt);

    const s = await until(
      'the workers to see the paused schedule',
      async () => parseMetrics(await scrape(urls[0]!)),
      (x) => pick(x, 'drctl_etcd_snapshot_schedule', { cluster: 'site-a', state: 'paused' })[0]?.value === 1,
      30_000,
      1000,
    );
    expect(one(s, 'drctl_etcd_snapshot_interval_seconds', { cluster: 'site-a' })).toBe(60);
    expect(one(s, 'drctl_etcd_snapshot_last_run_success', { cluster: 'site-a' })).toBe(1);
    expect(one(s, 'drctl_etcd_snapshot_restorable_revision', { cluster: 'site-a' })).toBe(newest.revision);
    expect(one(s, 'drctl_etcd_snapshot_age_seconds', { cluster: 'site-a' })).toBeLessThan(120);
    expect(await runsDone()).toBeGreaterThan(runsBefore);

    // Two intervals without a snapshot: what the DrctlSnapshotScheduleStalled rule fires on.
    await new Promise((r) => setTimeout(r, Math.max(0, takenAt + 130_000 - Date.now())));
    const late = parseMetrics(await scrape(urls[1]!));
    const age = one(late, 'drctl_etcd_snapshot_age_seconds', { cluster: 'site-a' });
    expect(age).toBeGreaterThan(2 * one(late, 'drctl_etcd_snapshot_interval_seconds', { cluster: 'site-a' }));
    expect(one(late, 'drctl_etcd_snapshot_schedule', { cluster: 'site-a', state: 'paused' })).toBe(1);
  }, 360_000);
});
