// RestoreNode: the node-side operations of an etcd restore on one control-plane node. Each step is
// ONE remote script: its look-before-act check, the action and its journal line travel together,
// so a step costs one SSH round trip (measured: ~0.17 s each on the lab; the first version spent
// 2-3 s per step in 6-10 of them). A script ends with a `result=<outcome>` line naming what it did
// or why it did nothing; what an outcome means for the runbook is the caller's to decide.
import type { Writable } from 'node:stream';
import { FailureType, failure } from '../common/errors.ts';
import { dirOf, withContainerId } from '../common/etcd-tools.ts';
import { layoutOf, type NodePlan, scratchOf } from '../common/restore.ts';
import type { NodeConfig } from '../config/schema.ts';
import { parseDocument } from 'yaml';
import { type RemoteShell, shq } from './ssh.ts';

export type Component = 'etcd' | 'kube-apiserver';

/** An outcome that did nothing and must not be passed over; `reason` says why, for a person. */
export interface Refusal<O extends string> {
  outcome: O;
  reason: string;
}

export type StopResult = { outcome: 'stopped' | 'already-stopped' } | Refusal<'both-manifests' | 'timed-out'>;
export type StartResult = { outcome: 'started' | 'already-running' } | Refusal<'both-manifests' | 'timed-out'>;
export type MoveAsideResult =
  { outcome: 'moved' | 'already-moved' | 'no-data-dir' } | Refusal<'etcd-running' | 'layout-changed'>;
export type RestoreMemberResult =
  { outcome: 'restored' | 'already-restored' } | Refusal<'not-moved-aside' | 'restore-failed'>;
export type PutBackResult = { outcome: 'put-back' | 'nothing-to-undo' } | Refusal<'etcd-running'>;
/** Every outcome of a node step that did not do its work. */
export type NodeRefusal = Extract<
  StopResult | StartResult | MoveAsideResult | RestoreMemberResult | PutBackResult,
  { reason: string }
>['outcome'];

/**
 * `result <outcome>` ends the script with its answer; set -e turns anything unplanned into a failure.
 * `is_mnt DIR`: is DIR a mount point (util-linux `mountpoint`, else a device change at DIR/..).
 */
const PRELUDE = [
  'set -e',
  'result() { echo "result=$1"; exit 0; }',
  'is_mnt() { if command -v mountpoint >/dev/null; then mountpoint -q "$1"; else [ "$(stat -c %d "$1")" != "$(stat -c %d "$1/..")" ]; fi; }',
].join('\n');

/**
 * Shell: moves every entry of `from` into `to` (same filesystem: renames), except lost+found and
 * drctl's own .drctl-* entries. Resumable: what an interrupted run moved is simply not there any more.
 */
const moveEntries = (from: string, to: string) =>
  `(shopt -s dotglob nullglob; for e in ${shq(from)}/*; do case "\${e##*/}" in lost+found | .drctl-*) continue ;; esac; mv -- "$e" ${shq(to)}/; done)`;
const RESULT_LINE = /^result=([a-z-]+)$/;

/**
 * A shell line appending to the node's journal (the evidence of what ran, and how often);
 * shellWord, expanded by the shell, follows the line (e.g. '"$id"').
 */
export function journalLine(plan: NodePlan, line: string, shellWord = ''): string {
  return `mkdir -p ${shq(plan.workDir)} && echo "$(date -u +%FT%T.%3NZ) "${shq(line)}${shellWord} >> ${shq(`${plan.workDir}/journal`)}`;
}

/** A static pod manifest (base64, as read off the node) with one annotation set; the rest as it was. */
export function annotated(manifestBase64: string, key: string, value: string): string {
  const doc = parseDocument(Buffer.from(manifestBase64, 'base64').toString('utf8'));
  doc.setIn(['metadata', 'annotations', key], value);
  return doc.toString();
}

/** Shell: `text` written to `tmp`, then renamed over `dest` (a reader never sees half a file). */
export const replaceFile = (tmp: string, dest: string, text: string) =>
  `printf %s ${shq(Buffer.from(text).toString('base64'))} | base64 -d > ${shq(tmp)} && mv ${shq(tmp)} ${shq(dest)}`;

/** Shell: poll `test` every 0.1 s for up to 90 s, else end with `result timed-out`. */
const waitLoop = (test: string) =>
  `for i in $(seq 1 900); do if ${test}; then break; fi; if [ "$i" = 900 ]; then result timed-out; fi; sleep 0.1; done`;

