// KubeGateway: the few Kubernetes API calls drctl needs, over the site's kubeconfig (client cert).
import { request } from 'node:https';
import {
  AdmissionregistrationV1Api,
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1PolicyRule,
  type V1ValidatingAdmissionPolicy,
  type V1ValidatingAdmissionPolicyBinding,
} from '@kubernetes/client-node';
import { FailureType, failure } from '../common/errors.ts';

export interface KubeTarget {
  label: string;
  kubeconfig: string;
  context?: string;
}

export interface DeploymentState {
  name: string;
  replicas: number;
  available: number;
  annotations: Record<string, string>;
}

export interface PodState {
  name: string;
  phase: string;
  ready: boolean;
  /** Why the scheduler could not place it (e.g. "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector"). */
  unschedulable?: string;
}

export interface PersistentVolumeState {
  name: string;
  phase: string;
  reclaimPolicy: string;
  claim?: { namespace: string; name: string; uid?: string };
  annotations: Record<string, string>;
}

/** The workloads fencing stops: Deployments and StatefulSets by their replicas, CronJobs by `suspend`. */
export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'CronJob';

export interface WorkloadState {
  kind: WorkloadKind;
  namespace: string;
  name: string;
  /** Deployments and StatefulSets (Kubernetes' default when unset: 1). */
  replicas?: number;
  /** CronJobs (Kubernetes' default when unset: false). */
  suspend?: boolean;
  annotations: Record<string, string>;
  /** Velero labels what a restore created or updated with `velero.io/restore-name`. */
  labels?: Record<string, string>;
}

/** What one merge patch of a workload changes: its replicas or suspend, and annotations (null removes one). */
export interface WorkloadChange {
  replicas?: number;
  suspend?: boolean;
  annotations?: Record<string, string | null>;
}

