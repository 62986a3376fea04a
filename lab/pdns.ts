// The lab's authoritative DNS: PowerDNS (Debian's pdns-server 4.7 + gsqlite3 backend) on its own
// address, run in the foreground by `drctl lab up`. Its HTTP API is what drctl's failover uses to
// move the app record between sites; a real DNS query to it proves what clients now get.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bin, paths, SERVICES, SITES } from './topology.ts';

const P = SERVICES.pdns;
const conf = join(paths.pdnsDir, 'pdns.conf');
const db = join(paths.pdnsDir, 'pdns.sqlite3');
const socketDir = join(paths.pdnsDir, 'run');
export const pdnsApi = `http://${P.ip}:${P.apiPort}`;
const fqdn = (n: string) => (n.endsWith('.') ? n : `${n}.`);

export function apiKey(): string {
  return readFileSync(paths.pdnsApiKey, 'utf8').trim();
}

/** Config, API key and an empty database from the package's schema (each only when absent). */
export function layoutPdns(): void {
  mkdirSync(socketDir, { recursive: true });
  if (!existsSync(paths.pdnsApiKey))
    writeFileSync(paths.pdnsApiKey, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  if (!existsSync(db)) {
    const tmp = `${db}.tmp`;
    rmSync(tmp, { force: true });
    execFileSync('sqlite3', [tmp], { input: readFileSync(bin.pdnsSchema), stdio: ['pipe', 'ignore', 'pipe'] });
    renameSync(tmp, db);
  }
  writeFileSync(
    conf,
    [
      '# Written by `drctl lab up` on every up.',
      'launch=gsqlite3',
      `gsqlite3-database=${db}`,
      `local-address=${P.ip}`,
      `local-port=${P.port}`,
      'api=yes',
      `api-key=${apiKey()}`,
      'webserver=yes',
      `webserver-address=${P.ip}`,
      `webserver-port=${P.apiPort}`,
      'webserver-allow-from=127.0.0.0/8',
      `socket-dir=${socketDir}`,
      'write-pid=no',
      // No security-status poll: it is a DNS query to the internet every startup and every day.
      'security-poll-suffix=',
      // The API purges the caches of a zone it changes; short TTLs keep hand edits (sqlite3) honest too.
      'cache-ttl=1',
      'query-cache-ttl=1',
      'negquery-cache-ttl=1',
      'zone-cache-refresh-interval=5',
      'receiver-threads=1',
      'distributor-threads=1',
      'loglevel=4',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}

/** pdns_server's command line: foreground, no guardian, no syslog, config and socket under .lab/pdns. */
export function pdnsCommand(): [string, string[]] {
  return [
    bin.pdns,
    [
      `--config-dir=${paths.pdnsDir}`,
      `--socket-dir=${socketDir}`,
      '--daemon=no',
      '--guardian=no',
      '--disable-syslog',
      '--log-timestamp=yes',
    ],
  ];
}

async function api(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(`${pdnsApi}/api/v1/servers/localhost${path}`, {
    method,
    headers: { 'X-API-Key': apiKey(), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

interface RRSet {
  name: string;
  type: string;
  ttl: number;
  records: { content: string; disabled: boolean }[];
}

/**
 * Zone example.com. (Native) with SOA/NS, the name server's own A record, and the app records at
 * site A's app address. Idempotent: an existing zone is only completed with the records it lacks,
 * never reset (after a failover the app record points at site B, and a rerun of `lab up` must not
 * move it back).
 */
export async function ensureZone(): Promise<'created' | string[]> {
  const zone = fqdn(P.zone);
  const primary = SITES.find((s) => s.role === 'primary')!;
  const a = (name: string, content: string, ttl = P.ttl): RRSet => ({
    name: fqdn(name),
    type: 'A',
    ttl,
    records: [{ content, disabled: false }],
  });
  const wanted: RRSet[] = [
    {
      name: zone,
      type: 'SOA',
      ttl: 3600,
      records: [{ content: `ns1.${zone} hostmaster.${zone} 1 10800 3600 604800 30`, disabled: false }],
    },
    { name: zone, type: 'NS', ttl: 3600, records: [{ content: `ns1.${zone}`, disabled: false }] },
    a(`ns1.${zone}`, P.ip, 3600),
    ...P.records.map((r) => a(r, primary.appAddress)),
  ];
  const got = await api('GET', `/zones/${encodeURIComponent(zone)}`);
  if (got.status === 404 || got.status === 422) {
    const r = await api('POST', '/zones', { name: zone, kind: 'Native', nameservers: [], rrsets: wanted });
    if (r.status !== 201) throw new Error(`PowerDNS: create zone ${zone}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    return 'created';
  }
  if (got.status !== 200) throw new Error(`PowerDNS: get zone ${zone}: HTTP ${got.status} ${got.text.slice(0, 300)}`);
  const have = ((got.json as { rrsets?: RRSet[] }).rrsets ?? []).map((r) => `${r.name} ${r.type}`);
  const missing = wanted.filter((w) => !have.includes(`${w.name} ${w.type}`));
  if (missing.length) {
    const r = await api('PATCH', `/zones/${encodeURIComponent(zone)}`, {
      rrsets: missing.map((m) => ({ ...m, changetype: 'REPLACE' })),
    });
    if (r.status !== 204)
      throw new Error(
        `PowerDNS: add ${missing.map((m) => m.name).join(', ')}: HTTP ${r.status} ${r.text.slice(0, 300)}`,
      );
  }
  return missing.map((m) => `${m.name} ${m.type}`);
}

/** A real DNS query (UDP) to the server, as a resolver would ask it. */
export async function queryA(
  name: string,
  timeoutMs = 1000,
): Promise<{ addresses: string[]; ttl: number } | { error: string }> {
  const r = new Resolver({ timeout: timeoutMs, tries: 1 });
  r.setServers([`${P.ip}:${P.port}`]);
  try {
    const answers = await r.resolve4(name, { ttl: true });
    return { addresses: answers.map((x) => x.address).sort(), ttl: Math.min(...answers.map((x) => x.ttl)) };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}
