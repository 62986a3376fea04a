// The worker's Prometheus endpoint: the DR state (common/dr-metrics.ts) collected from the off-site
// bucket, each DR site's Velero, DNS and Temporal at most once per `metrics.refresh`, plus the
// runbook runs this worker saw end (a workflow sink) and the process' own metrics. Read-only: a
// scrape never changes anything, and a source that fails is reported (drctl_collect_up 0), not
// guessed.
import { createServer, type Server } from 'node:http';
import type { InjectedSinks } from '@temporalio/worker';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { newestCompleted } from '../activities/velero.ts';
import {
  lastAuditReport,
  lastDrillReport,
  lastSnapshotRun,
  observed,
  protectedSets,
  snapshotSchedule,
} from '../activities/dr-state.ts';
import { DR_GAUGES, drSamples, type GaugeKey, type Observations, type Sample } from '../common/dr-metrics.ts';
import { rootMessage } from '../common/errors.ts';
import { type DrctlSinks, PHASES, RUNBOOKS, type RunEnded } from '../common/runbook.ts';
import type { Gateways } from '../gateways/index.ts';

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly gauges: Record<GaugeKey, Gauge>;
  private readonly runs: Counter<'runbook' | 'phase'>;
  private readonly durations: Histogram<'runbook' | 'phase'>;
  private readonly collectSeconds: Gauge;
  private collectedAt = 0;
  private collecting?: Promise<void>;

  constructor(
    private readonly observe: () => Promise<Observations>,
    private readonly refreshMs: number,
  ) {
    const registers = [this.registry];
    this.gauges = Object.fromEntries(
      Object.entries(DR_GAUGES).map(([k, d]) => [
        k,
        new Gauge({ name: d.name, help: d.help, labelNames: [...d.labels], registers }),
      ]),
    ) as Record<GaugeKey, Gauge>;
    this.collectSeconds = new Gauge({
      name: 'drctl_collect_duration_seconds',
      help: 'How long the last collection of the DR state took',
      registers,
    });
    this.runs = new Counter({
      name: 'drctl_runbook_runs_total',
      help: 'Runbook runs that ended on this worker, by runbook and final phase (failed, compensated, needs-attention: failures)',
      labelNames: ['runbook', 'phase'],
      registers,
    });
    this.durations = new Histogram({
      name: 'drctl_runbook_duration_seconds',
      help: 'Runbook run durations (start to final phase, gate waits included), by runbook and final phase',
      labelNames: ['runbook', 'phase'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 4 * 3600, 24 * 3600],
      registers,
    });
  }

  /** A run ended (the workflow sink). */
  runEnded(ev: RunEnded): void {
    if (!Object.values(RUNBOOKS).includes(ev.runbook) || !PHASES.includes(ev.phase)) return;
    this.runs.inc({ runbook: ev.runbook, phase: ev.phase });
    this.durations.observe({ runbook: ev.runbook, phase: ev.phase }, ev.seconds);
  }

  /** The sinks a worker registers so its workflows' runEnded calls land here. */
  sinks(): InjectedSinks<DrctlSinks> {
    return { drctlMetrics: { runEnded: { fn: (_info, ev) => this.runEnded(ev), callDuringReplay: false } } };
  }

  /** The samples as of now (collected again when older than the refresh). */
  async refresh(): Promise<void> {
    if (Date.now() - this.collectedAt < this.refreshMs) return;
    this.collecting ??= (async () => {
      const t0 = Date.now();
      try {
        this.set(drSamples(await this.observe()));
        this.collectedAt = Date.now();
      } finally {
        this.collectSeconds.set((Date.now() - t0) / 1000);
        this.collecting = undefined;
      }
    })();
    await this.collecting;
  }

  private set(samples: Sample[]): void {
    for (const g of Object.values(this.gauges)) g.reset();
    for (const s of samples) this.gauges[s.gauge].set(s.labels, s.value);
  }

  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }
}

/** Everything the DR gauges are made of, read now (each source on its own: one failing loses only its own). */
export async function observeDr(gw: Gateways): Promise<Observations> {
  const config = gw.config;
  const now = Date.now();
  const backupsAt = new Map<string, ReturnType<ReturnType<Gateways['velero']>['backups']>>();
  const backupsOf = (site: string) => {
    let p = backupsAt.get(site);
    if (!p) backupsAt.set(site, (p = gw.velero(site).backups()));
    return p;
  };
  const clusters = config.sites.map((s) => s.cluster.name);
  const [clusterObs, backups, drills, dns, healthWatch, audit] = await Promise.all([
    Promise.all(
      clusters.map(async (cluster) => {
        const [snapshots, lastRun, schedule] = await Promise.all([
          observed(`snapshots/${cluster}`, async () => (await gw.snapshots().list(cluster)).snapshots),
          observed(`snapshot-runs/${cluster}`, () => lastSnapshotRun(gw, cluster)),
          observed(`snapshot-schedule/${cluster}`, () => snapshotSchedule(gw, cluster)),
        ]);
        return { cluster, snapshots, lastRun, schedule, configuredEverySeconds: config.snapshots.every / 1000 };
      }),
    ),
    Promise.all(
      protectedSets(config).map(async (set) => ({
        site: set.to,
        namespaces: set.namespaces,
        tier: set.tier,
        rpoTargetSeconds: (config.targets[set.tier]?.rpo ?? 0) / 1000,
        newest: await observed(`velero/${set.to}`, async () => {
          const b = newestCompleted(await backupsOf(set.to), set.namespaces, gw.site(set.to).velero.storageLocation);
          return b ? { name: b.name, startedAt: b.startedAt ?? b.completedAt! } : undefined;
        }),
      })),
    ),
    Promise.all(
      config.drills.map(async (d) => ({
        plan: d.name,
        last: await observed(`drills/${d.name}`, () => lastDrillReport(gw, d.name)),
      })),
    ),
    Promise.all(
      (config.dns?.records ?? []).map(async (r) => ({
        record: r.name,
        addresses: await observed('dns', async () => (await gw.dns().getA(r.name))?.addresses ?? []),
      })),
    ),
    config.failover
      ? observed(
          'health-watch',
          async () => (await gw.temporal().count(`WorkflowType = 'healthWatch' AND ExecutionStatus = 'Running'`)) > 0,
        )
      : Promise.resolve(undefined),
    observed('audit', async () => (await lastAuditReport(gw))?.rows),
  ]);
  return {
    now,
    clusters: clusterObs,
    backups,
    drills,
    dns,
    appAddresses: config.sites.flatMap((s) => (s.appAddress ? [{ site: s.name, address: s.appAddress }] : [])),
    healthWatch,
    audit,
    targets: Object.fromEntries(Object.entries(config.targets).map(([t, v]) => [t, { rpoSeconds: v.rpo / 1000 }])),
  };
}

/** Serves GET /metrics (and /healthz) on host:port until closed. */
export async function serveMetrics(listen: string, metrics: WorkerMetrics): Promise<{ server: Server; url: string }> {
  const m = listen.match(/^\[?([^\]]+?)\]?:(\d+)$/);
  if (!m) throw new Error(`metrics.listen: expected host:port (got '${listen}')`);
  // The process' own (CPU, memory, event loop lag), only where they are served.
  collectDefaultMetrics({ register: metrics.registry, prefix: 'drctl_worker_' });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/healthz')) {
      res.writeHead(404).end('not found: GET /metrics\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    metrics
      .render()
      .then((body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body))
      .catch((err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${rootMessage(err)}\n`));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), m[1], () => resolve());
  });
  return { server, url: `http://${listen}/metrics` };
}
