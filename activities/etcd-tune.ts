// The rolling etcd tune (`drctl etcd tune`), one member at a time. Each activity looks before it
// acts: a member is read (its manifest's values, the values its running etcd process was started
// with, its health, who it thinks leads) before anything is written; the manifest is written only
// when it does not already say the wanted values (a replayed or retried step changes nothing
// twice), atomically (a hidden temporary file the kubelet ignores, then a rename in the manifests
// dir), and the kubelet restarts the static pod on its own. "Back" means the running process has
// the new flags and the member answers healthy with a leader.
import { setTimeout as sleep } from 'node:timers/promises';
import { manifestWithTuning, type Tuning, tuningFromManifest } from '../common/etcd-tuning.ts';
import { FailureType, failure } from '../common/errors.ts';
import { shq } from '../common/shell.ts';
import type { Gateways } from '../gateways/index.ts';
import { heartbeat } from './support.ts';

export interface TuneMemberState {
  node: string;
  reachable: boolean;
  /** What the manifest says (the kubelet will run this). */
  manifest?: Tuning;
  /** What the etcd process now running was started with (undefined: no etcd process). */
  running?: Tuning;
  healthy: boolean;
  memberId?: string;
  leader?: string;
  error?: string;
}

const manifestPath = (dir: string) => `${dir}/etcd.yaml`;

/**
 * One look at the member, in one SSH command: its manifest; the command line of the etcd process
 * now running (from /proc, in the node's PID namespace); and its own /health on the manifest's
 * --listen-metrics-urls (kubeadm: http://127.0.0.1:2381), which answers "true" only for a member
 * that has a leader and no alarm. Plain bash (/dev/tcp): no tool needed on the node.
 */
const lookScript = (manifest: string) => `set -u
echo '=== manifest'; cat ${shq(manifest)} || exit 3
echo '=== running'
for p in /proc/[0-9]*; do
  c=$(tr '\\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  case "$c" in etcd\\ *|*/etcd\\ *) printf '%s\\n' "$c"; break;; esac
done
echo '=== health'
url=$(sed -n 's/.*--listen-metrics-urls=\\(http:[^ ,]*\\).*/\\1/p' ${shq(manifest)} | head -n 1)
if [ -n "$url" ]; then
  hp=\${url#http://}; hp=\${hp%%/*}
  if exec 3<>"/dev/tcp/\${hp%:*}/\${hp##*:}" 2>/dev/null; then
    printf 'GET /health HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' "$hp" >&3
    timeout 5 cat <&3 | tail -n 1; echo
    exec 3<&-
  else echo 'not listening'; fi
else echo 'no --listen-metrics-urls'; fi
`;

export function parseLook(out: string): { manifest?: Tuning; running?: Tuning; healthy: boolean; health: string } {
  // Sections by their header lines (an empty section is just its header: a stopped etcd).
  const sections: Record<string, string[]> = {};
  let at: string[] | undefined;
  for (const line of out.split('\n')) {
    const h = /^=== (\w+)$/.exec(line);
    if (h) sections[h[1]!] = at = [];
    else at?.push(line);
  }
  const part = (name: string) => (sections[name] ?? []).join('\n').trim();
  const manifest = part('manifest');
  const running = part('running');
  const health = part('health');
  return {
    manifest: manifest ? tuningFromManifest(manifest) : undefined,
    running: running ? tuningFromManifest(running.split(' ').join('\n')) : undefined,
    healthy: /"health"\s*:\s*"true"/.test(health),
    health: health.slice(0, 200),
  };
}

