import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../../common/errors.ts';
import type { EtcdLatencyReport } from '../../common/etcd-tuning.ts';
import { findCluster } from '../../config/load.ts';
import { etcdLatency } from '../../workflows/etcd-latency.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { startRun } from '../runbook-kit.ts';
import { withTemporal } from '../temporal.ts';

/** `drctl etcd latency`: the stretched-cluster advisor (workflows/etcd-latency.ts). */
export function registerEtcdLatencyCommand(etcd: Command, program: Command) {
  etcd
    .command('latency')
    .description(
      "Measure the round trip between a cluster's etcd members (etcd's histogram and an active probe), read each member's heartbeat and election, and judge them against the latency table and etcd's tuning rules (exit 1 when not safe)",
    )
    .requiredOption('--cluster <name>', 'cluster to measure')
    .option('--json', 'print the report as JSON')
    .option('--watch [seconds]', 'measure again every N seconds (default 30) until interrupted')
    .action(async (opts: { cluster: string; json?: boolean; watch?: string | boolean }) => {
      const every = opts.watch === undefined ? undefined : opts.watch === true ? 30 : Number(opts.watch);
      if (every !== undefined && !(Number.isInteger(every) && every >= 5))
        throw new UsageError(`--watch: expected whole seconds >= 5, got '${String(opts.watch)}'`);
      let cluster = '';
      await withTemporal(
        program.opts<{ config: string }>().config,
        async (s) => {
          for (;;) {
            const started = await startRun(s, etcdLatency, {
              taskQueue: s.config.temporal.taskQueue,
              workflowId: `etcd-latency-${cluster}-${Date.now()}`,
              args: [{ cluster }],
              workflowExecutionTimeout: '5 minutes',
            });
            const report = await s.client.workflow.getHandle<typeof etcdLatency>(started.workflowId).result();
            if (opts.json) printJson({ ...started, result: report });
            else process.stdout.write(`${renderLatency(report)}\n`);
            if (every === undefined) {
              if (!report.verdict.safe) throw new FailedOutcome(`${cluster}: ${report.verdict.row}, not safe`);
              return;
            }
            await sleep(every * 1000);
            if (!opts.json) process.stdout.write('\n');
          }
        },
        (config) => {
          cluster = findCluster(config, opts.cluster).cluster.name;
        },
      );
    });
}

const ms = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(2)} ms`);

export function renderLatency(r: EtcdLatencyReport): string {
  const v = r.verdict;
  const pairs = [['FROM', 'TO', 'PROBE', 'ETCD HISTOGRAM', 'CROSSES SITES']];
  for (const p of r.pairs) pairs.push([p.from, p.to, ms(p.probeMs), ms(p.histogramMs), p.crossesSites ? 'yes' : '']);
  const members = [['MEMBER', 'SITE', 'HEARTBEAT', 'ELECTION', 'LEADER CHANGES SEEN']];
  for (const m of r.members)
    members.push([
      m.node,
      r.sites[m.node] ?? '-',
      m.tuning ? `${m.tuning.heartbeatMs} ms` : '-',
      m.tuning ? `${m.tuning.electionMs} ms` : '-',
      m.leaderChanges === undefined ? '-' : String(m.leaderChanges),
    ]);
  const rec = v.recommended
    ? `recommended: --heartbeat-interval=${v.recommended.heartbeatMs} --election-timeout=${v.recommended.electionMs}`
    : 'recommended: none (do not stretch etcd over this link)';
  return [
    `${r.cluster}: ${v.safe ? 'SAFE' : 'NOT SAFE'} — worst ${r.stretched ? 'inter-site ' : ''}round trip ${ms(v.worstRttMs)}: ${v.row} (${v.says})`,
    `leader: ${r.leader ? `${r.leader.node} (${r.leader.site})` : 'unknown'}`,
    rec,
    table(pairs),
    table(members),
    ...v.problems.map((p) => `  ! ${p.rule}: ${p.detail}`),
    ...r.problems.map((p) => `  ! ${p}`),
  ].join('\n');
}
