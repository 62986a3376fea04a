// Faults for tests and demos: a node's sshd killed with every session it serves (and started
// again by its init, lab/supervisor.ts), the Temporal dev server restarted on the same database. Losing a whole
// site is lab/site-loss.ts.
import { setTimeout as sleep } from 'node:timers/promises';
import { sshBanner, tcpOpen } from './health.ts';
import { nodeProcesses } from './namespaces.ts';
import { readState, stopPid } from './processes.ts';
import { startAll } from './up-down.ts';
import { nodeNamed, SERVICES } from './topology.ts';

/** Kills the node's sshd and every session it serves, as a crashed daemon would leave it. */
export function killSshd(nodeId: string): number[] {
  const killed = nodeProcesses(nodeNamed(nodeId).id)
    .filter((p) => p.comm === 'sshd')
    .map((p) => p.pid);
  for (const pid of killed) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return killed;
}

export async function startSshd(nodeId: string): Promise<void> {
  const node = nodeNamed(nodeId);
  // By its command line: Node.js 24 names its main thread, so the process's comm is `MainThread`.
  const sup = nodeProcesses(node.id).find(
    (p) => /(^|\/)node$/.test(p.cmdline.split(' ')[0] ?? '') && p.cmdline.includes('supervisor.ts'),
  );
  if (!sup) throw new Error(`${nodeId}: supervisor not found`);
  process.kill(sup.pid, 'SIGUSR1');
  for (let i = 0; i < 100; i++) {
    if ((await sshBanner(node.ip))?.startsWith('SSH-2.0')) return;
    await sleep(100);
  }
  throw new Error(`${nodeId}: sshd did not come back`);
}

/** Stops the Temporal dev server and starts it again on the same database file. */
export async function restartTemporal(downMs = 0): Promise<void> {
  const state = readState();
  await stopPid(state.pids.temporal);
  if (downMs) await sleep(downMs);
  startAll(state);
  const t = SERVICES.temporal;
  for (let i = 0; i < 300; i++) {
    if (await tcpOpen(t.ip, t.port)) return;
    await sleep(100);
  }
  throw new Error('temporal did not come back');
}