/** The merge-patch body of a WorkloadChange. Pure: the unit tests check the bodies fencing sends. */
export function workloadPatch(c: WorkloadChange): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  if (c.replicas !== undefined) spec.replicas = c.replicas;
  if (c.suspend !== undefined) spec.suspend = c.suspend;
  return {
    ...(c.annotations ? { metadata: { annotations: c.annotations } } : {}),
    ...(Object.keys(spec).length ? { spec } : {}),
  };
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class KubeGateway {
  readonly kc = new KubeConfig();
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly batch: BatchV1Api;
  private readonly discovery: DiscoveryV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly rbac: RbacAuthorizationV1Api;

  constructor(readonly target: KubeTarget) {
    this.kc.loadFromFile(target.kubeconfig);
    if (target.context) this.kc.setCurrentContext(target.context);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.apps = this.kc.makeApiClient(AppsV1Api);
    this.batch = this.kc.makeApiClient(BatchV1Api);
    this.discovery = this.kc.makeApiClient(DiscoveryV1Api);
    this.admission = this.kc.makeApiClient(AdmissionregistrationV1Api);
    this.rbac = this.kc.makeApiClient(RbacAuthorizationV1Api);
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.translate(err, what);
    }
  }

  /** undefined when the API answers 404. */
  private async maybe<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw this.translate(err, what);
    }
  }

  async nodes(): Promise<{ name: string; ready: boolean }[]> {
    const list = await this.call('list nodes', () => this.core.listNode());
    return list.items.map((n) => ({
      name: n.metadata?.name ?? '',
      ready: (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    }));
  }

  /** The namespace's phase, labels and creation time; undefined when it does not exist. */
  async namespace(
    ns: string,
  ): Promise<{ phase: string; labels: Record<string, string>; createdAt?: string } | undefined> {
    const n = await this.maybe(`get namespace ${ns}`, () => this.core.readNamespace({ name: ns }));
    return n
      ? {
          phase: n.status?.phase ?? 'Active',
          labels: n.metadata?.labels ?? {},
          createdAt: n.metadata?.creationTimestamp ? new Date(n.metadata.creationTimestamp).toISOString() : undefined,
        }
      : undefined;
  }

  /** Sets labels on a namespace (a merge patch: other labels stay). */
  async labelNamespace(ns: string, labels: Record<string, string>): Promise<void> {
    await this.call(`label namespace ${ns}`, () =>
      this.core.patchNamespace({ name: ns, body: { metadata: { labels } } }, mergePatch),
    );
  }

  async namespacePhase(ns: string): Promise<string | undefined> {
    const n = await this.maybe(`get namespace ${ns}`, () => this.core.readNamespace({ name: ns }));
    return n ? (n.status?.phase ?? 'Active') : undefined;
  }

  /** Deletes the namespace (idempotent) and waits until it is gone. */
  async deleteNamespace(ns: string, timeoutMs = 120_000, onWait?: () => void): Promise<void> {
    await this.maybe(`delete namespace ${ns}`, () => this.core.deleteNamespace({ name: ns }));
    const deadline = Date.now() + timeoutMs;
    while ((await this.namespacePhase(ns)) !== undefined) {
      if (Date.now() > deadline)
        throw failure(
          FailureType.KubeApiError,
          `${this.target.label}: namespace ${ns} still terminating after ${timeoutMs / 1000} s`,
        );
      onWait?.();
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Those of `namespaces` that exist. */
  async existingNamespaces(namespaces: string[]): Promise<string[]> {
    const found = await Promise.all(namespaces.map(async (ns) => ((await this.namespacePhase(ns)) ? ns : undefined)));
    return found.filter((ns): ns is string => ns !== undefined);
  }

  /** Deployments of several namespaces, each with its namespace (a missing namespace lists none). */
  async deploymentsIn(namespaces: string[]): Promise<(DeploymentState & { namespace: string })[]> {
    const lists = await Promise.all(
      namespaces.map(async (ns) => (await this.deployments(ns)).map((d) => ({ ...d, namespace: ns }))),
    );
    return lists.flat();
  }

  async deployments(ns: string): Promise<DeploymentState[]> {
    const list = await this.call(`list deployments in ${ns}`, () =>
      this.apps.listNamespacedDeployment({ namespace: ns }),
    );
    return list.items.map((d) => ({
      name: d.metadata?.name ?? '',
      replicas: d.spec?.replicas ?? 1,
      available: d.status?.availableReplicas ?? 0,
      annotations: d.metadata?.annotations ?? {},
    }));
  }

  /**
   * `kubectl rollout restart`: a new pod-template annotation makes the Deployment replace its pods.
   * Returns what happened: restarted, or why not (missing, scaled to 0: nothing runs to restart).
   */
  async rolloutRestart(ns: string, name: string, at = new Date()): Promise<'restarted' | 'not found' | 'scaled to 0'> {
    const d = await this.maybe(`get deployment ${ns}/${name}`, () =>
      this.apps.readNamespacedDeployment({ namespace: ns, name }),
    );
    if (!d) return 'not found';
    if ((d.spec?.replicas ?? 1) === 0) return 'scaled to 0';
    const body = {
      spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': at.toISOString() } } } },
    };
    await this.call(`restart deployment ${ns}/${name}`, () =>
      this.apps.patchNamespacedDeployment({ namespace: ns, name, body }, mergePatch),
    );
    return 'restarted';
  }

  /** Sets replicas and annotations (null removes one) in one merge patch. */
  async patchDeployment(
    ns: string,
    name: string,
    patch: { replicas?: number; annotations?: Record<string, string | null> },
  ): Promise<void> {
    await this.patchWorkload({ kind: 'Deployment', namespace: ns, name }, patch);
  }

  /** The Deployments, StatefulSets and CronJobs of several namespaces (a missing namespace lists none). */
  async workloadsIn(namespaces: string[]): Promise<WorkloadState[]> {
    const lists = await Promise.all(
      namespaces.map(async (namespace) => {
        const [deps, sets, crons] = await Promise.all([
          this.call(`list deployments in ${namespace}`, () => this.apps.listNamespacedDeployment({ namespace })),
          this.call(`list statefulsets in ${namespace}`, () => this.apps.listNamespacedStatefulSet({ namespace })),
          this.call(`list cronjobs in ${namespace}`, () => this.batch.listNamespacedCronJob({ namespace })),
        ]);
        const meta = (o: {
          metadata?: { name?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
        }) => ({
          namespace,
          name: o.metadata?.name ?? '',
          annotations: o.metadata?.annotations ?? {},
          labels: o.metadata?.labels ?? {},
        });
        return [
          ...deps.items.map((d) => ({ kind: 'Deployment' as const, ...meta(d), replicas: d.spec?.replicas ?? 1 })),
          ...sets.items.map((d) => ({ kind: 'StatefulSet' as const, ...meta(d), replicas: d.spec?.replicas ?? 1 })),
          ...crons.items.map((c) => ({ kind: 'CronJob' as const, ...meta(c), suspend: c.spec?.suspend ?? false })),
        ];
      }),
    );
    return lists.flat();
  }

  /** One merge patch of a workload (workloadPatch's body). */
  async patchWorkload(w: Pick<WorkloadState, 'kind' | 'namespace' | 'name'>, change: WorkloadChange): Promise<void> {
    const body = workloadPatch(change);
    const { namespace, name } = w;
    await this.call(`patch ${w.kind.toLowerCase()} ${namespace}/${name}`, async () => {
      if (w.kind === 'Deployment') await this.apps.patchNamespacedDeployment({ namespace, name, body }, mergePatch);
      else if (w.kind === 'StatefulSet')
        await this.apps.patchNamespacedStatefulSet({ namespace, name, body }, mergePatch);
      else await this.batch.patchNamespacedCronJob({ namespace, name, body }, mergePatch);
    });
  }

  /** Services with a selector, and how many ready endpoints their EndpointSlices hold. */
  async serviceEndpoints(ns: string): Promise<{ service: string; ready: number }[]> {
    const [svcs, slices] = await Promise.all([
      this.call(`list services in ${ns}`, () => this.core.listNamespacedService({ namespace: ns })),
      this.call(`list endpointslices in ${ns}`, () => this.discovery.listNamespacedEndpointSlice({ namespace: ns })),
    ]);
    return svcs.items
      .filter((s) => s.spec?.selector && Object.keys(s.spec.selector).length > 0)
      .map((s) => {
        const name = s.metadata?.name ?? '';
        const ready = slices.items
          .filter((sl) => sl.metadata?.labels?.['kubernetes.io/service-name'] === name)
          .flatMap((sl) => sl.endpoints ?? [])
          .filter((e) => e.conditions?.ready !== false).length;
        return { service: name, ready };
      });
  }

  async pods(ns: string): Promise<PodState[]> {
    const list = await this.call(`list pods in ${ns}`, () => this.core.listNamespacedPod({ namespace: ns }));
    return list.items.map((p) => {
      const sched = (p.status?.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status === 'False');
      return {
        name: p.metadata?.name ?? '',
        phase: p.status?.phase ?? 'Unknown',
        ready: (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        unschedulable: sched ? `${sched.reason ?? 'Unschedulable'}: ${sched.message ?? ''}`.trim() : undefined,
      };
    });
  }

  async pvcs(ns: string): Promise<{ name: string; phase: string }[]> {
    const list = await this.call(`list pvcs in ${ns}`, () =>
      this.core.listNamespacedPersistentVolumeClaim({ namespace: ns }),
    );
    return list.items.map((c) => ({ name: c.metadata?.name ?? '', phase: c.status?.phase ?? 'Pending' }));
  }

  /** PersistentVolumes with the claim they name (namespace/name and uid) and their annotations. */
  async persistentVolumes(): Promise<PersistentVolumeState[]> {
    const list = await this.call('list persistentvolumes', () => this.core.listPersistentVolume());
    return list.items.map((v) => ({
      name: v.metadata?.name ?? '',
      phase: v.status?.phase ?? 'Pending',
      reclaimPolicy: v.spec?.persistentVolumeReclaimPolicy ?? 'Delete',
      claim: v.spec?.claimRef?.name
        ? { namespace: v.spec.claimRef.namespace ?? '', name: v.spec.claimRef.name, uid: v.spec.claimRef.uid }
        : undefined,
      annotations: v.metadata?.annotations ?? {},
    }));
  }

  /**
   * Sets (or with null removes) the uid of the claim a volume names, and annotations (null removes
   * one). A Released volume whose claim uid is removed becomes Available, still reserved for a claim
   * of that namespace and name: the PV controller binds it to that claim when one appears.
   */
  async patchVolume(
    name: string,
    change: { claimUid?: string | null; annotations?: Record<string, string | null> },
  ): Promise<void> {
    const body = {
      ...(change.annotations ? { metadata: { annotations: change.annotations } } : {}),
      ...(change.claimUid !== undefined ? { spec: { claimRef: { uid: change.claimUid, resourceVersion: null } } } : {}),
    };
    await this.call(`patch persistentvolume ${name}`, () =>
      this.core.patchPersistentVolume({ name, body }, mergePatch),
    );
  }

  /** A ConfigMap's data, or undefined when there is none of that name. */
  async configMapData(ns: string, name: string): Promise<Record<string, string> | undefined> {
    const cms = await this.call(`list configmaps in ${ns}`, () =>
      this.core.listNamespacedConfigMap({ namespace: ns, fieldSelector: `metadata.name=${name}` }),
    );
    return cms.items[0] ? (cms.items[0].data ?? {}) : undefined;
  }

  async names(kind: 'Secret' | 'ConfigMap', ns: string): Promise<string[]> {
    const list =
      kind === 'Secret'
        ? await this.call(`list secrets in ${ns}`, () => this.core.listNamespacedSecret({ namespace: ns }))
        : await this.call(`list configmaps in ${ns}`, () => this.core.listNamespacedConfigMap({ namespace: ns }));
    return list.items.map((o) => o.metadata?.name ?? '');
  }

  get server(): string {
    const c = this.kc.getCurrentCluster();
    if (!c)
      throw failure(
        FailureType.KubeApiError,
        `${this.target.label}: kubeconfig ${this.target.kubeconfig} has no current cluster`,
      );
    return c.server;
  }

  async listNamespaces(): Promise<string[]> {
    try {
      const list = await this.core.listNamespace();
      return list.items.map((n) => n.metadata?.name ?? '').filter(Boolean);
    } catch (err) {
      throw this.translate(err, 'list namespaces');
    }
  }

  /** The ValidatingAdmissionPolicy and its binding of that name: whether each exists, and its labels. */
  async admissionPolicy(name: string): Promise<{ policy?: Record<string, string>; binding?: Record<string, string> }> {
    const [policy, binding] = await Promise.all([
      this.maybe(`get validatingadmissionpolicy ${name}`, () => this.admission.readValidatingAdmissionPolicy({ name })),
      this.maybe(`get validatingadmissionpolicybinding ${name}`, () =>
        this.admission.readValidatingAdmissionPolicyBinding({ name }),
      ),
    ]);
    return {
      ...(policy ? { policy: policy.metadata?.labels ?? {} } : {}),
      ...(binding ? { binding: binding.metadata?.labels ?? {} } : {}),
    };
  }

  /** Creates the policy and its binding; one that exists already is left as it is ('exists'). */
  async createAdmissionPolicy(
    policy: V1ValidatingAdmissionPolicy,
    binding: V1ValidatingAdmissionPolicyBinding,
  ): Promise<{ policy: 'created' | 'exists'; binding: 'created' | 'exists' }> {
    const create = async (what: string, fn: () => Promise<unknown>): Promise<'created' | 'exists'> => {
      try {
        await fn();
        return 'created';
      } catch (err) {
        if (err instanceof ApiException && err.code === 409) return 'exists';
        throw this.translate(err, what);
      }
    };
    return {
      policy: await create(`create validatingadmissionpolicy ${policy.metadata?.name}`, () =>
        this.admission.createValidatingAdmissionPolicy({ body: policy }),
      ),
      binding: await create(`create validatingadmissionpolicybinding ${binding.metadata?.name}`, () =>
        this.admission.createValidatingAdmissionPolicyBinding({ body: binding }),
      ),
    };
  }

  /** Deletes the policy and/or its binding (default both; either may be gone already). */
  async deleteAdmissionPolicy(name: string, which = { policy: true, binding: true }): Promise<void> {
    if (which.binding)
      await this.maybe(`delete validatingadmissionpolicybinding ${name}`, () =>
        this.admission.deleteValidatingAdmissionPolicyBinding({ name }),
      );
    if (which.policy)
      await this.maybe(`delete validatingadmissionpolicy ${name}`, () =>
        this.admission.deleteValidatingAdmissionPolicy({ name }),
      );
  }

  /**
   * A server-side dry-run delete (dryRun=All): admission runs, nothing is deleted. Allowed, or
   * denied with the API server's message (a policy's denial).
   */
  async dryRunDeleteNamespace(ns: string): Promise<{ allowed: boolean; message: string }> {
    try {
      await this.core.deleteNamespace({ name: ns, dryRun: 'All' });
      return { allowed: true, message: 'allowed' };
    } catch (err) {
      if (err instanceof ApiException && (err.code === 403 || err.code === 422 || err.code === 400)) {
        const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
        const message = (() => {
          try {
            return String((JSON.parse(body) as { message?: string }).message ?? body);
          } catch {
            return body;
          }
        })();
        return { allowed: false, message };
      }
      throw this.translate(err, `dry-run delete namespace ${ns}`);
    }
  }

  /** Removes labels from a namespace (a merge patch with nulls); a missing namespace is fine. */
  async unlabelNamespace(ns: string, keys: string[]): Promise<void> {
    const labels = Object.fromEntries(keys.map((k) => [k, null]));
    await this.maybe(`unlabel namespace ${ns}`, () =>
      this.core.patchNamespace({ name: ns, body: { metadata: { labels } } }, mergePatch),
    );
  }

  /**
   * Every subject a ClusterRoleBinding gives a role that may delete namespaces (namespaces are
   * cluster-scoped: a RoleBinding cannot grant it): "Kind:name", service accounts "ServiceAccount:ns/name".
   */
  async namespaceDeleters(): Promise<string[]> {
    const [roles, bindings] = await Promise.all([
      this.call('list clusterroles', () => this.rbac.listClusterRole()),
      this.call('list clusterrolebindings', () => this.rbac.listClusterRoleBinding()),
    ]);
    const can = (r: V1PolicyRule) =>
      (r.apiGroups ?? []).some((g) => g === '' || g === '*') &&
      (r.resources ?? []).some((x) => x === 'namespaces' || x === '*') &&
      r.verbs.some((v) => v === 'delete' || v === '*') &&
      !(r.resourceNames ?? []).length;
    const deleting = new Set(roles.items.filter((r) => (r.rules ?? []).some(can)).map((r) => r.metadata?.name));
    const out = new Set<string>();
    for (const b of bindings.items) {
      if (b.roleRef.kind !== 'ClusterRole' || !deleting.has(b.roleRef.name)) continue;
      for (const s of b.subjects ?? [])
        out.add(s.kind === 'ServiceAccount' ? `ServiceAccount:${s.namespace}/${s.name}` : `${s.kind}:${s.name}`);
    }
    return [...out].sort();
  }

  /** GET /readyz: the API server's own readiness, including its etcd check. */
  async readyz(timeoutMs = 5_000): Promise<{ ready: boolean; detail: string }> {
    const url = new URL('/readyz', this.server);
    const opts: Parameters<typeof request>[1] = { method: 'GET', timeout: timeoutMs };
    await this.kc.applyToHTTPSOptions(opts);
    return new Promise((resolve) => {
      const req = request(url, opts, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () =>
          resolve({ ready: res.statusCode === 200, detail: `${res.statusCode} ${body.trim().slice(0, 500)}` }),
        );
      });
      req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
      req.on('error', (err) => resolve({ ready: false, detail: err.message }));
      req.end();
    });
  }

  private translate(err: unknown, what: string) {
    if (err instanceof ApiException) {
      return failure(
        FailureType.KubeApiError,
        `${this.target.label}: ${what}: HTTP ${err.code}: ${String(err.body).slice(0, 300)}`,
        { code: err.code },
      );
    }
    return failure(FailureType.KubeApiError, `${this.target.label}: ${what}: ${(err as Error).message}`);
  }
}
