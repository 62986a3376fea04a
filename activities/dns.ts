// The app's DNS records: which site they point at, switching them, and proving the switch took
// (the authoritative server answers the new addresses, and the app answers through the name).
import { FailureType, failure } from '../common/errors.ts';
import type { CheckResult } from '../common/failover.ts';
import type { Gateways } from '../gateways/index.ts';
import { failingLines } from './site-checks.ts';
import { done, notYet, pollUntil } from './support.ts';

/**
 * The app records (the config's dns.records) that point at the site now, per the DNS server's
 * database: a site they point at serves, and nothing of it may be deleted or fenced.
 */
export async function recordsPointingAt(gw: Gateways, site: string): Promise<string[]> {
  const address = gw.site(site).appAddress;
  if (!address || !gw.config.dns) return [];
  const dns = gw.dns();
  const hits = await Promise.all(
    gw.config.dns.records.map(async (r) =>
      (await dns.getA(r.name))?.addresses.includes(address) ? r.name : undefined,
    ),
  );
  return hits.filter((n): n is string => n !== undefined);
}

export function createDnsActivities(gw: Gateways) {
  return {
    /** Which site the record points at now (by the sites' appAddress), per the DNS server's database. */
    async servingSite(input: { record: string }): Promise<{ site?: string; addresses: string[] }> {
      const addresses = (await gw.dns().getA(input.record))?.addresses ?? [];
      return { site: gw.config.sites.find((s) => s.appAddress && addresses.includes(s.appAddress))?.name, addresses };
    },

    /** Points the records at `addresses` (PowerDNS REPLACE: idempotent). Returns what they were. */
    async switchDns(input: {
      records: { name: string; ttl: number }[];
      addresses: string[];
    }): Promise<{ name: string; before: string[] }[]> {
      const dns = gw.dns();
      const out: { name: string; before: string[] }[] = [];
      for (const r of input.records) {
        const before = (await dns.getA(r.name))?.addresses ?? [];
        // No addresses: the record did not exist before (a drill record's undo), so remove it.
        if (input.addresses.length) await dns.setA({ name: r.name, ttl: r.ttl, addresses: input.addresses });
        else await dns.deleteA(r.name);
        out.push({ name: r.name, before });
      }
      return out;
    },

    /** The authoritative server answers the new addresses, and the app answers through that name. */
    async verifyDns(input: {
      records: string[];
      addresses: string[];
      site: string;
      timeoutMs?: number;
    }): Promise<CheckResult[]> {
      const dns = gw.dns();
      const health = gw.site(input.site).appEndpoint;
      const look = async () => {
        const out: CheckResult[] = [];
        for (const name of input.records) {
          const ans = await dns
            .resolveA(name)
            .catch((e: Error) => ({ addresses: [] as string[], ttl: 0, error: e.message }));
          const ok = ans.addresses.join(',') === [...input.addresses].sort().join(',');
          out.push({
            check: `DNS ${name} → ${input.addresses.join(',')}`,
            ok,
            detail: 'error' in ans ? ans.error : `answers ${ans.addresses.join(',')} (ttl ${ans.ttl})`,
          });
          if (ok && health && ans.addresses[0]) {
            const u = new URL(health);
            u.hostname = ans.addresses[0];
            const r = await gw.http().probe(u.toString(), { host: `${name}${u.port ? `:${u.port}` : ''}` });
            out.push({ check: `app answers through ${name}`, ok: r.ok, detail: `${u.toString()}: ${r.detail}` });
          }
        }
        return out.every((c) => c.ok) ? done(out) : notYet(out);
      };
      return pollUntil(
        {
          what: `DNS ${input.records.join(', ')} → ${input.addresses.join(',')}`,
          timeoutMs: input.timeoutMs ?? 30_000,
          every: 500,
          heartbeat: (checks) => ({ failing: checks.filter((c) => !c.ok).length }),
          onTimeout: (checks) => {
            throw failure(FailureType.VerificationFailed, `DNS switch not effective:\n${failingLines(checks)}`, checks);
          },
        },
        look,
      );
    },
  };
}
