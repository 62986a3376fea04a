// The stretched cluster (lab/topology.ts STRETCHED) brought up and down on demand, and its
// inter-site link. Members on the same side talk directly over the lab bridge; every connection a
// member opens to a member on the other side (etcd's peer port 2380 and client port 2379) is
// DNATed, in the dialling node's own network namespace (iptables chain DRCTL-LINK in its nat
// OUTPUT), to a Toxiproxy proxy on this machine whose upstream is that member. So the whole
// cross-site path, both directions of every etcd stream, crosses Toxiproxy, and `drctl lab link`
// (lab/link.ts) sets latency or cuts it; the sites' own clusters never touch it. TLS is end to end:
// the proxy moves bytes, the members verify each other's certificates as they would directly
// (the proxy's address is in the peer certificates' SANs: lab/kubeadm.ts).
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { labEtcdctl } from './etcdctl.ts';
import { tcpOpen } from './health.ts';
import type { Component } from './health.ts';
import { bootstrapSite } from './kubeadm.ts';
import { linkName, type LinkState, type ProxySpec, Toxiproxy } from './link.ts';
import { netnsPath } from './network.ts';
import { nodeProcesses, startNode } from './namespaces.ts';
import { alive, launch, type LabState, readState, stopPid, writeState } from './processes.ts';
import { bin, type LabNode, LAB_DIR, paths, SITES, STRETCHED, TOXIPROXY } from './topology.ts';

const run = promisify(execFile);

/** The only link the lab has: between the two sites. */
export const SITE_LINK = linkName('site-a', 'site-b');
const CHAIN = 'DRCTL-LINK';

export interface LinkProxy extends ProxySpec {
  /** The member the proxy leads to, and which of its ports. */
  node: LabNode;
  port: 2379 | 2380;
}

/** One proxy per member and port; the other side's members reach that port through it. */
export function linkProxies(): LinkProxy[] {
  return STRETCHED.nodes.flatMap((node, i) =>
    ([2380, 2379] as const).map((port) => ({
      name: `${SITE_LINK}.${node.name}-${port === 2380 ? 'peer' : 'client'}`,
      // 23801-23805 for the peer ports, 23791-23795 for the client ports.
      listen: `${TOXIPROXY.listenIp}:${port * 10 + i + 1}`,
      upstream: `${node.ip}:${port}`,
      node,
      port,
    })),
  );
}

export const toxiproxy = () => new Toxiproxy(TOXIPROXY.api);

const iptables = (node: LabNode, args: string[]) =>
  execFileSync('nsenter', [`--net=${netnsPath(node.netns)}`, 'iptables', '-w', '5', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  });

/** The node's DNAT rules: every member on the other side, by way of its proxy (the chain rebuilt each time). */
export function ensureLinkRules(node: LabNode): void {
  try {
    iptables(node, ['-t', 'nat', '-N', CHAIN]);
  } catch {
    /* exists */
  }
  iptables(node, ['-t', 'nat', '-F', CHAIN]);
  for (const p of linkProxies().filter((x) => x.node.location !== node.location)) {
    const [ip, port] = p.listen.split(':');
    iptables(node, [
      '-t',
      'nat',
      '-A',
      CHAIN,
      '-d',
      `${p.node.ip}/32`,
      '-p',
      'tcp',
      '--dport',
      String(p.port),
      '-j',
      'DNAT',
      '--to-destination',
      `${ip}:${port}`,
    ]);
  }
  try {
    iptables(node, ['-t', 'nat', '-C', 'OUTPUT', '-j', CHAIN]);
  } catch {
    iptables(node, ['-t', 'nat', '-A', 'OUTPUT', '-j', CHAIN]);
  }
}

