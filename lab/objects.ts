// What `drctl lab up` creates through each site's API server: kwok's fake worker nodes, a CoreDNS
// Deployment, Velero's CRDs and configuration (credentials + a storage location in the shared
// bucket), and at site A the demo workload, a Velero Schedule and a first backup. Every object is
// created only when absent and never updated: a rerun of `lab up` changes nothing, and whatever a
// failover or drill did to these objects (a scaled Deployment, a read-only storage location) stays.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ApiException, KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { KWOK_NODES, KWOK_TAINT, VELERO_NS } from './controlplane.ts';
import { bin, LAB_DIR, type LabSite, SERVICES, VERSIONS } from './topology.ts';

const run = promisify(execFile);
export const DEMO_NS = 'demo-app';
export const BSL = 'default';
export const SCHEDULE = 'demo-app';
export const INITIAL_BACKUP = 'demo-app-initial';
const STORAGE_CLASS = 'lab-static';
const kwokToleration = { key: KWOK_TAINT.key, operator: 'Exists', effect: KWOK_TAINT.effect };

type Obj = KubernetesObject & Record<string, unknown>;

export function objectApi(site: LabSite): KubernetesObjectApi {
  const kc = new KubeConfig();
  kc.loadFromFile(site.kubeconfig);
  return KubernetesObjectApi.makeApiClient(kc);
}

const code = (err: unknown) => (err instanceof ApiException ? err.code : undefined);

/**
 * Creates the object unless it exists; true when this call created it. Looks first: a create of an
 * existing object is not always a 409 (a Service with a fixed clusterIP fails validation, 422).
 */
async function ensure(api: KubernetesObjectApi, obj: Obj, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const exists = await api
        .read({
          apiVersion: obj.apiVersion!,
          kind: obj.kind!,
          metadata: { name: obj.metadata!.name!, namespace: obj.metadata?.namespace },
        })
        .then(
          () => true,
          (err: unknown) => (code(err) === 404 ? false : Promise.reject(err)),
        );
      if (exists) return false;
      await api.create(obj);
      return true;
    } catch (err) {
      if (code(err) === 409) return false;
      const invalid = code(err) === 400 || code(err) === 422;
      // A CRD just applied (discovery 404), a namespace the controllers have not finished setting up
      // (no default ServiceAccount yet), a refused connection while the API server starts: retry.
      if (invalid || Date.now() > deadline) {
        const body = err instanceof ApiException ? ` ${String(err.body).slice(0, 300)}` : '';
        throw new Error(
          `create ${obj.kind} ${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata?.name}: ${(err as Error).message}${body}`,
        );
      }
      await sleep(300);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Velero's CRDs

/** `velero install --crds-only --dry-run -o yaml` for this Velero version, made once per lab. */
function veleroCrdsFile(): string {
  const file = join(LAB_DIR, 'velero', `crds-${VERSIONS.velero}.yaml`);
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    const yaml = execFileSync(bin.velero, ['install', '--crds-only', '--dry-run', '-o', 'yaml'], {
      encoding: 'utf8',
      env: { ...process.env, KUBECONFIG: '/dev/null' },
    });
    writeFileSync(`${file}.tmp`, yaml);
    renameSync(`${file}.tmp`, file);
  }
  return file;
}

/** Server-side apply with the lab's kubectl: a no-op when they are already there as written. */
async function applyVeleroCrds(site: LabSite): Promise<void> {
  const file = veleroCrdsFile();
  const kubectl = join(bin.kubeDir, 'kubectl');
  const env = { ...process.env, KUBECONFIG: site.kubeconfig };
  await run(kubectl, ['apply', '--server-side', '--field-manager=drctl-lab', '-f', file], { env });
  await run(kubectl, ['wait', '--for=condition=Established', '--timeout=60s', '-f', file], { env });
}

// ---------------------------------------------------------------------------------------------
// Objects

