// `drctl lab status`: every lab component with its address, pid and health, checked the way a
// client would use it (Temporal's gRPC and Web UI, MinIO's liveness, a real DNS query, the worker
// polling its task queue; the sites in lab/site-status.ts).
import { LAB_TASK_QUEUE } from './config.ts';
import { type Component, tcpOpen } from './health.ts';
import { containerPids, nsPidTable } from './namespaces.ts';
import { pdnsApi, queryA } from './pdns.ts';
import { alive, readState, workerIds } from './processes.ts';
import { siteChecks } from './site-status.ts';
import { stretchedComponents } from './stretched.ts';
import { SERVICES, SITES } from './topology.ts';

/**
 * The lab's drctl workers, one "at" each site: each healthy when its process is alive and a poller
 * with its identity (`drctl-worker@<site> <pid>@host`) polls the task queue.
 */
async function workerStatuses(workers: [string, number][]): Promise<Component[]> {
  const { Connection } = await import('@temporalio/client');
  const t = SERVICES.temporal;
  let pollers: string[] = [];
  let error: string | undefined;
  try {
    const conn = await Connection.connect({ address: `${t.ip}:${t.port}`, connectTimeout: 2000 });
    try {
      const r = await conn.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: LAB_TASK_QUEUE },
        taskQueueType: 1,
      });
      pollers = (r.pollers ?? []).map((p) => p.identity ?? '');
    } finally {
      await conn.close();
    }
  } catch (err) {
    error = (err as Error).message;
  }
  return workers.map(([name, pid]) => {
    const polling = pollers.some((p) => p.startsWith('drctl-worker@') && p.includes(` ${pid}@`));
    return {
      name,
      kind: 'worker',
      address: `task queue ${LAB_TASK_QUEUE}`,
      pid,
      healthy: alive(pid) && polling,
      detail: error ?? (polling ? `polling '${LAB_TASK_QUEUE}'` : `not polling (${pollers.length} other poller(s))`),
    };
  });
}

export async function status(): Promise<Component[]> {
  const state = readState();
  let table: Map<string, number> | undefined;
  const pids = () => (table ??= nsPidTable());
  let podTable: Map<string, number> | undefined;
  const containers = () =>
    (podTable ??= containerPids([
      'etcd',
      'kube-apiserver',
      'kube-controller-manager',
      'kube-scheduler',
      'kwok',
      'velero',
    ]));
  const t = SERVICES.temporal;
  const m = SERVICES.minio;
  const d = SERVICES.pdns;
  const checks: Promise<Component>[] = [
    (async () => {
      const grpc = await tcpOpen(t.ip, t.port);
      const ui = await fetch(`http://${t.ip}:${t.uiPort}/`).then(
        (r) => r.ok,
        () => false,
      );
      return {
        name: 'temporal',
        kind: 'temporal',
        address: `${t.ip}:${t.port} (UI http://${t.ip}:${t.uiPort})`,
        pid: state.pids.temporal,
        healthy: alive(state.pids.temporal) && grpc && ui,
        detail: `grpc ${grpc ? 'up' : 'down'}, ui ${ui ? 'up' : 'down'}`,
      };
    })(),
    (async () => {
      const ok = await fetch(`http://${m.ip}:${m.port}/minio/health/live`).then(
        (r) => r.ok,
        () => false,
      );
      return {
        name: 'minio',
        kind: 'minio',
        address: `${m.ip}:${m.port}`,
        pid: state.pids.minio,
        healthy: alive(state.pids.minio) && ok,
        detail: ok ? 'live' : 'not answering',
      };
    })(),
    (async () => {
      // A real DNS query, as a resolver would ask.
      const name = d.records[0]!;
      const r = await queryA(name);
      const ok = 'addresses' in r && r.addresses.length > 0;
      return {
        name: 'pdns',
        kind: 'pdns',
        address: `${d.ip}:${d.port} (API ${pdnsApi})`,
        pid: state.pids.pdns,
        healthy: alive(state.pids.pdns) && ok,
        detail: 'addresses' in r ? `${name} A ${r.addresses.join(',')} TTL ${r.ttl}` : `${name}: ${r.error}`,
      };
    })(),
  ];
  const workers = workerIds(state).map((k): [string, number] => [k, state.pids[k]!]);
  const workerChecks = workers.length ? workerStatuses(workers) : Promise.resolve([]);
  // The site the app record points at must serve (200); the other may answer 503 (no app there:
  // the DR site before a failover, the primary after one).
  const served = queryA(d.records[0]!).then((r) => ('addresses' in r ? r.addresses : []));
  for (const site of SITES) checks.push(...siteChecks(site, state, pids, containers, served));
  // The stretched cluster, while it is up (`drctl lab stretched up`).
  const stretched = state.stretched ? stretchedComponents() : Promise.resolve([]);
  return [...(await Promise.all(checks)), ...(await workerChecks), ...(await stretched)];
}
