// HttpGateway: plain HTTP to the apps drctl fails over (their health endpoints) and to the people
// it tells (a webhook). Neither ever throws: a probe that cannot connect is an answer too.

export interface ProbeResult {
  ok: boolean;
  /** "HTTP 503 <start of the body>", or the connection error's code ("ECONNREFUSED"). */
  detail: string;
}

export class HttpGateway {
  /** GET `url` (with `host` as the Host header, for asking an address about a name); ok on 200 only. */
  async probe(url: string, opts: { host?: string; timeoutMs?: number } = {}): Promise<ProbeResult> {
    try {
      const res = await fetch(url, {
        headers: opts.host ? { Host: opts.host } : {},
        signal: AbortSignal.timeout(opts.timeoutMs ?? 3000),
      });
      const body = (await res.text()).trim().slice(0, 120);
      return { ok: res.status === 200, detail: `HTTP ${res.status}${body ? ` ${body}` : ''}` };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return { ok: false, detail: e.cause?.code ?? e.message };
    }
  }

  /** POST `body` as JSON: the response's status, or why there was none. */
  async postJson(url: string, body: unknown, timeoutMs = 5000): Promise<{ status: number } | { error: string }> {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: res.status };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
}
