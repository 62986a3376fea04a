// Losing a site on purpose, and getting it back: `drctl lab site down SITE` stops its app endpoint
// (clients of the app get connection refused); `--hard` also parks every static pod but etcd on
// every node (the API servers, the controllers, kwok and Velero), as a burned site would lose them,
// and kills the stretched cluster's members that stand at the site (when it is up): every process
// of those nodes at once, recorded as lost; `site up` does not bring them back (lab/stretched.ts). `site up` reverses exactly what was done. Recorded in state.json,
// so `lab status` and `lab up` know the site is down on purpose.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument } from 'yaml';
import { CONTROL_PLANE_PODS, CP1_PODS } from './controlplane.ts';
import { adminGet, httpGet, tcpOpen } from './health.ts';
import { manifestPath, parkedPath } from './nodes.ts';
import { alive, readState, type SiteDown, stopPid, workerId, writeState } from './processes.ts';
import { appKey, startApp } from './services.ts';
import { loseStretchedMembers } from './stretched.ts';
import { CP_PORTS, type LabNode, type LabSite, paths, siteNamed, SITES } from './topology.ts';

/** What `--hard` parks, per node: kubeadm's control plane but etcd everywhere, kwok and Velero on cp1. */
function podsOf(node: LabNode): string[] {
  return [...(node.first ? [...CP1_PODS].reverse() : []), ...[...CONTROL_PLANE_PODS].reverse()];
}

/**
 * A parked manifest put back unchanged is the same pod to the kubelet (its UID is a hash of the
 * manifest), whose container "failed" when parked: it would wait out the crash back-off. An
 * annotation makes it a new pod (drctl's restore does the same: gateways/restore-node.ts).
 */
function stampParked(file: string, since: string) {
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.setIn(['metadata', 'annotations', 'lab.drctl.io/parked-at'], since);
  writeFileSync(`${file}.tmp`, doc.toString());
  renameSync(`${file}.tmp`, file);
}

/** Moves parked manifests ("cp1/kube-apiserver.yaml") back into their node's manifest dir; its kubelet starts them. */
export function unpark(site: LabSite, entries: string[]): string[] {
  const back: string[] = [];
  for (const e of entries) {
    const [nodeName, file] = e.split('/') as [string, string];
    const node = site.nodes.find((n) => n.name === nodeName);
    const name = file?.replace(/\.yaml$/, '');
    if (!node || !name || !existsSync(parkedPath(node, name))) continue;
    renameSync(parkedPath(node, name), manifestPath(node, name));
    back.push(`${node.name}/${name}`);
  }
  return back;
}

export interface SiteChange {
  site: string;
  action: 'down' | 'up';
  hard: boolean;
  /** What this call changed (empty when the site was already in that state). */
  changed: string[];
  appEndpoint: string;
  apiserver: string;
}

/**
 * Simulates losing a site: its app endpoint stops (clients of the app get connection refused).
 * `hard` also parks every static pod on cp1 but etcd (API server, controllers, kwok, Velero), as
 * a burned site would lose them. Idempotent; `siteUp` reverses exactly what was done.
 */
export async function siteDown(siteName: string, opts: { hard?: boolean } = {}): Promise<SiteChange> {
  const site = siteNamed(siteName);
  // A burned site takes its stretched members with it: killed, as hosts in a fire.
  const lostMembers = opts.hard ? loseStretchedMembers(site.name) : [];
  const state = readState();
  state.sitesDown ??= {};
  const rec: SiteDown = state.sitesDown[site.name] ?? { hard: false, parked: [], since: new Date().toISOString() };
  const changed: string[] = lostMembers.map((n) => `stretched/${n} killed (lost with the site)`);
  const pid = state.pids[appKey(site)];
  if (await stopPid(pid)) changed.push(`app endpoint stopped (pid ${pid})`);
  delete state.pids[appKey(site)];
  if (opts.hard && !rec.hard) {
    for (const node of site.nodes)
      for (const pod of podsOf(node)) {
        if (!existsSync(manifestPath(node, pod))) continue;
        mkdirSync(dirname(parkedPath(node, pod)), { recursive: true });
        renameSync(manifestPath(node, pod), parkedPath(node, pod));
        stampParked(parkedPath(node, pod), rec.since);
        rec.parked.push(`${node.name}/${pod}.yaml`);
        changed.push(`${node.name}/${pod} parked`);
      }
    rec.hard = true;
  }
  state.sitesDown[site.name] = rec;
  writeState(state);
  if (rec.hard) {
    for (const n of site.nodes)
      for (let i = 0; i < 400 && (await tcpOpen(n.ip, CP_PORTS.apiserver, 300)); i++) await sleep(100);
  }
  return {
    site: site.name,
    action: 'down',
    hard: rec.hard,
    changed,
    appEndpoint: 'stopped',
    apiserver: rec.hard ? 'stopped' : 'running',
  };
}