function kwokNode(site: LabSite, name: string): Obj {
  const resources = { cpu: '16', memory: '64Gi', pods: '110' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        type: 'kwok',
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node-role.kubernetes.io/agent': '',
        'topology.kubernetes.io/zone': site.name,
      },
      annotations: { [KWOK_TAINT.key]: KWOK_TAINT.value, 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: { taints: [KWOK_TAINT] },
    status: { allocatable: resources, capacity: resources },
  };
}

function coreDns(): Obj[] {
  const labels = { 'k8s-app': 'kube-dns' };
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: 'kube-system', labels },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            priorityClassName: 'system-cluster-critical',
            nodeSelector: { type: 'kwok' },
            tolerations: [kwokToleration, { key: 'CriticalAddonsOnly', operator: 'Exists' }],
            containers: [
              {
                name: 'coredns',
                image: 'registry.k8s.io/coredns/coredns:v1.12.1',
                args: ['-conf', '/etc/coredns/Corefile'],
                ports: [
                  { name: 'dns', containerPort: 53, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                ],
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels },
      spec: {
        selector: labels,
        clusterIP: '10.96.0.10',
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        ],
      },
    },
  ];
}

function veleroConfig(minio: { accessKeyId: string; secretAccessKey: string }): Obj[] {
  const c = SERVICES.minio;
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'cloud-credentials', namespace: VELERO_NS },
      type: 'Opaque',
      // AWS credentials-file format, what velero-plugin-for-aws reads.
      stringData: {
        cloud: `[default]\naws_access_key_id=${minio.accessKeyId}\naws_secret_access_key=${minio.secretAccessKey}\n`,
      },
    },
    {
      apiVersion: 'velero.io/v1',
      kind: 'BackupStorageLocation',
      metadata: { name: BSL, namespace: VELERO_NS },
      spec: {
        provider: 'aws',
        default: true,
        accessMode: 'ReadWrite',
        objectStorage: { bucket: c.veleroBucket },
        config: { region: 'minio', s3ForcePathStyle: 'true', s3Url: `http://${c.ip}:${c.port}` },
        credential: { name: 'cloud-credentials', key: 'cloud' },
      },
    },
    {
      // In a real cluster Velero runs as this Deployment, and the server reads it back (its image
      // and labels) while restoring pods: without it a restore ends PartiallyFailed with
      // `deployments.apps "velero" not found`. The lab runs the server as a static pod on cp1, so
      // this one stays at 0 replicas and only answers that lookup.
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'velero', namespace: VELERO_NS, labels: { component: 'velero' } },
      spec: {
        replicas: 0,
        selector: { matchLabels: { component: 'velero', deploy: 'velero' } },
        template: {
          metadata: { labels: { component: 'velero', deploy: 'velero' } },
          spec: { containers: [{ name: 'velero', image: `velero/velero:${VERSIONS.velero}` }] },
        },
      },
    },
  ];
}

