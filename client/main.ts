// drctl: the on-call engineer's command line. Exit codes: 0 success, 1 a failed or compensated
// run (or an unhealthy check), 2 bad input (flags, config) — printed as one line per problem.
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from '../common/errors.ts';
import { FailedOutcome } from './output.ts';
import { registerAuditCommands } from './commands/audit.ts';
import { registerClusterCommands } from './commands/cluster.ts';
import { registerDrillCommands } from './commands/drill.ts';
import { registerConfigCommands } from './commands/config.ts';
import { registerFailoverCommands } from './commands/failover.ts';
import { registerLabCommands } from './commands/lab.ts';
import { registerNamespaceRestoreCommand } from './commands/namespace-restore.ts';
import { registerRestoreCommands } from './commands/restore.ts';
import { registerRunbookCommands } from './commands/runbook.ts';
import { registerSnapshotCommands } from './commands/snapshot.ts';
import { registerWorkerCommand } from './commands/worker.ts';

export function buildProgram(): Command {
  const program = new Command('drctl')
    .description('Durable disaster-recovery runbooks for Kubernetes, on Temporal')
    .version('0.1.0')
    .addOption(new Option('-c, --config <file>', 'drctl config file').env('DRCTL_CONFIG').default('drctl.yaml'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerLabCommands(program);
  registerConfigCommands(program);
  registerWorkerCommand(program);
  registerClusterCommands(program);
  registerSnapshotCommands(program);
  registerRestoreCommands(program);
  registerRunbookCommands(program);
  registerFailoverCommands(program);
  registerNamespaceRestoreCommand(program);
  registerDrillCommands(program);
  registerAuditCommands(program);
  // Every level (e.g. `drill schedule pause`): commander's own errors become exit 2, not process.exit.
  const override = (cmd: Command) => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help'
        ? 0
        : 2;
    }
    if (err instanceof UsageError) {
      process.stderr.write(
        `${err.message
          .split('\n')
          .map((l) => `error: ${l}`)
          .join('\n')}\n`,
      );
      return 2;
    }
    if (err instanceof FailedOutcome) {
      if (err.message) process.stderr.write(`${err.message}\n`);
      return 1;
    }
    process.stderr.write(`error: ${(err as Error).message ?? String(err)}\n`);
    if (process.env.DRCTL_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 1;
  }
}
