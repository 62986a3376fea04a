// DnsGateway: the authoritative DNS server's HTTP API (PowerDNS) for reading and switching a
// record, and a real DNS query to the server to prove what it now answers.
import { Resolver } from 'node:dns/promises';
import { FailureType, failure } from '../common/errors.ts';

export interface DnsTarget {
  /** PowerDNS API base, e.g. http://127.0.40.2:8081 */
  api: string;
  apiKey: string;
  serverId: string;
  /** Authoritative server for queries, host:port. */
  nameserver: string;
  zone: string;
}

export interface ARecord {
  /** Fully qualified, no trailing dot: app.example.com */
  name: string;
  addresses: string[];
  ttl: number;
}

const fqdn = (name: string) => (name.endsWith('.') ? name : `${name}.`);
const bare = (name: string) => name.replace(/\.$/, '');

interface RRSet {
  name: string;
  type: string;
  ttl: number;
  records: { content: string; disabled: boolean }[];
}

export class DnsGateway {
  constructor(readonly target: DnsTarget) {}

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = `${this.target.api.replace(/\/$/, '')}/api/v1/servers/${encodeURIComponent(this.target.serverId)}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { 'X-API-Key': this.target.apiKey, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw failure(FailureType.DnsError, `DNS API ${method} ${url}: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok)
      throw failure(FailureType.DnsError, `DNS API ${method} ${url}: HTTP ${res.status}: ${text.slice(0, 300)}`, {
        status: res.status,
      });
    return text ? (JSON.parse(text) as unknown) : undefined;
  }

  /** The record as the server's database holds it (undefined when there is none). */
  async getA(name: string): Promise<ARecord | undefined> {
    const zone = (await this.call('GET', `/zones/${encodeURIComponent(fqdn(this.target.zone))}?rrsets=true`)) as {
      rrsets?: RRSet[];
    };
    const rr = zone.rrsets?.find((r) => r.type === 'A' && r.name === fqdn(name));
    if (!rr) return undefined;
    return {
      name: bare(rr.name),
      ttl: rr.ttl,
      addresses: rr.records
        .filter((r) => !r.disabled)
        .map((r) => r.content)
        .sort(),
    };
  }

  /** Replaces the A record's addresses (idempotent: the same call twice leaves the same record). */
  async setA(record: ARecord): Promise<void> {
    await this.call('PATCH', `/zones/${encodeURIComponent(fqdn(this.target.zone))}`, {
      rrsets: [
        {
          name: fqdn(record.name),
          type: 'A',
          ttl: record.ttl,
          changetype: 'REPLACE',
          records: record.addresses.map((content) => ({ content, disabled: false })),
        },
      ],
    });
  }

  /** Removes the A record (idempotent: removing a record that is not there is not an error). */
  async deleteA(name: string): Promise<void> {
    await this.call('PATCH', `/zones/${encodeURIComponent(fqdn(this.target.zone))}`, {
      rrsets: [{ name: fqdn(name), type: 'A', changetype: 'DELETE' }],
    });
  }

  /** Asks the authoritative server over DNS (UDP), as a resolver would. */
  async resolveA(name: string): Promise<{ addresses: string[]; ttl: number }> {
    const r = new Resolver({ timeout: 3000, tries: 2 });
    r.setServers([this.target.nameserver]);
    try {
      const answers = await r.resolve4(name, { ttl: true });
      return { addresses: answers.map((a) => a.address).sort(), ttl: Math.min(...answers.map((a) => a.ttl)) };
    } catch (err) {
      throw failure(FailureType.DnsError, `DNS query A ${name} @${this.target.nameserver}: ${(err as Error).message}`);
    }
  }
}