/**
 * The node's drctl lock, in the data dir's parent dir (beside a run's work dir): one per node.
 * Every step that changes the node holds it while it runs, and writes into it who it is.
 */
export const nodeLockFor = (dataDir: string): string => `${dirOf(dataDir)}/.drctl.lock`;

/** A step's name as a file name: "restoring /var/lib/etcd" → "restoring-var-lib-etcd". */
const slug = (what: string) =>
  what
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);

/**
 * The node-side runner of a detached step (`bash run DIR LOCK HOLDER`): one attempt of the step at
 * a time (flock on DIR/lock; an attempt that finds the result does nothing), one drctl step at a
 * time on the node (flock on LOCK, which then names the holder), the result written last and
 * atomically (DIR/rc). Started with setsid: it outlives the SSH channel that started it.
 */
const RUNNER = [
  'd="$1"; lock="$2"',
  'exec 9>"$d/lock"; flock 9',
  '[ -e "$d/rc" ] && exit 0',
  'exec 8>>"$lock"; flock 8',
  'printf "%s\\n" "$3" > "$lock"',
  'bash "$d/script" > "$d/out" 2> "$d/err" < /dev/null; rc=$?',
  'printf "%s\\n" "$rc" > "$d/rc.tmp" && mv "$d/rc.tmp" "$d/rc"',
].join('\n');

export class RestoreNode {
  /**
   * @param attempt the caller's key for this invocation of a step, the same on every retry of it
   *   (the worker passes the activity's id): a retry finds the node-side job its first attempt
   *   started, and waits for it or takes its result. Without one, every call is a new job.
   */
  constructor(
    protected readonly shell: RemoteShell,
    protected readonly node: NodeConfig,
    private readonly attempt: () => string | undefined = () => undefined,
  ) {}

  protected get label() {
    return this.shell.target.label;
  }

  /**
   * Runs one step's script and returns its outcome (one of `outcomes`) with its stderr. A non-zero
   * exit or a missing result line is a step that broke half-way: RemoteCommandFailed. A step with a
   * `plan` (it changes the node) runs detached (`detached`).
   */
  protected async run<O extends string>(op: {
    what: string;
    script: string[];
    outcomes: readonly O[];
    timeoutMs?: number;
    plan?: NodePlan;
  }): Promise<{ outcome: O; stdout: string; stderr: string }> {
    const timeoutMs = op.timeoutMs ?? 120_000;
    const script = [PRELUDE, ...op.script].join('\n');
    const r = op.plan
      ? await this.shell.exec(this.detached(op.plan, op.what, script, timeoutMs), { timeoutMs: timeoutMs + 10_000 })
      : await this.shell.exec(script, { timeoutMs });
    const outcome = RESULT_LINE.exec(r.stdout.trim().split('\n').pop() ?? '')?.[1] as O | undefined;
    if (r.code !== 0 || outcome === undefined || !op.outcomes.includes(outcome))
      throw failure(
        FailureType.RemoteCommandFailed,
        `${this.label}: ${op.what} failed (exit ${r.code}): ${(r.stderr.trim() || r.stdout.trim()).slice(-500)}`,
      );
    return { outcome, stdout: r.stdout, stderr: r.stderr.trim() };
  }

