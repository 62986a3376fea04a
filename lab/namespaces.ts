// Each control-plane node is a host of its own: its network namespace (lab/network.ts), and its own
// mount, PID and UTS namespaces (unshare): the node's own /etc/kubernetes, /var/lib and
// /usr/local/bin, its own hostname, its own process tree under lab/supervisor.ts. From the host,
// the node's processes are found through /proc by that PID namespace, and the namespace-local pids
// the supervisor reports are mapped to host pids. A bastion is a namespace with only its sshd.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ensureHostNet, netnsPath } from './network.ts';
import { childOf, launch, readState } from './processes.ts';
import { CLUSTERS, type LabBastion, type LabNode, REPO } from './topology.ts';

export const isNodeId = (name: string) =>
  CLUSTERS.some((s) => s.nodes.some((n) => n.id === name) || s.bastion?.id === name);

/**
 * Starts the node: in its network namespace (`nsenter --net`, not `ip netns exec`, which remounts
 * /sys and so hides the cgroup v1 mounts the kubelet needs), its own mount, PID and UTS namespaces,
 * bash as PID 1 (reaps orphans, forwards SIGTERM), the node's init (lab/supervisor.ts).
 */
export function startNode(node: LabNode): number {
  ensureHostNet(node);
  return launch(
    node.id,
    'nsenter',
    [
      `--net=${netnsPath(node.netns)}`,
      '--',
      'unshare',
      '--mount',
      '--pid',
      '--uts',
      '--fork',
      '--mount-proc',
      '--propagation',
      'private',
      '--kill-child=SIGTERM',
      '--',
      'bash',
      '-c',
      'node --import tsx "$0" --root "$1" --hostname "$2" --cgroup-root "$3" & c=$!; trap "kill -TERM $c" TERM INT; wait $c; wait $c',
      join(REPO, 'lab/supervisor.ts'),
      node.root,
      node.name,
      node.cgroupRoot,
    ],
    { PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/bin:/bin'}` },
  );
}

/** Starts a bastion: its sshd alone, in its network namespace. */
export function startBastion(b: LabBastion): number {
  ensureHostNet(b);
  return launch(b.id, 'nsenter', [
    `--net=${netnsPath(b.netns)}`,
    '--',
    '/usr/sbin/sshd',
    '-D',
    '-e',
    '-f',
    join(b.root, 'etc/ssh/sshd_config'),
  ]);
}

/** Runs a command on the node as root, as its provisioning would (in all its namespaces). */
export function nodeCommand(node: LabNode): string[] {
  const init = childOf(readState().pids[node.id] ?? 0);
  if (!init) throw new Error(`${node.id} is not running`);
  return ['nsenter', '-t', String(init), '-m', '-p', '-n', '-u', '--'];
}

/**
 * Host pids of every process inside a node's PID namespace, with their command names. With
 * `withPods`, also every process in the node's network namespace: its static pods (etcd, the API
 * server, ...) run in PID namespaces of their own under containerd, but on the host network.
 */
export function nodeProcesses(
  nodeId: string,
  opts: { withPods?: boolean } = {},
): { pid: number; comm: string; cmdline: string }[] {
  const init = childOf(readState().pids[nodeId] ?? 0);
  if (!init) throw new Error(`${nodeId} is not running`);
  const ns = readlinkSync(`/proc/${init}/ns/pid`);
  const net = opts.withPods ? readlinkSync(`/proc/${init}/ns/net`) : undefined;
  const out: { pid: number; comm: string; cmdline: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/pid`) !== ns && (net === undefined || readlinkSync(`/proc/${d}/ns/net`) !== net))
        continue;
      out.push({
        pid: Number(d),
        comm: readFileSync(`/proc/${d}/comm`, 'utf8').trim(),
        cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' '),
      });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** What the node's supervisor reports in run/supervisor.json: namespace-local pids. */
export interface SupervisorState {
  sshd?: number;
  containerd?: number;
  kubelet?: number;
}

/**
 * Host pids of the static pods' main processes, by node and container name: every process whose
 * cgroup lies under a node's kubelet cgroupRoot ("/drctl/site-a-cp1/kubepods/...") and whose
 * command is a known binary. One scan of /proc per call.
 */
export function containerPids(names: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cg = readFileSync(`/proc/${d}/cgroup`, 'utf8').match(/:memory:(\/drctl\/[^/]+)\/kubepods/)?.[1];
      if (!cg) continue;
      const exe = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')[0]!.split('/').pop()!;
      if (!names.includes(exe)) continue;
      const key = `${cg}|${exe}`;
      const pid = Number(d);
      if (!out.has(key) || pid < out.get(key)!) out.set(key, pid);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

export function supervisorState(node: LabNode): SupervisorState | undefined {
  try {
    return JSON.parse(readFileSync(join(node.root, 'run/supervisor.json'), 'utf8')) as SupervisorState;
  } catch {
    return undefined;
  }
}

/**
 * PIDs inside a node are namespace-local; map them to this host's view for `lab status`. One scan
 * of /proc per status call: "pidns inode:namespace pid" -> host pid, for every process in a child
 * PID namespace. Read /proc directly: processes come and go while we look (a vanished entry is skipped).
 */
export function nsPidTable(): Map<string, number> {
  const table = new Map<string, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = readFileSync(`/proc/${d}/status`, 'utf8').match(/^NSpid:\s+(\d+)\s+(\d+)$/m);
      if (m) table.set(`${readlinkSync(`/proc/${d}/ns/pid`)}:${m[2]}`, Number(m[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  return table;
}

export function hostPid(
  table: () => Map<string, number>,
  nodeInitPid: number | undefined,
  nsPid: number | undefined,
): number | undefined {
  if (!nodeInitPid || !nsPid) return undefined;
  try {
    const pidNs = readlinkSync(`/proc/${childOf(nodeInitPid) ?? nodeInitPid}/ns/pid`);
    return table().get(`${pidNs}:${nsPid}`);
  } catch {
    return undefined; // the node itself is gone
  }
}
