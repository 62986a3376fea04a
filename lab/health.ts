// How the lab looks at its servers, and what it reports for each (`Component`): a TCP connect, an
// SSH banner, HTTP(S) GETs (with a client certificate, or none against a self-signed serving one)
// and GETs on a site's API server with its admin certificate. No probe throws: a server that does
// not answer is an answer (status 0 and the reason).
import { readFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { type LabSite, paths } from './topology.ts';

/** One line of `drctl lab status`. */
export interface Component {
  name: string;
  kind:
    | 'temporal'
    | 'minio'
    | 'node'
    | 'sshd'
    | 'kubelet'
    | 'bastion'
    | 'etcd'
    | 'kube-apiserver'
    | 'kube-controller-manager'
    | 'kube-scheduler'
    | 'kwok'
    | 'velero'
    | 'pdns'
    | 'app'
    | 'toxiproxy'
    | 'worker';
  address: string;
  pid?: number;
  healthy: boolean;
  detail: string;
  /** Down on purpose (`drctl lab site down`): reported unhealthy, but `lab up` does not wait for it. */
  downOnPurpose?: boolean;
}

export function tcpOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: timeoutMs });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('timeout', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(false));
  });
}

export function sshBanner(host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host, port: 22, timeout: 2000 });
    s.once('data', (d) => (s.destroy(), resolve(d.toString().trim())));
    s.once('timeout', () => (s.destroy(), resolve(undefined)));
    s.once('error', () => resolve(undefined));
  });
}

/** The HTTP status (0: no answer) and the body, or why there was no answer. */
type Answer = { status: number; body: string };

function httpsAnswer(
  url: string,
  options: RequestOptions,
  failure: (err: NodeJS.ErrnoException) => string,
): Promise<Answer> {
  return new Promise((resolve) => {
    const req = httpsRequest(url, options, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, body: failure(err) }));
    req.end();
  });
}

export function httpsGet(url: string, tls: { ca: string; cert: string; key: string }): Promise<Answer> {
  let creds: { ca: Buffer; cert: Buffer; key: Buffer };
  try {
    // A lab that was never brought up (fresh clone) has no PKI yet: that is "down", not a crash.
    creds = { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  } catch (err) {
    return Promise.resolve({
      status: 0,
      body: `no client certificate (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    });
  }
  return httpsAnswer(url, { ...creds, timeout: 3000 }, (err) => err.message);
}

export async function httpGet(url: string, timeoutMs = 3000): Promise<Answer> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: (await res.text()).trim() };
  } catch (err) {
    const e = err as Error & { cause?: NodeJS.ErrnoException };
    return { status: 0, body: e.cause?.code ?? e.message };
  }
}

/** A GET on the site's API server (or one node's) with the admin client certificate. */
export function adminGet(site: LabSite, path: string, nodeIp?: string): Promise<Answer> {
  const pki = join(paths.pki(site.name), 'kubernetes');
  const server = nodeIp ? `https://${nodeIp}:6443` : site.apiserver;
  return httpsGet(`${server}${path}`, {
    ca: join(pki, 'ca.crt'),
    cert: join(pki, 'admin.crt'),
    key: join(pki, 'admin.key'),
  });
}

export function json<T>(body: string): T | undefined {
  try {
    return JSON.parse(body) as T;
  } catch {
    return undefined;
  }
}
