// Is a site ready to take workloads, and did a restore there bring back a working app: the
// readiness check of the failover and drill preflights, and the post-restore checklist (the seed's
// "pods Ready but 503" questions). Read-only.
import { FailureType, failure } from '../common/errors.ts';
import type { CheckResult } from '../common/failover.ts';
import type { SiteConfig } from '../config/schema.ts';
import type { Gateways } from '../gateways/index.ts';
import { probeAppOf } from './probe.ts';
import { failoverSettings } from './settings.ts';
import { done, notYet, pollUntil } from './support.ts';

/** The failing checks, one line each: a failure message a person reads top to bottom. */
export const failingLines = (checks: CheckResult[]) =>
  checks
    .filter((c) => !c.ok)
    .map((c) => `${c.check}: ${c.detail}`)
    .join('\n');

/** Is the site ready to take workloads: its API server, its nodes, its Velero storage location. */
export async function siteReadiness(
  gw: Gateways,
  site: SiteConfig,
): Promise<{ drReady: CheckResult[]; bsl?: { phase?: string; accessMode: string; message?: string } }> {
  const kube = gw.kube(site.cluster.name);
  const [readyz, nodes, bsl] = await Promise.all([
    kube.readyz(),
    kube.nodes().catch((e: Error) => e),
    gw.velero(site.name).storageLocation(site.velero.storageLocation),
  ]);
  const drReady: CheckResult[] = [
    { check: `${site.name} API server ready`, ok: readyz.ready, detail: readyz.detail.slice(0, 120) },
    nodes instanceof Error
      ? { check: `${site.name} nodes Ready`, ok: false, detail: nodes.message }
      : {
          check: `${site.name} nodes Ready`,
          ok: nodes.length > 0 && nodes.every((n) => n.ready),
          detail: `${nodes.filter((n) => n.ready).length}/${nodes.length} Ready`,
        },
    {
      check: `${site.name} Velero sees BackupStorageLocation ${site.velero.storageLocation}`,
      ok: bsl?.phase === 'Available',
      detail: bsl
        ? `${bsl.phase ?? 'unknown'}, ${bsl.accessMode}${bsl.message ? `: ${bsl.message}` : ''}`
        : 'not found',
    },
  ];
  return { drReady, bsl };
}

/** The post-restore checklist, once. */
async function checklist(
  gw: Gateways,
  site: string,
  namespaces: string[],
  expected: { secrets: string[]; configMaps: string[] },
): Promise<CheckResult[]> {
  const kube = gw.kube(gw.site(site).cluster.name);
  const out: CheckResult[] = [];
  for (const ns of namespaces) {
    const [deps, eps, pods, pvcs, secrets, cms] = await Promise.all([
      kube.deployments(ns),
      kube.serviceEndpoints(ns),
      kube.pods(ns),
      kube.pvcs(ns),
      kube.names('Secret', ns),
      kube.names('ConfigMap', ns),
    ]);
    const notAvail = deps.filter((d) => d.available < d.replicas);
    out.push({
      check: `${ns}: deployments available`,
      ok: deps.length > 0 && notAvail.length === 0,
      detail:
        deps.length === 0
          ? 'no deployments'
          : notAvail.length
            ? notAvail.map((d) => `${d.name} ${d.available}/${d.replicas}`).join(', ')
            : deps.map((d) => `${d.name} ${d.available}/${d.replicas}`).join(', '),
    });
    const empty = eps.filter((e) => e.ready === 0);
    out.push({
      check: `${ns}: endpointslices populated`,
      ok: empty.length === 0,
      detail: empty.length
        ? `no ready endpoints: ${empty.map((e) => e.service).join(', ')}`
        : eps.map((e) => `${e.service}: ${e.ready}`).join(', ') || 'no services with selectors',
    });
    const unbound = pvcs.filter((c) => c.phase !== 'Bound');
    out.push({
      check: `${ns}: pvcs bound`,
      ok: unbound.length === 0,
      detail: unbound.length ? unbound.map((c) => `${c.name} ${c.phase}`).join(', ') : `${pvcs.length} bound`,
    });
    const missing = [
      ...expected.secrets
        .filter((x) => x.startsWith(`${ns}/`) && !secrets.includes(x.slice(ns.length + 1)))
        .map((x) => `Secret ${x}`),
      ...expected.configMaps
        .filter((x) => x.startsWith(`${ns}/`) && !cms.includes(x.slice(ns.length + 1)))
        .map((x) => `ConfigMap ${x}`),
    ];
    out.push({
      check: `${ns}: secrets and configmaps from the backup present`,
      ok: missing.length === 0,
      detail: missing.length ? `missing ${missing.join(', ')}` : 'all present',
    });
    const pending = pods.filter((p) => p.phase === 'Pending');
    out.push({
      check: `${ns}: no pending pods`,
      ok: pending.length === 0,
      detail: pending.length
        ? pending.map((p) => `${p.name}${p.unschedulable ? ` (${p.unschedulable})` : ''}`).join('; ')
        : `${pods.length} pods, ${pods.filter((p) => p.ready).length} ready`,
    });
  }
  const dns = (await kube.deployments('kube-system')).filter((d) => d.name === 'coredns');
  out.push({
    check: 'cluster DNS (kube-system/coredns) available',
    ok: dns.length === 1 && dns[0]!.available > 0 && dns[0]!.available >= dns[0]!.replicas,
    detail: dns[0] ? `${dns[0].available}/${dns[0].replicas}` : 'no coredns deployment',
  });
  const app = await probeAppOf(gw, site);
  out.push({ check: `app endpoint ${gw.site(site).appEndpoint ?? '(none)'}`, ok: app.ok, detail: app.detail });
  return out;
}

export function createSiteCheckActivities(gw: Gateways) {
  return {
    /** Runs the checklist until every check passes (pods take a moment) or the time is up. */
    async verifySite(input: {
      site: string;
      namespaces: string[];
      expected: { secrets: string[]; configMaps: string[] };
      timeoutMs?: number;
    }): Promise<CheckResult[]> {
      return pollUntil(
        {
          what: `the post-restore checklist at ${input.site}`,
          timeoutMs: input.timeoutMs ?? failoverSettings(gw).verifyTimeout,
          every: 1000,
          heartbeat: (checks) => ({ failing: checks.filter((c) => !c.ok).map((c) => c.check) }),
          onTimeout: (checks) => {
            throw failure(
              FailureType.VerificationFailed,
              `post-restore verification failed at ${input.site}:\n${failingLines(checks)}`,
              checks,
            );
          },
        },
        async () => {
          const checks = await checklist(gw, input.site, input.namespaces, input.expected);
          return checks.every((c) => c.ok) ? done(checks) : notYet(checks);
        },
      );
    },
  };
}
