// The lab's two sites as a failover needs them, against the running lab: controllers and kwok
// nodes at both sites, the demo app at site A, Velero at both sites on one shared bucket,
// PowerDNS, the app endpoints, `drctl lab site down|up`, and a real Velero restore of the demo
// app at site B (then removed again) — the proof that the lab supports a failover.
import { execFileSync } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DrctlConfig } from '../config/schema.ts';
import { createGateways, type Gateways } from '../worker/gateways.ts';
import { resetFailoverLab } from './support/failover.ts';
import { drctlCli, ensureLabHealthy, labConfig, until } from './support/lab.ts';

let config: DrctlConfig;
let gw: Gateways | undefined;
afterAll(() => gw?.close());

interface Site {
  name: string;
  core: CoreV1Api;
  apps: AppsV1Api;
  discovery: DiscoveryV1Api;
  custom: CustomObjectsApi;
  app: string;
  appAddress: string;
}
const sites: Record<string, Site> = {};

interface VeleroObj {
  metadata: { name: string; creationTimestamp?: string };
  spec?: { includedNamespaces?: string[]; backupName?: string };
  status?: { phase?: string; completionTimestamp?: string; errors?: number; warnings?: number; failureReason?: string };
}

const velero = (site: Site) => ({
  list: async (plural: string) =>
    (
      (await site.custom.listNamespacedCustomObject({
        group: 'velero.io',
        version: 'v1',
        namespace: 'velero',
        plural,
      })) as { items: VeleroObj[] }
    ).items,
  get: async (plural: string, name: string) =>
    (await site.custom.getNamespacedCustomObject({
      group: 'velero.io',
      version: 'v1',
      namespace: 'velero',
      plural,
      name,
    })) as VeleroObj & { spec?: Record<string, unknown> },
});

const demoBackups = async (site: Site) =>
  (await velero(site).list('backups'))
    .filter((b) => b.spec?.includedNamespaces?.includes('demo-app') && b.status?.phase === 'Completed')
    .sort((a, b) => String(b.status?.completionTimestamp).localeCompare(String(a.status?.completionTimestamp)));

async function healthz(site: Site): Promise<{ status: number; body: string }> {
  try {
    const r = await fetch(site.app, { signal: AbortSignal.timeout(5000) });
    return { status: r.status, body: (await r.text()).trim() };
  } catch (err) {
    return {
      status: 0,
      body: (err as Error & { cause?: NodeJS.ErrnoException }).cause?.code ?? (err as Error).message,
    };
  }
}

async function readyEndpoints(site: Site, ns: string, service: string): Promise<number> {
  const slices = await site.discovery.listNamespacedEndpointSlice({
    namespace: ns,
    labelSelector: `kubernetes.io/service-name=${service}`,
  });
  return slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
}

const gone = async (fn: () => Promise<unknown>) =>
  fn().then(
    () => false,
    (err: { code?: number }) => err.code === 404,
  );

beforeAll(() => {
  config = labConfig();
  for (const s of config.sites) {
    const kc = new KubeConfig();
    kc.loadFromFile(s.cluster.kubeconfig);
    sites[s.name] = {
      name: s.name,
      core: kc.makeApiClient(CoreV1Api),
      apps: kc.makeApiClient(AppsV1Api),
      discovery: kc.makeApiClient(DiscoveryV1Api),
      custom: kc.makeApiClient(CustomObjectsApi),
      app: s.appEndpoint!,
      appAddress: s.appAddress!,
    };
  }
});

const A = () => sites['site-a']!;
const B = () => sites['site-b']!;

/**
 * Nothing of the demo app at site B: no namespace, and no PersistentVolume left Released by an
 * earlier restore (Velero skips a PV that exists, and a Released one never binds the restored PVC).
 */