  /**
   * A step that changes the node, as a job on the node that cannot race itself: the script is
   * written to `<workDir>/steps/<step>-<attempt key>/` and run there by RUNNER, detached from the
   * SSH channel, under the node's lock; this call waits for its result file and answers with its
   * output. A retry of the same step (a worker killed, a channel dropped, a timeout) finds the job:
   * still running, it waits for it ("adopted" in the journal); finished, it answers with its result
   * ("answered … from its finished attempt"); only a job that is not running and has no result (the
   * node rebooted) is run again ("re-ran"), which every step script, looking before it acts, allows.
   */
  private detached(plan: NodePlan, what: string, script: string, timeoutMs: number): string {
    const key = `${slug(what)}-${this.attempt() ?? `once-${Math.random().toString(36).slice(2, 10)}`}`;
    const holder = `${plan.workDir} ${key}`;
    const b64 = (t: string) => shq(Buffer.from(t).toString('base64'));
    return [
      `d=${shq(`${plan.workDir}/steps/${key}`)}; lock=${shq(nodeLockFor(plan.dataDir))}`,
      'mkdir -p "$d"',
      'if [ -e "$d/rc" ]; then',
      `  ${journalLine(plan, `answered ${what} from its finished attempt`)}`,
      'elif flock -n "$d/lock" true; then',
      `  if [ -e "$d/script" ]; then ${journalLine(plan, `re-ran ${what}: its attempt was not running on the node`)}; fi`,
      `  printf %s ${b64(script)} | base64 -d > "$d/script"`,
      `  printf %s ${b64(RUNNER)} | base64 -d > "$d/run"`,
      `  setsid bash "$d/run" "$d" "$lock" ${shq(holder)} < /dev/null > /dev/null 2>&1 &`,
      'else',
      `  ${journalLine(plan, `adopted ${what}: its attempt still runs on the node`)}`,
      'fi',
      `for i in $(seq 1 ${Math.ceil(timeoutMs / 50)}); do if [ -e "$d/rc" ]; then break; fi; sleep 0.05; done`,
      `if [ ! -e "$d/rc" ]; then echo "still running on the node after ${timeoutMs / 1000} s ($d); a retry waits for it" >&2; exit 124; fi`,
      'cat "$d/out"; cat "$d/err" >&2; exit "$(cat "$d/rc")"',
    ].join('\n');
  }

  /** Shell test: is the component's process running on the node (etcd: or its client port open)? */
  protected runningTest(component: Component): string {
    if (component !== 'etcd') return `pgrep -x ${component} >/dev/null`;
    const url = new URL(this.node.etcd.clientUrl);
    return `{ pgrep -x etcd >/dev/null || timeout 1 bash -c ${shq(`exec 3<>/dev/tcp/${url.hostname}/${url.port || 2379}`)} 2>/dev/null; }`;
  }

  /**
   * kubeadm: the kubelet runs a static pod while its manifest is in manifestsDir, so parking the
   * manifest stops it and unparking starts it; `command`: the configured command, only when the
   * process is (not) running. Then waits for the process. `acted` says whether this call changed it.
   */
  private async switchComponent(plan: NodePlan, component: Component, to: 'stopped' | 'running') {
    const profile = this.node.controlPlane;
    const test = this.runningTest(component);
    const verb = to === 'stopped' ? 'stopped' : 'started';
    let act: string;
    let conflict = '';
    if (profile.profile === 'kubeadm') {
      const live = `${profile.manifestsDir}/${component}.yaml`;
      const parked = `${profile.parkedDir}/${component}.yaml`;
      const [from, dest] = to === 'stopped' ? [live, parked] : [parked, live];
      conflict = `both ${live} and ${parked} exist; resolve by hand before going on`;
      act = [
        `acted=0`,
        `if [ -e ${shq(from)} ]; then`,
        `  if [ -e ${shq(dest)} ]; then result both-manifests; fi`,
        `  mkdir -p ${shq(profile.parkedDir)} && mv ${shq(from)} ${shq(dest)} && acted=1`,
        `fi`,
      ].join('\n');
    } else {
      const cmd =
        component === 'etcd'
          ? profile.etcd[to === 'stopped' ? 'stop' : 'start']
          : profile.apiserver?.[to === 'stopped' ? 'stop' : 'start'];
      act = cmd ? `acted=0\nif ${to === 'stopped' ? '' : '! '}${test}; then ${cmd}; acted=1; fi` : 'acted=0';
    }
    // A parked kube-apiserver keeps serving its open watches until the kubelet kills it; its data
    // is about to be replaced, so after the grace there is nothing left worth waiting for.
    const graceMs =
      profile.profile === 'kubeadm' && component === 'kube-apiserver' && to === 'stopped'
        ? profile.apiserverStopGrace
        : 0;
    const { outcome } = await this.run({
      plan,
      what: `${to === 'stopped' ? 'stopping' : 'starting'} ${component}`,
      script: [
        act,
        `if [ "$acted" = 1 ]; then ${journalLine(plan, `${verb} ${component}`)}; fi`,
        ...(graceMs > 0
          ? [
              `for i in $(seq 1 ${Math.ceil(graceMs / 100)}); do if ! ${test}; then break; fi; sleep 0.1; done`,
              `if ${test} && ${this.killParkedContainer(component)}; then ${journalLine(plan, `killed ${component}, still draining after ${graceMs / 1000} s`)}; fi`,
            ]
          : []),
        waitLoop(to === 'stopped' ? `! ${test}` : `pgrep -x ${component} >/dev/null`),
        'if [ "$acted" = 1 ]; then result acted; fi',
        'result unchanged',
      ],
      outcomes: ['acted', 'unchanged', 'both-manifests', 'timed-out'] as const,
    });
    if (outcome === 'both-manifests') return { outcome, reason: conflict } as const;
    if (outcome === 'timed-out') return { outcome, reason: `${component} ${to} not reached after 90 s` } as const;
    return { acted: outcome === 'acted' } as const;
  }

