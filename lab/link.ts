// The lab's inter-site links: this kernel has no netem, so latency, jitter and partitions between
// two sites are injected in user space by Toxiproxy (a TCP proxy made for fault injection). Each
// connection that crosses the link runs through one Toxiproxy proxy; a link's state is the toxics
// on every proxy of that link:
//   --rtt R [--jitter J]  a `latency` toxic on each direction, R/2 (± J/2), so a request and its
//                         answer together take R (± J) longer: a round trip, as ping measures it
//   --down                a `timeout` toxic with timeout 0 on each direction: data is dropped, never
//                         delivered, and no connection is closed: the sites are black-holed (as
//                         a cut fibre looks to etcd: timeouts, not refusals); new connections are
//                         accepted by the proxy and then hang the same way
// Proxies are named `<link>.<what>` (e.g. `site-a~site-b.cp1-peer`; a `/` would not route in the
// API): a link's proxies are found by that prefix, and nothing else on the server is touched.
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProxySpec {
  name: string;
  listen: string;
  upstream: string;
}

export interface LinkState {
  rttMs: number;
  jitterMs: number;
  down: boolean;
}

interface ToxicJson {
  name: string;
  type: string;
  stream: 'upstream' | 'downstream';
  toxicity: number;
  attributes: Record<string, number>;
}
interface ProxyJson {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  toxics: ToxicJson[];
}

export const linkName = (a: string, b: string) => [a, b].sort().join('~');

/** Toxiproxy's HTTP API (https://github.com/Shopify/toxiproxy#http-api), the calls the lab needs. */
export class Toxiproxy {
  constructor(private readonly api: string) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.api}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${text.trim()}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async ready(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.call('GET', '/version');
        return;
      } catch (err) {
        if (Date.now() > until) throw err;
        await sleep(100);
      }
    }
  }

  async proxies(): Promise<ProxyJson[]> {
    return Object.values(await this.call<Record<string, ProxyJson>>('GET', '/proxies'));
  }

  /** The proxy exists with exactly this listen and upstream address (made, or remade when they differ). */
  async ensureProxy(p: ProxySpec): Promise<void> {
    const have = (await this.proxies()).find((x) => x.name === p.name);
    if (have && have.listen === p.listen && have.upstream === p.upstream && have.enabled) return;
    if (have) await this.call('DELETE', `/proxies/${encodeURIComponent(p.name)}`);
    await this.call('POST', '/proxies', { ...p, enabled: true });
  }

  async removeProxy(name: string): Promise<void> {
    await this.call('DELETE', `/proxies/${encodeURIComponent(name)}`);
  }

  /** Every proxy of the link given exactly the toxics of `state` (others of drctl's removed first). */
  async setLink(link: string, state: LinkState): Promise<string[]> {
    const mine = (await this.proxies()).filter((p) => p.name.startsWith(`${link}.`));
    if (!mine.length) throw new Error(`no proxies of link ${link} on ${this.api}`);
    const want = toxicsFor(state);
    for (const p of mine) {
      const path = `/proxies/${encodeURIComponent(p.name)}/toxics`;
      for (const t of p.toxics) await this.call('DELETE', `${path}/${encodeURIComponent(t.name)}`);
      for (const t of want) await this.call('POST', path, t);
    }
    return mine.map((p) => p.name);
  }

  /** The link's state as its proxies say (their toxics read back), or undefined when they disagree. */
  async linkState(link: string): Promise<LinkState | undefined> {
    const states = (await this.proxies()).filter((p) => p.name.startsWith(`${link}.`)).map((p) => stateOf(p.toxics));
    if (!states.length) return undefined;
    const first = JSON.stringify(states[0]);
    return states.every((s) => JSON.stringify(s) === first) ? states[0] : undefined;
  }
}

/** The toxics of a link state: each direction carries half of the round trip and of the jitter. */
export function toxicsFor(s: LinkState): ToxicJson[] {
  for (const [k, v] of [
    ['rtt', s.rttMs],
    ['jitter', s.jitterMs],
  ] as const)
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${k} must be a whole number of ms >= 0, got ${v}`);
  // Toxiproxy takes whole milliseconds: an odd round trip puts the extra one on the way back.
  const half = (ms: number, stream: 'upstream' | 'downstream') =>
    stream === 'upstream' ? Math.floor(ms / 2) : ms - Math.floor(ms / 2);
  const out: ToxicJson[] = [];
  for (const stream of ['upstream', 'downstream'] as const) {
    if (s.down) out.push({ name: `down-${stream}`, type: 'timeout', stream, toxicity: 1, attributes: { timeout: 0 } });
    if (s.rttMs > 0 || s.jitterMs > 0)
      out.push({
        name: `rtt-${stream}`,
        type: 'latency',
        stream,
        toxicity: 1,
        attributes: { latency: half(s.rttMs, stream), jitter: half(s.jitterMs, stream) },
      });
  }
  return out;
}

function stateOf(toxics: ToxicJson[]): LinkState {
  const rtt = toxics.filter((t) => t.type === 'latency');
  return {
    rttMs: rtt.reduce((a, t) => a + (t.attributes.latency ?? 0), 0),
    jitterMs: rtt.reduce((a, t) => a + (t.attributes.jitter ?? 0), 0),
    down: toxics.some((t) => t.type === 'timeout'),
  };
}