async function clearSiteB() {
  await B()
    .core.deleteNamespace({ name: 'demo-app' })
    .catch(() => undefined);
  await until(
    'demo-app gone at B',
    () => gone(() => B().core.readNamespace({ name: 'demo-app' })),
    (g) => g,
    90_000,
    500,
  );
  await B()
    .core.deletePersistentVolume({ name: 'demo-data-pv' })
    .catch(() => undefined);
  await until(
    'PV gone at B',
    () => gone(() => B().core.readPersistentVolume({ name: 'demo-data-pv' })),
    (g) => g,
    30_000,
    500,
  );
}

// The lab's baseline, whatever an earlier file left: both sites up, app.example.com and the drill
// record on site A, site A serving with 3 unfenced replicas, both storage locations read-write, a
// fresh demo-app backup seen at site B, and nothing restored at site B (nor its PV).
beforeAll(async () => {
  await ensureLabHealthy();
  gw = createGateways(config);
  await resetFailoverLab(gw, config);
  await clearSiteB();
}, 300_000);

describe('each site: controllers, kwok nodes, CoreDNS', () => {
  it.each(['site-a', 'site-b'])(
    '%s: three kwok nodes Ready (tainted, type=kwok) and CoreDNS available on them',
    async (name) => {
      const site = sites[name]!;
      const nodes = (await site.core.listNode({ labelSelector: 'type=kwok' })).items;
      expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(['kwok-node-1', 'kwok-node-2', 'kwok-node-3']);
      for (const n of nodes) {
        expect(n.status?.conditions?.find((c) => c.type === 'Ready')?.status, n.metadata?.name).toBe('True');
        expect(n.spec?.taints).toEqual(
          expect.arrayContaining([expect.objectContaining({ key: 'kwok.x-k8s.io/node', effect: 'NoSchedule' })]),
        );
      }
      const dns = await site.apps.readNamespacedDeployment({ namespace: 'kube-system', name: 'coredns' });
      expect(dns.status?.availableReplicas).toBe(2);
      // The controller-manager's service-account controllers ran: every namespace has its default SA and root CA.
      await site.core.readNamespacedServiceAccount({ namespace: 'kube-system', name: 'default' });
      await site.core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'kube-root-ca.crt' });
    },
  );

  it('the API servers and kubectl report v1.35.x, not v0.0.0-master', () => {
    const out = execFileSync(
      'bash',
      ['-c', 'eval "$(node bin/drctl.js lab env --site site-a)"; kubectl version -o json'],
      { encoding: 'utf8' },
    );
    const v = JSON.parse(out) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string; major: string; minor: string };
    };
    expect(v.clientVersion.gitVersion).toMatch(/^v1\.35\.\d+$/);
    expect(v.serverVersion).toMatchObject({
      gitVersion: expect.stringMatching(/^v1\.35\.\d+$/),
      major: '1',
      minor: '35',
    });
  });
});

describe('the demo app at site A, the app endpoints', () => {
  it('demo-app runs at site A: nginx 3/3 available with 3 ready endpoints, its ConfigMap, Secret and a Bound PVC', async () => {
    const d = await A().apps.readNamespacedDeployment({ namespace: 'demo-app', name: 'nginx' });
    expect(d.status?.availableReplicas).toBe(3);
    expect(await readyEndpoints(A(), 'demo-app', 'nginx')).toBe(3);
    const pods = (await A().core.listNamespacedPod({ namespace: 'demo-app', labelSelector: 'app=nginx' })).items;
    for (const p of pods) {
      expect(p.spec?.nodeName).toMatch(/^kwok-node-\d$/);
      expect(p.status?.podIP).toMatch(/^10\.10\./);
    }
    await A().core.readNamespacedConfigMap({ namespace: 'demo-app', name: 'nginx-config' });
    expect((await A().core.readNamespacedSecret({ namespace: 'demo-app', name: 'db-credentials' })).type).toBe(
      'Opaque',
    );
    const pvc = await A().core.readNamespacedPersistentVolumeClaim({ namespace: 'demo-app', name: 'demo-data' });
    expect(pvc.status?.phase).toBe('Bound');
    expect(pvc.spec?.volumeName).toBe('demo-data-pv');
  });

  it("site A's endpoint answers 200 with its ready endpoints; site B's 503 (no demo-app there); other paths name the site", async () => {
    expect(await healthz(A())).toEqual({ status: 200, body: 'ok site-a: 3 ready endpoints' });
    const b = await healthz(B());
    expect(b.status).toBe(503);
    expect(b.body).toContain('namespace demo-app not found');
    const other = await fetch(`http://${B().appAddress}:8080/`);
    expect(other.status).toBe(200);
    expect(await other.text()).toContain('site-b');
  });
});

