// A site's app endpoint (its "ingress"), started by `drctl lab up` on the site's app address.
// GET /healthz answers 200 only when that site's API server shows the demo app able to serve:
// namespace demo-app, Service nginx with at least one ready endpoint in its EndpointSlices, and
// the ConfigMap nginx-config. Otherwise 503 with the reason, so "pods Ready but 503" (say, a
// restore that forgot the ConfigMap) is observable as it would be behind a real ingress. Answers
// are cached for at most a second. Any other path: 200 with a line naming the site, as the app
// would answer through the DNS name.
//   node --import tsx lab/app-endpoint.ts --site site-a --address 127.0.10.100 --port 8080 --kubeconfig K
import { createServer } from 'node:http';
import { ApiException, CoreV1Api, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const site = args.get('site') ?? 'site';
const address = args.get('address') ?? '127.0.0.1';
const port = Number(args.get('port') ?? 8080);
const NS = 'demo-app';
const SERVICE = 'nginx';
const CONFIGMAP = 'nginx-config';

const kc = new KubeConfig();
kc.loadFromFile(args.get('kubeconfig')!);
const core = kc.makeApiClient(CoreV1Api);
const discovery = kc.makeApiClient(DiscoveryV1Api);

interface Health {
  ok: boolean;
  text: string;
  at: number;
}

let cached: Health | undefined;
let inflight: Promise<Health> | undefined;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

const missing = (err: unknown) => err instanceof ApiException && err.code === 404;
const reason = (err: unknown) => {
  if (err instanceof ApiException) return `API server answered HTTP ${err.code}`;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  return `API server unreachable (${e.cause?.code ?? e.code ?? e.message})`;
};

async function check(): Promise<Health> {
  const at = Date.now();
  try {
    return await withTimeout(
      (async () => {
        try {
          await core.readNamespace({ name: NS });
        } catch (err) {
          if (missing(err)) return { ok: false, text: `unavailable ${site}: namespace ${NS} not found`, at };
          throw err;
        }
        const [svc, cm, slices] = await Promise.all([
          core
            .readNamespacedService({ namespace: NS, name: SERVICE })
            .catch((err: unknown) => (missing(err) ? undefined : Promise.reject(err))),
          core
            .readNamespacedConfigMap({ namespace: NS, name: CONFIGMAP })
            .catch((err: unknown) => (missing(err) ? undefined : Promise.reject(err))),
          discovery.listNamespacedEndpointSlice({
            namespace: NS,
            labelSelector: `kubernetes.io/service-name=${SERVICE}`,
          }),
        ]);
        if (!svc) return { ok: false, text: `unavailable ${site}: service ${NS}/${SERVICE} not found`, at };
        if (!cm) return { ok: false, text: `unavailable ${site}: configmap ${NS}/${CONFIGMAP} not found`, at };
        // An endpoint whose `ready` is unset counts as ready (the EndpointSlice API's rule).
        const ready = new Set(
          slices.items.flatMap((s) =>
            (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses),
          ),
        );
        if (ready.size === 0)
          return { ok: false, text: `unavailable ${site}: service ${NS}/${SERVICE} has no ready endpoints`, at };
        return { ok: true, text: `ok ${site}: ${ready.size} ready endpoints`, at };
      })(),
      3000,
      'API server',
    );
  } catch (err) {
    return { ok: false, text: `unavailable ${site}: ${reason(err)}`, at };
  }
}

function health(): Promise<Health> {
  if (cached && Date.now() - cached.at < 1000) return Promise.resolve(cached);
  inflight ??= check().then((h) => {
    cached = h;
    inflight = undefined;
    return h;
  });
  return inflight;
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz') {
    void health().then((h) => {
      res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
      res.end(`${h.text}\n`);
    });
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(`demo-app served by ${site} (${address})\n`);
});
server.keepAliveTimeout = 1000;
server.listen(port, address, () =>
  process.stderr.write(`${new Date().toISOString()} app endpoint ${site} on http://${address}:${port}\n`),
);
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
