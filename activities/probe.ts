// The health probe: is a site's app answering, is a standby's API server up, and the health
// watch's settings. Read-only.
import { FailureType, failure } from '../common/errors.ts';
import type { Gateways } from '../gateways/index.ts';
import type { ProbeResult } from '../gateways/http.ts';
import { failoverSettings } from './settings.ts';

/** The site's app endpoint: ok on HTTP 200 only. */
export function probeAppOf(gw: Gateways, site: string): Promise<ProbeResult> {
  const s = gw.site(site);
  if (!s.appEndpoint) return Promise.resolve({ ok: false, detail: `site ${site} has no appEndpoint` });
  return gw.http().probe(s.appEndpoint);
}

export function createProbeActivities(gw: Gateways) {
  return {
    async probeApp(input: { site: string }): Promise<{ ok: boolean; detail: string }> {
      return probeAppOf(gw, input.site);
    },

    /** The health watch's probe: the app for the serving site, the API server for a standby. */
    async probeSite(input: { site: string; as: 'app' | 'standby' }): Promise<{ ok: boolean; detail: string }> {
      if (input.as === 'app') return probeAppOf(gw, input.site);
      const r = await gw.kube(gw.site(input.site).cluster.name).readyz(3000);
      return { ok: r.ready, detail: `API ${r.detail.slice(0, 80)}` };
    },

    /** The health watch's settings, and the sites that have an app endpoint to probe. */
    async loadWatchPolicy(input: { record: string }) {
      const f = failoverSettings(gw);
      if (!gw.config.dns?.records.some((r) => r.name === input.record))
        throw failure(FailureType.PreflightFailed, `record ${input.record} is not in the config's dns.records`);
      const w = f.healthWatch;
      return {
        sites: gw.config.sites.filter((s) => s.appEndpoint && s.appAddress).map((s) => s.name),
        intervalMs: w.interval,
        failuresToDown: w.failuresToDown,
        successesToUp: w.successesToUp,
        autoFailover: w.autoFailover,
        autoApprove: w.autoApprove,
        webUi: gw.config.temporal.webUi,
      };
    },
  };
}
