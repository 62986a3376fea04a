// `drctl audit`: the DR readiness audit (the seed's "Common Mistakes" table) against the live
// setup, read through the worker; `--fix protect-namespaces` installs namespace protection (gated);
// `audit schedule` runs it every day, its report kept in the bucket for the workers' metrics.
import type { Command } from 'commander';
import {
  AUDIT_SCHEDULE_ID,
  type AuditReport,
  type AuditRow,
  DAILY,
  PROTECTION_POLICY,
  type ProtectResult,
} from '../../common/audit.ts';
import { UsageError } from '../../common/errors.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { protectNamespaces, readinessAudit } from '../../workflows/audit.ts';
import { optional, positiveDuration } from '../flags.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { afterStart, startRun } from '../runbook-kit.ts';
import { checkCron, printSchedule, upsertSchedule } from '../schedules.ts';
import { requestInput } from '../signing.ts';
import { whoami, withTemporal } from '../temporal.ts';

const FIXES = ['protect-namespaces'] as const;

interface Opts {
  json?: boolean;
  fix?: string;
  site?: string;
  key?: string;
  as?: string;
  reason?: string;
  approvalTimeout?: string;
  wait?: boolean;
}

const mark = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' } as const;

/** The table a person reads: failures first, then warnings; each with how to fix it. */
export function auditText(r: AuditReport): string {
  const order = { fail: 0, warn: 1, pass: 2 };
  const rows = [...r.rows].sort((a, b) => order[a.result] - order[b.result]);
  const fixes = rows.filter((x): x is AuditRow & { fix: string } => x.result !== 'pass' && !!x.fix);
  return [
    `DR readiness audit ${r.at}: ${r.counts.fail} fail, ${r.counts.warn} warn, ${r.counts.pass} pass`,
    '',
    table([['RESULT', 'CHECK', 'TARGET', 'SEEN'], ...rows.map((x) => [mark[x.result], x.check, x.target, x.seen])]),
    ...(fixes.length ? ['', 'to fix:', ...fixes.map((x) => `  ${x.check} ${x.target}: ${x.fix}`)] : []),
    '',
  ].join('\n');
}

function checkFix(config: DrctlConfig, opts: Opts): { site: string } {
  if (!FIXES.includes(opts.fix as (typeof FIXES)[number]))
    throw new UsageError(`--fix: expected one of ${FIXES.join(', ')} (got '${opts.fix}')`);
  const primary = config.sites.find((s) => s.role === 'primary')?.name;
  const site = opts.site ?? primary;
  if (!site || !config.sites.some((s) => s.name === site))
    throw new UsageError(`--site: unknown site '${opts.site}' (sites: ${config.sites.map((s) => s.name).join(', ')})`);
  return { site };
}

export function registerAuditCommands(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;
  const audit = program
    .command('audit')
    .description(
      'DR readiness audit: backups in the failure domain they protect, DNS TTLs, drill recency, PV data in backups, ' +
        'two backup methods, backup interval vs RPO, retention, namespace protection, who may delete namespaces. ' +
        'Exit 1 when a row fails. --fix protect-namespaces installs the protection (waits for go/no-go)',
    )
    .option('--json', 'print JSON (the report as kept in the bucket)')
    .option('--fix <what>', `apply a fix: ${FIXES.join(', ')} (a gated runbook)`)
    .option('--site <site>', 'with --fix: the site whose namespaces to protect (default: the primary)')
    .option('--key <file>', 'with --fix: your SSH key, signs the request')
    .option('--as <name>', 'with --fix: who is asking, when the request is not signed')
    .option('--reason <text>', 'with --fix: why (shown at the gate)')
    .option('--approval-timeout <duration>', 'with --fix: abort, changing nothing, if no decision arrives in time')
    .option('--wait', 'with --fix: follow the run to its end')
    .action(async (opts: Opts) => {
      if (opts.fix === undefined) {
        for (const f of ['site', 'key', 'as', 'reason', 'approvalTimeout', 'wait'] as const)
          if (opts[f] !== undefined)
            throw new UsageError(`--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: only with --fix`);
        await withTemporal(cfgPath(), async ({ client, config }) => {
          const report = await client.workflow.execute(readinessAudit, {
            taskQueue: config.temporal.taskQueue,
            workflowId: `audit-${Date.now()}`,
            args: [{ requestedBy: whoami() }],
            workflowExecutionTimeout: '5 minutes',
          });
          if (opts.json) printJson(report);
          else process.stdout.write(auditText(report));
          if (report.counts.fail) throw new FailedOutcome('');
        });
        return;
      }
      const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
      let checked: ReturnType<typeof checkFix>;
      await withTemporal(
        cfgPath(),
        async (s) => {
          const workflowId = `protect-namespaces-${checked.site}`;
          const started = await startRun(
            s,
            protectNamespaces,
            {
              taskQueue: s.config.temporal.taskQueue,
              workflowId,
              workflowIdConflictPolicy: 'FAIL',
              args: [
                await requestInput(s.config, {
                  runbook: 'protect-namespaces',
                  workflowId,
                  key: opts.key,
                  as: opts.as,
                  input: { ...checked, reason: opts.reason, approvalTimeoutMs },
                }),
              ],
            },
            (id) => `error: namespace protection at ${checked.site} is already running (workflow ${id})`,
          );
          await afterStart<ProtectResult>(s, started, {
            ...opts,
            gate: true,
            human: (r) =>
              `${PROTECTION_POLICY} at ${r.site}: ${r.created.policy ? 'created' : 'was there'}; labelled ${r.labelled.join(', ') || '(none)'}\n` +
              Object.entries(r.verified)
                .map(([ns, v]) => `  ${ns}: ${v}`)
                .join('\n') +
              '\n',
          });
        },
        (config) => void (checked = checkFix(config, opts)),
      );
    });

  audit
    .command('schedule')
    .description('Run the audit every day (a Temporal Schedule); each report is kept in the bucket')
    .option('--cron <expr>', `cron expression (UTC; default '${DAILY}')`)
    .option('--json', 'print the schedule as JSON')
    .action(async (opts: { cron?: string; json?: boolean }) => {
      const cron = checkCron(opts.cron ?? DAILY);
      await withTemporal(cfgPath(), async ({ client, config }) => {
        const { result, description } = await upsertSchedule(client, AUDIT_SCHEDULE_ID, {
          spec: { cronExpressions: [cron] },
          cron,
          catchupWindow: '1 hour',
          note: `drctl: DR readiness audit, cron '${cron}'`,
          action: {
            type: 'startWorkflow',
            workflowType: readinessAudit,
            workflowId: AUDIT_SCHEDULE_ID,
            taskQueue: config.temporal.taskQueue,
            args: [{ requestedBy: `schedule:${AUDIT_SCHEDULE_ID}` }],
            workflowExecutionTimeout: '10 minutes',
          },
        });
        printSchedule(result, description, opts.json);
      });
    });
}
