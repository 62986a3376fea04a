import type { Command } from 'commander';
import type { ClusterHealthReport } from '../../common/types.ts';
import { findCluster } from '../../config/load.ts';
import type { RebuildResult } from '../../common/rebuild.ts';
import { clusterHealth } from '../../workflows/cluster-health.ts';
import { clusterRebuild } from '../../workflows/cluster-rebuild.ts';
import { optional, positiveDuration, positiveInt } from '../flags.ts';
import { FailedOutcome, printJson, table } from '../output.ts';
import { afterDryRun, afterStart, startRun } from '../runbook-kit.ts';
import { requestInput } from '../signing.ts';
import { withTemporal } from '../temporal.ts';

export const rebuildWorkflowId = (cluster: string) => `cluster-rebuild-${cluster}`;

function rebuildText(workflowId: string, r: RebuildResult): string {
  if (r.outcome === 'dry-run')
    return `dry run of ${workflowId}: nothing was changed; it would rebuild from ${r.snapshotKey} (revision ${r.revision})\n`;
  const v = r.verified;
  return (
    `rebuilt from ${r.snapshotKey} (revision ${r.revision})` +
    (v
      ? `: API ready, etcd revision ${v.revision} (leader ${v.leader}), nodes ${v.nodes.map((n) => n.name).join(', ')}, kubeadm-config ${v.kubeadmConfigMatches ? 'matches the bundle' : 'DIFFERS'}, Velero locations ${v.backupLocations.map((l) => `${l.name}${l.phase ? ` ${l.phase}` : ''}`).join(', ') || 'none'}`
      : '') +
    '\n'
  );
}

export function registerClusterCommands(program: Command) {
  const cmd = program.command('cluster').description('Control-plane clusters');
  registerRebuild(cmd, program);
  cmd
    .command('check')
    .description(
      'Run the cluster-health runbook: SSH with pinned host keys, etcd quorum and leader, API server readiness',
    )
    .option('--cluster <name>', 'one cluster (default: every cluster in the config)')
    .option('--json', 'print JSON: per cluster { workflowId, runId, runbook, url, result } (result: the report)')
    .action(async (opts: { cluster?: string; json?: boolean }) => {
      let clusters: string[] = [];
      await withTemporal(
        program.opts<{ config: string }>().config,
        async (s) => {
          const runs = await Promise.all(
            clusters.map(async (cluster) => {
              const started = await startRun(s, clusterHealth, {
                taskQueue: s.config.temporal.taskQueue,
                workflowId: `cluster-health-${cluster}-${Date.now()}`,
                args: [{ cluster }],
                workflowExecutionTimeout: '5 minutes',
              });
              const result = await s.client.workflow.getHandle<typeof clusterHealth>(started.workflowId).result();
              return { ...started, result };
            }),
          );
          if (opts.json) printJson(runs);
          else for (const r of runs) process.stdout.write(`${render(r.result)}\n`);
          const unhealthy = runs.filter((r) => !r.result.ok).map((r) => r.result.cluster);
          if (unhealthy.length) throw new FailedOutcome(`unhealthy: ${unhealthy.join(', ')}`);
        },
        (config) => {
          clusters = opts.cluster
            ? [findCluster(config, opts.cluster).cluster.name]
            : config.sites.map((site) => site.cluster.name);
        },
      );
    });
}