  /** Stops the component (kubeadm: parks its manifest) and waits until it is gone (etcd: its port closed too). */
  async stop(plan: NodePlan, component: Component): Promise<StopResult> {
    const r = await this.switchComponent(plan, component, 'stopped');
    if (!('acted' in r)) return r;
    await this.stampParked(component);
    return { outcome: r.acted ? 'stopped' : 'already-stopped' };
  }

  /**
   * Gives a parked manifest a `drctl.io/parked-at` annotation, so that putting it back is a new
   * pod to the kubelet. The same manifest back would be the same pod (its UID is a hash of the
   * manifest), whose container "failed" when it was parked: the kubelet would start it only after
   * its crash back-off (10 s, doubling on every restore; measured on the lab: `start` took 24 s).
   * Rewritten atomically next to itself; the kubelet does not read the parked dir.
   */
  private async stampParked(component: Component): Promise<void> {
    const cp = this.node.controlPlane;
    if (cp.profile !== 'kubeadm') return;
    const parked = `${cp.parkedDir}/${component}.yaml`;
    const r = await this.shell.exec(`if [ -f ${shq(parked)} ]; then base64 -w0 ${shq(parked)}; fi`, {
      timeoutMs: 30_000,
      check: true,
    });
    if (!r.stdout.trim()) return;
    const text = annotated(r.stdout.trim(), 'drctl.io/parked-at', new Date().toISOString());
    await this.shell.exec(replaceFile(`${cp.parkedDir}/.drctl-stamp-${component}.yaml`, parked, text), {
      timeoutMs: 30_000,
      check: true,
    });
  }

  /** Starts the component (kubeadm: puts its manifest back) and waits for its process. */
  async start(plan: NodePlan, component: Component): Promise<StartResult> {
    const r = await this.switchComponent(plan, component, 'running');
    return 'acted' in r ? { outcome: r.acted ? 'started' : 'already-running' } : r;
  }

  /** Is an etcd process running on the node (read-only)? */
  async etcdProcessRunning(): Promise<boolean> {
    return (await this.shell.exec('pgrep -x etcd >/dev/null', { timeoutMs: 10_000 })).code === 0;
  }

  /**
   * Shell test that kills the parked component's still-running container through the container
   * runtime (`crictl stop --timeout 0`; its pod is being removed, so nothing restarts it) and
   * succeeds if it killed one. Never `pkill` on the host: on a host without crictl the kubelet's
   * own grace period runs its course.
   */
  private killParkedContainer(name: string): string {
    const crictl = `crictl --runtime-endpoint ${shq(`unix://${this.node.containerd.address}`)}`;
    return [
      `{ command -v crictl >/dev/null &&`,
      `ids=$(${crictl} ps --name ${shq(`^${name}$`)} --state running -q) &&`,
      `[ -n "$ids" ] && ${crictl} stop --timeout 0 $ids >/dev/null; }`,
    ].join(' ');
  }

  /**
   * Free bytes where the restore writes, whether the data dir exists and whether it is a mount
   * point. Free space: the data dir's parent (the staged snapshot and, renamed, the restore); for a
   * mount point also the data dir's own filesystem (where the restore goes then), the smaller.
   */
  async diskSpace(): Promise<{ freeBytes: number; dataDirExists: boolean; mountPoint: boolean }> {
    const dataDir = this.node.etcd.dataDir;
    const parent = dataDir.replace(/\/[^/]+\/?$/, '') || '/';
    const r = await this.shell.exec(
      [
        PRELUDE.split('\n')[2],
        `df -B1 --output=avail ${shq(parent)} | tail -1`,
        `if test -d ${shq(dataDir)}; then echo yes; else echo no; fi`,
        `if test -d ${shq(dataDir)} && is_mnt ${shq(dataDir)}; then echo mount; df -B1 --output=avail ${shq(dataDir)} | tail -1; fi`,
      ].join('\n'),
      { check: true },
    );
    const [avail, dirExists, mount, availInside] = r.stdout.trim().split('\n');
    const mountPoint = mount === 'mount';
    const freeBytes = mountPoint ? Math.min(Number(avail), Number(availInside)) : Number(avail);
    return { freeBytes, dataDirExists: dirExists === 'yes', mountPoint };
  }

