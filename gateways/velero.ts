// VeleroGateway: Velero's custom resources (velero.io/v1) on one site's API server: backups,
// backup storage locations, restores, and the download requests Velero answers with presigned URLs
// for a restore's per-item results and a backup's resource list.
import { gunzipSync } from 'node:zlib';
import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { FailureType, failure } from '../common/errors.ts';
import type { KubeGateway } from './kube.ts';

const GROUP = 'velero.io';
const VERSION = 'v1';

export interface VeleroObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    uid?: string;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface BackupInfo {
  name: string;
  phase: string;
  storageLocation?: string;
  includedNamespaces: string[];
  startedAt?: string;
  completedAt?: string;
  expiresAt?: string;
  itemsBackedUp?: number;
  errors: number;
  warnings: number;
  schedule?: string;
  failureReason?: string;
  validationErrors?: string[];
}

export interface RestoreInfo {
  name: string;
  phase: string;
  backupName?: string;
  startedAt?: string;
  completedAt?: string;
  itemsRestored?: number;
  totalItems?: number;
  errors: number;
  warnings: number;
  failureReason?: string;
}

/** Velero's restore results file: messages per namespace, cluster-scoped and Velero's own. */
export interface RestoreResults {
  errors: { velero?: string[]; cluster?: string[]; namespaces?: Record<string, string[]> };
  warnings: { velero?: string[]; cluster?: string[]; namespaces?: Record<string, string[]> };
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const num = (v: unknown) => (typeof v === 'number' ? v : undefined);

export function backupInfo(o: VeleroObject): BackupInfo {
  const s = o.status ?? {};
  const progress = (s.progress ?? {}) as Record<string, unknown>;
  return {
    name: o.metadata.name,
    phase: str(s.phase) ?? 'New',
    storageLocation: str(o.spec?.storageLocation),
    includedNamespaces: (o.spec?.includedNamespaces as string[] | undefined) ?? ['*'],
    startedAt: str(s.startTimestamp),
    completedAt: str(s.completionTimestamp),
    expiresAt: str(s.expiration),
    itemsBackedUp: num(progress.itemsBackedUp),
    errors: num(s.errors) ?? 0,
    warnings: num(s.warnings) ?? 0,
    schedule: o.metadata.labels?.['velero.io/schedule-name'],
    failureReason: str(s.failureReason),
    validationErrors: s.validationErrors as string[] | undefined,
  };
}

export function restoreInfo(o: VeleroObject): RestoreInfo {
  const s = o.status ?? {};
  const progress = (s.progress ?? {}) as Record<string, unknown>;
  return {
    name: o.metadata.name,
    phase: str(s.phase) ?? 'New',
    backupName: str(o.spec?.backupName),
    startedAt: str(s.startTimestamp),
    completedAt: str(s.completionTimestamp),
    itemsRestored: num(progress.itemsRestored),
    totalItems: num(progress.totalItems),
    errors: num(s.errors) ?? 0,
    warnings: num(s.warnings) ?? 0,
    failureReason: str(s.failureReason),
  };
}

/** The label on everything drctl creates in Velero. */
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'drctl' };

export interface BackupSpec {
  name: string;
  namespaces: string[];
  storageLocation: string;
}

/** A Backup of `namespaces` without volume snapshots, kept 30 days. */
export function backupResource(b: BackupSpec): Omit<VeleroObject, 'apiVersion' | 'kind'> {
  return {
    metadata: { name: b.name, labels: MANAGED_BY },
    spec: {
      includedNamespaces: b.namespaces,
      storageLocation: b.storageLocation,
      snapshotVolumes: false,
      ttl: '720h0m0s',
    },
  };
}

export interface RestoreSpec {
  name: string;
  backup: string;
  namespaces: string[];
  /** What Velero does with an object that exists: `update` it to the backup's (a failover's target), or leave it (`none`). */
  existingResourcePolicy?: 'update' | 'none';
}

/** A Restore of `namespaces` from `backup` that updates what exists (unless told) and leaves volumes alone. */
export function restoreResource(r: RestoreSpec): Omit<VeleroObject, 'apiVersion' | 'kind'> {
  return {
    metadata: { name: r.name, labels: MANAGED_BY },
    // Endpoints and EndpointSlices name the source site's pod IPs: restored, they would stay
    // stale next to the ones the target's controllers make (and fool the endpoint check).
    spec: {
      backupName: r.backup,
      includedNamespaces: r.namespaces,
      excludedResources: ['endpoints', 'endpointslices.discovery.k8s.io'],
      existingResourcePolicy: r.existingResourcePolicy ?? 'update',
      restorePVs: false,
    },
  };
}

/** A merge patch of a BackupStorageLocation: its access mode, and annotations (null removes one). */
export function storageLocationPatch(p: {
  accessMode?: string;
  annotations?: Record<string, string | null>;
}): Record<string, unknown> {
  return {
    ...(p.annotations ? { metadata: { annotations: p.annotations } } : {}),
    ...(p.accessMode ? { spec: { accessMode: p.accessMode } } : {}),
  };
}

export class VeleroGateway {
  private readonly api: CustomObjectsApi;

  constructor(
    private readonly kube: KubeGateway,
    readonly namespace = 'velero',
  ) {
    this.api = kube.kc.makeApiClient(CustomObjectsApi);
  }

