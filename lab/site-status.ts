// `lab status` for one site: its app endpoint; per node its namespaces, sshd, kubelet, etcd and
// API server; the site's controllers (by their leases); on cp1 kwok and Velero. A site taken down on purpose (`drctl lab site
// down`) reports what it stopped as down on purpose, which `lab up` does not wait for.
import { KWOK_NODES, VELERO_NS } from './controlplane.ts';
import { adminGet, type Component, httpGet, httpsGet, json, sshBanner } from './health.ts';
import { hostPid, supervisorState } from './namespaces.ts';
import { alive, type LabState } from './processes.ts';
import { appKey } from './services.ts';
import { cp1Of, CP_PORTS, type LabNode, type LabSite, onHost } from './topology.ts';

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

/**
 * The site's checks; `pids` maps namespace-local pids to host pids and `containers` finds the
 * static pods' processes (one /proc scan each, made on first use).
 */
export function siteChecks(
  site: LabSite,
  state: LabState,
  pids: () => Map<string, number>,
  containers: () => Map<string, number>,
  /** The addresses DNS serves the app at (none: DNS down, then the primary must serve). */
  served: Promise<string[]>,
): Promise<Component>[] {
  const checks: Promise<Component>[] = [];
  const down = state.sitesDown?.[site.name];
  // A destroyed site (its hosts fresh, no control plane): everything down on purpose until its
  // rebuild brings each part back.
  const onPurpose = (c: Component, parked: boolean): Component =>
    parked || (down?.destroyed && !c.healthy)
      ? {
          ...c,
          healthy: false,
          downOnPurpose: true,
          detail: down?.destroyed
            ? `destroyed on purpose (drctl lab site destroy; drctl cluster rebuild brings it back); ${c.detail}`
            : `down on purpose (drctl lab site down${down?.hard ? ' --hard' : ''}); ${c.detail}`,
        }
      : c;
  checks.push(
    (async () => {
      // The primary site's app must serve (200); the DR site's answers 503 until the app is restored there.
      const pid = state.pids[appKey(site)];
      const r = await httpGet(`http://${site.appAddress}:${site.appPort}/healthz`);
      const answering = r.status === 200 || r.status === 503;
      const dns = await served;
      const mustServe = dns.length ? dns.includes(site.appAddress) : site.role === 'primary';
      const healthy = alive(pid) && (mustServe ? r.status === 200 : answering);
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
  if (site.bastion) {
    const b = site.bastion;
    checks.push(
      (async () => {
        const banner = await sshBanner(b.ip);
        return {
          name: b.id,
          kind: 'bastion',
          address: `${b.ip}:22`,
          pid: alive(state.pids[b.id]) ? state.pids[b.id] : undefined,
          healthy: alive(state.pids[b.id]) && !!banner?.startsWith('SSH-2.0'),
          detail: banner ?? 'no banner',
        };
      })(),
    );
  }
  const podPid = (node: LabNode, name: string) => containers().get(`${node.cgroupRoot}|${name}`);
  for (const node of site.nodes) {
    const initPid = state.pids[node.id];
    const sup = supervisorState(node);
    const parked = (pod: string) => !!down?.parked.includes(`${node.name}/${pod}.yaml`);
    checks.push(
      (async () => ({
        name: node.id,
        kind: 'node',
        address: node.ip,
        pid: initPid,
        healthy: alive(initPid),
        detail: alive(initPid) ? 'namespaces up' : 'down',
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
        // The kubelet as the API sees it: its Node's Ready condition (it heartbeats through its lease).
        const pid = hostPid(pids, initPid, sup?.kubelet);
        const r = await adminGet(site, `/api/v1/nodes/${node.name}`);
        const ready = json<{ status?: { conditions?: { type: string; status: string; reason?: string }[] } }>(
          r.body,
        )?.status?.conditions?.find((c) => c.type === 'Ready');
        return onPurpose(
          {
            name: `${node.id}/kubelet`,
            kind: 'kubelet',
            address: `${node.ip}:10250`,
            pid,
            healthy: !!pid && ready?.status === 'True',
            detail: ready
              ? `node ${node.name} Ready=${ready.status}${ready.reason ? ` (${ready.reason})` : ''}`
              : `node: ${r.status || r.body}`,
          },
          !!down?.hard,
        );
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
        return onPurpose(
          {
            name: `${node.id}/etcd`,
            kind: 'etcd',
            address: `https://${node.ip}:2379`,
            pid: podPid(node, 'etcd'),
            healthy,
            detail: `${site.etcdVersion} ${r.status ? `${r.status} ${r.body}` : r.body}`,
          },
          false,
        );
      })(),
    );
    checks.push(
      (async () => {
        const r = await adminGet(site, '/readyz', node.ip);
        return onPurpose(
          {
            name: `${node.id}/kube-apiserver`,
            kind: 'kube-apiserver',
            address: `https://${node.ip}:${CP_PORTS.apiserver}`,
            pid: podPid(node, 'kube-apiserver'),
            healthy: r.status === 200,
            detail: `readyz ${r.status || r.body}`,
          },
          parked('kube-apiserver'),
        );
      })(),
    );
  }
  // The controllers bind 127.0.0.1 on their nodes (kubeadm's default): seen from here through
  // their leader-election leases, renewed every 2 s by whichever instance leads.
  for (const [pod, kind] of [
    ['kube-controller-manager', 'kube-controller-manager'],
    ['kube-scheduler', 'kube-scheduler'],
  ] as const) {
    checks.push(
      (async () => {
        const r = await adminGet(site, `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${pod}`);
        const lease = json<{ spec?: { holderIdentity?: string; renewTime?: string } }>(r.body)?.spec;
        const age = lease?.renewTime ? (Date.now() - Date.parse(lease.renewTime)) / 1000 : undefined;
        const leader = site.nodes.find((n) => lease?.holderIdentity?.startsWith(`${n.name}_`));
        return onPurpose(
          {
            name: `${site.name}/${pod}`,
            kind,
            address: leader ? `${leader.id} (leader)` : site.name,
            pid: leader ? podPid(leader, pod) : undefined,
            healthy: !!leader && age !== undefined && age < 20,
            detail: lease
              ? `lease held by ${lease.holderIdentity}, renewed ${age?.toFixed(0)} s ago`
              : `lease: ${r.status || r.body}`,
          },
          site.nodes.every((n) => down?.parked.includes(`${n.name}/${pod}.yaml`)),
        );
      })(),
    );
  }
  const cp1 = cp1Of(site);
  const cp1Parked = (pod: string) => !!down?.parked.includes(`${cp1.name}/${pod}.yaml`);
  checks.push(
    (async () => {
      // kwok fakes the nodes' kubelets: healthy when it runs and its nodes are Ready.
      const pid = podPid(cp1, 'kwok');
      const r = await kwokNodesReady(site);
      return onPurpose(
        {
          name: `${site.name}/kwok`,
          kind: 'kwok',
          address: `http://${cp1.ip}:${CP_PORTS.kwok}`,
          pid,
          healthy: !!pid && r.ready === KWOK_NODES.length,
          detail: r.detail,
        },
        cp1Parked('kwok'),
      );
    })(),
  );
  checks.push(
    (async () => {
      // Velero is healthy when it has validated its storage location (the shared bucket) as Available.
      const pid = podPid(cp1, 'velero');
      const r = await storageLocation(site);
      return onPurpose(
        {
          name: `${site.name}/velero`,
          kind: 'velero',
          address: `http://${cp1.ip}:${CP_PORTS.veleroMetrics}`,
          pid,
          healthy: !!pid && r.phase === 'Available',
          detail: r.detail,
        },
        cp1Parked('velero'),
      );
    })(),
  );
  return checks;
}