  /** Marker: every entry of a mount-point data dir is in the aside dir (contents layout). */
  protected asideDone = (plan: NodePlan) => `${plan.workDir}/aside.done`;
  /** Marker: a put-back has moved the restored entries out (contents layout). */
  private putBackStarted = (plan: NodePlan) => `${plan.workDir}/put-back.started`;

  /**
   * Sets the data dir aside under a name carrying the run id. Never twice. rename layout: one `mv`,
   * the aside dir is the marker. contents layout (a mount point): its entries move into the aside
   * dir inside it; an interrupted move resumes; aside.done in the work dir is the marker.
   */
  async moveDataDirAside(plan: NodePlan): Promise<MoveAsideResult> {
    const d = shq(plan.dataDir);
    const a = shq(plan.asideDir);
    const script =
      layoutOf(plan) === 'rename'
        ? [
            `if ${this.runningTest('etcd')}; then result etcd-running; fi`,
            `if [ -e ${a} ]; then result already-moved; fi`,
            `if [ ! -e ${d} ]; then ${journalLine(plan, `no data dir at ${plan.dataDir}`)}; result no-data-dir; fi`,
            `if is_mnt ${d}; then result layout-changed; fi`,
            `mv ${d} ${a} && ${journalLine(plan, `moved-aside ${plan.dataDir} -> ${plan.asideDir}`)}`,
            'result moved',
          ]
        : [
            `if ${this.runningTest('etcd')}; then result etcd-running; fi`,
            `if [ -e ${shq(this.asideDone(plan))} ]; then result already-moved; fi`,
            `if [ ! -d ${d} ]; then ${journalLine(plan, `no data dir at ${plan.dataDir}`)}; result no-data-dir; fi`,
            `if [ ! -e ${a} ] && ! is_mnt ${d}; then result layout-changed; fi`,
            `mkdir -p -m 700 ${a}`,
            moveEntries(plan.dataDir, plan.asideDir),
            `touch ${shq(this.asideDone(plan))}`,
            journalLine(plan, `moved-aside the contents of ${plan.dataDir} (a mount point) -> ${plan.asideDir}`),
            'result moved',
          ];
    const { outcome } = await this.run({
      plan,
      what: `moving ${plan.dataDir} aside`,
      script,
      outcomes: ['moved', 'already-moved', 'no-data-dir', 'etcd-running', 'layout-changed'] as const,
    });
    if (outcome === 'etcd-running') return { outcome, reason: 'etcd is still running; refusing to move its data dir' };
    if (outcome === 'layout-changed')
      return {
        outcome,
        reason: `${plan.dataDir} ${layoutOf(plan) === 'rename' ? 'is' : 'is no longer'} a mount point, unlike at preflight; start the restore again`,
      };
    return { outcome };
  }

