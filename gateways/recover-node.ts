// RecoverNode: the node-side operations of `drctl etcd recover` and `drctl etcd rejoin` on one
// member, beside the restore's (RestoreNode: park/unpark the manifest, move the data dir aside,
// put it back). Same rules: each step one remote script that looks before it acts, journals what
// it did, and, when it changes the node, runs detached under the node's lock (a retry after a
// killed worker adopts the attempt that is still running or takes its result).
import { parse as parseYaml } from 'yaml';
import { manifestWithFlags } from '../common/etcd-tuning.ts';
import { dirOf, toolCommand } from '../common/etcd-tools.ts';
import { FailureType, failure } from '../common/errors.ts';
import { layoutOf, type NodePlan } from '../common/restore.ts';
import { EtcdTools } from './etcd.ts';
import { annotated, journalLine, type Refusal, replaceFile, RestoreNode } from './restore-node.ts';
import { shq } from './ssh.ts';

export type CopyBackResult = { outcome: 'copied' | 'already-copied' } | Refusal<'not-moved-aside' | 'etcd-running'>;
export type ForceResult = { outcome: 'forced' | 'already-forced' } | Refusal<'etcd-running' | 'force-failed'>;

/** The etcd container's command in a static pod manifest ('etcd', then its flags). */
export function etcdCommandOf(manifest: string): string[] {
  const doc = parseYaml(manifest) as { spec?: { containers?: { name?: string; command?: unknown }[] } } | null;
  const cmd = doc?.spec?.containers?.find((c) => c?.name === 'etcd')?.command;
  if (!Array.isArray(cmd) || !cmd.every((x) => typeof x === 'string') || !/(^|\/)etcd$/.test(cmd[0] ?? ''))
    throw new Error('the manifest has no etcd container with an `etcd ...` command');
  return cmd as string[];
}

/** A flag's value in an etcd command line (`--name=value`). */
export const flagOf = (cmd: string[], name: string) =>
  cmd.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

/** What a member says of itself on /metrics. */
export interface MemberMetrics {
  hasLeader: boolean;
  memberId?: string;
  revision: number;
  committed: number;
  applied: number;
}

/** The few etcd metrics a recover reads (Prometheus text lines); undefined without them. */
export function parseMemberMetrics(text: string): MemberMetrics | undefined {
  const value = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const hasLeader = value('etcd_server_has_leader');
  const applied = value('etcd_server_proposals_applied_total');
  if (hasLeader === undefined || applied === undefined) return undefined;
  return {
    hasLeader: hasLeader === 1,
    memberId: /^etcd_server_id\{server_id="([0-9a-f]+)"\} 1$/m.exec(text)?.[1],
    revision: value('etcd_debugging_mvcc_current_revision') ?? 0,
    committed: value('etcd_server_proposals_committed_total') ?? 0,
    applied,
  };
}