export function createEtcdTuneActivities(gw: Gateways) {
  const dirOf = (cluster: string, node: string) => {
    const cp = gw.node(cluster, node).controlPlane;
    if (cp.profile !== 'kubeadm')
      throw failure(FailureType.PreflightFailed, `${cluster}/${node}: etcd tune edits kubeadm static pod manifests`);
    return cp.manifestsDir;
  };

  /** The member now; `withLeader` also asks etcd who it is and who leads (etcdctl, a few seconds more). */
  async function read(cluster: string, node: string, withLeader: boolean): Promise<TuneMemberState> {
    const shell = gw.shell(cluster, node);
    try {
      const r = await shell.exec(lookScript(manifestPath(dirOf(cluster, node))), { timeoutMs: 30_000 });
      if (r.code === 3) return { node, reachable: true, healthy: false, error: 'no etcd manifest on the node' };
      const look = parseLook(r.stdout);
      const status =
        withLeader && look.healthy
          ? await gw
              .etcd(cluster, node)
              .status()
              .catch(() => undefined)
          : undefined;
      return {
        node,
        reachable: true,
        manifest: look.manifest,
        running: look.running,
        healthy: look.healthy && (!withLeader || (!!status && status.leader !== '0')),
        memberId: status?.memberId,
        leader: status?.leader,
        error: look.healthy ? undefined : `/health: ${look.health || 'no answer'}`,
      };
    } catch (err) {
      return { node, reachable: false, healthy: false, error: (err as Error).message };
    }
  }

  return {
    /** One member as it is now: manifest and running values, health, leader. Read-only. */
    async readTuneMember(input: { cluster: string; node: string }): Promise<TuneMemberState> {
      return read(input.cluster, input.node, true);
    },

    /**
     * Before a member is restarted: if it leads, leadership goes to `to` first (`etcdctl
     * move-leader`), so the restart is a follower's. Left to itself, a stopping leader hands off
     * only after its client listeners drained (measured: a client's write through it then missed
     * its 5 s budget, once in a roll). Looks first: a member that does not lead is left alone.
     */
    async handOffLeadership(input: {
      cluster: string;
      node: string;
      to: string;
    }): Promise<{ outcome: 'not-leader' | 'moved'; leader: string }> {
      const etcd = gw.etcd(input.cluster, input.node);
      const [now, target] = await Promise.all([etcd.status(), gw.etcd(input.cluster, input.to).status()]);
      if (now.leader !== now.memberId) return { outcome: 'not-leader', leader: now.leader };
      await etcd.moveLeader(target.memberId);
      const after = await etcd.status();
      if (after.leader !== target.memberId)
        throw failure(
          FailureType.EtcdUnhealthy,
          `${input.cluster}/${input.node}: leadership did not move to ${input.to} (leader now ${after.leader})`,
        );
      return { outcome: 'moved', leader: after.leader };
    },

    /**
     * The member's manifest set to `tuning` unless it already says so ('already'); the kubelet
     * restarts etcd with it. Refused when the manifest holds neither the old values nor the new
     * ones: someone else changed it, and this run must not overwrite that.
     */
    async setMemberTuning(input: {
      cluster: string;
      node: string;
      tuning: Tuning;
      expect: Tuning;
    }): Promise<'already' | 'written'> {
      const path = manifestPath(dirOf(input.cluster, input.node));
      const shell = gw.shell(input.cluster, input.node);
      const text = (await shell.exec(`cat ${shq(path)}`, { check: true, timeoutMs: 20_000 })).stdout;
      const now = tuningFromManifest(text);
      const same = (a: Tuning, b: Tuning) => a.heartbeatMs === b.heartbeatMs && a.electionMs === b.electionMs;
      if (same(now, input.tuning)) return 'already';
      if (!same(now, input.expect))
        throw failure(
          FailureType.ChangedSinceApproval,
          `${input.cluster}/${input.node}: its manifest says ${now.heartbeatMs}/${now.electionMs}, not the ${input.expect.heartbeatMs}/${input.expect.electionMs} this run planned from: changed by someone else, not overwritten`,
        );
      const next = manifestWithTuning(text, input.tuning);
      const tmp = `${path.replace(/[^/]*$/, '')}.etcd.yaml.drctl-tune`;
      // The manifest is a pod spec (file paths and flags, no secret): it travels base64 to survive quoting.
      await shell.exec(
        `umask 077 && printf %s ${shq(Buffer.from(next).toString('base64'))} | base64 -d > ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(path)}`,
        { check: true, timeoutMs: 20_000 },
      );
      return 'written';
    },

    /**
     * Waits until the member runs `tuning` (its etcd process restarted with those flags) and is
     * healthy with a leader; heartbeats while it waits. Past `timeoutMs` it fails for good
     * (VerificationFailed: waiting again would not help), naming what it last saw.
     */
    async waitMemberTuned(input: {
      cluster: string;
      node: string;
      tuning: Tuning;
      timeoutMs: number;
    }): Promise<TuneMemberState> {
      const until = Date.now() + input.timeoutMs;
      let last: TuneMemberState | undefined;
      for (;;) {
        last = await read(input.cluster, input.node, false);
        heartbeat(last);
        const runs = last.running;
        if (
          last.healthy &&
          runs &&
          runs.heartbeatMs === input.tuning.heartbeatMs &&
          runs.electionMs === input.tuning.electionMs
        )
          return last;
        if (Date.now() > until)
          throw failure(
            FailureType.VerificationFailed,
            `${input.cluster}/${input.node}: not back with ${input.tuning.heartbeatMs}/${input.tuning.electionMs} after ${Math.round(input.timeoutMs / 1000)} s: ` +
              `running ${runs ? `${runs.heartbeatMs}/${runs.electionMs}` : 'no etcd'}, ${last.healthy ? 'healthy' : `not healthy (${last.error ?? 'no leader'})`}`,
          );
        await sleep(1000);
      }
    },
  };
}