  /**
   * Restores this member from the staged snapshot with its own name and peer URL into a scratch
   * dir, then renames it into place (so a crash never leaves a half-restored data dir live).
   * contents layout: the scratch dir is inside the mount point and its member dir moves into place.
   */
  async restoreMember(plan: NodePlan): Promise<RestoreMemberResult> {
    const marker = `${plan.workDir}/restored.done`;
    const scratch = scratchOf(plan);
    const log = `${plan.workDir}/restore.log`;
    const contents = layoutOf(plan) === 'contents';
    const live = contents ? `${plan.dataDir}/member` : plan.dataDir;
    // Image mode: restore containers left by a killed attempt (ids: the run's, plus a try number)
    // are ours to end. A failed try is tried again under a fresh id, twice: runc can fail to join
    // the cgroup its predecessor's teardown still removes (seen on the lab, cgroup v1).
    const prefix = plan.restoreContainer;
    const ctr = `ctr --address ${shq(this.node.containerd.address)} -n ${shq(this.node.containerd.namespace)}`;
    const leftovers = prefix
      ? [
          'end_leftovers() {',
          `  for id in $(${ctr} containers ls -q 2>/dev/null | grep -E ${shq(`^${prefix.replace(/\./g, '\\.')}(-[0-9]+)?$`)}); do`,
          `    ${ctr} tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; sleep 0.5`,
          `    ${ctr} tasks delete -f "$id" >/dev/null 2>&1 || true; ${ctr} containers delete "$id" >/dev/null 2>&1 || true`,
          `    ${journalLine(plan, 'removed the leftover restore container ', '"$id"')}`,
          '  done',
          '}',
        ]
      : ['end_leftovers() { :; }'];
    const tries = prefix
      ? [1, 2, 3].map((i) => withContainerId(plan.restoreCommand, prefix, `${prefix}-${i}`))
      : [plan.restoreCommand];
    const { outcome, stderr } = await this.run({
      plan,
      what: `restoring ${plan.dataDir}`,
      script: [
        `if [ -e ${shq(marker)} ] && [ -e ${shq(live)} ]; then result already-restored; fi`,
        contents
          ? `if [ ! -e ${shq(this.asideDone(plan))} ] && [ -e ${shq(plan.dataDir)} ]; then result not-moved-aside; fi`
          : `if [ ! -e ${shq(plan.asideDir)} ] && [ -e ${shq(plan.dataDir)} ]; then result not-moved-aside; fi`,
        ...leftovers,
        'ok=0',
        ...tries.flatMap((cmd, i) => [
          'if [ "$ok" = 0 ]; then',
          '  end_leftovers',
          // Left by an attempt that died half-way: ours to remove (the original is safe in asideDir).
          `  rm -rf ${shq(scratch)} ${shq(live)}`,
          `  if ${cmd} > ${shq(log)} 2>&1; then ok=1; else`,
          `    ${journalLine(plan, `restore try ${i + 1} of ${tries.length} failed: `, `"$(tail -c 300 ${shq(log)} | tr '\\n' ' ')"`)}; sleep 1`,
          '  fi',
          'fi',
        ]),
        `if [ "$ok" = 0 ]; then tail -c 1500 ${shq(log)} >&2; result restore-failed; fi`,
        contents
          ? `chmod 700 ${shq(plan.dataDir)} && mv ${shq(`${scratch}/member`)} ${shq(live)} && rm -rf ${shq(scratch)} && touch ${shq(marker)}`
          : `chmod 700 ${shq(scratch)} && mv ${shq(scratch)} ${shq(plan.dataDir)} && touch ${shq(marker)}`,
        journalLine(plan, `restored ${plan.dataDir} from ${plan.stagedSnapshot}`),
        'result restored',
      ],
      outcomes: ['restored', 'already-restored', 'not-moved-aside', 'restore-failed'] as const,
      timeoutMs: 20 * 60_000,
    });
    if (outcome === 'not-moved-aside')
      return { outcome, reason: `${plan.dataDir} was not moved aside; refusing to restore over it` };
    if (outcome === 'restore-failed') return { outcome, reason: stderr.slice(-1500) };
    return { outcome };
  }