// Why site B needs no PersistentVolume of its own: Velero backs up a PVC's bound PV with it, and a
// PV that has no snapshot (none here: snapshots are off) and reclaim policy Retain is restored
// "as-is" (Velero's restore: handleSkippedPVHasRetainPolicy) with its claimRef's uid cleared, so
// site B's PV controller binds it to the restored PVC. A pre-created PV at site B would be worse:
// Velero skips a PV that already exists, and after one failover drill that PV is Released (its
// claimRef names the deleted PVC) and would never bind again. (With reclaim policy Delete, Velero
// would instead leave the PVC to dynamic provisioning, which lab-static does not do.)
function demoApp(): { first: Obj[]; then: Obj[] } {
  const labels = { app: 'nginx' };
  const ns = DEMO_NS;
  return {
    first: [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels: { 'app.kubernetes.io/part-of': 'drctl-lab-demo' } },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'demo-data-pv', labels: { app: 'nginx' } },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: STORAGE_CLASS,
          hostPath: { path: '/var/lib/drctl-lab/demo-data', type: 'DirectoryOrCreate' },
          claimRef: { namespace: ns, name: 'demo-data' },
        },
      },
    ],
    then: [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'nginx-config', namespace: ns, labels },
        data: {
          'default.conf':
            'server {\n  listen 80;\n  location / { root /usr/share/nginx/html; }\n  location /healthz { return 200 "ok\\n"; }\n}\n',
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'db-credentials', namespace: ns, labels },
        type: 'Opaque',
        stringData: { username: 'shop', password: 'not-a-real-password', host: 'db.demo-app.svc' },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'demo-data', namespace: ns, labels },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: STORAGE_CLASS,
          volumeName: 'demo-data-pv',
          resources: { requests: { storage: '1Gi' } },
        },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'nginx', namespace: ns, labels },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              nodeSelector: { type: 'kwok' },
              tolerations: [kwokToleration],
              containers: [
                {
                  name: 'nginx',
                  image: 'nginx:1.27-alpine',
                  ports: [{ containerPort: 80 }],
                  envFrom: [{ secretRef: { name: 'db-credentials' } }],
                  volumeMounts: [
                    { name: 'config', mountPath: '/etc/nginx/conf.d' },
                    { name: 'data', mountPath: '/usr/share/nginx/html' },
                  ],
                },
              ],
              volumes: [
                { name: 'config', configMap: { name: 'nginx-config' } },
                { name: 'data', persistentVolumeClaim: { claimName: 'demo-data' } },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'nginx', namespace: ns, labels },
        spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 80 }] },
      },
    ],
  };
}

const backupTemplate = { includedNamespaces: [DEMO_NS], storageLocation: BSL, ttl: '72h0m0s', snapshotVolumes: false };

/**
 * Everything the site needs before its Velero starts, and (primary site) the demo workload.
 * Returns the objects this call created ("kind/name"), empty on a rerun.
 */
export async function ensureSiteObjects(
  site: LabSite,
  minio: { accessKeyId: string; secretAccessKey: string },
): Promise<string[]> {
  const api = objectApi(site);
  const created: string[] = [];
  const all = async (objs: Obj[]) => {
    const made = await Promise.all(objs.map((o) => ensure(api, o)));
    objs.forEach((o, i) => made[i] && created.push(`${o.kind}/${o.metadata?.name}`));
  };
  const crds = applyVeleroCrds(site);
  await all([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: VELERO_NS } },
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: STORAGE_CLASS },
      provisioner: 'kubernetes.io/no-provisioner',
      reclaimPolicy: 'Retain',
      volumeBindingMode: 'Immediate',
    },
    ...KWOK_NODES.map((n) => kwokNode(site, n)),
    ...(site.role === 'primary' ? demoApp().first : []),
  ]);
  await all([...coreDns(), ...(site.role === 'primary' ? demoApp().then : [])]);
  await crds;
  await all(veleroConfig(minio));
  created.push(...(await reviveStalePods(api)));
  return created;
}

/**
 * While kwok was down (lab down, a killed session) the node lifecycle controller marked its pods
 * Ready=False; kwok never clears that mark, so Services lose their endpoints for good. Such pods
 * are deleted (grace 0) and their ReplicaSets make new ones, which kwok starts.
 */
async function reviveStalePods(api: KubernetesObjectApi): Promise<string[]> {
  type Pod = Obj & { status?: { conditions?: { type: string; status: string }[] } };
  const pods = (await api.list<Pod>('v1', 'Pod')).items;
  const stale = pods.filter((p) => {
    const c = new Map((p.status?.conditions ?? []).map((x) => [x.type, x.status]));
    // Only pods a controller owns come back by themselves.
    return (
      c.get('Ready') === 'False' &&
      c.get('ContainersReady') === 'True' &&
      (p.metadata?.ownerReferences?.length ?? 0) > 0
    );
  });
  await Promise.all(
    stale.map((p) =>
      api
        .delete(
          { apiVersion: 'v1', kind: 'Pod', metadata: { name: p.metadata?.name, namespace: p.metadata?.namespace } },
          undefined,
          undefined,
          0,
        )
        .catch((err: unknown) => {
          if (code(err) !== 404) throw err;
        }),
    ),
  );
  return stale.map((p) => `Pod/${p.metadata?.namespace}/${p.metadata?.name} (recreated: stale NotReady mark)`);
}

