// drctl failover | failback | watch: site failover runbooks and the health watch that starts them.
import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../../common/duration.ts';
import { UsageError } from '../../common/errors.ts';
import type { FailoverStatus } from '../../common/failover.ts';
import { loadConfig } from '../../config/load.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { healthWatch, watchStatusQuery } from '../../workflows/health-watch.ts';
import { failoverStatusQuery, siteFailover } from '../../workflows/site-failover.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { connectClient } from '../temporal.ts';

const whoami = () => process.env.DRCTL_USER ?? process.env.USER ?? userInfo().username;
const TERMINAL = new Set(['completed', 'aborted', 'compensated', 'failed']);

export const failoverWorkflowId = (from: string, to: string) => `failover-${from}-to-${to}`;
export const watchWorkflowId = (record: string) => `health-watch-${record}`;

interface FailoverOpts {
  from: string;
  to: string;
  namespaces?: string;
  as: string;
  reason?: string;
  approvalTimeout?: string;
  wait?: boolean;
  json?: boolean;
}

function checkSites(config: DrctlConfig, opts: FailoverOpts) {
  const names = config.sites.map((s) => s.name);
  for (const [flag, v] of [
    ['--from', opts.from],
    ['--to', opts.to],
  ] as const) {
    if (!names.includes(v)) throw new UsageError(`${flag}: unknown site '${v}' (sites: ${names.join(', ')})`);
  }
  if (opts.from === opts.to) throw new UsageError(`--from and --to name the same site '${opts.from}'`);
  if (!config.failover)
    throw new UsageError(`${'failover'}: the config has no failover section (namespaces, tier, rpoPolicy)`);
  if (!config.dns) throw new UsageError('dns: the config has no dns section (PowerDNS API, zone, records)');
  if (!opts.as) throw new UsageError('--as: who is asking? (set --as or $DRCTL_USER)');
  const namespaces = opts.namespaces
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const ns of namespaces ?? []) {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(ns))
      throw new UsageError(`--namespaces: '${ns}' is not a namespace name`);
  }
  const approvalTimeoutMs = opts.approvalTimeout === undefined ? undefined : parseDuration(opts.approvalTimeout);
  if (opts.approvalTimeout !== undefined && approvalTimeoutMs === undefined)
    throw new UsageError(`--approval-timeout: expected a duration like 30m, 1h (got '${opts.approvalTimeout}')`);
  return { namespaces, approvalTimeoutMs };
}

