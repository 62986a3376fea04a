// KubeGateway: the few Kubernetes API calls drctl needs, over the site's kubeconfig (client cert).
import { request } from 'node:https';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { FailureType, failure } from '../common/errors.ts';

export interface KubeTarget {
  label: string;
  kubeconfig: string;
  context?: string;
}

export class KubeGateway {
  readonly kc = new KubeConfig();
  private readonly core: CoreV1Api;

  constructor(readonly target: KubeTarget) {
    this.kc.loadFromFile(target.kubeconfig);
    if (target.context) this.kc.setCurrentContext(target.context);
    this.core = this.kc.makeApiClient(CoreV1Api);
  }

  get server(): string {
    const c = this.kc.getCurrentCluster();
    if (!c) throw failure(FailureType.KubeApiError, `${this.target.label}: kubeconfig ${this.target.kubeconfig} has no current cluster`);
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

  /** GET /readyz: the API server's own readiness, including its etcd check. */
  async readyz(timeoutMs = 5_000): Promise<{ ready: boolean; detail: string }> {
    const url = new URL('/readyz', this.server);
    const opts: Parameters<typeof request>[1] = { method: 'GET', timeout: timeoutMs };
    await this.kc.applyToHTTPSOptions(opts);
    return new Promise((resolve) => {
      const req = request(url, opts, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ ready: res.statusCode === 200, detail: `${res.statusCode} ${body.trim().slice(0, 500)}` }));
      });
      req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
      req.on('error', (err) => resolve({ ready: false, detail: err.message }));
      req.end();
    });
  }

  private translate(err: unknown, what: string) {
    if (err instanceof ApiException) {
      return failure(FailureType.KubeApiError, `${this.target.label}: ${what}: HTTP ${err.code}: ${String(err.body).slice(0, 300)}`, { code: err.code });
    }
    return failure(FailureType.KubeApiError, `${this.target.label}: ${what}: ${(err as Error).message}`);
  }
}
