// The lab's inter-site link injector (lab/link.ts) against a real Toxiproxy server: a TCP echo
// through one proxy of a link answers one round trip later by the --rtt given, not at all while the
// link is down (and the connection stays open: black-holed, not refused), and at once again after.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkName, Toxiproxy, toxicsFor } from '../lab/link.ts';
import { bin } from '../lab/topology.ts';

const HOST = '127.0.50.1';
const API_PORT = 18474;
const PROXY_PORT = 17000;
const LINK = linkName('site-b', 'site-a');

let server: ChildProcess;
let echo: Server;
const tp = new Toxiproxy(`http://${HOST}:${API_PORT}`);

/** Median ms from writing a byte to reading it back, over n writes on one connection. */
async function echoRtt(sock: Socket, n = 7): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      sock.once('data', () => resolve());
      sock.write('x');
    });
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)]!;
}

const connect = () =>
  new Promise<Socket>((resolve, reject) => {
    const s = new Socket();
    s.once('error', reject);
    s.connect(PROXY_PORT, HOST, () => resolve(s));
  });

describe('the inter-site link injector (Toxiproxy)', () => {
  beforeAll(async () => {
    echo = createServer((c) => c.pipe(c));
    await new Promise<void>((r) => echo.listen(0, '127.0.50.2', r));
    server = spawn(bin.toxiproxy, ['-host', HOST, '-port', String(API_PORT)], { stdio: 'ignore' });
    await tp.ready();
    const port = (echo.address() as { port: number }).port;
    await tp.ensureProxy({ name: `${LINK}.echo`, listen: `${HOST}:${PROXY_PORT}`, upstream: `127.0.50.2:${port}` });
  });
  afterAll(() => {
    server?.kill();
    echo?.close();
  });

  it('names a link the same whichever site comes first', () => {
    expect(LINK).toBe('site-a~site-b');
    expect(linkName('site-a', 'site-b')).toBe(LINK);
  });

  it('splits a round trip over both directions in whole ms, and refuses anything else', () => {
    expect(toxicsFor({ rttMs: 7, jitterMs: 1, down: false }).map((t) => t.attributes)).toEqual([
      { latency: 3, jitter: 0 },
      { latency: 4, jitter: 1 },
    ]);
    expect(() => toxicsFor({ rttMs: 2.5, jitterMs: 0, down: false })).toThrow(/whole number/);
    expect(() => toxicsFor({ rttMs: -1, jitterMs: 0, down: false })).toThrow(/>= 0/);
  });

  it('adds the round trip it is given, and reads it back', async () => {
    const sock = await connect();
    try {
      const base = await echoRtt(sock);
      expect(base).toBeLessThan(10);
      await tp.setLink(LINK, { rttMs: 40, jitterMs: 0, down: false });
      expect(await tp.linkState(LINK)).toEqual({ rttMs: 40, jitterMs: 0, down: false });
      const slow = await echoRtt(sock);
      expect(slow).toBeGreaterThanOrEqual(40);
      expect(slow).toBeLessThan(40 + 25);
      await tp.setLink(LINK, { rttMs: 0, jitterMs: 0, down: false });
      expect(await echoRtt(sock)).toBeLessThan(10);
    } finally {
      sock.destroy();
    }
  });

  it('--down black-holes the link: nothing comes back, nothing is refused or closed', async () => {
    await tp.setLink(LINK, { rttMs: 0, jitterMs: 0, down: true });
    expect((await tp.linkState(LINK))?.down).toBe(true);
    const sock = await connect(); // accepted: not refused
    let closed = false;
    sock.on('close', () => (closed = true));
    const answered = await Promise.race([
      new Promise<boolean>((r) => {
        sock.once('data', () => r(true));
        sock.write('x');
      }),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1500)),
    ]);
    expect(answered).toBe(false);
    expect(closed).toBe(false);
    sock.destroy();
    await tp.setLink(LINK, { rttMs: 0, jitterMs: 0, down: false });
    const again = await connect();
    expect(await echoRtt(again, 3)).toBeLessThan(10);
    again.destroy();
  });

  it('refuses a link with no proxies, naming it', async () => {
    await expect(tp.setLink('site-a~site-c', { rttMs: 1, jitterMs: 0, down: false })).rejects.toThrow(
      /no proxies of link site-a~site-c/,
    );
  });
});