describe('PowerDNS', () => {
  it("answers app.example.com with site A's app address over real DNS, and its API lists the zone", async () => {
    const dns = config.dns!;
    const r = new Resolver({ timeout: 2000, tries: 2 });
    r.setServers([dns.nameserver]);
    const answers = await r.resolve4('app.example.com', { ttl: true });
    expect(answers).toEqual([{ address: A().appAddress, ttl: 30 }]);
    expect((await r.resolve4('drill.app.example.com')).length).toBe(1);
    const key = readFileSync((dns.powerdns.apiKey as { file: string }).file, 'utf8').trim();
    const zones = (await (
      await fetch(`${dns.powerdns.api}/api/v1/servers/localhost/zones`, { headers: { 'X-API-Key': key } })
    ).json()) as { name: string; kind: string }[];
    expect(zones).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'example.com.', kind: 'Native' })]));
    const unauth = await fetch(`${dns.powerdns.api}/api/v1/servers/localhost/zones`);
    expect(unauth.status).toBe(401);
  });
});

describe('Velero at both sites, one shared bucket', () => {
  it('both storage locations are Available; the newest demo-app backup is Completed at A and synced to B; the Schedule exists at A', async () => {
    for (const site of [A(), B()]) {
      const bsl = await velero(site).get('backupstoragelocations', 'default');
      expect(bsl.status?.phase, site.name).toBe('Available');
    }
    const atA = await demoBackups(A());
    expect(atA.length).toBeGreaterThan(0);
    const names = (await velero(A()).list('backups')).map((b) => b.metadata.name);
    expect(names).toContain('demo-app-initial');
    const newest = atA[0]!.metadata.name;
    // Velero's backup-sync loop runs once a minute whatever --backup-sync-period says.
    await until(
      `backup ${newest} synced to site B`,
      async () => (await demoBackups(B())).map((b) => b.metadata.name),
      (n) => n.includes(newest),
      90_000,
    );
    const schedule = await velero(A()).get('schedules', 'demo-app');
    expect(schedule.spec).toMatchObject({
      schedule: '*/2 * * * *',
      template: { includedNamespaces: ['demo-app'], ttl: '168h0m0s' },
    });
  });
});