  /**
   * Undo for a node: removes the restored dir and moves the original back (etcd must be stopped).
   * Idempotent: with no aside dir there is nothing to put back. contents layout, resumable: the
   * restored entries first move into a discard dir (once: put-back.started marks it; only after a
   * complete move-aside, so no original is ever taken for a restored one), then the aside
   * entries move back, the aside dir goes last.
   */
  async putOriginalBack(plan: NodePlan): Promise<PutBackResult> {
    const a = shq(plan.asideDir);
    const d = shq(plan.dataDir);
    const script =
      layoutOf(plan) === 'rename'
        ? [
            `if [ ! -e ${a} ]; then result nothing-to-undo; fi`,
            `if ${this.runningTest('etcd')}; then result etcd-running; fi`,
            `rm -rf ${d} && mv ${a} ${d} && rm -f ${shq(`${plan.workDir}/restored.done`)}`,
            journalLine(plan, `put-back ${plan.asideDir} -> ${plan.dataDir}`),
            'result put-back',
          ]
        : (() => {
            const discard = `${plan.dataDir}/.drctl-discard-${plan.asideDir.replace(/^.*\.drctl-aside-/, '')}`;
            const started = shq(this.putBackStarted(plan));
            return [
              `if [ ! -e ${a} ]; then rm -rf ${shq(discard)}; result nothing-to-undo; fi`,
              `if ${this.runningTest('etcd')}; then result etcd-running; fi`,
              `if [ -e ${shq(this.asideDone(plan))} ] && [ ! -e ${started} ]; then`,
              `  mkdir -p -m 700 ${shq(discard)}`,
              `  ${moveEntries(plan.dataDir, discard)}`,
              `  touch ${started}`,
              `fi`,
              moveEntries(plan.asideDir, plan.dataDir),
              `rmdir ${a}`,
              `rm -rf ${shq(discard)} ${shq(scratchOf(plan))}`,
              `rm -f ${started} ${shq(this.asideDone(plan))} ${shq(`${plan.workDir}/restored.done`)}`,
              journalLine(plan, `put-back the contents of ${plan.asideDir} -> ${plan.dataDir} (a mount point)`),
              'result put-back',
            ];
          })();
    const { outcome } = await this.run({
      plan,
      what: `putting ${plan.asideDir} back`,
      script,
      outcomes: ['put-back', 'nothing-to-undo', 'etcd-running'] as const,
    });
    if (outcome === 'etcd-running') return { outcome, reason: 'etcd must be stopped before its data dir is put back' };
    return { outcome };
  }