/** Toxiproxy running with every proxy of the link, and the link state recorded in the lab's state put back. */
async function ensureToxiproxy(state: LabState): Promise<void> {
  if (!alive(state.pids.toxiproxy)) {
    // Its config file preloads the proxies (not the toxics) when it starts again.
    const config = join(LAB_DIR, 'toxiproxy.json');
    writeFileSync(
      config,
      JSON.stringify(linkProxies().map(({ name, listen, upstream }) => ({ name, listen, upstream }))),
    );
    state.pids.toxiproxy = launch(
      'toxiproxy',
      bin.toxiproxy,
      ['-host', TOXIPROXY.ip, '-port', String(TOXIPROXY.port), '-config', config],
      { LOG_LEVEL: 'error' },
    );
    writeState(state);
  }
  const tp = toxiproxy();
  await tp.ready(15_000);
  for (const p of linkProxies()) await tp.ensureProxy({ name: p.name, listen: p.listen, upstream: p.upstream });
  await tp.setLink(SITE_LINK, state.links?.[SITE_LINK] ?? { rttMs: 0, jitterMs: 0, down: false });
}

/** Sets the link between the sites (recorded, so a restarted Toxiproxy gets it back). */
export async function setSiteLink(link: LinkState): Promise<string[]> {
  const state = readState();
  if (!state.stretched) throw new Error('the stretched cluster is not up: `drctl lab stretched up` first');
  const names = await toxiproxy().setLink(SITE_LINK, link);
  state.links = { ...state.links, [SITE_LINK]: link };
  writeState(state);
  return names;
}

export async function siteLinkState(): Promise<LinkState | undefined> {
  return toxiproxy().linkState(SITE_LINK);
}

/**
 * The stretched cluster as `drctl lab status` lists it: Toxiproxy (the link), and on every node its
 * etcd member (checked from this machine with the node's healthcheck certificate) and its API
 * server (/readyz).
 */
export async function stretchedComponents(): Promise<Component[]> {
  const state = readState();
  const link = state.links?.[SITE_LINK];
  const proxy: Promise<Component> = (async () => {
    const up = await toxiproxy()
      .ready(2000)
      .then(
        () => true,
        () => false,
      );
    return {
      name: 'stretched/toxiproxy',
      kind: 'toxiproxy',
      address: `${TOXIPROXY.api} (proxies on ${TOXIPROXY.ip})`,
      pid: state.pids.toxiproxy,
      healthy: alive(state.pids.toxiproxy) && up,
      detail: up
        ? `${SITE_LINK}: ${link?.down ? 'DOWN' : 'up'}, rtt +${link?.rttMs ?? 0}ms, jitter ${link?.jitterMs ?? 0}ms`
        : 'not answering',
    };
  })();
  const lost = new Set(state.stretchedLost ?? []);
  const perNode = STRETCHED.nodes.map(async (n): Promise<Component[]> => {
    if (lost.has(n.name))
      return [
        {
          name: `${n.id} etcd`,
          kind: 'etcd',
          address: `${n.ip}:2379`,
          healthy: false,
          downOnPurpose: true,
          detail: `lost with its site (lab site down --hard): \`drctl lab stretched up --node ${n.name}\`, then \`drctl etcd rejoin --cluster ${STRETCHED.name} --node ${n.name}\``,
        },
      ];
    let procs: { pid: number; comm: string }[] = [];
    try {
      procs = nodeProcesses(n.id, { withPods: true });
    } catch {
      /* the node is not running: its checks below say so */
    }
    /** One component: healthy when `probe` resolves, else its first error line as the detail. */
    const check = async (
      kind: 'etcd' | 'kube-apiserver',
      address: string,
      ok: string,
      probe: () => Promise<unknown>,
    ) => {
      const c = { name: `${n.id} ${kind}`, kind, address, pid: procs.find((p) => p.comm === kind)?.pid };
      try {
        await probe();
        return { ...c, healthy: true, detail: ok };
      } catch (err) {
        const e = err as Error & { stderr?: string };
        const why = (e.stderr?.trim() || e.message).split('\n')[0]!;
        // With members lost on purpose the rest may have no quorum: reported, not waited for.
        return lost.size
          ? { ...c, healthy: false, downOnPurpose: true, detail: `members lost on purpose, quorum may be gone: ${why}` }
          : { ...c, healthy: false, detail: why };
      }
    };
    const etcd = check('etcd', `${n.ip}:2379`, 'healthy', () =>
      labEtcdctl(STRETCHED.name, n.name, ['endpoint', 'health'], { timeoutMs: 5000 }),
    );
    if (!n.runsApiserver) return [await etcd];
    const address = `https://${n.ip}:6443`;
    const apiserver = check('kube-apiserver', address, 'ready', () =>
      run(join(bin.kubeDir, 'kubectl'), [
        '--kubeconfig',
        STRETCHED.kubeconfig,
        '--server',
        address,
        '--request-timeout=5s',
        'get',
        '--raw=/readyz',
      ]),
    );
    return Promise.all([etcd, apiserver]);
  });
  const [p, ...nodes] = await Promise.all([proxy, ...perNode]);
  return [p!, ...(nodes as Component[][]).flat()];
}

