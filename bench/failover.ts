// Benchmark: lab failover site-a → site-b, from the approval until DNS is switched and the app
// answers through the name, broken down by step (target ≤ 60 s, DNS TTL excluded: the check asks
// the authoritative server). Baseline in the same run: the same runbook by hand, one command after
// another, as the seed's wiki does it —
//   kubectl scale (fence A) → kubectl patch BSL ReadOnly (A, B) → velero restore create --wait (B,
//   drctl's flags) → kubectl rollout status (B) → curl the PowerDNS API → dig until B → curl the app
//   until 200.
// The manual run needs a person to type; we time only the commands, so it is a lower bound.
// Every run starts from the lab's baseline (DNS on A, nothing at B) and ends by restoring it.
// BENCH_RUNS (default 2) rounds, interleaved drctl / manual.
//
//   npx tsx bench/failover.ts
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FailoverReport } from '../common/failover.ts';
import { bin, SITES } from '../lab/topology.ts';
import { appAddress, labCli, NS, RECORD, resetFailoverLab } from '../test/support/failover.ts';
import { createGateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import { statusQuery, siteFailover } from '../workflows/site-failover.ts';
import { decide, signedInput } from '../test/support/lab.ts';
import { benchConfig, median, say, secs, sleep, table, temporalClient, writeResults } from './lib/common.ts';

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const TARGET_S = 60;
const taskQueue = `bench-failover-${Date.now()}`;
const { config } = benchConfig(taskQueue);
const gw = createGateways(config);
const kubectl = join(bin.kubeDir, 'kubectl');
const kubeconfig = (site: string) => SITES.find((s) => s.name === site)!.kubeconfig;
const A = appAddress(config, 'site-a');
const B = appAddress(config, 'site-b');

async function sh(cmd: string, args: string[], site?: string): Promise<string> {
  const env = site ? { ...process.env, KUBECONFIG: kubeconfig(site) } : process.env;
  return (await run(cmd, args, { env, maxBuffer: 16 * 1024 * 1024 })).stdout;
}

async function drctlRun(i: number) {
  const client = await temporalClient(config);
  try {
    await labCli('site', 'down', 'site-a');
    const workflowId = `bench-failover-${Date.now()}`;
    const h = await client.workflow.start(siteFailover, {
      taskQueue,
      workflowId,
      args: [
        await signedInput({ config }, 'site-failover', workflowId, {
          from: 'site-a',
          to: 'site-b',
          reason: `bench run ${i}`,
        }),
      ],
    });
    for (;;) {
      const st = await h.query(statusQuery);
      if (st.phase === 'waiting-approval') break;
      if (st.phase === 'failed') throw new Error(st.error);
      await sleep(100);
    }
    const t0 = Date.now();
    await decide({ config, client }, h, 'bob', true, 'bench');
    const report: FailoverReport = await h.result();
    const servedMs = Date.parse(report.servingAt) - t0;
    const st = await h.query(statusQuery);
    const steps = st.steps
      .filter((s) => s.startedAt && s.endedAt && Date.parse(s.startedAt) >= t0 - 1000)
      .map((s) => ({ step: s.step, ms: Date.parse(s.endedAt!) - Date.parse(s.startedAt!) }));
    return { servedMs, steps, rto: report.rtoSeconds, rpo: report.rpoSeconds, restoreName: report.restoreName };
  } finally {
    await client.connection.close();
  }
}

async function manualRun(i: number) {
  await labCli('site', 'down', 'site-a');
  const steps: { step: string; ms: number }[] = [];
  const timed = async (step: string, fn: () => Promise<unknown>) => {
    const t = Date.now();
    await fn();
    steps.push({ step, ms: Date.now() - t });
  };
  const backups = JSON.parse(
    await sh(kubectl, ['-n', 'velero', 'get', 'backups.velero.io', '-o', 'json'], 'site-b'),
  ) as { items: { metadata: { name: string }; status?: { phase?: string; completionTimestamp?: string } }[] };
  const newest = backups.items
    .filter((b) => b.status?.phase === 'Completed')
    .sort((a, b) => Date.parse(b.status!.completionTimestamp!) - Date.parse(a.status!.completionTimestamp!))[0]!
    .metadata.name;
  const restore = `bench-manual-${Date.now()}-${i}`;
  const t0 = Date.now();
  await timed('fence A (scale to 0)', () =>
    sh(kubectl, ['-n', NS, 'scale', 'deployment', '--all', '--replicas=0'], 'site-a'),
  );
  await timed('BSLs ReadOnly', async () => {
    for (const s of ['site-a', 'site-b'])
      await sh(
        kubectl,
        [
          '-n',
          'velero',
          'patch',
          'backupstoragelocations.velero.io',
          'default',
          '--type=merge',
          '-p',
          '{"spec":{"accessMode":"ReadOnly"}}',
        ],
        s,
      );
  });
  await timed('velero restore --wait', () =>
    sh(
      bin.velero,
      [
        '--kubeconfig',
        kubeconfig('site-b'),
        '-n',
        'velero',
        'restore',
        'create',
        restore,
        '--from-backup',
        newest,
        '--include-namespaces',
        NS,
        // The flags drctl's restore uses: without --existing-resource-policy=update, the PV an earlier
        // restore left Released at site-b is skipped as existing and the PVC never binds.
        '--existing-resource-policy=update',
        '--exclude-resources',
        'endpoints,endpointslices.discovery.k8s.io',
        '--restore-volumes=false',
        '--wait',
      ],
      'site-b',
    ),
  );
  await timed('rollout status', () =>
    sh(kubectl, ['-n', NS, 'rollout', 'status', 'deployment/nginx', '--timeout=120s'], 'site-b'),
  );
  await timed('DNS API PATCH', async () => {
    const key = gw.dns().target.apiKey;
    const res = await fetch(`${config.dns!.powerdns.api}/api/v1/servers/localhost/zones/example.com.`, {
      method: 'PATCH',
      headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        rrsets: [
          { name: `${RECORD}.`, type: 'A', ttl: 30, changetype: 'REPLACE', records: [{ content: B, disabled: false }] },
        ],
      }),
    });
    if (!res.ok) throw new Error(`PowerDNS PATCH: HTTP ${res.status}`);
  });
  await timed('dig until B', async () => {
    for (;;) {
      const out = await sh('dig', ['+short', '@127.0.40.2', RECORD]);
      if (out.trim() === B) return;
      await sleep(100);
    }
  });
  await timed('curl app until 200', async () => {
    for (;;) {
      const ok = await fetch(`http://${B}:8080/`, { headers: { Host: RECORD } }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      await sleep(100);
    }
  });
  const servedMs = Date.now() - t0;
  await sh(kubectl, ['-n', 'velero', 'delete', 'restores.velero.io', restore, '--wait=false'], 'site-b').catch(
    () => '',
  );
  return { servedMs, steps };
}