/**
 * A destroyed site comes back only once its control plane was rebuilt (`drctl cluster rebuild`):
 * its API ready. Then what the lab runs on cp1 as static pods and a real cluster runs as
 * Deployments restored with etcd (kwok, Velero: README) is laid there again.
 */
async function afterRebuild(site: LabSite): Promise<string[]> {
  const api = await adminGet(site, '/readyz');
  if (api.status !== 200)
    throw new Error(
      `${site.name} was destroyed and its control plane is not back (API readyz: ${api.status || api.body}): \`drctl cluster rebuild --cluster ${site.name}\` first`,
    );
  const { layoutCp1Extras, writeVeleroManifest } = await import('./controlplane.ts');
  const { ca } = await import('./pki.ts');
  const cp1 = site.nodes.find((n) => n.first)!;
  layoutCp1Extras(site, cp1, ca(join(paths.pki(site.name), 'kubernetes'), `${site.name}-kubernetes-ca`));
  writeVeleroManifest(site);
  return [`${cp1.name}: kwok and Velero laid again`];
}

export async function siteUp(siteName: string, opts: { timeoutMs?: number } = {}): Promise<SiteChange> {
  const site = siteNamed(siteName);
  const state = readState();
  const rec = state.sitesDown?.[site.name];
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  const changed: string[] = [];
  if (rec?.destroyed) changed.push(...(await afterRebuild(site)));
  if (rec?.parked.length) {
    // The API server first, then its clients: they would only crash-loop against a closed port meanwhile.
    changed.push(
      ...unpark(
        site,
        rec.parked.filter((f) => f.endsWith('/kube-apiserver.yaml')),
      ).map((p) => `${p} started`),
    );
    while ((await adminGet(site, '/readyz')).status !== 200 && Date.now() < deadline) await sleep(300);
    changed.push(
      ...unpark(
        site,
        rec.parked.filter((f) => !f.endsWith('/kube-apiserver.yaml')),
      ).map((p) => `${p} started`),
    );
  }
  if (startApp(state, site)) changed.push(`app endpoint started (pid ${state.pids[appKey(site)]})`);
  if (rec?.destroyed) {
    const { writeConfigAndRestartWorkers } = await import('./up-down.ts');
    await writeConfigAndRestartWorkers(state, [site]);
    changed.push(`${workerId(site.name)} started`);
  }
  if (state.sitesDown) delete state.sitesDown[site.name];
  writeState(state);
  // Back when its API server is ready and its app endpoint answers (200, or 503 while the app is not there).
  for (;;) {
    const [api, app] = await Promise.all([
      adminGet(site, '/readyz'),
      httpGet(`http://${site.appAddress}:${site.appPort}/healthz`),
    ]);
    if (api.status === 200 && (app.status === 200 || app.status === 503)) break;
    if (Date.now() > deadline)
      throw new Error(
        `${site.name} not back after ${opts.timeoutMs ?? 90_000} ms: API readyz ${api.status || api.body}, app ${app.status || app.body}`,
      );
    await sleep(300);
  }
  return { site: site.name, action: 'up', hard: !!rec?.hard, changed, appEndpoint: 'running', apiserver: 'running' };
}