/** Every member healthy (from this machine, each with its own healthcheck certificate) and every API server ready. */
export async function stretchedHealth(): Promise<{ healthy: boolean; detail: string[] }> {
  // Members lost with their site are out of the cluster on purpose: the rest must be healthy.
  const cs = (await stretchedComponents()).filter((c) => c.kind !== 'toxiproxy' && !c.downOnPurpose);
  return {
    healthy: cs.every((c) => c.healthy),
    detail: cs.map((c) => `${c.name}${c.healthy ? ` ${c.detail}` : `: ${c.detail}`}`).sort(),
  };
}

/**
 * Every process of the two sites' nodes stopped (SIGSTOP) or continued (SIGCONT): kubelets,
 * containerds, etcds, API servers, controllers. Two cores cannot run eleven control planes and
 * still time round trips to the millisecond (measured: with the sites running, same-site pairs of
 * the stretched cluster took up to 14 ms and one 1 ms link read 20+ ms; load average 28), so the
 * stretched cluster's measurements run with the sites frozen. Their clocks jump on thaw, as after
 * a VM pause; etcd and the kubelets ride that out (the controller-manager's node grace is 10 min).
 */
function signalSites(sig: 'SIGSTOP' | 'SIGCONT'): number {
  let n = 0;
  for (const node of SITES.flatMap((s) => s.nodes)) {
    let procs: { pid: number }[] = [];
    try {
      procs = nodeProcesses(node.id, { withPods: true });
    } catch {
      continue; // not running
    }
    for (const p of procs) {
      try {
        process.kill(p.pid, sig);
        n++;
      } catch {
        /* gone */
      }
    }
  }
  return n;
}

export function freezeSites(): number {
  const state = readState();
  const n = signalSites('SIGSTOP');
  state.sitesFrozen = { since: new Date().toISOString() };
  writeState(state);
  return n;
}

/** Continues the sites' nodes if `freezeSites` stopped them (`lab stretched down`, `lab up` and `lab down` call it). */
export function thawSites(): number {
  const state = readState();
  if (!state.sitesFrozen) return 0;
  const n = signalSites('SIGCONT');
  delete state.sitesFrozen;
  writeState(state);
  return n;
}

/**
 * Starts the stretched cluster: Toxiproxy and its proxies, the five nodes, their DNAT rules,
 * kubeadm where it has not run, then waits until all five members and both API servers are healthy.
 * Needs the lab up (its bridge, site B's bastion).
 */
