// `drctl lab up` and `lab down`. Up: lay the lab out (lab/layout.ts), start what is not running
// (lab/services.ts, lab/namespaces.ts), wait for the servers, create what lives in them (buckets,
// the DNS zone, each site's objects: lab/objects.ts), wait for everything that depends on those,
// make sure the DR site sees the newest backup, write the lab's drctl.yaml and start a fresh
// worker. Down: stop exactly what `up` recorded, by pid.
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { labConfig } from './config.ts';
import { composeDown } from './compose.ts';
import { writeVeleroManifest } from './controlplane.ts';
import { type Component, tcpOpen } from './health.ts';
import { layout } from './layout.ts';
import { bootstrapSite } from './kubeadm.ts';
import { bridgeExists, removeHostNet } from './network.ts';
import { isNodeId, startBastion, startNode } from './namespaces.ts';
import { ensureZone } from './pdns.ts';
import { alive, launch, type LabState, readState, stopPid, workerId, workerIds, writeState } from './processes.ts';
import { appKey, ensureBucket, ensureSearchAttributes, minioCreds, startApp, startServices } from './services.ts';
import { unpark } from './site-loss.ts';
import { status } from './status.ts';
import {
  binariesPresent,
  CLUSTERS,
  LAB_DIR,
  type LabSite,
  paths,
  REPO,
  SERVICES,
  siteNamed,
  SITES,
  workerMetricsAddress,
} from './topology.ts';

/**
 * Lab addresses that something other than this lab already listens on (a lab from another
 * checkout, a process left behind): a server started there fails, and the leftover may even look
 * healthy to the checks. Only addresses whose recorded lab process is not running are probed.
 */
async function foreignListeners(state: LabState): Promise<string[]> {
  const probes: { what: string; host: string; port: number }[] = [];
  const t = SERVICES.temporal;
  if (!alive(state.pids.temporal))
    probes.push({ what: 'temporal', host: t.ip, port: t.port }, { what: 'temporal ui', host: t.ip, port: t.uiPort });
  if (!alive(state.pids.minio)) probes.push({ what: 'minio', host: SERVICES.minio.ip, port: SERVICES.minio.port });
  if (!alive(state.pids.pdns)) probes.push({ what: 'pdns api', host: SERVICES.pdns.ip, port: SERVICES.pdns.apiPort });
  for (const site of SITES) {
    if (!state.sitesDown?.[site.name] && !alive(state.pids[appKey(site)]))
      probes.push({ what: appKey(site), host: site.appAddress, port: site.appPort });
    for (const node of site.nodes) {
      if (!alive(state.pids[node.id]))
        probes.push(
          { what: `${node.id} sshd`, host: node.ip, port: 22 },
          { what: `${node.id} etcd`, host: node.ip, port: 2379 },
        );
    }
  }
  // Without the lab's bridge, its addresses are not local: a connect there would reach whatever
  // routes them (a proxy answers every port on some machines), not a listener of this machine.
  const local = bridgeExists() ? probes : probes.filter((p) => p.host.startsWith('127.'));
  const open = await Promise.all(local.map((p) => tcpOpen(p.host, p.port, 300)));
  return local.filter((_, i) => open[i]).map((p) => `${p.host}:${p.port} (${p.what})`);
}

/** Starts every recorded component that is not running (a site down on purpose keeps its app endpoint stopped). */
export function startAll(state: LabState) {
  startServices(state);
  for (const site of SITES) {
    if (!state.sitesDown?.[site.name]) startApp(state, site);
    for (const node of site.nodes) if (!alive(state.pids[node.id])) state.pids[node.id] = startNode(node);
    if (site.bastion && !alive(state.pids[site.bastion.id])) state.pids[site.bastion.id] = startBastion(site.bastion);
  }
  writeState(state);
}

export interface UpResult {
  config: string;
  webUi: string;
  seconds: number;
  components: Component[];
}

