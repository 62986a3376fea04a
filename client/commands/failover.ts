// drctl failover | failback | watch: site failover runbooks and the health watch that starts them.
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { UsageError } from '../../common/errors.ts';
import type { FailoverReport } from '../../common/failover.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { healthWatch } from '../../workflows/health-watch.ts';
import { siteFailover } from '../../workflows/site-failover.ts';
import { optional, positiveDuration } from '../flags.ts';
import { FailedOutcome, printJson } from '../output.ts';
import { renderStatus } from '../render.ts';
import { afterStart, readStatus, startRun, statusJson } from '../runbook-kit.ts';
import { requestInput } from '../signing.ts';
import { webUiUrl, withTemporal } from '../temporal.ts';

export const failoverWorkflowId = (from: string, to: string) => `failover-${from}-to-${to}`;
export const watchWorkflowId = (record: string) => `health-watch-${record}`;

interface FailoverOpts {
  from: string;
  to: string;
  namespaces?: string;
  as?: string;
  key?: string;
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
  const namespaces = opts.namespaces
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // A subset of the app's namespaces, never another (kube-system restored over the DR site's own).
  const configured = config.failover.namespaces;
  if (namespaces?.length === 0)
    throw new UsageError(`--namespaces: expected at least one of ${configured.join(', ')} (got '${opts.namespaces}')`);
  for (const ns of namespaces ?? []) {
    if (!configured.includes(ns))
      throw new UsageError(`--namespaces: '${ns}' is not in failover.namespaces (${configured.join(', ')})`);
  }
  const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
  return { namespaces, approvalTimeoutMs };
}

export function registerFailoverCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;

  const start = (kind: 'failover' | 'failback') => async (opts: FailoverOpts) => {
    let checked: ReturnType<typeof checkSites>;
    await withTemporal(
      cfgPath(),
      async (s) => {
        const started = await startRun(
          s,
          siteFailover,
          {
            taskQueue: s.config.temporal.taskQueue,
            workflowId: failoverWorkflowId(opts.from, opts.to),
            workflowIdConflictPolicy: 'FAIL',
            args: [
              await requestInput(s.config, {
                runbook: 'site-failover',
                workflowId: failoverWorkflowId(opts.from, opts.to),
                key: opts.key,
                as: opts.as,
                input: {
                  from: opts.from,
                  to: opts.to,
                  namespaces: checked.namespaces,
                  reason: opts.reason,
                  approvalTimeoutMs: checked.approvalTimeoutMs,
                  backupFirst: kind === 'failback',
                },
              }),
            ],
          },
          (id) =>
            `error: a ${kind} ${opts.from} → ${opts.to} is already running (workflow ${id}); see \`drctl status ${id}\``,
        );
        await afterStart<FailoverReport>(s, started, { ...opts, gate: true });
      },
      (config) => void (checked = checkSites(config, opts)),
    );
  };

  const addCommon = (cmd: Command) =>
    cmd
      .requiredOption('--from <site>', 'site giving up the traffic')
      .requiredOption('--to <site>', 'site taking it')
      .option(
        '--namespaces <list>',
        'comma-separated namespaces, some of config failover.namespaces (default: all of them)',
      )
      .option('--key <file>', 'your SSH key: signs the request (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
      .option('--as <name>', 'who is asking, when the request is not signed (default: the login name)')
      .option('--reason <text>', 'why (shown at the gate)')
      .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
      .option('--wait', 'follow the run to its end')
      .option('--json', 'print JSON: { workflowId, runId, runbook, url } (with --wait also status and result)');

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
  const checkRecord = (record: string) => (config: DrctlConfig) => {
    if (!config.dns?.records.some((r) => r.name === record))
      throw new UsageError(
        `--record: '${record}' is not in dns.records (${config.dns?.records.map((r) => r.name).join(', ') ?? 'no dns section'})`,
      );
  };
  watch
    .command('start')
    .description('Start the watch for a DNS record (one per record; a watch already running is left as it is)')
    .requiredOption('--record <name>', "app record from the config's dns.records")
    .option('--json', 'print JSON: { workflowId, runId, runbook, url }')
    .action(async (opts: { record: string; json?: boolean }) => {
      await withTemporal(
        cfgPath(),
        async (s) => {
          const workflowId = watchWorkflowId(opts.record);
          let started;
          try {
            started = await startRun(s, healthWatch, {
              taskQueue: s.config.temporal.taskQueue,
              workflowId,
              workflowIdConflictPolicy: 'FAIL',
              args: [{ record: opts.record }],
            });
          } catch (err) {
            if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
            const desc = await s.client.workflow.getHandle(workflowId).describe();
            started = {
              workflowId,
              runId: desc.runId,
              runbook: 'health-watch' as const,
              url: webUiUrl(s.config, s.client.options.namespace, workflowId),
            };
          }
          if (opts.json) printJson(started);
          else process.stdout.write(`health watch for ${opts.record}: workflow ${workflowId}\n`);
        },
        checkRecord(opts.record),
      );
    });
  watch
    .command('status')
    .description("Each site's health, transitions and failovers started (drctl status of the watch's run)")
    .requiredOption('--record <name>', 'app record')
    .option('--json', 'print JSON')
    .action(async (opts: { record: string; json?: boolean }) => {
      await withTemporal(
        cfgPath(),
        async ({ client }) => {
          const workflowId = watchWorkflowId(opts.record);
          const exists = await client.workflow
            .getHandle(workflowId)
            .describe()
            .then(
              () => true,
              (err: unknown) => {
                if (err instanceof WorkflowNotFoundError) return false;
                throw err;
              },
            );
          if (!exists)
            throw new FailedOutcome(`no health watch for ${opts.record}: drctl watch start --record ${opts.record}`);
          const shown = await readStatus(client, workflowId);
          if (opts.json) return printJson(statusJson(shown));
          process.stdout.write(`${renderStatus(workflowId, shown.type, shown)}\n`);
        },
        checkRecord(opts.record),
      );
    });
  watch
    .command('stop')
    .description('Stop the watch')
    .requiredOption('--record <name>', 'app record')
    .action(async (opts: { record: string }) => {
      await withTemporal(cfgPath(), async ({ client }) => {
        await client.workflow
          .getHandle(watchWorkflowId(opts.record))
          .terminate('drctl watch stop')
          .catch((err: unknown) => {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          });
        process.stdout.write(`stopped the health watch for ${opts.record}\n`);
      });
    });
}
