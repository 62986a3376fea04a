import type { Command } from 'commander';
import { loadConfig } from '../../config/load.ts';
import { printJson } from '../output.ts';

export function registerConfigCommands(program: Command) {
  const config = program.command('config').description('Inspect and validate drctl.yaml');
  config
    .command('check')
    .description('Validate the config file: one line per problem naming the field, exit 2 if any')
    .option('--json', 'print the validated config (with defaults) as JSON')
    .action((opts: { json?: boolean }) => {
      const { path, config: cfg } = loadConfig(program.opts<{ config: string }>().config);
      if (opts.json) printJson({ path, valid: true, config: cfg });
      else {
        const nodes = cfg.sites.reduce((n, s) => n + s.cluster.nodes.length, 0);
        process.stdout.write(
          `${path}: ok (${cfg.sites.length} sites, ${nodes} control-plane nodes, ${cfg.approvals.approvers.length} approvers)\n`,
        );
      }
    });
}