export async function up(opts: { timeoutMs?: number; log?: (m: string) => void } = {}): Promise<UpResult> {
  const log = opts.log ?? (() => undefined);
  const t0 = Date.now();
  const missing = binariesPresent();
  if (missing.length) {
    log(`installing lab binaries (${missing.length} missing; a fresh machine takes a while) ...`);
    execFileSync('bash', [join(REPO, 'lab/install.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  layout();
  const { thawSites } = await import('./stretched.ts');
  if (thawSites()) log('the sites were frozen for the stretched cluster: thawed');
  const state = readState();
  for (const [site, d] of Object.entries(state.sitesDown ?? {})) {
    log(
      d.destroyed
        ? `${site} was destroyed on purpose at ${d.since} (lab site destroy): \`drctl cluster rebuild --cluster ${site}\`, then \`drctl lab site up ${site}\``
        : `${site} is down on purpose since ${d.since} (lab site down${d.hard ? ' --hard' : ''}); \`drctl lab site up ${site}\` brings it back`,
    );
  }
  const foreign = await foreignListeners(state);
  if (foreign.length) {
    throw new Error(
      `lab addresses already in use, not by this lab (${LAB_DIR}): ${foreign.join(', ')}\n` +
        `a lab from another checkout? stop it there (drctl lab down), or find the process: ss -ltnp 'sport = :PORT'`,
    );
  }
  startAll(state);
  log('waiting for every component to be healthy ...');
  // A cold lab (kubeadm init and joins on 2 busy cores) has taken up to 4 min before its first backup.
  const deadline = Date.now() + (opts.timeoutMs ?? 480_000);
  const reachable = SITES.filter((s) => !state.sitesDown?.[s.name]?.hard);
  // The servers first; then what lives in them (buckets, the DNS zone, each site's objects); then
  // everything that depends on those (Velero validates its bucket, the app needs its pods Ready).
  const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  await waitHealthy(deadline, t0, (c) => ['temporal', 'minio', 'node', 'sshd', 'bastion'].includes(c.kind));
  // The worker as soon as Temporal and the nodes are up, so a lab that never gets fully healthy
  // (a site down, an app not restored yet) still has the worker it was brought up to restart.
  await writeConfigAndRestartWorkers(state, SITES);
  // kubeadm, where it has not run yet (a fresh lab): init on cp1, then the other nodes join.
  // Not on a destroyed site: its control plane comes back through `drctl cluster rebuild`.
  await Promise.all(SITES.filter((s) => !state.sitesDown?.[s.name]?.destroyed).map((site) => bootstrapSite(site, log)));
  await waitHealthy(deadline, t0, (c) => ['etcd', 'kube-apiserver'].includes(c.kind));
  log(`servers up (${since()}); creating search attributes, buckets, the DNS zone and the sites' objects ...`);
  const { ensureSiteObjects } = await import('./objects.ts');
  const { ensureDemoBackups } = await import('./velero.ts');
  await Promise.all([
    (async () => {
      // The frontend may refuse for a moment after its port opens.
      const added = await untilDone(deadline, ensureSearchAttributes);
      if (added.length) log(`Temporal search attributes added: ${added.join(', ')}`);
    })(),
    ensureBucket(SERVICES.minio.bucket),
    ensureBucket(SERVICES.minio.veleroBucket),
    ...reachable.map(async (site) => {
      await ensureSiteObjects(site, minioCreds());
      writeVeleroManifest(site);
    }),
  ]);
  // PowerDNS's API answers a moment after it starts listening.
  await untilDone(deadline, ensureZone);
  await waitHealthy(deadline, t0, (c) => c.kind !== 'worker');
  log(`controllers, kwok, Velero, DNS and app endpoints healthy (${since()})`);
  const primary = SITES.find((s) => s.role === 'primary')!;
  if (reachable.includes(primary)) {
    const b = await ensureDemoBackups(primary, Math.max(60_000, deadline - Date.now()), log);
    const synced = Math.max(deadline, Date.now() + 120_000);
    await Promise.all(
      reachable.filter((s) => s !== primary).map((site) => waitBackupSynced(site, b.backup, synced, log)),
    );
  }
  const comps = await waitHealthy(deadline, t0);
  if (state.stretched) {
    const { stretchedUp } = await import('./stretched.ts');
    await stretchedUp({ log });
  }
  return {
    config: paths.config,
    webUi: `http://${SERVICES.temporal.ip}:${SERVICES.temporal.uiPort}`,
    seconds: (Date.now() - t0) / 1000,
    components: comps,
  };
}

/**
 * Writes the lab's drctl.yaml as the lab is now (the nodes' pinned host keys read from their
 * disks), and starts fresh workers "at" `sites`: they run the code and config as they are now.
 * One per site, on the same task queue, each able to run every activity (a site's loss does not
 * take drctl with it). The other sites' workers are left alone only if `sites` leaves them out.
 */
export async function writeConfigAndRestartWorkers(state: LabState, sites: readonly LabSite[]): Promise<void> {
  writeFileSync(paths.config, `# Written by \`drctl lab up\`; regenerated on every up.\n${stringify(labConfig())}`);
  chmodSync(paths.config, 0o600);
  const restarting = new Set(sites.map((s) => workerId(s.name)));
  for (const name of workerIds(state).filter((w) => w === 'worker' || restarting.has(w)))
    await stopPid(state.pids[name]);
  delete state.pids.worker; // a lab brought up before there was one worker per site
  for (const site of sites)
    state.pids[workerId(site.name)] = launch(workerId(site.name), process.execPath, [
      join(REPO, 'bin/drctl.js'),
      '--config',
      paths.config,
      'worker',
      '--site',
      site.name,
      '--metrics-listen',
      workerMetricsAddress(site),
    ]);
  writeState(state);
}

/** Retries `fn` every 300 ms until it succeeds; past the deadline its error stands. */
async function untilDone<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(300);
    }
  }
}

/** Waits until every selected component is healthy (components down on purpose are not waited for). */
async function waitHealthy(
  deadline: number,
  t0: number,
  which: (c: Component) => boolean = () => true,
): Promise<Component[]> {
  for (;;) {
    const comps = (await status()).filter((c) => which(c) && !c.downOnPurpose);
    if (comps.every((c) => c.healthy)) return comps;
    if (Date.now() > deadline) {
      const bad = comps.filter((c) => !c.healthy).map((c) => `${c.name}: ${c.detail}`);
      throw new Error(
        `lab not healthy after ${Math.round((Date.now() - t0) / 1000)} s:\n  ${bad.join('\n  ')}\n(logs in ${paths.logs} and ${LAB_DIR}/nodes/*/var/log)`,
      );
    }
    await sleep(1000);
  }
}

/**
 * The newest backup (just taken, or by the Schedule catching up on a lab that was stopped): wait
 * until this site's Velero server has synced it from the bucket, so a failover or drill right after
 * `lab up` finds it. Velero 1.18 enqueues its backup sync once a minute whatever
 * --backup-sync-period says (backupSyncReconcilePeriod is a constant), and its first sync at
 * start-up ran before its location was validated (skipped). A restarted server syncs at once (its
 * location is Available by then): restart it rather than wait up to a minute.
 */
async function waitBackupSynced(site: LabSite, backup: string, deadline: number, log: (m: string) => void) {
  const { backups, INITIAL_BACKUP } = await import('./velero.ts');
  const t = Date.now();
  let restartedAt = t;
  for (;;) {
    const synced = (await backups(site)).some((x) => x.metadata.name === backup && x.status?.phase === 'Completed');
    if (synced) break;
    // Not synced 6 s after the start or 30 s after the last restart (a restart on a busy machine
    // may again sync before its location is validated): restart it.
    if (Date.now() - restartedAt > (restartedAt === t ? 6000 : 30_000)) {
      const pid = (await status()).find((c) => c.name === `${site.name}/velero`)?.pid;
      if (pid) process.kill(pid, 'SIGTERM');
      restartedAt = Date.now();
    }
    if (Date.now() > deadline)
      throw new Error(`${site.name}: Velero has not synced backup ${backup} (${INITIAL_BACKUP}) from the bucket`);
    await sleep(500);
  }
  log(`${site.name} sees backup ${backup} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

export async function down(opts: { purge?: boolean } = {}): Promise<string[]> {
  // The compose project first (its containers outlive a stopped containerd), then its containerd and BuildKit.
  const stopped: string[] = await composeDown().catch((err: Error) => [`compose: ${err.message.split('\n')[0]}`]);
  // Frozen processes cannot act on SIGTERM.
  (await import('./stretched.ts')).thawSites();
  const state = readState();
  // A site taken down on purpose comes back whole on the next `lab up`: its parked manifests go back now.
  for (const name of Object.keys(state.sitesDown ?? {})) unpark(siteNamed(name), state.sitesDown![name]!.parked);
  // The workers first: they should not see their servers vanish under them.
  for (const name of workerIds(state))
    if (await stopPid(state.pids[name])) stopped.push(`${name} (pid ${state.pids[name]})`);
  await Promise.all(
    Object.entries(state.pids)
      .filter(([name]) => !workerIds(state).includes(name))
      .map(async ([name, pid]) => {
        if (await stopPid(pid, isNodeId(name))) stopped.push(`${name} (pid ${pid})`);
      }),
  );
  writeState({ pids: {} });
  if (opts.purge) {
    rmSync(LAB_DIR, { recursive: true, force: true });
    for (const c of CLUSTERS) for (const host of [...c.nodes, ...(c.bastion ? [c.bastion] : [])]) removeHostNet(host);
  }
  return stopped.sort();
}
