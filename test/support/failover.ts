// The failover lab's baseline, shared by the failover tests and bench/failover.ts: DNS on site A,
// site A serving with 3 replicas and no fence marks, nothing restored at site B, both backup
// storage locations read-write, both app endpoints up.
import {
  createFailoverActivities,
  FENCED_BY,
  FENCED_REPLICAS,
  MODE_BEFORE,
  PAUSED_BY,
} from '../../activities/failover.ts';
import type { DrctlConfig } from '../../config/schema.ts';
import { siteUp } from '../../lab/lab.ts';
import type { Gateways } from '../../worker/gateways.ts';
import { drctlCli, until } from './lab.ts';

export const NS = 'demo-app';
export const RECORD = 'app.example.com';
export const DRILL_RECORD = 'drill.app.example.com';

export async function labCli(...args: string[]) {
  const r = await drctlCli(['lab', ...args]);
  if (r.status !== 0) throw new Error(`drctl lab ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
}

export const appAddress = (config: DrctlConfig, site: string) => config.sites.find((s) => s.name === site)!.appAddress!;

export async function resetFailoverLab(gw: Gateways, config: DrctlConfig) {
  // Which stage a slow reset spent its time in, on stderr (a hook that times out says only that it did).
  const t0 = Date.now();
  let last = t0;
  const stages: string[] = [];
  const stage = (name: string) => {
    stages.push(`${name} ${((Date.now() - last) / 1000).toFixed(1)} s`);
    last = Date.now();
    if (Date.now() - t0 > 60_000) process.stderr.write(`[resetFailoverLab] slow: ${stages.join(', ')}\n`);
  };
  // In this process (the CLI would load the Kubernetes client again, seconds on a busy machine).
  await siteUp('site-a');
  await siteUp('site-b');
  stage('sites up');
  await gw.dns().setA({ name: RECORD, ttl: 30, addresses: [appAddress(config, 'site-a')] });
  await gw.dns().setA({ name: DRILL_RECORD, ttl: 30, addresses: [appAddress(config, 'site-a')] });
  const kubeA = gw.kube('site-a');
  for (const d of await kubeA.deployments(NS)) {
    await kubeA.patchDeployment(NS, d.name, {
      replicas: Number(d.annotations[FENCED_REPLICAS] ?? (d.replicas || 3)),
      annotations: { [FENCED_REPLICAS]: null, [FENCED_BY]: null },
    });
  }
  stage('DNS and site A replicas');
  await gw.kube('site-b').deleteNamespace(NS, 180_000);
  stage(`${NS} gone at site B`);
  for (const s of ['site-a', 'site-b']) {
    await gw.velero(s).mergePatch('backupstoragelocations', 'default', {
      metadata: { annotations: { [MODE_BEFORE]: null } },
      spec: { accessMode: 'ReadWrite' },
    });
    // Schedules a fence paused (a test that ended with its site fenced) run again.
    for (const x of await gw.velero(s).list('schedules'))
      if (x.metadata.annotations?.[PAUSED_BY] !== undefined)
        await gw.velero(s).mergePatch('schedules', x.metadata.name, {
          metadata: { annotations: { [PAUSED_BY]: null } },
          spec: { paused: false },
        });
  }
  const healthz = config.sites.find((s) => s.name === 'site-a')!.appEndpoint!;
  await until(
    'site A serving',
    () =>
      fetch(healthz).then(
        (r) => r.status,
        () => 0,
      ),
    (s) => s === 200,
    120_000,
    500,
  );
  stage('site A serving');
  // A fresh backup of site A, visible at site B: the schedule's newest may be older than the
  // tier's RPO (or have failed while a test held the storage location read-only). Most of a reset's
  // time (40-60 s): Velero 1.18 syncs another site's backups once a minute. (Restarting site B's
  // Velero to sync at once was tried: the kubelet's crash back-off grew with every restart, and a
  // reset took 93 s, then 178 s.)
  await createFailoverActivities(gw).takeBackup({
    site: 'site-a',
    seenBy: 'site-b',
    name: `baseline-${Date.now()}`,
    namespaces: [NS],
  });
  stage('a fresh backup seen at site B');
}

/** What the tests compare against the baseline. */
export async function failoverState(gw: Gateways) {
  const [dns, depsA, bslA, bslB, nsB, schedulesA] = await Promise.all([
    gw.dns().resolveA(RECORD),
    gw.kube('site-a').deployments(NS),
    gw.velero('site-a').storageLocation('default'),
    gw.velero('site-b').storageLocation('default'),
    gw.kube('site-b').namespacePhase(NS),
    gw.velero('site-a').list('schedules'),
  ]);
  return {
    dns: dns.addresses,
    replicasA: depsA.map((d) => d.replicas),
    fencedA: depsA.some((d) => d.annotations[FENCED_REPLICAS] !== undefined),
    bslA: bslA?.accessMode,
    bslB: bslB?.accessMode,
    /** Site A's Velero schedules paused by a fence (while its location is read-only). */
    pausedA: schedulesA.some((x) => (x.spec as { paused?: boolean } | undefined)?.paused === true),
    nsB,
  };
}
