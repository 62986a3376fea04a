// The worker's Prometheus endpoint: the DR state (common/dr-metrics.ts) collected from the off-site
// bucket, each DR site's Velero, DNS and Temporal at most once per `metrics.refresh`, plus the
// runbook runs this worker saw end (a workflow sink) and the process' own metrics. Read-only: a
// scrape never changes anything, and a source that fails is reported (drctl_collect_up 0), not
// guessed.
import { createServer, type Server } from 'node:http';
import type { Client } from '@temporalio/client';
import type { InjectedSinks } from '@temporalio/worker';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { newestCompleted } from '../activities/velero.ts';
import { type DrillReport, drillReportKeys } from '../common/drill.ts';
import {
  DR_GAUGES,
  drSamples,
  type GaugeKey,
  intervalOf,
  type Observations,
  type Observed,
  type Sample,
} from '../common/dr-metrics.ts';
import { rootMessage } from '../common/errors.ts';
import { log } from '../common/log.ts';
import { type DrctlSinks, PHASES, RUNBOOKS, type RunEnded, SEARCH_KEYS } from '../common/runbook.ts';
import { snapshotScheduleId } from '../common/snapshots.ts';
import type { DrctlConfig } from '../config/schema.ts';
import type { Gateways } from '../gateways/index.ts';

/** How long one source may take before the collection reports it down. */
const SOURCE_TIMEOUT_MS = 15_000;

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

/** A source's answer, or why it failed; never longer than SOURCE_TIMEOUT_MS. */
async function observed<T>(what: string, p: () => Promise<T>): Promise<Observed<T>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const value = await Promise.race([
      p(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${SOURCE_TIMEOUT_MS / 1000} s`)), SOURCE_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, value };
  } catch (err) {
    const error = rootMessage(err);
    log.warn({ source: what, err: error }, 'metrics: a source could not be read');
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** The namespace sets the tiers protect and the DR site that would restore each. */
export function protectedSets(config: DrctlConfig): { site: string; namespaces: string[]; tier: string }[] {
  const out = new Map<string, { site: string; namespaces: string[]; tier: string }>();
  const add = (site: string, namespaces: string[], tier: string) =>
    out.set(`${site}|${[...namespaces].sort().join(',')}|${tier}`, { site, namespaces: [...namespaces].sort(), tier });
  if (config.failover)
    for (const s of config.sites.filter((x) => x.role !== 'primary'))
      add(s.name, config.failover.namespaces, config.failover.tier);
  for (const d of config.drills) for (const w of d.workloads) add(d.to, w.namespaces, w.tier);
  return [...out.values()];
}

/** Everything the DR gauges are made of, read now (each source on its own: one failing loses only its own). */
export async function observeDr(config: DrctlConfig, gw: Gateways, client: Client): Promise<Observations> {
  const now = Date.now();
  const backupsAt = new Map<string, ReturnType<ReturnType<Gateways['velero']>['backups']>>();
  const backupsOf = (site: string) => {
    let p = backupsAt.get(site);
    if (!p) backupsAt.set(site, (p = gw.velero(site).backups()));
    return p;
  };
  const clusters = config.sites.map((s) => s.cluster.name);
  const [clusterObs, backups, drills, dns, healthWatch] = await Promise.all([
    Promise.all(
      clusters.map(async (cluster) => {
        const [snapshots, lastRun, schedule] = await Promise.all([
          observed(`snapshots/${cluster}`, async () => (await gw.snapshots().list(cluster)).snapshots),
          observed(`snapshot-runs/${cluster}`, () => lastSnapshotRun(client, cluster)),
          observed(`snapshot-schedule/${cluster}`, () => snapshotSchedule(client, cluster)),
        ]);
        return { cluster, snapshots, lastRun, schedule, configuredEverySeconds: config.snapshots.every / 1000 };
      }),
    ),
    Promise.all(
      protectedSets(config).map(async (set) => ({
        ...set,
        rpoTargetSeconds: (config.targets[set.tier]?.rpo ?? 0) / 1000,
        newest: await observed(`velero/${set.site}`, async () => {
          const b = newestCompleted(
            await backupsOf(set.site),
            set.namespaces,
            gw.site(set.site).velero.storageLocation,
          );
          return b ? { name: b.name, startedAt: b.startedAt ?? b.completedAt! } : undefined;
        }),
      })),
    ),
    Promise.all(
      config.drills.map(async (d) => ({
        plan: d.name,
        last: await observed(`drills/${d.name}`, () => lastDrillReport(config, gw, d.name)),
      })),
    ),
    Promise.all(
      (config.dns?.records ?? []).map(async (r) => ({
        record: r.name,
        addresses: await observed('dns', async () => (await gw.dns().getA(r.name))?.addresses ?? []),
      })),
    ),
    config.failover
      ? observed('health-watch', async () => {
          const { count } = await client.workflow.count(`WorkflowType = 'healthWatch' AND ExecutionStatus = 'Running'`);
          return count > 0;
        })
      : Promise.resolve(undefined),
  ]);
  return {
    now,
    clusters: clusterObs,
    backups,
    drills,
    dns,
    appAddresses: config.sites.flatMap((s) => (s.appAddress ? [{ site: s.name, address: s.appAddress }] : [])),
    healthWatch,
    targets: Object.fromEntries(Object.entries(config.targets).map(([t, v]) => [t, { rpoSeconds: v.rpo / 1000 }])),
  };
}

/** The newest finished snapshot run of the cluster: its final phase and when it closed. */
async function lastSnapshotRun(client: Client, cluster: string) {
  let best: { phase: string; endedAt: number } | undefined;
  let seen = 0;
  const query = `WorkflowType = 'etcdSnapshot' AND DrctlCluster = '${cluster}' AND ExecutionStatus != 'Running'`;
  for await (const w of client.workflow.list({ query, pageSize: 20 })) {
    const endedAt = w.closeTime?.getTime();
    if (endedAt !== undefined && (!best || endedAt > best.endedAt)) {
      const phase =
        w.typedSearchAttributes.get(SEARCH_KEYS.phase) ?? (w.status.name === 'COMPLETED' ? 'completed' : 'failed');
      best = { phase, endedAt };
    }
    if (++seen >= 20) break;
  }
  return best;
}

async function snapshotSchedule(client: Client, cluster: string) {
  try {
    const d = await client.schedule.getHandle(snapshotScheduleId(cluster)).describe();
    const every = d.spec.intervals?.[0]?.every;
    return {
      paused: d.state.paused,
      intervalSeconds: every !== undefined ? Number(every) / 1000 : intervalOf(d.info.nextActionTimes),
    };
  } catch (err) {
    if ((err as Error).name === 'ScheduleNotFoundError') return undefined;
    throw err;
  }
}

/** The plan's newest drill report in the off-site bucket (the bucket outlives Temporal's retention). */
async function lastDrillReport(config: DrctlConfig, gw: Gateways, plan: string): Promise<DrillReport | undefined> {
  const store = gw.store();
  const prefix = drillReportKeys(config.objectStore.prefix, plan, '').json.replace(/\/report\.json$/, '');
  const reports = (await store.list(prefix))
    .filter((o) => o.key.endsWith('/report.json'))
    .sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0));
  if (!reports[0]) return undefined;
  return JSON.parse(await text(await store.get(reports[0].key))) as DrillReport;
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