  private get label() {
    return `${this.kube.target.label}/velero`;
  }

  private translate(err: unknown, what: string) {
    if (err instanceof ApiException) {
      return failure(
        FailureType.VeleroError,
        `${this.label}: ${what}: HTTP ${err.code}: ${String(err.body).slice(0, 300)}`,
        { code: err.code },
      );
    }
    return failure(FailureType.VeleroError, `${this.label}: ${what}: ${(err as Error).message}`);
  }

  async list(plural: string, labelSelector?: string): Promise<VeleroObject[]> {
    try {
      const r = (await this.api.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural,
        labelSelector,
      })) as { items: VeleroObject[] };
      return r.items;
    } catch (err) {
      throw this.translate(err, `list ${plural}`);
    }
  }

  /** The object, or undefined when it does not exist. */
  async get(plural: string, name: string): Promise<VeleroObject | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural,
        name,
      })) as VeleroObject;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw this.translate(err, `get ${plural}/${name}`);
    }
  }

  /** Creates the object; if one with the same name exists already (a retried activity), returns that one. */
  async create(plural: string, kind: string, body: Omit<VeleroObject, 'apiVersion' | 'kind'>): Promise<VeleroObject> {
    try {
      return (await this.api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural,
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind,
          ...body,
          metadata: { ...body.metadata, namespace: this.namespace },
        },
      })) as VeleroObject;
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) {
        const existing = await this.get(plural, body.metadata.name);
        if (existing) return existing;
      }
      throw this.translate(err, `create ${plural}/${body.metadata.name}`);
    }
  }

  async mergePatch(plural: string, name: string, patch: Record<string, unknown>): Promise<VeleroObject> {
    try {
      return (await this.api.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace: this.namespace, plural, name, body: patch },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )) as VeleroObject;
    } catch (err) {
      throw this.translate(err, `patch ${plural}/${name}`);
    }
  }

  async delete(plural: string, name: string): Promise<void> {
    try {
      await this.api.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural,
        name,
      });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return;
      throw this.translate(err, `delete ${plural}/${name}`);
    }
  }

  async backups(): Promise<BackupInfo[]> {
    return (await this.list('backups')).map(backupInfo);
  }

  async backup(name: string): Promise<BackupInfo | undefined> {
    const o = await this.get('backups', name);
    return o && backupInfo(o);
  }

  async restore(name: string): Promise<RestoreInfo | undefined> {
    const o = await this.get('restores', name);
    return o && restoreInfo(o);
  }

  /** Creates the Backup (a retried call finds the one it created). */
  async createBackup(b: BackupSpec): Promise<void> {
    await this.create('backups', 'Backup', backupResource(b));
  }

  /** Creates the Restore (a retried call finds the one it created). */
  async createRestore(r: RestoreSpec): Promise<void> {
    await this.create('restores', 'Restore', restoreResource(r));
  }

  async patchStorageLocation(
    name: string,
    patch: { accessMode?: string; annotations?: Record<string, string | null> },
  ): Promise<void> {
    await this.mergePatch('backupstoragelocations', name, storageLocationPatch(patch));
  }

  async storageLocation(name: string): Promise<
    | {
        name: string;
        phase?: string;
        accessMode: string;
        lastValidated?: string;
        message?: string;
        annotations: Record<string, string>;
      }
    | undefined
  > {
    const o = await this.get('backupstoragelocations', name);
    if (!o) return undefined;
    return {
      name,
      phase: str(o.status?.phase),
      accessMode: str(o.spec?.accessMode) ?? 'ReadWrite',
      lastValidated: str(o.status?.lastValidationTime),
      message: str(o.status?.message),
      annotations: o.metadata.annotations ?? {},
    };
  }

  /**
   * Asks Velero for one of its stored files (RestoreResults, BackupResourceList, ...) and returns it
   * parsed: Velero answers a DownloadRequest with a presigned URL to the gzipped JSON in the bucket.
   */
  async download<T>(
    kind: 'RestoreResults' | 'BackupResourceList' | 'RestoreResourceList',
    name: string,
    timeoutMs = 30_000,
  ): Promise<T> {
    const reqName = `drctl-${kind.toLowerCase()}-${name}`.slice(0, 63).replace(/-+$/, '');
    await this.delete('downloadrequests', reqName);
    await this.create('downloadrequests', 'DownloadRequest', {
      metadata: { name: reqName },
      spec: { target: { kind, name } },
    });
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        const o = await this.get('downloadrequests', reqName);
        const url = str(o?.status?.downloadURL);
        if (url && o?.status?.phase === 'Processed') {
          const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
          if (!res.ok)
            throw failure(FailureType.VeleroError, `${this.label}: download ${kind} ${name}: HTTP ${res.status}`);
          return JSON.parse(gunzipSync(Buffer.from(await res.arrayBuffer())).toString('utf8')) as T;
        }
        if (Date.now() > deadline)
          throw failure(
            FailureType.VeleroError,
            `${this.label}: no download URL for ${kind} ${name} within ${timeoutMs / 1000} s`,
          );
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      await this.delete('downloadrequests', reqName).catch(() => undefined);
    }
  }
}
