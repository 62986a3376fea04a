// `lab status` for one site: its app endpoint, and per node the namespace, sshd and etcd; on cp1
// the API server, controllers, kwok and Velero. A site taken down on purpose (`drctl lab site
// down`) reports what it stopped as down on purpose, which `lab up` does not wait for.
import { KWOK_NODES, VELERO_NS } from './controlplane.ts';
import { adminGet, type Component, httpGet, httpsGet, httpsProbe, json, sshBanner } from './health.ts';
import { hostPid, supervisorState } from './namespaces.ts';
import { alive, type LabState } from './processes.ts';
import { appKey } from './services.ts';
import { CP_PORTS, type LabSite, onHost } from './topology.ts';

async function kwokNodesReady(site: LabSite): Promise<{ ready: number; detail: string }> {
  const r = await adminGet(site, '/api/v1/nodes?labelSelector=type%3Dkwok');
  const list =
    r.status === 200
      ? json<{ items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }>(
          r.body,
        )
      : undefined;
  if (!list) return { ready: 0, detail: `nodes: ${r.status || r.body}` };
  const ready = list.items.filter(
    (n) =>
      KWOK_NODES.includes(n.metadata.name) &&
      n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  ).length;
  return { ready, detail: `${ready}/${KWOK_NODES.length} kwok nodes Ready` };
}

async function storageLocation(site: LabSite): Promise<{ phase?: string; detail: string }> {
  const r = await adminGet(site, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backupstoragelocations/default`);
  const bsl =
    r.status === 200
      ? json<{ spec?: { accessMode?: string }; status?: { phase?: string; message?: string } }>(r.body)
      : undefined;
  if (!bsl) return { detail: `storage location default: ${r.status === 404 ? 'not created yet' : r.status || r.body}` };
  const phase = bsl.status?.phase ?? 'not validated yet';
  return {
    phase,
    detail: `storage location default ${phase} (${bsl.spec?.accessMode ?? 'ReadWrite'})${bsl.status?.message ? `: ${bsl.status.message}` : ''}`,
  };
}

/** The site's checks; `pids` maps namespace-local pids to host pids (one /proc scan, made on first use). */
export function siteChecks(site: LabSite, state: LabState, pids: () => Map<string, number>): Promise<Component>[] {
  const checks: Promise<Component>[] = [];
  const down = state.sitesDown?.[site.name];
  const onPurpose = (c: Component, parked: boolean): Component =>
    parked
      ? {
          ...c,
          healthy: false,
          downOnPurpose: true,
          detail: `down on purpose (drctl lab site down${down?.hard ? ' --hard' : ''}); ${c.detail}`,
        }
      : c;
  checks.push(
    (async () => {
      // The primary site's app must serve (200); the DR site's answers 503 until the app is restored there.
      const pid = state.pids[appKey(site)];
      const r = await httpGet(`http://${site.appAddress}:${site.appPort}/healthz`);
      const answering = r.status === 200 || r.status === 503;
      const healthy = alive(pid) && (site.role === 'primary' ? r.status === 200 : answering);
      return onPurpose(
        {
          name: appKey(site),
          kind: 'app',
          address: `http://${site.appAddress}:${site.appPort}`,
          pid: alive(pid) ? pid : undefined,
          healthy,
          detail: r.status ? `HTTP ${r.status} ${r.body}` : r.body,
        },
        !!down,
      );
    })(),
  );
  for (const node of site.nodes) {
    const initPid = state.pids[node.id];
    const sup = supervisorState(node);
    const podPid = (pod: string) => hostPid(pids, initPid, sup?.pods[pod]?.pid);
    const parked = (pod: string) => !!down?.parked.includes(`${pod}.yaml`);
    checks.push(
      (async () => ({
        name: node.id,
        kind: 'node',
        address: node.ip,
        pid: initPid,
        healthy: alive(initPid),
        detail: alive(initPid) ? 'namespace up' : 'down',
      }))(),
    );
    checks.push(
      (async () => {
        const banner = await sshBanner(node.ip);
        return {
          name: `${node.id}/sshd`,
          kind: 'sshd',
          address: `${node.ip}:22`,
          pid: hostPid(pids, initPid, sup?.sshd),
          healthy: !!banner?.startsWith('SSH-2.0'),
          detail: banner ?? 'no banner',
        };
      })(),
    );
    checks.push(
      (async () => {
        const tls = {
          ca: onHost(node, '/etc/kubernetes/pki/etcd/ca.crt'),
          cert: onHost(node, '/etc/kubernetes/pki/etcd/healthcheck-client.crt'),
          key: onHost(node, '/etc/kubernetes/pki/etcd/healthcheck-client.key'),
        };
        const r = await httpsGet(`https://${node.ip}:2379/health`, tls);
        const healthy = r.status === 200 && /"health":\s*"true"/.test(r.body);
        return {
          name: `${node.id}/etcd`,
          kind: 'etcd',
          address: `https://${node.ip}:2379`,
          pid: podPid('etcd'),
          healthy,
          detail: `${site.etcdVersion} ${r.status ? `${r.status} ${r.body}` : r.body}`,
        };
      })(),
    );
    if (!node.runsApiserver) continue;
    checks.push(
      (async () => {
        const r = await adminGet(site, '/readyz');
        return onPurpose(
          {
            name: `${site.name}/kube-apiserver`,
            kind: 'kube-apiserver',
            address: site.apiserver,
            pid: podPid('kube-apiserver'),
            healthy: r.status === 200,
            detail: `readyz ${r.status || r.body}`,
          },
          parked('kube-apiserver'),
        );
      })(),
    );
    for (const [pod, kind, port] of [
      ['kube-controller-manager', 'kube-controller-manager', CP_PORTS.controllerManager],
      ['kube-scheduler', 'kube-scheduler', CP_PORTS.scheduler],
    ] as const) {
      checks.push(
        (async () => {
          const r = await httpsProbe(`https://${node.ip}:${port}/healthz`);
          const pid = podPid(pod);
          return onPurpose(
            {
              name: `${site.name}/${pod}`,
              kind,
              address: `https://${node.ip}:${port}`,
              pid,
              healthy: !!pid && r.status === 200,
              detail: `healthz ${r.status ? `${r.status} ${r.body.slice(0, 80)}` : r.body}`,
            },
            parked(pod),
          );
        })(),
      );
    }
    checks.push(
      (async () => {
        // kwok fakes the nodes' kubelets: healthy when it runs and its nodes are Ready.
        const pid = podPid('kwok');
        const r = await kwokNodesReady(site);
        return onPurpose(
          {
            name: `${site.name}/kwok`,
            kind: 'kwok',
            address: `http://${node.ip}:${CP_PORTS.kwok}`,
            pid,
            healthy: !!pid && r.ready === KWOK_NODES.length,
            detail: r.detail,
          },
          parked('kwok'),
        );
      })(),
    );
    checks.push(
      (async () => {
        // Velero is healthy when it has validated its storage location (the shared bucket) as Available.
        const pid = podPid('velero');
        const r = await storageLocation(site);
        return onPurpose(
          {
            name: `${site.name}/velero`,
            kind: 'velero',
            address: `http://${node.ip}:${CP_PORTS.veleroMetrics}`,
            pid,
            healthy: !!pid && r.phase === 'Available',
            detail: r.detail,
          },
          parked('velero'),
        );
      })(),
    );
  }
  return checks;
}