interface VeleroBackup {
  metadata: { name: string; creationTimestamp?: string };
  spec?: { includedNamespaces?: string[] };
  status?: { phase?: string; errors?: number; failureReason?: string; completionTimestamp?: string };
}

export async function backups(site: LabSite): Promise<VeleroBackup[]> {
  const r = await objectApi(site).list<VeleroBackup & KubernetesObject>('velero.io/v1', 'Backup', VELERO_NS);
  return r.items as VeleroBackup[];
}

/** The Schedule runs every 2 minutes: a newest backup older than this means runs were missed. */
const STALE_AFTER_MS = 3 * 60_000;

const isDemoBackup = (b: VeleroBackup) => (b.spec?.includedNamespaces ?? []).includes(DEMO_NS);

/**
 * At the primary site: a first backup of the demo app (unless a Completed one exists; another if
 * the newest is stale because the lab was stopped), waited until Completed, then the Schedule
 * (every 2 minutes, well inside the e-commerce RPO of 5 minutes; skipImmediately, the first backup
 * is the one just taken). Returns the name of the newest Completed demo-app backup.
 */
export async function ensureDemoBackups(
  site: LabSite,
  timeoutMs = 120_000,
  log: (m: string) => void = () => undefined,
): Promise<{ backup: string }> {
  const api = objectApi(site);
  const deadline = Date.now() + timeoutMs;
  const newest = (bs: VeleroBackup[]) =>
    bs
      .filter((b) => isDemoBackup(b) && b.status?.phase === 'Completed')
      .sort((a, b) => String(b.status?.completionTimestamp).localeCompare(String(a.status?.completionTimestamp)))[0];
  const all = await backups(site);
  let done = newest(all);
  // A lab that was stopped missed its schedule's runs: its newest backup would be older than the
  // e-commerce RPO (5 min), which a site running its schedule never is. Catch up once.
  const ageMs = done ? Date.now() - Date.parse(String(done.status?.completionTimestamp)) : 0;
  if (!done || ageMs > STALE_AFTER_MS) {
    let name = done ? `${SCHEDULE}-catchup-${Math.floor(Date.now() / 1000)}` : INITIAL_BACKUP;
    const existing = all.find((b) => b.metadata.name === name);
    if (existing && /Failed|Deleting/.test(existing.status?.phase ?? ''))
      name = `${INITIAL_BACKUP}-${Math.floor(Date.now() / 1000)}`;
    log(
      done
        ? `newest Velero backup of ${DEMO_NS} at ${site.name} is ${Math.round(ageMs / 60_000)} min old (the lab was stopped): taking ${name} ...`
        : `taking the first Velero backup of ${DEMO_NS} at ${site.name} (${name}) ...`,
    );
    await ensure(api, {
      apiVersion: 'velero.io/v1',
      kind: 'Backup',
      metadata: { name, namespace: VELERO_NS },
      spec: backupTemplate,
    });
    for (;;) {
      const b = (await backups(site)).find((x) => x.metadata.name === name);
      const phase = b?.status?.phase ?? 'New';
      if (phase === 'Completed') {
        done = b;
        break;
      }
      if (/Failed/.test(phase))
        throw new Error(
          `Velero backup ${name} at ${site.name}: ${phase} ${b?.status?.failureReason ?? ''} (velero log: ${site.nodes[0]!.root}/var/log/velero.log)`,
        );
      if (Date.now() > deadline)
        throw new Error(`Velero backup ${name} at ${site.name} still ${phase} after ${timeoutMs / 1000} s`);
      await sleep(500);
    }
  }
  await ensure(api, {
    apiVersion: 'velero.io/v1',
    kind: 'Schedule',
    metadata: { name: SCHEDULE, namespace: VELERO_NS },
    spec: {
      schedule: '*/2 * * * *',
      skipImmediately: true,
      useOwnerReferencesInBackup: false,
      template: backupTemplate,
    },
  });
  return { backup: done!.metadata.name };
}
