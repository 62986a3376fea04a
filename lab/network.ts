// The lab's network: one bridge (drctl-lab) on this machine, and per control-plane node (and per
// bastion) a network namespace with a veth on that bridge, so each node has its own address, its
// own 127.0.0.1 and its own ports, as a host does. This machine keeps 172.30.0.254 on the bridge
// (the nodes' route out) and the object store's 172.30.30.2. Every step looks before it acts, so
// `lab up` can run it over any state.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { LAB_NET, SERVICES } from './topology.ts';

const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
const linkExists = (name: string, netns?: string) => {
  try {
    ip([...(netns ? ['-n', netns] : []), 'link', 'show', name]);
    return true;
  } catch {
    return false;
  }
};
const hasAddr = (dev: string, cidr: string, netns?: string) =>
  ip([...(netns ? ['-n', netns] : []), '-o', 'addr', 'show', 'dev', dev]).includes(` ${cidr} `);

export const netnsPath = (netns: string) => `/run/netns/${netns}`;

/** The lab's bridge exists: without it nothing on this machine can hold a node's or MinIO's address. */
export const bridgeExists = () => linkExists(LAB_NET.bridge);

export function ensureBridge(): void {
  const { bridge, hostIp, prefix } = LAB_NET;
  if (!linkExists(bridge)) ip(['link', 'add', bridge, 'type', 'bridge']);
  for (const cidr of [`${hostIp}/${prefix}`, `${SERVICES.minio.ip}/32`])
    if (!hasAddr(bridge, cidr)) ip(['addr', 'add', cidr, 'dev', bridge]);
  ip(['link', 'set', bridge, 'up']);
}

/** The host's network namespace `netns` with `address` on its eth0, attached to the bridge by `veth`. */
export function ensureHostNet(host: { netns: string; veth: string; ip: string }): void {
  ensureBridge();
  if (!existsSync(netnsPath(host.netns))) ip(['netns', 'add', host.netns]);
  if (!linkExists('eth0', host.netns)) {
    if (linkExists(host.veth)) ip(['link', 'del', host.veth]);
    ip(['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns]);
  }
  ip(['link', 'set', host.veth, 'master', LAB_NET.bridge, 'up']);
  const cidr = `${host.ip}/${LAB_NET.prefix}`;
  if (!hasAddr('eth0', cidr, host.netns)) ip(['-n', host.netns, 'addr', 'add', cidr, 'dev', 'eth0']);
  ip(['-n', host.netns, 'link', 'set', 'eth0', 'up']);
  ip(['-n', host.netns, 'link', 'set', 'lo', 'up']);
  // kubeadm's prerequisite on every node (its preflight checks it); per namespace, so not this machine's.
  execFileSync('nsenter', [`--net=${netnsPath(host.netns)}`, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  if (!ip(['-n', host.netns, 'route', 'show', 'default']).trim())
    ip(['-n', host.netns, 'route', 'add', 'default', 'via', LAB_NET.hostIp]);
}

/** Removes a host's namespace (its veth goes with it); `lab down --purge`. */
export function removeHostNet(host: { netns: string }): void {
  if (existsSync(netnsPath(host.netns))) ip(['netns', 'del', host.netns]);
}