export class RecoverNode extends RestoreNode {
  private get cp() {
    const cp = this.node.controlPlane;
    if (cp.profile !== 'kubeadm')
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: etcd recover and rejoin run kubeadm's static pod etcd (controlPlane.profile: kubeadm)`,
      );
    return cp;
  }

  /**
   * Read-only, one SSH command: when the member's WAL was last written (its newest WAL file's
   * mtime: the last entry it received), where its etcd manifest is (live: the kubelet runs it,
   * parked, or none), and, when live, its own /metrics on the manifest's --listen-metrics-urls
   * (kubeadm: http://127.0.0.1:2381), which etcd serves even while it has no leader and its client
   * port is not ready; and whether an etcd process runs. Plain bash (/dev/tcp): no tool needed on
   * the node.
   */
  async lookAtData(): Promise<{
    walWrittenAt?: string;
    manifest: 'live' | 'parked' | 'none';
    etcdRunning: boolean;
    metrics?: MemberMetrics;
    metricsError?: string;
  }> {
    const { manifestsDir, parkedDir } = this.cp;
    const live = `${manifestsDir}/etcd.yaml`;
    const r = await this.shell.exec(
      [
        `wal=$(ls -1t ${shq(this.node.etcd.dataDir)}/member/wal/*.wal 2>/dev/null | head -n 1 || true)`,
        'if [ -n "$wal" ]; then date -u -r "$wal" +%FT%T.%3NZ; else echo none; fi',
        `if [ -e ${shq(live)} ]; then echo live; elif [ -e ${shq(`${parkedDir}/etcd.yaml`)} ]; then echo parked; else echo none; fi`,
        'if pgrep -x etcd >/dev/null; then echo running; else echo stopped; fi',
        `url=$(sed -n 's/.*--listen-metrics-urls=\\(http:[^ ,]*\\).*/\\1/p' ${shq(live)} 2>/dev/null | head -n 1 || true)`,
        'echo "=== metrics"',
        'if [ -n "$url" ]; then hp=${url#http://}; hp=${hp%%/*}',
        '  ( exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" && printf \'GET /metrics HTTP/1.0\\r\\n\\r\\n\' >&3 && timeout 5 cat <&3 ) 2>/dev/null | grep -E \'^etcd_(server_has_leader|server_id|server_proposals_(committed|applied)_total|debugging_mvcc_current_revision)[ {]\' || echo "no answer on $url"',
        'else echo "no --listen-metrics-urls"; fi',
      ].join('\n'),
      { timeoutMs: 20_000, check: true },
    );
    const [head, tail = ''] = r.stdout.split('=== metrics\n');
    const [wal = 'none', where = 'none', etcd = 'stopped'] = head!.trim().split('\n');
    const metrics = parseMemberMetrics(tail);
    return {
      walWrittenAt: wal === 'none' ? undefined : wal,
      manifest: where === 'live' || where === 'parked' ? where : 'none',
      etcdRunning: etcd === 'running',
      ...(metrics ? { metrics } : { metricsError: tail.trim().split('\n').pop() || 'no metrics' }),
    };
  }

  /**
   * The member's original data, moved aside, copied back into place: --force-new-cluster then
   * works on the copy, and the original stays untouched for the undo. rename layout: the aside dir
   * is the old data dir; contents layout (a mount point): its `member` dir. The copy lands in a
   * scratch name first, then one rename: a half copy is never live.
   */
  async copyAsideBack(plan: NodePlan): Promise<CopyBackResult> {
    const tag = plan.asideDir.replace(/^.*[.-]/, '');
    const contents = layoutOf(plan) === 'contents';
    const src = contents ? `${plan.asideDir}/member` : plan.asideDir;
    const live = contents ? `${plan.dataDir}/member` : plan.dataDir;
    const scratch = contents ? `${plan.dataDir}/.drctl-copy-${tag}` : `${plan.dataDir}.drctl-copy-${tag}`;
    const marker = `${plan.workDir}/copied.done`;
    const moved = contents ? this.asideDone(plan) : plan.asideDir;
    const { outcome } = await this.run({
      plan,
      what: `copying ${src} back to ${live}`,
      script: [
        `if [ -e ${shq(marker)} ]; then result already-copied; fi`,
        `if ${this.runningTest('etcd')}; then result etcd-running; fi`,
        `if [ ! -e ${shq(moved)} ] || [ ! -e ${shq(src)} ]; then result not-moved-aside; fi`,
        // The data dir was moved aside by this run: whatever is live now is this run's copy.
        `if [ -e ${shq(live)} ]; then touch ${shq(marker)}; result already-copied; fi`,
        `rm -rf ${shq(scratch)}`,
        `cp -a ${shq(src)} ${shq(scratch)}`,
        `mv ${shq(scratch)} ${shq(live)}`,
        `touch ${shq(marker)}`,
        journalLine(plan, `copied ${src} -> ${live} (the original stays at ${plan.asideDir})`),
        'result copied',
      ],
      outcomes: ['copied', 'already-copied', 'not-moved-aside', 'etcd-running'] as const,
      timeoutMs: 20 * 60_000,
    });
    if (outcome === 'not-moved-aside')
      return { outcome, reason: `${plan.dataDir} was not moved aside by this run; nothing to copy back` };
    if (outcome === 'etcd-running') return { outcome, reason: 'etcd is running; refusing to replace its data dir' };
    return { outcome };
  }

  /**
   * `etcd --force-new-cluster` once on the member's data, with its manifest parked: the same
   * command the kubelet runs (read from the parked manifest, so the same name, data dir, URLs and
   * certificates), run as a one-off (a container of the etcd image, or the host's etcd), until its
   * /health says it leads a cluster of one; then stopped. The kubelet then starts it as usual from
   * the unchanged manifest. A forced member must never be forced again once others joined it: the
   * marker makes a retry answer 'already-forced'.
   */
  async forceNewCluster(plan: NodePlan): Promise<ForceResult> {
    const parked = `${this.cp.parkedDir}/etcd.yaml`;
    const text = await this.shell.exec(`cat ${shq(parked)}`, { timeoutMs: 20_000 });
    if (text.code !== 0)
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: no parked etcd manifest at ${parked} (etcd must be stopped by this run first)`,
      );
    let cmd: string[];
    try {
      cmd = etcdCommandOf(text.stdout);
    } catch (err) {
      throw failure(FailureType.PreflightFailed, `${this.label}: ${parked}: ${(err as Error).message}`);
    }
    const metrics = (flagOf(cmd, 'listen-metrics-urls') ?? '').split(',').find((u) => u.startsWith('http://'));
    if (!metrics)
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: ${parked} has no http --listen-metrics-urls to watch the forced member's /health on`,
      );
    const hp = new URL(metrics);
    const dataDir = flagOf(cmd, 'data-dir') ?? plan.dataDir;
    const files = cmd
      .slice(1)
      .map((a) => a.replace(/^--[^=]+=/, ''))
      .filter((v) => v.startsWith('/') && !v.startsWith(dataDir));
    const { tools } = await new EtcdTools(this.shell, this.node).resolve();
    const id = `drctl-force-${plan.asideDir.replace(/^.*[.-]/, '')}`;
    const run = toolCommand(tools, {
      tool: 'etcd',
      id,
      rw: [dataDir],
      ro: [...new Set(files.map(dirOf))],
      args: [...cmd.slice(1).map(shq), '--force-new-cluster'].join(' '),
    });
    const image = tools.from === 'image';
    const ctr = `ctr --address ${shq(this.node.containerd.address)} -n ${shq(this.node.containerd.namespace)}`;
    const marker = `${plan.workDir}/forced.done`;
    const log = `${plan.workDir}/force-new-cluster.log`;
    const stop = (sig: string) =>
      image ? `${ctr} tasks kill -s ${sig} ${id} >/dev/null 2>&1 || true` : `kill -${sig} "$pid" 2>/dev/null || true`;
    const { outcome, stderr } = await this.run({
      plan,
      what: `forcing a new cluster of one on ${plan.memberName}`,
      script: [
        `if [ -e ${shq(marker)} ]; then result already-forced; fi`,
        `if ${this.runningTest('etcd')}; then result etcd-running; fi`,
        ...(image
          ? [
              // A container a killed attempt left: ours to end.
              `if ${ctr} containers ls -q 2>/dev/null | grep -qx ${shq(id)}; then`,
              `  ${ctr} tasks kill -s SIGKILL ${id} >/dev/null 2>&1 || true; sleep 0.5`,
              `  ${ctr} tasks delete -f ${id} >/dev/null 2>&1 || true; ${ctr} containers delete ${id} >/dev/null 2>&1 || true`,
              'fi',
            ]
          : []),
        `health() { ( exec 3<>/dev/tcp/${hp.hostname}/${hp.port} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 3 cat <&3 ) 2>/dev/null | grep -q '"health":"true"'; }`,
        `${run} > ${shq(log)} 2>&1 < /dev/null &`,
        'pid=$!; ok=0',
        'for i in $(seq 1 1200); do if health; then ok=1; break; fi; if ! kill -0 "$pid" 2>/dev/null; then break; fi; sleep 0.1; done',
        stop('TERM'),
        'for i in $(seq 1 300); do if ! kill -0 "$pid" 2>/dev/null; then break; fi; sleep 0.1; done',
        `if kill -0 "$pid" 2>/dev/null; then ${stop('KILL')}; sleep 1; fi`,
        'wait "$pid" || true',
        `if [ "$ok" = 1 ]; then touch ${shq(marker)}; ${journalLine(plan, `forced a new cluster of one on ${plan.memberName} (${plan.dataDir})`)}; result forced; fi`,
        `tail -c 1500 ${shq(log)} >&2`,
        'result force-failed',
      ],
      outcomes: ['forced', 'already-forced', 'etcd-running', 'force-failed'] as const,
      timeoutMs: 5 * 60_000,
    });
    if (outcome === 'etcd-running') return { outcome, reason: 'etcd is running; it must be stopped first' };
    if (outcome === 'force-failed')
      return { outcome, reason: `etcd --force-new-cluster never answered healthy: ${stderr.slice(-1200)}` };
    return { outcome };
  }

  /**
   * etcd started from its parked manifest (moved back into the kubelet's dir), and waited for. A
   * kubelet that started while its node's API server was down (a host returning after a site
   * loss: its API server needs this etcd) never cleans up a removed static pod, so the new etcd pod
   * waits behind the old one forever (kubernetes#112814): when no etcd runs after 20 s, the
   * kubelet is restarted (`controlPlane.kubeletRestart`, journaled) and etcd waited for again.
   */
  async startEtcd(
    plan: NodePlan,
  ): Promise<
    | { outcome: 'started' | 'already-running' | 'started-after-kubelet-restart' }
    | Refusal<'timed-out' | 'both-manifests'>
  > {
    const live = `${this.cp.manifestsDir}/etcd.yaml`;
    const parked = `${this.cp.parkedDir}/etcd.yaml`;
    const running = 'pgrep -x etcd >/dev/null';
    const wait = (tenths: number) =>
      `ok=0; for i in $(seq 1 ${tenths}); do if ${running}; then ok=1; break; fi; sleep 0.1; done`;
    const { outcome } = await this.run({
      plan,
      what: 'starting etcd',
      script: [
        `if ${running}; then result already-running; fi`,
        `if [ -e ${shq(parked)} ]; then`,
        `  if [ -e ${shq(live)} ]; then result both-manifests; fi`,
        `  mv ${shq(parked)} ${shq(live)} && ${journalLine(plan, 'started etcd')}`,
        'fi',
        wait(200),
        'if [ "$ok" = 1 ]; then result started; fi',
        journalLine(plan, 'no etcd 20 s after its manifest went back: restarting the kubelet (kubernetes#112814)'),
        `${this.cp.kubeletRestart} || true`,
        wait(900),
        'if [ "$ok" = 1 ]; then result started-after-kubelet-restart; fi',
        'result timed-out',
      ],
      outcomes: ['started', 'already-running', 'started-after-kubelet-restart', 'timed-out', 'both-manifests'] as const,
      timeoutMs: 3 * 60_000,
    });
    if (outcome === 'timed-out') return { outcome, reason: 'etcd not running 90 s after a kubelet restart' };
    if (outcome === 'both-manifests')
      return { outcome, reason: `both ${live} and ${parked} exist; resolve by hand before going on` };
    return { outcome };
  }

  /**
   * The parked manifest set to join an existing cluster: --initial-cluster (the members as the
   * cluster lists them, this one included) and --initial-cluster-state=existing. The original is
   * kept once in the work dir (restoreManifest puts it back).
   */
  async setJoinFlags(plan: NodePlan, initialCluster: string): Promise<'written' | 'already'> {
    const parked = `${this.cp.parkedDir}/etcd.yaml`;
    const orig = `${plan.workDir}/etcd.yaml.orig`;
    const r = await this.shell.exec(
      `test -f ${shq(parked)} || exit 3; mkdir -p ${shq(plan.workDir)}; if [ ! -e ${shq(orig)} ]; then cp -p ${shq(parked)} ${shq(orig)}; fi; cat ${shq(parked)}`,
      { timeoutMs: 20_000 },
    );
    if (r.code === 3)
      throw failure(
        FailureType.PreflightFailed,
        `${this.label}: no parked etcd manifest at ${parked} to set the join flags in`,
      );
    if (r.code !== 0)
      throw failure(FailureType.RemoteCommandFailed, `${this.label}: reading ${parked} failed: ${r.stderr.trim()}`);
    const next = manifestWithFlags(r.stdout, {
      'initial-cluster': initialCluster,
      'initial-cluster-state': 'existing',
    });
    if (next === r.stdout) return 'already';
    await this.shell.exec(
      `${replaceFile(`${this.cp.parkedDir}/.drctl-join-etcd.yaml`, parked, next)} && ${journalLine(plan, `set --initial-cluster=${initialCluster} --initial-cluster-state=existing in ${parked}`)}`,
      { timeoutMs: 20_000, check: true },
    );
    return 'written';
  }

  /** Undo of setJoinFlags: the original manifest back where it is parked (a new pod to the kubelet). */
  async restoreManifest(plan: NodePlan): Promise<'restored' | 'nothing-to-restore'> {
    const parked = `${this.cp.parkedDir}/etcd.yaml`;
    const orig = `${plan.workDir}/etcd.yaml.orig`;
    const r = await this.shell.exec(`if [ -f ${shq(orig)} ]; then base64 -w0 ${shq(orig)}; fi`, {
      timeoutMs: 20_000,
      check: true,
    });
    if (!r.stdout.trim()) return 'nothing-to-restore';
    const text = annotated(r.stdout.trim(), 'drctl.io/restored-at', new Date().toISOString());
    await this.shell.exec(
      `${replaceFile(`${this.cp.parkedDir}/.drctl-orig-etcd.yaml`, parked, text)} && rm -f ${shq(orig)} && ${journalLine(plan, `put the original etcd manifest back at ${parked}`)}`,
      { timeoutMs: 20_000, check: true },
    );
    return 'restored';
  }
}
