// `drctl restore namespace`: bring deleted namespaces back in place from the newest Velero backup
// taken before they were lost (waits for go/no-go).
import type { Command } from 'commander';
import { parseDuration } from '../../common/duration.ts';
import { UsageError } from '../../common/errors.ts';
import { type NamespaceRestoreReport, systemNamespace } from '../../common/namespace-restore.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { namespaceRestore } from '../../workflows/namespace-restore.ts';
import { optional, positiveDuration } from '../flags.ts';
import { afterStart, startRun } from '../runbook-kit.ts';
import { requestInput } from '../signing.ts';
import { withTemporal } from '../temporal.ts';

export const namespaceRestoreWorkflowId = (site: string) => `namespace-restore-${site}`;

interface Opts {
  site: string;
  namespaces: string;
  before?: string;
  as?: string;
  key?: string;
  reason?: string;
  approvalTimeout?: string;
  wait?: boolean;
  json?: boolean;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `--before`: an ISO 8601 time with its zone, or a duration meaning that long ago; never in the future. */
export function parseBefore(value: string, now = Date.now()): string {
  const ago = parseDuration(value);
  const at =
    ago !== undefined
      ? now - ago
      : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)
        ? Date.parse(value)
        : NaN;
  if (Number.isNaN(at))
    throw new UsageError(
      `--before: expected a time with its zone (2026-12-03T10:42:00Z) or how long ago (45m) (got '${value}')`,
    );
  if (at > now) throw new UsageError(`--before: ${new Date(at).toISOString()} is in the future`);
  return new Date(at).toISOString();
}

function check(config: DrctlConfig, opts: Opts) {
  const site = config.sites.find((s) => s.name === opts.site);
  if (!site)
    throw new UsageError(`--site: unknown site '${opts.site}' (sites: ${config.sites.map((s) => s.name).join(', ')})`);
  const namespaces = opts.namespaces
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!namespaces.length)
    throw new UsageError(`--namespaces: expected at least one namespace (got '${opts.namespaces}')`);
  for (const ns of namespaces) {
    if (!DNS_LABEL.test(ns)) throw new UsageError(`--namespaces: '${ns}' is not a namespace name`);
    if (systemNamespace(ns, site.velero.namespace))
      throw new UsageError(`--namespaces: '${ns}' is one of the cluster's own namespaces: never restored in place`);
  }
  if (new Set(namespaces).size !== namespaces.length)
    throw new UsageError(`--namespaces: a namespace is named twice (${opts.namespaces})`);
  return { site: site.name, namespaces };
}

const human = (r: NamespaceRestoreReport) =>
  [
    `restored ${r.namespaces.join(', ')} at ${r.site} from ${r.backup.name} (restore ${r.restoreName})`,
    `changes lost (RPO): ${Math.round(r.rpoSeconds / 60)} min ${r.rpoSeconds % 60} s — from the backup's start ${r.backup.startedAt} to ${r.before}` +
      `${r.rpoTargetSeconds !== undefined ? ` (target ${r.rpoTargetSeconds} s: ${r.rpoMet ? 'met' : 'MISSED'})` : ''}`,
    `app verified ${r.rtoSeconds.toFixed(1)} s after the start (${r.approvalWaitSeconds.toFixed(1)} s of it waiting for go/no-go)`,
    ...(r.volumesRebound.length ? [`volumes bound again with their data: ${r.volumesRebound.join(', ')}`] : []),
    ...r.warnings.map((w) => `warning: ${w}`),
    '',
  ].join('\n');

export function registerNamespaceRestoreCommand(program: Command) {
  const cfgPath = () => program.opts<{ config: string }>().config;
  program
    .command('restore')
    .description('In-place restores at a site')
    .command('namespace')
    .description(
      'Restore deleted namespaces in place from the newest Velero backup taken before --before (waits for go/no-go)',
    )
    .requiredOption('--site <site>', 'site whose cluster lost the namespaces')
    .requiredOption('--namespaces <list>', 'comma-separated namespaces to bring back')
    .option('--before <time>', 'when they were lost: ISO 8601 time with zone, or how long ago (45m); default: now')
    .option('--key <file>', 'your SSH key: signs the request (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
    .option('--as <name>', 'who is asking, when the request is not signed (default: the login name)')
    .option('--reason <text>', 'why (shown at the gate)')
    .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
    .option('--wait', 'follow the run to its end')
    .option('--json', 'print JSON: { workflowId, runId, runbook, url } (with --wait also status and result)')
    .action(async (opts: Opts) => {
      const before = optional(opts.before, (v) => parseBefore(v));
      const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
      let checked: ReturnType<typeof check>;
      await withTemporal(
        cfgPath(),
        async (s) => {
          const workflowId = namespaceRestoreWorkflowId(checked.site);
          const started = await startRun(
            s,
            namespaceRestore,
            {
              taskQueue: s.config.temporal.taskQueue,
              workflowId,
              workflowIdConflictPolicy: 'FAIL',
              args: [
                await requestInput(s.config, {
                  runbook: 'namespace-restore',
                  workflowId,
                  key: opts.key,
                  as: opts.as,
                  input: { ...checked, before, reason: opts.reason, approvalTimeoutMs },
                }),
              ],
            },
            (id) =>
              `error: a namespace restore at ${checked.site} is already running (workflow ${id}); see \`drctl status ${id}\``,
          );
          await afterStart<NamespaceRestoreReport>(s, started, { ...opts, gate: true, human });
        },
        (config) => void (checked = check(config, opts)),
      );
    });
}