export function registerFailoverCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;

  const start = (kind: 'failover' | 'failback') => async (opts: FailoverOpts) => {
    const { config } = loadConfig(cfgPath());
    const { namespaces, approvalTimeoutMs } = checkSites(config, opts);
    const client = await connectClient(config);
    try {
      const workflowId = failoverWorkflowId(opts.from, opts.to);
      try {
        await client.workflow.start(siteFailover, {
          taskQueue: config.temporal.taskQueue,
          workflowId,
          workflowIdConflictPolicy: 'FAIL',
          args: [
            {
              from: opts.from,
              to: opts.to,
              namespaces,
              requestedBy: opts.as,
              reason: opts.reason,
              approvalTimeoutMs,
              backupFirst: kind === 'failback',
            },
          ],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new FailedOutcome(
            `error: a ${kind} ${opts.from} → ${opts.to} is already running (workflow ${workflowId}); see \`drctl status ${workflowId}\``,
          );
        }
        throw err;
      }
      if (!opts.json) {
        process.stdout.write(`started ${kind} ${opts.from} → ${opts.to}: workflow ${workflowId}\n`);
        process.stdout.write(
          `  it waits for go/no-go: drctl approve ${workflowId} --as NAME --reason TEXT (or Signal 'approve' in the Web UI${config.temporal.webUi ? `: ${config.temporal.webUi}` : ''})\n`,
        );
      }
      if (opts.wait) await followFailover(client, workflowId, !!opts.json);
      else if (opts.json) printJson({ workflowId });
    } finally {
      await client.connection.close();
    }
  };

  const addCommon = (cmd: Command) =>
    cmd
      .requiredOption('--from <site>', 'site giving up the traffic')
      .requiredOption('--to <site>', 'site taking it')
      .option('--namespaces <list>', 'comma-separated namespaces (default: config failover.namespaces)')
      .option('--as <name>', 'who is asking (two-person rule: you cannot approve your own run)', whoami())
      .option('--reason <text>', 'why (shown at the gate)')
      .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
      .option('--wait', 'follow the run to its end')
      .option('--json', 'print JSON');

  addCommon(
    program
      .command('failover')
      .description(
        'Site failover: Velero restore at --to, post-restore checks, DNS switch; fences --from; waits for go/no-go',
      ),
  ).action(start('failover'));
  addCommon(
    program.command('failback').description('Failback: back up --from first, then the failover steps towards --to'),
  ).action(start('failback'));

  const watch = program
    .command('watch')
    .description("Health watch: probes every site's app and starts a failover when the serving site goes down");
  watch
    .command('start')
    .description('Start the watch for a DNS record (one per record)')
    .requiredOption('--record <name>', "app record from the config's dns.records")
    .option('--json', 'print JSON')
    .action(async (opts: { record: string; json?: boolean }) => {
      const { config } = loadConfig(cfgPath());
      if (!config.dns?.records.some((r) => r.name === opts.record))
        throw new UsageError(
          `--record: '${opts.record}' is not in dns.records (${config.dns?.records.map((r) => r.name).join(', ') ?? 'no dns section'})`,
        );
      const client = await connectClient(config);
      try {
        const workflowId = watchWorkflowId(opts.record);
        try {
          await client.workflow.start(healthWatch, {
            taskQueue: config.temporal.taskQueue,
            workflowId,
            workflowIdConflictPolicy: 'FAIL',
            args: [{ record: opts.record }],
          });
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
        if (opts.json) printJson({ workflowId });
        else process.stdout.write(`health watch for ${opts.record}: workflow ${workflowId}\n`);
      } finally {
        await client.connection.close();
      }
    });
  watch
    .command('status')
    .description("Each site's health, transitions and failovers started")
    .requiredOption('--record <name>', 'app record')
    .option('--json', 'print JSON')
    .action(async (opts: { record: string; json?: boolean }) => {
      const { config } = loadConfig(cfgPath());
      const client = await connectClient(config);
      try {
        const st = await client.workflow
          .getHandle(watchWorkflowId(opts.record))
          .query(watchStatusQuery)
          .catch((err: unknown) => {
            if (err instanceof WorkflowNotFoundError)
              throw new FailedOutcome(`no health watch for ${opts.record}: drctl watch start --record ${opts.record}`);
            throw err;
          });
        if (opts.json) return printJson(st);
        const rows = [['SITE', 'STATE', 'SINCE', 'FAIL/OK STREAK', 'LAST']];
        for (const [site, h] of Object.entries(st.sites))
          rows.push([
            `${site}${st.serving === site ? ' (serving)' : ''}`,
            h.up ? 'up' : 'DOWN',
            h.since ?? '-',
            `${h.failures}/${h.successes}`,
            h.lastDetail ?? '',
          ]);
        process.stdout.write(`${table(rows)}\n`);
        for (const e of st.events) process.stdout.write(`  ${e.at} ${e.site} ${e.state}: ${e.detail}\n`);
        for (const f of st.failovers)
          process.stdout.write(`  failover ${f.from} → ${f.to} started ${f.at}: ${f.workflowId}\n`);
      } finally {
        await client.connection.close();
      }
    });
  watch
    .command('stop')
    .description('Stop the watch')
    .requiredOption('--record <name>', 'app record')
    .action(async (opts: { record: string }) => {
      const { config } = loadConfig(cfgPath());
      const client = await connectClient(config);
      try {
        await client.workflow
          .getHandle(watchWorkflowId(opts.record))
          .terminate('drctl watch stop')
          .catch((err: unknown) => {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          });
        process.stdout.write(`stopped the health watch for ${opts.record}\n`);
      } finally {
        await client.connection.close();
      }
    });
}

export async function followFailover(client: Client, workflowId: string, json: boolean) {
  const handle = client.workflow.getHandle(workflowId);
  let last = '';
  for (;;) {
    const st = await handle.query(failoverStatusQuery);
    const text = renderFailover(workflowId, st);
    if (!json && text !== last) process.stdout.write(`${text}\n\n`);
    last = text;
    if (TERMINAL.has(st.phase)) {
      if (json) printJson(st);
      if (st.phase !== 'completed')
        throw new FailedOutcome(`${workflowId}: ${st.phase}${st.error ? `: ${st.error}` : ''}`);
      return;
    }
    await sleep(1000);
  }
}

export function renderFailover(workflowId: string, st: FailoverStatus): string {
  const lines = [`${workflowId}: ${st.phase.toUpperCase()} (${st.from} → ${st.to}, requested by ${st.requestedBy})`];
  const e = st.evidence;
  if (e) {
    lines.push(
      `backup ${e.backup?.name ?? '-'}: ${e.backup ? formatDuration(e.backup.ageSeconds * 1000) : '-'} old (RPO target ${formatDuration(e.rpoTargetSeconds * 1000)}); namespaces ${e.namespaces.join(', ')}`,
    );
    for (const r of e.records)
      lines.push(`DNS ${r.name}: ${r.from.join(',') || '(none)'} → ${r.to.join(',')} (ttl ${r.ttl} s)`);
    for (const w of e.warnings) lines.push(`warning: ${w}`);
  }
  if (st.phase === 'waiting-approval' && e) {
    lines.push(
      `waiting for go/no-go until ${e.approvalDeadline}: drctl approve|reject ${workflowId} --as NAME [--reason TEXT]`,
    );
    lines.push(
      `  or Temporal Web UI → this workflow → Signal 'approve' / 'reject' with {"by": "NAME", "reason": "..."}; approvers: ${e.approvers.join(', ')}`,
    );
  }
  const rows = [['STEP', 'STATE', 'TOOK', 'DETAIL']];
  for (const s of st.steps) {
    const took =
      s.startedAt && s.endedAt
        ? formatDuration(Date.parse(s.endedAt) - Date.parse(s.startedAt))
        : s.startedAt
          ? '…'
          : '';
    rows.push([
      s.step,
      s.state,
      took,
      (
        s.detail ??
        Object.entries(s.nodes)
          .map(([n, v]) => `${n}: ${v}`)
          .join('; ')
      )
        .split('\n')[0]!
        .slice(0, 110),
    ]);
  }
  lines.push(table(rows));
  for (const c of st.checks ?? []) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.check}: ${c.detail}`);
  for (const d of st.decisions)
    lines.push(
      `  ${d.approve ? 'approve' : 'reject'} by ${d.by} at ${d.at}: ${d.accepted ? 'ACCEPTED' : `refused (${d.why})`}${d.reason ? ` — ${d.reason}` : ''}`,
    );
  if (st.error) lines.push(`error: ${st.error}`);
  return lines.join('\n');
}