/**
 * The fire: every process of every node of the site killed at once (SIGKILL, no orderly shutdown),
 * with the site's stretched members, its app endpoint and the drctl worker that stood there. Each
 * host then gets what provisioning leaves on new hardware (lab/nodes.ts layoutNode without CAs):
 * /etc/kubernetes, /var/lib (etcd, kubelet, containerd), /var/log and /run wiped; a new, empty etcd
 * disk; new SSH host keys; the control-plane images imported again, as an operator preloads them.
 * The hosts are started again (sshd, containerd, a kubelet waiting for its config). The lab's
 * drctl.yaml is rewritten with the new host keys (the operator's inventory) and the other sites'
 * workers restarted on it. Recorded as down on purpose, destroyed: `lab up` lays nothing of
 * kubeadm's there; `drctl cluster rebuild` brings the control plane back, then `lab site up`.
 */
export async function siteDestroy(
  siteName: string,
  opts: { log?: (m: string) => void } = {},
): Promise<SiteChange & { hostKeys: Record<string, string> }> {
  const log = opts.log ?? (() => undefined);
  const site = siteNamed(siteName);
  const { layoutNode, hostKeyFingerprint } = await import('./nodes.ts');
  const { nodeProcesses, startNode } = await import('./namespaces.ts');
  const { ensureImages } = await import('./kubeadm.ts');
  const { writeConfigAndRestartWorkers } = await import('./up-down.ts');
  const changed = loseStretchedMembers(site.name).map((n) => `stretched/${n} killed (lost with the site)`);
  const state = readState();
  for (const key of [appKey(site), workerId(site.name)]) {
    if (await stopPid(state.pids[key])) changed.push(`${key} stopped`);
    delete state.pids[key];
  }
  // Every process of every node, at once: a fire, not a shutdown.
  const victims: number[] = [];
  for (const node of site.nodes) {
    const launcher = state.pids[node.id];
    let procs: { pid: number }[] = [];
    try {
      procs = nodeProcesses(node.id, { withPods: true });
    } catch {
      /* not running */
    }
    for (const p of [...procs, ...(launcher ? [{ pid: launcher }] : [])]) {
      try {
        process.kill(p.pid, 'SIGKILL');
        victims.push(p.pid);
      } catch {
        /* gone */
      }
    }
    delete state.pids[node.id];
    changed.push(`${node.name}: ${procs.length} processes killed`);
  }
  for (let i = 0; i < 100 && victims.some(alive); i++) await sleep(100);
  // New hardware: nothing of the old hosts' state, new host keys.
  for (const node of site.nodes) {
    for (const d of ['etc/kubernetes', 'var/lib', 'var/log', 'run', 'disks'])
      rmSync(join(node.root, d), { recursive: true, force: true });
    for (const f of readdirSync(join(node.root, 'etc/ssh')).filter((f) => f.startsWith('ssh_host_')))
      rmSync(join(node.root, 'etc/ssh', f), { force: true });
    layoutNode(site, node, undefined);
  }
  state.sitesDown ??= {};
  state.sitesDown[site.name] = { hard: true, parked: [], since: new Date().toISOString(), destroyed: true };
  writeState(state);
  for (const node of site.nodes) state.pids[node.id] = startNode(node);
  writeState(state);
  const t = Date.now();
  await Promise.all(
    site.nodes.map(async (node) => {
      for (let i = 0; i < 300 && !(await tcpOpen(node.ip, 22, 300)); i++) await sleep(100);
      await ensureImages(site, node);
    }),
  );
  log(`${site.name}: fresh hosts up, images preloaded (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  // The operator's inventory: the new host keys pinned; the surviving workers restarted on it.
  await writeConfigAndRestartWorkers(
    state,
    SITES.filter((s) => s !== site),
  );
  const hostKeys = Object.fromEntries(site.nodes.map((n) => [n.name, hostKeyFingerprint(n)]));
  changed.push(`new host keys pinned in ${paths.config}`);
  return {
    site: site.name,
    action: 'down',
    hard: true,
    changed,
    appEndpoint: 'stopped',
    apiserver: 'destroyed',
    hostKeys,
  };
}