describe('drctl lab site down|up', () => {
  it("down stops site A's endpoint (connection refused; status shows it down on purpose); again is a no-op; up brings back 200", async () => {
    const down = await drctlCli(['lab', 'site', 'down', 'site-a', '--json']);
    expect(down.status, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ site: 'site-a', action: 'down', hard: false });
    try {
      expect((await healthz(A())).body).toBe('ECONNREFUSED');
      const again = await drctlCli(['lab', 'site', 'down', 'site-a', '--json']);
      expect(JSON.parse(again.stdout)).toMatchObject({ changed: [] });
      const st = await drctlCli(['lab', 'status', '--json']);
      expect(st.status).toBe(1);
      const app = (JSON.parse(st.stdout) as { name: string; healthy: boolean; downOnPurpose?: boolean }[]).find(
        (c) => c.name === 'site-a/app',
      );
      expect(app).toMatchObject({ healthy: false, downOnPurpose: true });
    } finally {
      const up = await drctlCli(['lab', 'site', 'up', 'site-a', '--json']);
      expect(up.status, up.stderr).toBe(0);
    }
    await until(
      'site A 200 again',
      () => healthz(A()),
      (r) => r.status === 200,
      10_000,
    );
    const again = await drctlCli(['lab', 'site', 'up', 'site-a', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ action: 'up', changed: [] });
  });

  it("down --hard makes site B's API unreachable (a burned site); up brings API, controllers, kwok and Velero back", async () => {
    const down = await drctlCli(['lab', 'site', 'down', 'site-b', '--hard', '--json']);
    expect(down.status, down.stderr).toBe(0);
    try {
      // Every node's API server and controllers, and cp1's Velero and kwok; etcd stays (its data is the point).
      const changed = JSON.parse(down.stdout).changed as string[];
      expect(changed).toEqual(
        expect.arrayContaining([
          ...['cp1', 'cp2', 'cp3'].flatMap((n) => [
            `${n}/kube-apiserver parked`,
            `${n}/kube-controller-manager parked`,
          ]),
          'cp1/velero parked',
          'cp1/kwok parked',
        ]),
      );
      expect(changed.some((c) => c.includes('etcd'))).toBe(false);
      await expect(B().core.listNamespace()).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      const up = await drctlCli(['lab', 'site', 'up', 'site-b', '--json']);
      expect(up.status, up.stderr).toBe(0);
    }
    await B().core.listNamespace();
    // The whole lab healthy again before the next test (Velero re-validates its location, kwok its nodes).
    await until(
      'lab status healthy',
      () => drctlCli(['lab', 'status', '--json']),
      (r) => r.status === 0,
      60_000,
      1000,
    );
  });

  it('a bad site name is exit 2 with one line', async () => {
    const r = await drctlCli(['lab', 'site', 'down', 'site-z']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["error: unknown site 'site-z' (lab sites: site-a, site-b)"]);
  });
});

describe('failover is possible: a real Velero restore of the demo app at site B', () => {
  it("restores the newest demo-app backup at B: Completed, PVC Bound, 3 available replicas, B's endpoint 200; then removed again", async () => {
    const backup = (await demoBackups(B()))[0];
    expect(backup, 'a demo-app backup synced to site B').toBeDefined();
    const name = `lab-test-${Date.now()}`;
    await B().custom.createNamespacedCustomObject({
      group: 'velero.io',
      version: 'v1',
      namespace: 'velero',
      plural: 'restores',
      body: {
        apiVersion: 'velero.io/v1',
        kind: 'Restore',
        metadata: { name, namespace: 'velero' },
        spec: { backupName: backup!.metadata.name, includedNamespaces: ['demo-app'] },
      },
    });
    try {
      const done = await until(
        `restore ${name} done`,
        () => velero(B()).get('restores', name),
        (r) => /Completed|Failed/.test(r.status?.phase ?? ''),
        60_000,
        500,
      );
      expect(done.status, JSON.stringify(done.status)).toMatchObject({ phase: 'Completed' });
      await until(
        'PVC Bound at B',
        () => B().core.readNamespacedPersistentVolumeClaim({ namespace: 'demo-app', name: 'demo-data' }),
        (p) => p.status?.phase === 'Bound',
        30_000,
      );
      await until(
        'nginx 3/3 available at B',
        () => B().apps.readNamespacedDeployment({ namespace: 'demo-app', name: 'nginx' }),
        (d) => d.status?.availableReplicas === 3,
        60_000,
      );
      await B().core.readNamespacedConfigMap({ namespace: 'demo-app', name: 'nginx-config' });
      await B().core.readNamespacedSecret({ namespace: 'demo-app', name: 'db-credentials' });
      const h = await until(
        "B's endpoint 200",
        () => healthz(B()),
        (r) => r.status === 200,
        30_000,
      );
      expect(h.body).toMatch(/^ok site-b: [1-9]\d* ready endpoints$/);
    } finally {
      await B()
        .custom.deleteNamespacedCustomObject({
          group: 'velero.io',
          version: 'v1',
          namespace: 'velero',
          plural: 'restores',
          name,
        })
        .catch(() => undefined);
      // The restored PV (Retain) would stay Released with a claimRef to the deleted PVC: remove it too.
      await clearSiteB();
    }
    await until(
      "B's endpoint 503 again",
      () => healthz(B()),
      (r) => r.status === 503,
      10_000,
    );
  });
});
