// The lab's processes: each started detached with its log in .lab/logs, recorded by name in
// .lab/state.json (with the sites taken down on purpose), and stopped later by that recorded pid
// only, never by name: another checkout's lab or anything else on the machine stays untouched.
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { paths, REPO } from './topology.ts';

/** A site taken down with `drctl lab site down`: its app endpoint stopped; with --hard, cp1's manifests parked. */
export interface SiteDown {
  hard: boolean;
  parked: string[];
  since: string;
  /**
   * `lab site destroy`: the site's hosts were wiped to what provisioning leaves (no control plane,
   * no data, new SSH host keys). `lab up` lays nothing of kubeadm's there and runs no kubeadm;
   * `lab site up` brings the site back only once its control plane was rebuilt.
   */
  destroyed?: boolean;
}

export interface LabState {
  pids: Record<string, number>;
  sitesDown?: Record<string, SiteDown>;
  /** Set while the stretched cluster is up (`drctl lab stretched up`): `lab up` starts it again. */
  stretched?: { since: string };
  /**
   * Stretched members killed with their site (`lab site down --hard`), as burned hosts: never
   * started again by `lab up` or `lab stretched up` (they would come back with their old data);
   * one at a time by `lab stretched up --node`, then `drctl etcd rejoin`.
   */
  stretchedLost?: string[];
  /** Set while the sites' nodes are stopped (SIGSTOP) for the stretched cluster's measurements. */
  sitesFrozen?: { since: string };
  /** Each inter-site link's state as `drctl lab link` last set it (put back when Toxiproxy restarts). */
  links?: Record<string, { rttMs: number; jitterMs: number; down: boolean }>;
}

export const readState = (): LabState =>
  existsSync(paths.state) ? (JSON.parse(readFileSync(paths.state, 'utf8')) as LabState) : { pids: {} };
export const writeState = (s: LabState) => writeFileSync(paths.state, JSON.stringify(s, null, 2));

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

export function launch(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): number {
  const out = openSync(join(paths.logs, `${name.replace(/\//g, '-')}.log`), 'a');
  const child = spawn(cmd, args, {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, ...env },
    cwd: REPO,
  });
  child.unref();
  if (!child.pid) throw new Error(`could not start ${name} (${cmd})`);
  return child.pid;
}

export function childOf(pid: number): number | undefined {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids[0] ? Number(kids[0]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * SIGTERM, up to 15 s to exit, then SIGKILL of its process group. A node's pid is its `unshare`,
 * which ignores SIGTERM while it waits: the signal goes to the namespace's init (bash), which
 * hands it to the node's init, which stops the kubelet and then every container gracefully.
 */
export async function stopPid(pid: number | undefined, isNode = false): Promise<boolean> {
  if (!alive(pid)) return false;
  try {
    process.kill((isNode ? childOf(pid!) : undefined) ?? pid!, 'SIGTERM');
  } catch {
    return false;
  }
  for (let i = 0; i < 150 && alive(pid); i++) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(-pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return true;
}

/** The pid key of the lab's worker "at" a site. */
export const workerId = (site: string) => `worker-${site}`;

/** Every worker pid key in the state (one per site; `worker` from a lab brought up before that). */
export const workerIds = (state: LabState) =>
  Object.keys(state.pids).filter((k) => k === 'worker' || k.startsWith('worker-'));
