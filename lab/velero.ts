// Velero's side of the sites' objects (its server runs as a static pod: lab/controlplane.ts): its
// CRDs, its credentials and storage location `default` (one bucket for both sites, so each sees the
// other's backups), and at the primary site the demo app's first backup and its Schedule.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { type KubernetesObject, PatchStrategy } from '@kubernetes/client-node';
import { VELERO_NS } from './controlplane.ts';
import { DEMO_NS } from './demo-app.ts';
import { ensure, type Obj, objectApi } from './kube.ts';
import { bin, LAB_DIR, type LabSite, SERVICES, VERSIONS } from './topology.ts';

const run = promisify(execFile);
export const BSL = 'default';
export const SCHEDULE = 'demo-app';
export const INITIAL_BACKUP = 'demo-app-initial';

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
export async function applyVeleroCrds(site: LabSite): Promise<void> {
  const file = veleroCrdsFile();
  const kubectl = join(bin.kubeDir, 'kubectl');
  const env = { ...process.env, KUBECONFIG: site.kubeconfig };
  await run(kubectl, ['apply', '--server-side', '--field-manager=drctl-lab', '-f', file], { env });
  await run(kubectl, ['wait', '--for=condition=Established', '--timeout=60s', '-f', file], { env });
}

export function veleroConfig(minio: { accessKeyId: string; secretAccessKey: string }): Obj[] {
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

// Kept a week (the audit's retention floor: a problem found days later still has a good backup).
// snapshotVolumes false: the lab has no volume snapshotter and its pods no node agent (kwok), so the
// audit's pv-backups row fails here, as it should: the demo app's volume data is not in the backups.
const backupTemplate = { includedNamespaces: [DEMO_NS], storageLocation: BSL, ttl: '168h0m0s', snapshotVolumes: false };

interface VeleroBackup {
  metadata: { name: string; creationTimestamp?: string };
  spec?: { includedNamespaces?: string[] };
  status?: { phase?: string; errors?: number; failureReason?: string; completionTimestamp?: string };
}

async function storageLocationMode(site: LabSite): Promise<string | undefined> {
  const bsl = await objectApi(site).read<KubernetesObject & { spec?: { accessMode?: string } }>({
    apiVersion: 'velero.io/v1',
    kind: 'BackupStorageLocation',
    metadata: { name: BSL, namespace: VELERO_NS },
  });
  return bsl.spec?.accessMode;
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
  // A fenced site (a failover made its BackupStorageLocation ReadOnly) takes no backup, by design:
  // its stale newest one is what it has, and a catch-up would only fail validation.
  const fenced = done !== undefined && (await storageLocationMode(site)) === 'ReadOnly';
  if (fenced && ageMs > STALE_AFTER_MS)
    log(
      `${site.name} is fenced (BackupStorageLocation ReadOnly): no catch-up backup; newest is ${done!.metadata.name}`,
    );
  if (!done || (ageMs > STALE_AFTER_MS && !fenced)) {
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
  const schedule = {
    apiVersion: 'velero.io/v1',
    kind: 'Schedule',
    metadata: { name: SCHEDULE, namespace: VELERO_NS },
    spec: {
      schedule: '*/2 * * * *',
      skipImmediately: true,
      useOwnerReferencesInBackup: false,
      template: backupTemplate,
    },
  };
  // A lab made before the template changed keeps its Schedule: bring its spec to this one.
  if (!(await ensure(api, schedule)))
    await api.patch(schedule, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
  return { backup: done!.metadata.name };
}
