// The demo workload `lab up` creates at site A (namespace demo-app): Deployment nginx x3 on the kwok
// nodes, its Service, ConfigMap and Secret, and a PVC bound to a Retain PV of the lab's static
// StorageClass. What a failover or drill restores at site B and the app endpoint checks.
import { KWOK_TOLERATION } from './controlplane.ts';
import type { Obj } from './kube.ts';

export const DEMO_NS = 'demo-app';
export const STORAGE_CLASS = 'lab-static';

// Why site B needs no PersistentVolume of its own: Velero backs up a PVC's bound PV with it, and a
// PV that has no snapshot (none here: snapshots are off) and reclaim policy Retain is restored
// "as-is" (Velero's restore: handleSkippedPVHasRetainPolicy) with its claimRef's uid cleared, so
// site B's PV controller binds it to the restored PVC. A pre-created PV at site B would be worse:
// Velero skips a PV that already exists, and after one failover drill that PV is Released (its
// claimRef names the deleted PVC) and would never bind again. (With reclaim policy Delete, Velero
// would instead leave the PVC to dynamic provisioning, which lab-static does not do.)
export function demoApp(): { first: Obj[]; then: Obj[] } {
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
              tolerations: [KWOK_TOLERATION],
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