async function main() {
  const worker = await createWorker(config);
  const running = worker.worker.run();
  const drctl: Awaited<ReturnType<typeof drctlRun>>[] = [];
  const manual: Awaited<ReturnType<typeof manualRun>>[] = [];
  try {
    for (let i = 1; i <= RUNS; i++) {
      say(`run ${i}: reset to the baseline (DNS on A, nothing at B)`);
      await resetFailoverLab(gw, config);
      drctl.push(await drctlRun(i));
      say(`run ${i} drctl: approval → DNS switched + app healthy in ${secs(drctl.at(-1)!.servedMs)} s`);
      await resetFailoverLab(gw, config);
      manual.push(await manualRun(i));
      say(`run ${i} manual: first command → DNS switched + app healthy in ${secs(manual.at(-1)!.servedMs)} s`);
    }
  } finally {
    await resetFailoverLab(gw, config).catch((e: Error) => say(`reset failed: ${e.message}`));
    worker.worker.shutdown();
    await running;
    await worker.connection.close();
    worker.gateways.close();
    gw.close();
  }
  const a = drctl.map((r) => r.servedMs);
  const b = manual.map((r) => r.servedMs);
  process.stdout.write(`\nLab failover site-a → site-b (${NS}; DNS ${RECORD}: ${A} → ${B})\n\n`);
  process.stdout.write(
    `${table(
      ['measurement', ...drctl.map((_, i) => `run ${i + 1} (s)`)],
      [
        ['(a) drctl: approval → DNS switched + app healthy', ...a.map(secs)],
        ['(b) manual commands, sequential: first → same point', ...b.map(secs)],
        ['    drctl RTO as reported (start → serving, incl. gate)', ...drctl.map((r) => r.rto.toFixed(2))],
        ['    RPO (backup age at restore)', ...drctl.map((r) => String(r.rpo))],
      ],
    )}\n\n`,
  );
  const stepNames = [...new Set(drctl.flatMap((r) => r.steps.map((s) => s.step)))];
  process.stdout.write(
    `drctl steps after the approval (s)\n${table(['step', ...drctl.map((_, i) => `run ${i + 1}`)], [...stepNames.map((n) => [n, ...drctl.map((r) => secs(r.steps.find((s) => s.step === n)?.ms))])])}\n\n`,
  );
  const mNames = [...new Set(manual.flatMap((r) => r.steps.map((s) => s.step)))];
  process.stdout.write(
    `manual steps (s)\n${table(['step', ...manual.map((_, i) => `run ${i + 1}`)], [...mNames.map((n) => [n, ...manual.map((r) => secs(r.steps.find((s) => s.step === n)?.ms))])])}\n\n`,
  );
  const ok = a.every((x) => x <= TARGET_S * 1000);
  process.stdout.write(
    `${ok ? 'PASS' : 'FAIL'}  (a) <= ${TARGET_S} s: ${a.map(secs).join(', ')} s (median ${secs(median(a))}); a/b = ${a.map((x, i) => (x / b[i]!).toFixed(2)).join(', ')}\n`,
  );
  const file = writeResults('failover', { runs: RUNS, drctl, manual, targetSeconds: TARGET_S });
  process.stdout.write(`\nresults: ${file}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
