// Losing a site on purpose, and getting it back: `drctl lab site down SITE` stops its app endpoint
// (clients of the app get connection refused); `--hard` also parks cp1's static pods but etcd, as a
// burned site would lose them. `site up` reverses exactly what was done. Recorded in state.json,
// so `lab status` and `lab up` know the site is down on purpose.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CP1_PODS } from './controlplane.ts';
import { adminGet, httpGet, tcpOpen } from './health.ts';
import { manifestPath, parkedPath } from './nodes.ts';
import { readState, type SiteDown, stopPid, writeState } from './processes.ts';
import { appKey, startApp } from './services.ts';
import { cp1Of, CP_PORTS, type LabSite, siteNamed } from './topology.ts';

/** Moves parked manifests (file names) back into cp1's manifest dir; the supervisor starts them. */
export function unpark(site: LabSite, files: string[]): string[] {
  const cp1 = cp1Of(site);
  const back: string[] = [];
  for (const f of files) {
    const name = f.replace(/\.yaml$/, '');
    if (!existsSync(parkedPath(cp1, name))) continue;
    renameSync(parkedPath(cp1, name), manifestPath(cp1, name));
    back.push(name);
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
  const state = readState();
  state.sitesDown ??= {};
  const rec: SiteDown = state.sitesDown[site.name] ?? { hard: false, parked: [], since: new Date().toISOString() };
  const changed: string[] = [];
  const pid = state.pids[appKey(site)];
  if (await stopPid(pid)) changed.push(`app endpoint stopped (pid ${pid})`);
  delete state.pids[appKey(site)];
  if (opts.hard && !rec.hard) {
    const cp1 = cp1Of(site);
    for (const pod of [...CP1_PODS].reverse()) {
      if (!existsSync(manifestPath(cp1, pod))) continue;
      mkdirSync(dirname(parkedPath(cp1, pod)), { recursive: true });
      renameSync(manifestPath(cp1, pod), parkedPath(cp1, pod));
      rec.parked.push(`${pod}.yaml`);
      changed.push(`${pod} parked`);
    }
    rec.hard = true;
  }
  state.sitesDown[site.name] = rec;
  writeState(state);
  if (rec.hard) {
    const ip = cp1Of(site).ip;
    for (let i = 0; i < 200 && (await tcpOpen(ip, CP_PORTS.apiserver, 300)); i++) await sleep(100);
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

export async function siteUp(siteName: string, opts: { timeoutMs?: number } = {}): Promise<SiteChange> {
  const site = siteNamed(siteName);
  const state = readState();
  const rec = state.sitesDown?.[site.name];
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  const changed: string[] = [];
  if (rec?.parked.length) {
    // The API server first, then its clients: they would only crash-loop against a closed port meanwhile.
    changed.push(
      ...unpark(
        site,
        rec.parked.filter((f) => f === 'kube-apiserver.yaml'),
      ).map((p) => `${p} started`),
    );
    while ((await adminGet(site, '/readyz')).status !== 200 && Date.now() < deadline) await sleep(300);
    changed.push(
      ...unpark(
        site,
        rec.parked.filter((f) => f !== 'kube-apiserver.yaml'),
      ).map((p) => `${p} started`),
    );
  }
  if (startApp(state, site)) changed.push(`app endpoint started (pid ${state.pids[appKey(site)]})`);
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
