import type { Command } from 'commander';
import { UsageError } from '../../common/errors.ts';
import { FailedOutcome, printJson, table } from '../output.ts';

// The lab is loaded lazily: production commands never import it.
const lab = () => import('../../lab/lab.ts');

export function registerLabCommands(program: Command) {
  const cmd = program
    .command('lab')
    .description('The embedded local lab: two sites of real servers on loopback addresses');
  cmd
    .command('up')
    .description(
      'Install (first time), start every lab server, create what the sites need (idempotent), wait until healthy, write the lab config',
    )
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
        for (const c of comps)
          rows.push([
            c.name,
            c.address,
            c.pid ? String(c.pid) : '-',
            c.healthy ? 'healthy' : 'DOWN',
            c.detail.slice(0, 60),
          ]);
        process.stdout.write(`${table(rows)}\n`);
      }
      if (!comps.every((c) => c.healthy)) throw new FailedOutcome('');
    });
  const compose = cmd
    .command('compose')
    .description(
      "Run the repository's docker-compose.yml for real with nerdctl compose, on a containerd of its own (published on 127.0.30.1)",
    );
  compose
    .command('up')
    .description('Build every image it names here (the worker from the Dockerfile, by BuildKit) and start the project')
    .action(async () => {
      const { composeUp, COMPOSE } = await import('../../lab/compose.ts');
      const r = await composeUp();
      process.stdout.write(
        `compose project up in ${(r.tookMs / 1000).toFixed(1)} s: Temporal ${COMPOSE.ip}:7233, Web UI http://${COMPOSE.ip}:8233, MinIO http://${COMPOSE.ip}:9000\n` +
          `  TEMPORAL_ADDRESS=${COMPOSE.ip}:7233 drctl cluster check   # through the compose worker\n`,
      );
    });
  compose
    .command('down')
    .description('compose down -v, then stop its BuildKit and containerd')
    .action(async () => {
      const { composeDown } = await import('../../lab/compose.ts');
      const stopped = await composeDown();
      process.stdout.write(stopped.length ? `stopped: ${stopped.join(', ')}\n` : 'nothing was running\n');
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
  const site = cmd.command('site').description('Lose a site on purpose, and bring it back (failover drills and tests)');
  const siteName = async (name: string) => {
    const { SITES } = await import('../../lab/topology.ts');
    if (!SITES.some((s) => s.name === name))
      throw new UsageError(`unknown site '${name}' (lab sites: ${SITES.map((s) => s.name).join(', ')})`);
    return name;
  };
  const printChange = (
    r: { site: string; action: string; hard: boolean; changed: string[]; appEndpoint: string; apiserver: string },
    json?: boolean,
  ) => {
    if (json) return printJson(r);
    process.stdout.write(
      `${r.site} is ${r.action}${r.action === 'down' && r.hard ? ' (hard: API server and cp1 controllers parked)' : ''}: ${r.changed.length ? r.changed.join(', ') : 'nothing to change'}\n`,
    );
  };
  site
    .command('down')
    .description(
      "Stop a site's app endpoint (its app is lost; the app's DNS name still points there until a failover). Idempotent",
    )
    .argument('<site>', 'site-a or site-b')
    .option(
      '--hard',
      "also park the site's kube-apiserver, controllers, kwok and Velero (a burned site: its API is unreachable)",
    )
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\n`drctl lab site up <site>` reverses it; `drctl lab down` + `up` bring the site back too.')
    .action(async (name: string, opts: { hard?: boolean; json?: boolean }) => {
      const { siteDown } = await lab();
      printChange(await siteDown(await siteName(name), opts), opts.json);
    });
  site
    .command('destroy')
    .description(
      "The fire: kill every process of the site's hosts at once and give each a new machine's state (no /etc/kubernetes, no etcd, kubelet or containerd data, an empty etcd disk, new SSH host keys; only what provisioning lays down: OS, sshd, containerd, kubelet, kubeadm, the control-plane images). Rewrites the lab config with the new host keys",
    )
    .argument('<site>', 'site-a or site-b')
    .option(
      '--yes',
      'required: this wipes the site for good (its data comes back only from the off-site snapshot and bundle)',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nThen: `drctl cluster rebuild --cluster <site>` (from the newest snapshot with a complete control-plane bundle), then `drctl lab site up <site>`.',
    )
    .action(async (name: string, opts: { yes?: boolean; json?: boolean }) => {
      const site = await siteName(name);
      if (!opts.yes)
        throw new UsageError(
          `lab site destroy ${site} wipes every host of ${site} for good: add --yes if that is what you want`,
        );
      const { siteDestroy } = await lab();
      const r = await siteDestroy(site, { log: (m) => process.stderr.write(`${m}\n`) });
      if (opts.json) return printJson(r);
      process.stdout.write(
        `${r.site} is destroyed: ${r.changed.join(', ')}\nnew host keys: ${Object.entries(r.hostKeys)
          .map(([n, k]) => `${n} ${k}`)
          .join(', ')}\n`,
      );
    });
  site
    .command('up')
    .description(
      'Reverse `lab site down` (with or without --hard) and wait until the site answers; after `lab site destroy`, only once `drctl cluster rebuild` brought its control plane back. Idempotent',
    )
    .argument('<site>', 'site-a or site-b')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const { siteUp } = await lab();
      printChange(await siteUp(await siteName(name)), opts.json);
    });
  const stretched = cmd
    .command('stretched')
    .description(
      'The stretched cluster: 5 etcd members, 3 at site A and 2 at site B, every cross-site connection through the lab link',
    );
  stretched
    .command('up')
    .description(
      'Start it (kubeadm the first time: ≈ 2 min), wait until its five members and two API servers are healthy. Idempotent',
    )
    .option(
      '--freeze-sites',
      "stop (SIGSTOP) the two sites' nodes while it runs, so latency is measured on a quiet machine; `lab stretched down` continues them",
    )
    .option(
      '--node <name>',
      'start only this node (a member lost with its site: it comes back with its old data, so `drctl etcd rejoin` it next)',
    )
    .action(async (opts: { freezeSites?: boolean; node?: string }) => {
      const { stretchedUp, startStretchedNode } = await lab();
      if (opts.node !== undefined) {
        const { STRETCHED } = await import('../../lab/topology.ts');
        const names = STRETCHED.nodes.map((n) => n.name);
        if (!names.includes(opts.node))
          throw new UsageError(`--node: '${opts.node}' is not a stretched node (${names.join(', ')})`);
        await startStretchedNode(opts.node);
        process.stdout.write(
          `stretched/${opts.node} started (sshd answers); its etcd runs its old data: \`drctl etcd rejoin --cluster ${STRETCHED.name} --node ${opts.node}\`\n`,
        );
        return;
      }
      const r = await stretchedUp({ log: (m) => process.stderr.write(`${m}\n`), freezeSites: opts.freezeSites });
      process.stdout.write(`stretched cluster up in ${r.seconds.toFixed(1)} s\n  ${r.detail.join('\n  ')}\n`);
    });
  stretched
    .command('down')
    .description('Stop its nodes and the link proxy (their disks stay)')
    .action(async () => {
      const { stretchedDown } = await lab();
      const stopped = await stretchedDown();
      process.stdout.write(stopped.length ? `stopped: ${stopped.join(', ')}\n` : 'nothing was running\n');
    });
  cmd
    .command('link')
    .description(
      "Show or set the link between the sites (the stretched cluster's cross-site connections): latency, jitter, or cut",
    )
    .requiredOption('--between <sites...>', 'the two sites: site-a site-b')
    .option('--rtt <duration>', 'added round-trip time, e.g. 12ms (half each way); 0 for none')
    .option('--jitter <duration>', 'round-trip jitter, e.g. 1ms')
    .option('--down', 'cut the link: black-holed (data dropped, connections neither refused nor closed)')
    .option('--json', 'print the link state as JSON')
    .action(async (opts: { between: string[]; rtt?: string; jitter?: string; down?: boolean; json?: boolean }) => {
      const { parseDuration } = await import('../../common/duration.ts');
      const { SITES } = await import('../../lab/topology.ts');
      const names = SITES.map((s) => s.name);
      if (
        opts.between.length !== 2 ||
        opts.between[0] === opts.between[1] ||
        !opts.between.every((b) => names.includes(b))
      )
        throw new UsageError(
          `--between: expected two different lab sites (${names.join(', ')}), got '${opts.between.join(' ')}'`,
        );
      const ms = (flag: string, v: string | undefined) => {
        if (v === undefined) return 0;
        // Toxiproxy takes whole milliseconds: 1.5ms is refused, not rounded.
        const d = /^(\d+(ms|s)|0)$/.test(v.trim()) ? parseDuration(v) : undefined;
        if (d === undefined)
          throw new UsageError(`${flag}: expected a whole number of milliseconds such as 12ms, got '${v}'`);
        return d;
      };
      const rttMs = ms('--rtt', opts.rtt);
      const jitterMs = ms('--jitter', opts.jitter);
      const { setSiteLink, siteLinkState, SITE_LINK } = await lab();
      const set = opts.rtt !== undefined || opts.jitter !== undefined || opts.down;
      if (set) await setSiteLink({ rttMs, jitterMs, down: !!opts.down });
      const state = await siteLinkState();
      if (opts.json) return printJson({ link: SITE_LINK, ...state });
      process.stdout.write(
        state
          ? `${SITE_LINK}: ${state.down ? 'DOWN (black-holed)' : 'up'}, rtt +${state.rttMs}ms, jitter ${state.jitterMs}ms\n`
          : `${SITE_LINK}: proxies disagree or are missing (drctl lab stretched up)\n`,
      );
    });
  // Third-level commands: main() sets exitOverride on two levels only, so bad input would exit 1 here.
  for (const sub of [...site.commands, ...fault.commands, ...stretched.commands]) sub.exitOverride();
  cmd
    .command('env')
    .description('Shell exports for one site (etcdctl, kubectl, S3 client): eval "$(drctl lab env --site site-a)"')
    .requiredOption('--site <name>', 'site-a or site-b')
    .action(async (opts: { site: string }) => {
      const { env } = await lab();
      const { SITES } = await import('../../lab/topology.ts');
      if (!SITES.some((s) => s.name === opts.site))
        throw new UsageError(`--site: unknown site '${opts.site}' (lab sites: ${SITES.map((s) => s.name).join(', ')})`);
      process.stdout.write(`${env(opts.site)}\n`);
    });
}