  /**
   * Removes the data dirs earlier restores moved aside here, once moved aside longer than `keepMs`
   * ago: full copies of etcd, every Secret in them. Only drctl's names (`<dataDir>.drctl-<tag>`
   * and, for a mount point, `<dataDir>/.drctl-aside-<tag>`, the tag 12 hex digits: common/restore.ts
   * runTag), only directories (no symlink), never this plan's own, and nothing at all while the live
   * data dir holds no member dir (then an aside dir may be the only copy of the data). How long ago
   * a dir was moved aside is its ctime on the node: a rename sets it (and nothing can set it back),
   * while the mtime a rename keeps is the data dir's own. Each removal goes into this run's journal;
   * returns the removed paths.
   */
  async pruneMovedAside(plan: NodePlan, keepMs: number): Promise<string[]> {
    const dataDir = this.node.etcd.dataDir.replace(/\/+$/, '');
    const parent = dataDir.replace(/\/[^/]+$/, '') || '/';
    const base = dataDir.slice(parent === '/' ? 1 : parent.length + 1);
    const own = plan.asideDir.replace(/^.*(\.drctl-aside-|\.drctl-)/, '');
    const keepS = Math.max(0, Math.floor(keepMs / 1000));
    const r = await this.run({
      plan,
      what: `pruning data dirs moved aside more than ${keepS} s ago`,
      script: [
        `if [ ! -d ${shq(`${dataDir}/member`)} ]; then result no-live-data; fi`,
        'shopt -s nullglob dotglob',
        'now=$(date +%s)',
        `for d in ${shq(parent === '/' ? '' : parent)}/${shq(base)}.drctl-* ${shq(dataDir)}/.drctl-aside-*; do`,
        '  name=${d##*/}',
        `  case "$name" in ${shq(base)}.drctl-*) tag=\${name#${shq(base)}.drctl-} ;; *) tag=\${name#.drctl-aside-} ;; esac`,
        '  case "$tag" in [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;; *) continue ;; esac',
        `  if [ "$tag" = ${shq(own)} ] || [ -L "$d" ] || [ ! -d "$d" ]; then continue; fi`,
        '  age=$((now - $(stat -c %Z "$d")))',
        `  if [ "$age" -lt ${keepS} ]; then continue; fi`,
        '  rm -rf -- "$d"',
        `  mkdir -p ${shq(plan.workDir)} && echo "$(date -u +%FT%T.%3NZ) pruned $d (moved aside $age s ago)" >> ${shq(`${plan.workDir}/journal`)}`,
        '  echo "pruned=$d"',
        'done',
        'result done',
      ],
      outcomes: ['done', 'no-live-data'] as const,
      timeoutMs: 10 * 60_000,
    });
    if (r.outcome === 'no-live-data') return [];
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('pruned='))
      .map((l) => l.slice('pruned='.length));
  }

  /** Is a staged snapshot (complete: renamed from its .part) on the node? */
  async stagedPresent(plan: NodePlan): Promise<boolean> {
    return (await this.shell.exec(`test -e ${shq(plan.stagedSnapshot)}`)).code === 0;
  }

  async discardStaged(plan: NodePlan): Promise<void> {
    await this.shell.exec(`rm -f ${shq(plan.stagedSnapshot)}`, { check: true });
  }

  /** A private work dir and a stream into the staged snapshot's .part file (renamed by commitStaging). */
  async openStaging(plan: NodePlan): Promise<Writable> {
    await this.shell.exec(`mkdir -p ${shq(plan.workDir)} && chmod 700 ${shq(plan.workDir)}`, { check: true });
    return this.shell.writeStream(`${plan.stagedSnapshot}.part`, 0o600);
  }

  /** Best effort: a .part that is not removed now is removed by cleanupStaged. */
  async discardStaging(plan: NodePlan): Promise<void> {
    await this.shell.exec(`rm -f ${shq(`${plan.stagedSnapshot}.part`)}`);
  }

  async commitStaging(plan: NodePlan): Promise<void> {
    await this.shell.exec(`mv -f ${shq(`${plan.stagedSnapshot}.part`)} ${shq(plan.stagedSnapshot)}`, { check: true });
  }

  /** Removes the staged snapshot and the scratch dir (the journal and the aside dir stay for the record). */
  async cleanupStaged(plan: NodePlan): Promise<void> {
    await this.shell.exec(
      `rm -f ${shq(plan.stagedSnapshot)} ${shq(`${plan.stagedSnapshot}.part`)} && rm -rf ${shq(scratchOf(plan))}`,
      { check: true },
    );
  }

  async journal(plan: NodePlan): Promise<string[]> {
    const r = await this.shell.exec(`cat ${shq(`${plan.workDir}/journal`)} 2>/dev/null || true`);
    return r.stdout.trim().split('\n').filter(Boolean);
  }

  /**
   * Restarts the node's restartAfterRestore static pods (kubeadm only) the way `kubectl rollout
   * restart` does a Deployment: a `drctl.io/restarted-at` annotation in the pod's manifest, so the
   * kubelet sees a new pod, stops the old one and starts it at once. Stopping the container instead
   * (`crictl stop`) counts as a crash: the kubelet restarts it with its back-off, which had reached
   * minutes on the lab after a few restores, and a controller that exited when the API servers went
   * away is already backing off. The new manifest is written next to the parked ones and renamed
   * into place (the kubelet never reads half a file). Returns which pods were running (their caches
   * predate the restore) and which were not (exited, now started fresh).
   */
  async restartStaticPods(at: string): Promise<{ restarted: string[]; notRunning: string[] }> {
    const cp = this.node.controlPlane;
    if (cp.profile !== 'kubeadm' || !cp.restartAfterRestore.length) return { restarted: [], notRunning: [] };
    const crictl = `crictl --runtime-endpoint ${shq(`unix://${this.node.containerd.address}`)}`;
    const read = await this.shell.exec(
      cp.restartAfterRestore
        .map((p) => {
          const f = shq(`${cp.manifestsDir}/${p}.yaml`);
          const running = `[ -n "$(${crictl} ps --name ${shq(`^${p}$`)} --state running -q 2>/dev/null)" ]`;
          return `if [ -e ${f} ]; then if ${running}; then echo "--- ${p} running"; else echo "--- ${p} stopped"; fi; base64 -w0 ${f}; echo; fi`;
        })
        .join('; '),
      { timeoutMs: 60_000, check: true },
    );
    const lines = read.stdout.split('\n');
    const restarted: string[] = [];
    const notRunning: string[] = [];
    const writes: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const m = /^--- (\S+) (running|stopped)$/.exec(lines[i]!);
      if (!m) continue;
      const [, pod, state] = m as unknown as [string, string, string];
      const text = annotated(lines[i + 1] ?? '', 'drctl.io/restarted-at', at);
      writes.push(replaceFile(`${cp.parkedDir}/.drctl-restart-${pod}.yaml`, `${cp.manifestsDir}/${pod}.yaml`, text));
      (state === 'running' ? restarted : notRunning).push(pod);
    }
    if (writes.length)
      await this.shell.exec([`mkdir -p ${shq(cp.parkedDir)}`, ...writes].join(' && '), {
        timeoutMs: 60_000,
        check: true,
      });
    return { restarted, notRunning };
  }
}