export async function stretchedUp(
  opts: { timeoutMs?: number; log?: (m: string) => void; freezeSites?: boolean } = {},
): Promise<{ seconds: number; detail: string[] }> {
  const log = opts.log ?? (() => undefined);
  const t0 = Date.now();
  if (opts.freezeSites) log(`sites frozen: ${freezeSites()} processes of their nodes stopped`);
  const state = readState();
  if (!alive(state.pids['site-b/bastion']))
    throw new Error("the lab is not up (site B's bastion is not running): `drctl lab up` first");
  state.stretched = { since: state.stretched?.since ?? new Date().toISOString() };
  writeState(state);
  await ensureToxiproxy(state);
  const lost = new Set(state.stretchedLost ?? []);
  if (lost.size)
    log(
      `not started, lost with their site: ${[...lost].join(', ')} (\`lab stretched up --node NAME\`, then \`drctl etcd rejoin\`)`,
    );
  for (const node of STRETCHED.nodes)
    if (!lost.has(node.name) && !alive(state.pids[node.id])) state.pids[node.id] = startNode(node);
  writeState(state);
  // Before kubeadm: its joins already reach the other side's members through the link.
  for (const node of STRETCHED.nodes) if (!lost.has(node.name)) ensureLinkRules(node);
  if (!lost.size) await bootstrapSite(STRETCHED, log);
  else {
    // Members lost: the rest may have no quorum (that is what `drctl etcd recover` is for), so
    // their health is reported, not waited for.
    const h = await stretchedHealth();
    log(`stretched cluster started without its lost members: ${h.healthy ? 'the others healthy' : 'not healthy'}`);
    return { seconds: (Date.now() - t0) / 1000, detail: h.detail };
  }
  const deadline = t0 + (opts.timeoutMs ?? 420_000);
  for (;;) {
    const h = await stretchedHealth();
    if (h.healthy) {
      const seconds = (Date.now() - t0) / 1000;
      log(`stretched cluster healthy (${seconds.toFixed(1)} s)`);
      return { seconds, detail: h.detail };
    }
    if (Date.now() > deadline)
      throw new Error(
        `stretched cluster not healthy after ${Math.round((Date.now() - t0) / 1000)} s:\n  ${h.detail.join('\n  ')}\n(logs in ${paths.logs} and ${LAB_DIR}/nodes/stretched-*/var/log)`,
      );
    await sleep(1000);
  }
}

/** Stops the stretched cluster's nodes and Toxiproxy (their disks stay: the next `up` is warm). */
export async function stretchedDown(): Promise<string[]> {
  const stopped: string[] = thawSites() ? ['(sites thawed)'] : [];
  const state = readState();
  await Promise.all(
    STRETCHED.nodes.map(async (n) => {
      if (await stopPid(state.pids[n.id], true)) stopped.push(n.id);
      delete state.pids[n.id];
    }),
  );
  if (await stopPid(state.pids.toxiproxy)) stopped.push('toxiproxy');
  delete state.pids.toxiproxy;
  delete state.stretched;
  writeState(state);
  return stopped.sort();
}

/**
 * A burned site's stretched members: every process of each node at `location` killed at once
 * (SIGKILL: no graceful stop, as a fire or a power cut), the node recorded as lost. Their disks
 * stay as they were at the moment of the loss.
 */
export function loseStretchedMembers(location: string): string[] {
  const state = readState();
  if (!state.stretched) return [];
  const lost: string[] = [];
  for (const n of STRETCHED.nodes.filter((x) => x.location === location)) {
    const launcher = state.pids[n.id];
    let procs: { pid: number }[] = [];
    try {
      procs = nodeProcesses(n.id, { withPods: true });
    } catch {
      /* not running */
    }
    for (const p of [...procs, ...(launcher ? [{ pid: launcher }] : [])]) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    delete state.pids[n.id];
    lost.push(n.name);
  }
  state.stretchedLost = [...new Set([...(state.stretchedLost ?? []), ...lost])];
  writeState(state);
  return lost;
}

/**
 * One stretched node started again (a returning host): its init, sshd, containerd and kubelet,
 * and its link rules; its kubelet starts whatever its manifests say, with the data it had. No
 * longer recorded as lost. Returns once its sshd answers.
 */
export async function startStretchedNode(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  const node = STRETCHED.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`unknown stretched node '${name}' (${STRETCHED.nodes.map((n) => n.name).join(', ')})`);
  const state = readState();
  if (!state.stretched) throw new Error('the stretched cluster is not up: `drctl lab stretched up` first');
  if (!alive(state.pids[node.id])) state.pids[node.id] = startNode(node);
  state.stretchedLost = (state.stretchedLost ?? []).filter((n) => n !== name);
  if (!state.stretchedLost.length) delete state.stretchedLost;
  writeState(state);
  ensureLinkRules(node);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while (!(await tcpOpen(node.ip, 22, 500))) {
    if (Date.now() > deadline) throw new Error(`${node.id}: sshd not answering after ${opts.timeoutMs ?? 60_000} ms`);
    await sleep(300);
  }
}
