import type { Command } from 'commander';
import { UsageError } from '../../common/errors.ts';
import { loadConfig } from '../../config/load.ts';
import { listenAddress } from '../../config/schema.ts';

export function registerWorkerCommand(program: Command) {
  program
    .command('worker')
    .description("Run a drctl worker (activities use this machine's SSH keys and object-store credentials)")
    .option(
      '--site <site>',
      'the site this worker runs at (its identity in every task it runs; run one per site on the same task queue)',
    )
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics on this address (overrides metrics.listen in the config)',
    )
    .action(async (opts: { site?: string; metricsListen?: string }) => {
      const { path, config } = loadConfig(program.opts<{ config: string }>().config);
      const sites = config.sites.map((s) => s.name);
      if (opts.site !== undefined && !sites.includes(opts.site))
        throw new UsageError(`--site: unknown site '${opts.site}' (sites: ${sites.join(', ')})`);
      if (opts.metricsListen !== undefined && !listenAddress.safeParse(opts.metricsListen).success)
        throw new UsageError(`--metrics-listen: expected host:port, e.g. 127.0.0.1:9464 (got '${opts.metricsListen}')`);
      // Loaded here, not at the top: every other command starts without the worker's dependencies
      // (the Temporal worker, the Kubernetes and S3 clients, ssh2), seconds on a busy machine.
      const { runWorker, workerIdentity } = await import('../../worker/worker.ts');
      process.stderr.write(
        `drctl worker: config ${path}, task queue ${config.temporal.taskQueue}, identity ${workerIdentity(opts.site)}\n`,
      );
      await runWorker(config, { site: opts.site, metricsListen: opts.metricsListen });
    });
}
