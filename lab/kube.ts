// How the lab writes to a site's API server: a generic object client with the site's admin
// kubeconfig, and create-if-absent. `lab up` never updates an object: whatever a failover or drill
// did to it (a scaled Deployment, a read-only storage location) stays.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import type { LabSite } from './topology.ts';

export type Obj = KubernetesObject & Record<string, unknown>;

export function objectApi(site: LabSite): KubernetesObjectApi {
  const kc = new KubeConfig();
  kc.loadFromFile(site.kubeconfig);
  return KubernetesObjectApi.makeApiClient(kc);
}

export const code = (err: unknown) => (err instanceof ApiException ? err.code : undefined);

/**
 * Creates the object unless it exists; true when this call created it. Looks first: a create of an
 * existing object is not always a 409 (a Service with a fixed clusterIP fails validation, 422).
 */
export async function ensure(api: KubernetesObjectApi, obj: Obj, timeoutMs = 30_000): Promise<boolean> {
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
