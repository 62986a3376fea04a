import type { Command } from 'commander';
import { UsageError } from '../../common/errors.ts';
import { FailedOutcome, printJson, table } from '../output.ts';

// The lab is loaded lazily: production commands never import it.
const lab = () => import('../../lab/lab.ts');

export function registerLabCommands(program: Command) {
  const cmd = program.command('lab').description('The embedded local lab: two sites of real servers on loopback addresses');
  cmd
    .command('up')
    .description('Install (first time), start every lab server, wait until healthy, write the lab config')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { up } = await lab();
      const r = await up({ log: (m) => process.stderr.write(`${m}\n`) });
      if (opts.json) return printJson(r);
      process.stdout.write(`lab is up in ${r.seconds.toFixed(1)} s (${r.components.length} components healthy)\n`);
      process.stdout.write(`config:       ${r.config}\n  export DRCTL_CONFIG=${r.config}\n`);
      process.stdout.write(`Temporal UI:  ${r.webUi}\n`);
    });
  cmd
    .command('down')
    .description('Stop exactly what `lab up` started (by recorded pid)')
    .option('--purge', 'also delete the lab directory (data, keys, certificates)')
    .action(async (opts: { purge?: boolean }) => {
      const { down } = await lab();
      const stopped = await down(opts);
      process.stdout.write(stopped.length ? `stopped: ${stopped.join(', ')}\n` : 'nothing was running\n');
    });
  cmd
    .command('status')
    .description('Every lab component with address, pid and health (exit 1 if any is unhealthy)')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { status } = await lab();
      const comps = await status();
      if (opts.json) printJson(comps);
      else {
        const rows = [['COMPONENT', 'ADDRESS', 'PID', 'HEALTH', 'DETAIL']];
        for (const c of comps) rows.push([c.name, c.address, c.pid ? String(c.pid) : '-', c.healthy ? 'healthy' : 'DOWN', c.detail.slice(0, 60)]);
        process.stdout.write(`${table(rows)}\n`);
      }
      if (!comps.every((c) => c.healthy)) throw new FailedOutcome('');
    });
  const fault = cmd.command('fault').description('Inject faults into the lab (for drills and tests)');
  fault
    .command('kill-sshd')
    .description("Kill a node's sshd and all its sessions")
    .requiredOption('--node <site/node>', 'e.g. site-a/cp2')
    .action(async (opts: { node: string }) => {
      const { killSshd } = await lab();
      process.stdout.write(`killed ${killSshd(opts.node).length} sshd process(es) on ${opts.node}\n`);
    });
  fault
    .command('start-sshd')
    .description("Start a node's sshd again")
    .requiredOption('--node <site/node>', 'e.g. site-a/cp2')
    .action(async (opts: { node: string }) => {
      const { startSshd } = await lab();
      await startSshd(opts.node);
      process.stdout.write(`sshd is back on ${opts.node}\n`);
    });
  fault
    .command('restart-temporal')
    .description('Stop the Temporal server and start it again on the same database')
    .option('--down <duration>', 'stay down this long', '0s')
    .action(async (opts: { down: string }) => {
      const { restartTemporal } = await lab();
      const { parseDuration } = await import('../../common/duration.ts');
      const ms = parseDuration(opts.down);
      if (ms === undefined) throw new UsageError(`--down: expected a duration like 5s (got '${opts.down}')`);
      await restartTemporal(ms);
      process.stdout.write('temporal restarted\n');
    });
  cmd
    .command('env')
    .description('Shell exports for one site (etcdctl, kubectl, S3 client): eval "$(drctl lab env --site site-a)"')
    .requiredOption('--site <name>', 'site-a or site-b')
    .action(async (opts: { site: string }) => {
      const { env } = await lab();
      const { SITES } = await import('../../lab/topology.ts');
      if (!SITES.some((s) => s.name === opts.site)) throw new UsageError(`--site: unknown site '${opts.site}' (lab sites: ${SITES.map((s) => s.name).join(', ')})`);
      process.stdout.write(`${env(opts.site)}\n`);
    });
}
