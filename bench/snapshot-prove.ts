// Benchmark: what proving a snapshot restorable adds to a snapshot run (issue: every snapshot
// proven restorable), with site-b's etcd holding ~BENCH_MB MiB (default 100) of bench keys.
//
//   the run:  the etcdSnapshot runbook through a worker on this script's own task queue; its own
//             step timings (rb.timings()): pick + take + verify + upload + cleanup = the snapshot
//             run as it was (the baseline, measured in the same run), and `prove` = fetch back,
//             decrypt, etcdutl restore into a scratch dir, serve with a throwaway etcd, count keys.
// Reported: prove seconds, baseline seconds, ratio prove / baseline, per run and median. No target
// is asserted: the figure is what a scheduled snapshot costs more (the schedule's interval is 15 min).
// BENCH_RUNS (default 2). The bench keys are deleted, compacted and defragmented at the end.
//
//   npx tsx bench/snapshot-prove.ts
import { createGateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import {
  benchConfig,
  deleteCompactDefrag,
  drctlSnapshot,
  fill,
  median,
  say,
  siteHealthy,
  table,
  temporalClient,
  writeResults,
} from './lib/common.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const MB = Number(process.env.BENCH_MB ?? 100);
const PREFIX = '/bench-prove/';
const taskQueue = `bench-prove-${Date.now()}`;
const { config } = benchConfig(taskQueue);
if (!config.snapshots.prove) throw new Error('the lab config has no snapshots.prove');
const gw = createGateways(config);

async function main() {
  const health = await siteHealthy(gw);
  if (!health.ok) throw new Error(`site-b is not healthy: ${health.detail}`);
  const worker = await createWorker(config);
  const running = worker.worker.run();
  const client = await temporalClient(config);
  const rows: (string | number)[][] = [];
  const results: { run: number; size: number; proveS: number; baselineS: number; ratio: number }[] = [];
  try {
    say(`filling site-b with ${MB} MiB under ${PREFIX}`);
    await fill(gw, { prefix: PREFIX, count: MB, rawBytes: 786_432, parallel: 4 });
    for (let i = 1; i <= RUNS; i++) {
      const r = await drctlSnapshot(client, taskQueue);
      const t = r.timings;
      const baseline = ['pick', 'take', 'verify', 'upload', 'cleanup'].reduce((a, s) => a + (t[s] ?? 0), 0);
      const prove = t.prove ?? NaN;
      if (!r.proof || 'untested' in r.proof) throw new Error(`run ${i}: not proven (${JSON.stringify(r.proof)})`);
      results.push({ run: i, size: r.size, proveS: prove / 1000, baselineS: baseline / 1000, ratio: prove / baseline });
      rows.push([
        i,
        (r.size / 1048576).toFixed(1),
        (baseline / 1000).toFixed(1),
        (prove / 1000).toFixed(1),
        (prove / baseline).toFixed(2),
        r.proof.keys,
      ]);
      say(`run ${i}: snapshot ${r.size} bytes; baseline ${baseline} ms, prove ${prove} ms`);
    }
  } finally {
    await deleteCompactDefrag(gw, [PREFIX]).catch((e: unknown) => say(`cleanup: ${String(e)}`));
    worker.worker.shutdown();
    await running;
    gw.close();
  }
  const med = {
    proveS: median(results.map((r) => r.proveS)),
    baselineS: median(results.map((r) => r.baselineS)),
    ratio: median(results.map((r) => r.ratio)),
  };
  say(`\n${table(['run', 'snapshot MiB', 'baseline s', 'prove s', 'prove / baseline', 'keys'], rows)}`);
  say(
    `median: prove ${med.proveS.toFixed(1)} s on a ${med.baselineS.toFixed(1)} s snapshot run (x${med.ratio.toFixed(2)})`,
  );
  say(`results: ${writeResults('snapshot-prove', { runs: results, median: med })}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
