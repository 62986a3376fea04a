import type { Command } from 'commander';
import { loadConfig } from '../../config/load.ts';
import { runWorker } from '../../worker/worker.ts';

export function registerWorkerCommand(program: Command) {
  program
    .command('worker')
    .description("Run a drctl worker (activities use this machine's SSH keys and object-store credentials)")
    .action(async () => {
      const { path, config } = loadConfig(program.opts<{ config: string }>().config);
      process.stderr.write(`drctl worker: config ${path}, task queue ${config.temporal.taskQueue}\n`);
      await runWorker(config);
    });
}
