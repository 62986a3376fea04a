// What `drctl lab up` creates through each site's API server: kwok's fake worker nodes, a CoreDNS
// Deployment, the lab's StorageClass, Velero's CRDs and configuration (lab/velero.ts), and at site A
// the demo workload (lab/demo-app.ts). Every object is created only when absent (lab/kube.ts): a
// rerun of `lab up` changes nothing. Site A's backups and Schedule are lab/velero.ts.
import type { KubernetesObjectApi } from '@kubernetes/client-node';
import { KWOK_NODES, KWOK_TAINT, KWOK_TOLERATION, VELERO_NS } from './controlplane.ts';
import { demoApp, STORAGE_CLASS } from './demo-app.ts';
import { code, ensure, type Obj, objectApi } from './kube.ts';
import type { LabSite } from './topology.ts';
import { applyVeleroCrds, veleroConfig } from './velero.ts';

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
            tolerations: [KWOK_TOLERATION, { key: 'CriticalAddonsOnly', operator: 'Exists' }],
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
