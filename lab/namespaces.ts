// Each control-plane node is its own mount + PID namespace (unshare) on the host's network
// namespace: the node's own /etc/kubernetes, /var/lib and /usr/local/bin, its own process tree
// under lab/supervisor.ts. From the host, the node's processes are found through /proc by that PID
// namespace, and the namespace-local pids the supervisor reports are mapped to host pids.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { childOf, launch, readState } from './processes.ts';
import { type LabNode, REPO, SITES } from './topology.ts';

export const isNodeId = (name: string) => SITES.some((s) => s.nodes.some((n) => n.id === name));

/** Starts the node: its own mount + PID namespace, bash as PID 1 (reaps orphans, forwards SIGTERM), the supervisor. */
export function startNode(node: LabNode): number {
  return launch(
    node.id,
    'unshare',
    [
      '--mount',
      '--pid',
      '--fork',
      '--mount-proc',
      '--propagation',
      'private',
      '--kill-child=SIGTERM',
      '--',
      'bash',
      '-c',
      'node --import tsx "$0" --root "$1" & c=$!; trap "kill -TERM $c" TERM INT; wait $c; wait $c',
      join(REPO, 'lab/supervisor.ts'),
      node.root,
    ],
    { PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/bin:/bin'}` },
  );
}

/** Host pids of every process inside a node's PID namespace, with their command names. */
export function nodeProcesses(nodeId: string): { pid: number; comm: string; cmdline: string }[] {
  const init = childOf(readState().pids[nodeId] ?? 0);
  if (!init) throw new Error(`${nodeId} is not running`);
  const ns = readlinkSync(`/proc/${init}/ns/pid`);
  const out: { pid: number; comm: string; cmdline: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/pid`) !== ns) continue;
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
  pods: Record<string, { pid?: number; restarts: number }>;
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