/** `drctl cluster rebuild`: a burned site's control plane on new hosts (workflows/cluster-rebuild.ts). */
function registerRebuild(cmd: Command, program: Command) {
  cmd
    .command('rebuild')
    .description(
      "A site burned: rebuild its control plane on new hosts (as provisioning leaves them: OS, sshd, the login user, containerd, kubelet, kubeadm, the images; the config pinning their new host keys) from an off-site snapshot and its control-plane bundle: the CAs and service-account keys laid back, each node's certificates issued by kubeadm's phases, etcd restored on every member, the kubelets started (waits for go/no-go)",
    )
    .requiredOption('--cluster <name>', 'the cluster to rebuild')
    .option(
      '--snapshot <key>',
      "'latest' (the newest snapshot proven restorable that has a complete control-plane bundle) or a snapshot key",
      'latest',
    )
    .option('--bump-revision <n>', "revisions etcd jumps ahead (default: as a restore's)")
    .option('--key <file>', 'your SSH key: signs the request (default: $DRCTL_SIGNING_KEY, else ~/.ssh/id_ed25519)')
    .option('--as <name>', 'who is asking, when the request is not signed (default: the login name)')
    .option('--dry-run', 'preflight only: the source and the hosts checked, nothing changed')
    .option('--approval-timeout <duration>', 'abort, changing nothing, if no decision arrives in time')
    .option('--wait', 'follow the run to its end')
    .option(
      '--json',
      'print JSON: { workflowId, runId, runbook, url } (with --wait or --dry-run also status and result)',
    )
    .action(
      async (opts: {
        cluster: string;
        snapshot: string;
        bumpRevision?: string;
        key?: string;
        as?: string;
        dryRun?: boolean;
        approvalTimeout?: string;
        wait?: boolean;
        json?: boolean;
      }) => {
        const approvalTimeoutMs = optional(opts.approvalTimeout, (v) => positiveDuration('--approval-timeout', v));
        const bumpRevision = optional(opts.bumpRevision, (v) => positiveInt('--bump-revision', v));
        let cluster = '';
        await withTemporal(
          program.opts<{ config: string }>().config,
          async (s) => {
            const workflowId = opts.dryRun
              ? `cluster-rebuild-dry-run-${cluster}-${Date.now()}`
              : rebuildWorkflowId(cluster);
            const started = await startRun(
              s,
              clusterRebuild,
              {
                taskQueue: s.config.temporal.taskQueue,
                workflowId,
                workflowIdConflictPolicy: 'FAIL',
                args: [
                  await requestInput(s.config, {
                    runbook: 'cluster-rebuild',
                    workflowId,
                    key: opts.key,
                    as: opts.as,
                    input: { cluster, snapshot: opts.snapshot, dryRun: !!opts.dryRun, approvalTimeoutMs, bumpRevision },
                  }),
                ],
              },
              (id) =>
                `error: a rebuild of cluster '${cluster}' is already running (workflow ${id}); see \`drctl status ${id}\``,
            );
            const human = (r: RebuildResult) => rebuildText(workflowId, r);
            if (!opts.dryRun) return afterStart<RebuildResult>(s, started, { ...opts, gate: true, human });
            await afterDryRun<RebuildResult>(s, started, { json: opts.json, human });
          },
          (config) => {
            cluster = findCluster(config, opts.cluster).cluster.name;
          },
        );
      },
    );
}

function render(r: ClusterHealthReport): string {
  const rows = [['NODE', 'SSH', 'ETCD', 'VERSION', 'REVISION', 'LEADER', 'TOOK']];
  for (const n of r.nodes) {
    rows.push([
      n.node,
      n.reachable ? 'ok' : n.hostKeyMismatch ? 'HOST KEY MISMATCH' : 'UNREACHABLE',
      n.etcd.healthy ? 'healthy' : 'UNHEALTHY',
      n.etcd.version ?? '-',
      n.etcd.revision?.toString() ?? '-',
      n.etcd.leader === n.etcd.memberId && n.etcd.leader ? 'yes' : '',
      `${n.tookMs} ms`,
    ]);
  }
  const head = `${r.cluster}: ${r.ok ? 'OK' : 'PROBLEMS'} — quorum ${r.quorum ? 'yes' : 'NO'} (${r.healthyMembers}/${r.members} healthy), kube-apiserver ${r.kube.ready ? 'ready' : 'NOT READY'} (${r.kube.namespaces.length} namespaces)`;
  return [head, table(rows), ...r.problems.map((p) => `  ! ${p}`)].join('\n');
}
