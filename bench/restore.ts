// Benchmark: quorum restore of site-b's 3 etcd members from a ~100 MB snapshot.
//
//   (a) drctl: the etcdRestore runbook through a worker on this script's own task queue, timed from
//       the approval (executeUpdate 'decide') to the end of 'verify-quorum' (and of 'start-apiserver' = API
//       server ready), from the workflow's own step timestamps. Distribute runs before the gate and
//       is not counted.
//   (b) the manual runbook done sequentially over SSH, node after node (stop, move aside, restore,
//       into place, start), then wait for quorum with drctl's own verifyQuorum; timed from its first
//       stop. Copying the snapshot to each node happens first and is NOT counted (as (a)'s distribute).
//   (c) each node's bare `etcdutl snapshot restore` + start until its etcd process is up, taken from
//       (b)'s per-node timings (one node at a time, nothing else restoring); the max over nodes.
//       Also, as a cross-check, a single-member restore + start of a throw-away etcd until healthy.
//
// Targets: (a) <= 1.3 x (c) and (a) <= (b) / 2. Each measurement runs BENCH_RUNS times (default 2),
// interleaved (a, b, c, a, b, c) so noise spreads over both. site-b only.
//
//   npx tsx bench/restore.ts
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Client } from '@temporalio/client';
import { createRestoreActivities } from '../activities/restore.ts';
import { bumpRevisionFor, type RestoreStatus, runTag } from '../common/restore.ts';
import { EtcdTools } from '../gateways/etcd.ts';
import { shq } from '../gateways/ssh.ts';
import { createGateways } from '../worker/gateways.ts';
import { createWorker, type DrctlWorker } from '../worker/worker.ts';
import { etcdRestore, statusQuery } from '../workflows/etcd-restore.ts';
import { decide, signedInput } from '../test/support/lab.ts';
import {
  type ActivitySpan,
  activitySpans,
  benchConfig,
  CLUSTER,
  countPrefix,
  deleteCompactDefrag,
  drctlClusterCheck,
  drctlSnapshot,
  fill,
  handRestoreCommand,
  median,
  NODES,
  quorumPlan,
  say,
  secs,
  siteHealthy,
  sleep,
  table,
  temporalClient,
  writeResults,
} from './lib/common.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const KEYS = Number(process.env.BENCH_KEYS ?? 100);
const RAW_BYTES = 786_432; // base64 → 1 MiB values
const PARALLEL = 4;
const PREFIX = '/bench/';

const taskQueue = `bench-restore-${Date.now()}`;
const { path: configPath, config } = benchConfig(taskQueue);
const gw = createGateways(config);
const acts = createRestoreActivities(gw);
const profile = (node: string) => {
  const p = gw.node(CLUSTER, node).controlPlane;
  if (p.profile !== 'kubeadm') throw new Error(`${CLUSTER}/${node}: the manual baseline expects the kubeadm profile`);
  return p;
};

/** Everything this run created, removed at the end (and on failure). */
const created = { snapshots: [] as string[], drctlShorts: [] as string[], manualIds: [] as string[] };
let lastSnapshot: string | undefined;

// ---------------------------------------------------------------------------------------------
// (a) drctl

interface DrctlRun {
  workflowId: string;
  snapshotKey: string;
  snapshotBytes: number;
  snapshotMs: number;
  /** drctl's etcdSnapshot runbook, ms per step (its upload is the SFTP read → S3 path). */
  snapshotTimings: Record<string, number>;
  preflightToGateMs: number;
  distributeMs: number;
  approveToQuorumMs: number;
  approveToApiReadyMs: number;
  approveToResultMs: number;
  updateRoundTripMs: number;
  steps: { step: string; startMs: number; ms: number }[];
  /** Every activity: scheduled at (ms after the approval) and scheduled → closed (ms). */
  activities: (Omit<ActivitySpan, 'scheduledAt' | 'startedAt' | 'closedAt'> & { atMs: number; ms: number })[];
  bumpRevision?: number;
  restoreCommand?: string;
}

async function waitPhase(
  client: Client,
  id: string,
  phase: RestoreStatus['phase'],
  timeoutMs: number,
): Promise<RestoreStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await client.workflow
      .getHandle(id)
      .query(statusQuery)
      .catch(() => undefined);
    if (st?.phase === phase) return st;
    if (st && ['failed', 'aborted', 'compensated', 'completed'].includes(st.phase))
      throw new Error(`${id}: phase ${st.phase} (${st.error ?? ''}) while waiting for ${phase}`);
    if (Date.now() > deadline)
      throw new Error(`${id}: not in phase ${phase} after ${timeoutMs / 1000} s (now ${st?.phase})`);
    await sleep(250);
  }
}

/** A full drctl restore from `key`, approved by bob as soon as it reaches the gate. */
async function drctlRestore(client: Client, key: string, label: string) {
  const workflowId = `bench-restore-${CLUSTER}-${label}-${Date.now()}`;
  const handle = await client.workflow.start(etcdRestore, {
    taskQueue,
    workflowId,
    args: [
      await signedInput({ config }, 'etcd-restore', workflowId, {
        cluster: CLUSTER,
        snapshot: key,
        force: true,
        approvalTimeoutMs: 30 * 60_000,
      }),
    ],
  });
  const tStarted = Date.now();
  const gate = await waitPhase(client, workflowId, 'waiting-approval', 20 * 60_000);
  if (gate.plan) created.drctlShorts.push(runTag(gate.plan.runId));
  const tApprove = Date.now();
  await decide({ config, client }, handle, 'bob', true, 'benchmark');
  const tAccepted = Date.now();
  const result = await handle.result();
  const tResult = Date.now();
  const final = await handle.query(statusQuery);
  return { workflowId, result, final, gate, tStarted, tApprove, tAccepted, tResult };
}

async function measureDrctl(client: Client, i: number): Promise<DrctlRun> {
  say(`(a) run ${i}: snapshot of ${CLUSTER} through drctl's etcdSnapshot runbook`);
  const snap = await drctlSnapshot(client, taskQueue);
  created.snapshots.push(snap.key);
  lastSnapshot = snap.key;
  say(
    `(a) run ${i}: ${snap.key} (${(snap.size / 1e6).toFixed(1)} MB, ${secs(snap.ms)} s); drctl restore, approving at the gate`,
  );
  const r = await drctlRestore(client, snap.key, `a${i}`);
  if (r.result.outcome !== 'completed') throw new Error(`${r.workflowId}: outcome ${r.result.outcome}`);
  const at = (step: string, which: 'startedAt' | 'endedAt') => {
    const s = r.final.steps.find((x) => x.step === step);
    const v = s?.[which];
    if (!v) throw new Error(`${r.workflowId}: step ${step} has no ${which}`);
    return Date.parse(v);
  };
  const spans = await activitySpans(client, r.workflowId);
  const run: DrctlRun = {
    workflowId: r.workflowId,
    snapshotKey: snap.key,
    snapshotBytes: snap.size,
    snapshotMs: snap.ms,
    snapshotTimings: snap.timings,
    preflightToGateMs: r.tApprove - r.tStarted,
    distributeMs: at('distribute', 'endedAt') - at('distribute', 'startedAt'),
    approveToQuorumMs: at('verify-quorum', 'endedAt') - r.tApprove,
    approveToApiReadyMs: at('start-apiserver', 'endedAt') - r.tApprove,
    approveToResultMs: r.tResult - r.tApprove,
    updateRoundTripMs: r.tAccepted - r.tApprove,
    steps: r.final.steps
      .filter((s) => s.startedAt && s.endedAt)
      .map((s) => ({
        step: s.step,
        startMs: Date.parse(s.startedAt!) - r.tApprove,
        ms: Date.parse(s.endedAt!) - Date.parse(s.startedAt!),
      })),
    // (The history's ActivityTaskStarted time is written lazily for retryable activities, so only
    // scheduled → closed is meaningful; with an idle in-process worker the queueing is negligible.)
    activities: spans.map(({ scheduledAt, startedAt: _started, closedAt, ...rest }) => ({
      ...rest,
      atMs: Math.round(scheduledAt - r.tApprove),
      ms: Math.round(closedAt - scheduledAt),
    })),
    bumpRevision: r.result.plan.nodes[0]?.bumpRevision,
    restoreCommand: r.result.plan.nodes[0]?.restoreCommand,
  };
  say(
    `(a) run ${i}: approval → quorum ${secs(run.approveToQuorumMs)} s, → API ready ${secs(run.approveToApiReadyMs)} s`,
  );
  await assertHealthy(`after (a) run ${i}`);
  await removeDrctlLeftovers(runTag(r.result.plan.runId));
  return run;
}

// ---------------------------------------------------------------------------------------------
// (b) manual, sequential  +  (c) per node

interface ManualStep {
  node: string;
  step: string;
  startMs: number;
  ms: number;
}

interface ManualRun {
  id: string;
  snapshotKey: string;
  snapshotBytes: number;
  snapshotTimings: Record<string, number>;
  copyMs: { node: string; ms: number }[];
  copyTotalMs: number;
  bumpRevision: number;
  restoreCommand: string;
  steps: ManualStep[];
  firstStopToLastStartMs: number;
  firstStopToQuorumMs: number;
  firstStopToApiReadyMs: number;
  /** (c) from this run: per node restore + into place + start until the etcd process is up. */
  perNode: { node: string; restoreMs: number; intoPlaceMs: number; startMs: number; bareMs: number }[];
  bareMaxMs: number;
}

const work = (id: string) => `/var/lib/bench-restore-${id}`;

/** Runs one step of the manual runbook on one node and records how long it took. */
async function timed(steps: ManualStep[], t0: number, node: string, step: string, cmd: string, timeoutMs = 120_000) {
  const s = Date.now();
  await gw.shell(CLUSTER, node).exec(cmd, { check: true, timeoutMs });
  steps.push({ node, step, startMs: s - t0, ms: Date.now() - s });
}

const waitGone = (proc: string) =>
  `timeout 120 bash -c ${shq(`while pgrep -x ${proc} >/dev/null; do sleep 0.1; done`)}`;
const waitUp = (proc: string) => `timeout 120 bash -c ${shq(`until pgrep -x ${proc} >/dev/null; do sleep 0.1; done`)}`;

async function measureManual(client: Client, i: number): Promise<ManualRun> {
  say(`(b) run ${i}: snapshot of ${CLUSTER} through drctl's etcdSnapshot runbook`);
  const snap = await drctlSnapshot(client, taskQueue);
  created.snapshots.push(snap.key);
  lastSnapshot = snap.key;
  const id = randomBytes(4).toString('hex');
  created.manualIds.push(id);
  const dir = work(id);
  const staged = `${dir}/snapshot.db`;

  // Copy the snapshot to each node, one after another (not counted in (b)).
  say(`(b) run ${i}: copying ${snap.key} (${(snap.size / 1e6).toFixed(1)} MB) to each node in turn (not timed in (b))`);
  const copyMs: { node: string; ms: number }[] = [];
  for (const n of NODES) {
    const t = Date.now();
    const shell = gw.shell(CLUSTER, n);
    await shell.exec(`mkdir -p ${shq(dir)} && chmod 700 ${shq(dir)}`, { check: true });
    // Decrypted on the way, as drctl's distribute step does (the object is encrypted).
    await pipeline(
      await gw.store().get(snap.key),
      gw.snapshots().keys.decryptStream(snap.key),
      await shell.writeStream(staged, 0o600),
    );
    const sum = await shell.exec(`sha256sum ${shq(staged)}`, { check: true, timeoutMs: 120_000 });
    if (sum.stdout.slice(0, 64) !== snap.sha256)
      throw new Error(`${n}: staged copy hashes to ${sum.stdout.slice(0, 64)}, not ${snap.sha256}`);
    copyMs.push({ node: n, ms: Date.now() - t });
  }

  // The same flags drctl's plan uses: own --name/peer URL, shared --initial-cluster, a new token,
  // --bump-revision (drctl's rule: >= 1e9 and >= 10x the writes since the snapshot) + --mark-compacted.
  const statuses = await Promise.all(NODES.map((n) => gw.etcd(CLUSTER, n).status()));
  const live = Math.max(...statuses.map((s) => s.revision));
  const bump = bumpRevisionFor(Math.max(0, live - snap.revision));
  const nodes = gw.cluster(CLUSTER).nodes;
  const initialCluster = nodes.map((n) => `${n.etcd.memberName}=${n.etcd.peerUrl}`).join(',');
  const token = `bench-${CLUSTER}-${id}`;
  // A dedicated etcd disk (its data dir a mount point): the manual runbook moves the contents, not
  // the mount point, and restores inside that filesystem (etcdutl wants an empty or absent dir).
  const mountPoint = new Map<string, boolean>();
  for (const n of nodes)
    mountPoint.set(n.name, (await gw.shell(CLUSTER, n.name).exec(`mountpoint -q ${shq(n.etcd.dataDir)}`)).code === 0);
  const scratch = (n: (typeof nodes)[number]) =>
    mountPoint.get(n.name) ? `${n.etcd.dataDir}/.bench-restored-${id}` : `${dir}/restored`;
  const restoreCmd = (n: (typeof nodes)[number]) =>
    handRestoreCommand(gw.shell(CLUSTER, n.name), n, {
      purpose: 'bench-restore',
      staged,
      initialCluster,
      token,
      dataDir: scratch(n),
      bump,
    });
  for (const n of nodes) {
    const p = profile(n.name);
    const r = await gw
      .shell(CLUSTER, n.name)
      .exec(`ls ${shq(p.parkedDir)} 2>/dev/null | grep -E '^(etcd|kube-apiserver)\\.yaml$' || true`);
    if (r.stdout.trim())
      throw new Error(
        `${n.name}: ${p.parkedDir} already holds ${r.stdout.trim()}; refusing to start the manual baseline`,
      );
  }

  say(`(b) run ${i}: manual runbook, node after node (bump ${bump})`);
  const steps: ManualStep[] = [];
  const t0 = Date.now();
  // Stop the API server first (it must never see etcd swapped underneath it).
  for (const n of nodes.filter((x) => x.apiserver)) {
    const p = profile(n.name);
    await timed(
      steps,
      t0,
      n.name,
      'stop kube-apiserver',
      `mkdir -p ${shq(p.parkedDir)} && mv ${shq(`${p.manifestsDir}/kube-apiserver.yaml`)} ${shq(`${p.parkedDir}/kube-apiserver.yaml`)} && ${waitGone('kube-apiserver')}`,
    );
  }
  for (const n of nodes) {
    const p = profile(n.name);
    const dataDir = n.etcd.dataDir;
    await timed(
      steps,
      t0,
      n.name,
      'stop etcd',
      `mkdir -p ${shq(p.parkedDir)} && mv ${shq(`${p.manifestsDir}/etcd.yaml`)} ${shq(`${p.parkedDir}/etcd.yaml`)} && ${waitGone('etcd')}`,
    );
    const aside = `${dataDir}/.bench-aside-${id}`;
    await timed(
      steps,
      t0,
      n.name,
      'move-aside',
      mountPoint.get(n.name)
        ? `mkdir ${shq(aside)} && mv ${shq(`${dataDir}/member`)} ${shq(aside)}/`
        : `mv ${shq(dataDir)} ${shq(`${dataDir}.bench-${id}`)}`,
    );
    const cmd = await restoreCmd(n);
    await timed(
      steps,
      t0,
      n.name,
      'restore',
      `${cmd} >${shq(`${dir}/restore.log`)} 2>&1 || { tail -5 ${shq(`${dir}/restore.log`)} >&2; exit 1; }`,
      20 * 60_000,
    );
    await timed(
      steps,
      t0,
      n.name,
      'into place',
      mountPoint.get(n.name)
        ? `mv ${shq(`${scratch(n)}/member`)} ${shq(`${dataDir}/member`)} && rmdir ${shq(scratch(n))}`
        : `chmod 700 ${shq(scratch(n))} && mv ${shq(scratch(n))} ${shq(dataDir)}`,
    );
    await timed(
      steps,
      t0,
      n.name,
      'start etcd',
      `mv ${shq(`${p.parkedDir}/etcd.yaml`)} ${shq(`${p.manifestsDir}/etcd.yaml`)} && ${waitUp('etcd')}`,
    );
  }
  const tLastStart = Date.now();
  // Quorum, by drctl's own criteria: every member healthy, planned member list, one leader, one revision.
  let s = Date.now();
  await acts.verifyQuorum({ cluster: CLUSTER, plan: quorumPlan(gw), minRevision: snap.revision + bump });
  const tQuorum = Date.now();
  steps.push({ node: 'all', step: 'wait for quorum', startMs: s - t0, ms: tQuorum - s });
  for (const n of nodes.filter((x) => x.apiserver)) {
    const p = profile(n.name);
    await timed(
      steps,
      t0,
      n.name,
      'start kube-apiserver',
      `mv ${shq(`${p.parkedDir}/kube-apiserver.yaml`)} ${shq(`${p.manifestsDir}/kube-apiserver.yaml`)} && ${waitUp('kube-apiserver')}`,
    );
  }
  s = Date.now();
  await acts.waitApiserverReady({ cluster: CLUSTER });
  const tApi = Date.now();
  steps.push({ node: 'cp1', step: 'wait API ready', startMs: s - t0, ms: tApi - s });

  const stepMs = (node: string, step: string) => steps.find((x) => x.node === node && x.step === step)?.ms ?? NaN;
  const perNode = NODES.map((n) => {
    const restoreMs = stepMs(n, 'restore');
    const intoPlaceMs = stepMs(n, 'into place');
    const startMs = stepMs(n, 'start etcd');
    return { node: n, restoreMs, intoPlaceMs, startMs, bareMs: restoreMs + intoPlaceMs + startMs };
  });
  const run: ManualRun = {
    id,
    snapshotKey: snap.key,
    snapshotBytes: snap.size,
    snapshotTimings: snap.timings,
    copyMs,
    copyTotalMs: copyMs.reduce((a, c) => a + c.ms, 0),
    bumpRevision: bump,
    restoreCommand: await restoreCmd(nodes[0]!),
    steps,
    firstStopToLastStartMs: tLastStart - t0,
    firstStopToQuorumMs: tQuorum - t0,
    firstStopToApiReadyMs: tApi - t0,
    perNode,
    bareMaxMs: Math.max(...perNode.map((p) => p.bareMs)),
  };
  say(
    `(b) run ${i}: first stop → quorum ${secs(run.firstStopToQuorumMs)} s, → API ready ${secs(run.firstStopToApiReadyMs)} s; (c) max bare ${secs(run.bareMaxMs)} s`,
  );
  await assertHealthy(`after (b) run ${i}`);
  return run;
}

interface SingleRun {
  node: string;
  restoreMs: number;
  spawnMs: number;
  healthyMs: number;
  totalMs: number;
}

/**
 * (c) cross-check: on each node in turn, restore the staged snapshot as a one-member cluster into a
 * scratch dir and start a throw-away etcd on spare ports until it answers `endpoint health`; the
 * live members are not touched. Timed on the node itself.
 */
async function measureSingle(run: ManualRun, i: number): Promise<SingleRun[]> {
  say(`(c) run ${i}: single-member restore + start on each node (live cluster untouched)`);
  const out: SingleRun[] = [];
  for (const n of gw.cluster(CLUSTER).nodes) {
    const dir = work(run.id);
    const ip = new URL(n.etcd.clientUrl).hostname;
    const peer = `http://${ip}:12380`;
    const client = `http://${ip}:12379`;
    const d = `${dir}/single`;
    // etcdutl and etcd from the node's own etcd image (a kubeadm host has neither binary); health
    // over plain HTTP from bash, so no third container is timed.
    const tools = new EtcdTools(gw.shell(CLUSTER, n.name), n);
    const restore = await tools.command('bench-single-restore', {
      tool: 'etcdutl',
      args: `snapshot restore ${shq(`${dir}/snapshot.db`)} --name=${shq(n.etcd.memberName)} --initial-cluster=${shq(`${n.etcd.memberName}=${peer}`)} --initial-cluster-token=${shq(`bench-single-${run.id}`)} --initial-advertise-peer-urls=${peer} --data-dir=${shq(d)} --bump-revision=${run.bumpRevision} --mark-compacted`,
      ro: [dir],
      rw: [dir],
    });
    const { tools: resolved } = await tools.resolve();
    const cid = `bench-single-${run.id}-${n.name}`;
    const serve =
      resolved.from === 'image'
        ? `ctr --address ${shq(resolved.containerd.address)} -n ${shq(resolved.containerd.namespace)} run -d --net-host --mount ${shq(`type=bind,src=${dir},dst=${dir},options=rbind:rw`)} ${shq(resolved.image)} ${cid} /usr/local/bin/etcd`
        : 'etcd';
    const stop =
      resolved.from === 'image'
        ? `ctr --address ${shq(resolved.containerd.address)} -n ${shq(resolved.containerd.namespace)} task kill -s KILL ${cid} >/dev/null 2>&1; sleep 0.5; ctr --address ${shq(resolved.containerd.address)} -n ${shq(resolved.containerd.namespace)} container rm ${cid} >/dev/null 2>&1 || true`
        : 'kill $pid; wait $pid || true';
    const script = `set -e
rm -rf ${shq(d)}
t0=$(date +%s%N)
${restore} >${shq(`${dir}/single-restore.log`)} 2>&1
t1=$(date +%s%N)
${serve} --name=${shq(n.etcd.memberName)} --data-dir=${shq(d)} --listen-client-urls=${client} --advertise-client-urls=${client} --listen-peer-urls=${peer} --initial-advertise-peer-urls=${peer} >${shq(`${dir}/single-etcd.log`)} 2>&1 &
pid=$!
t2=$(date +%s%N)
deadline=$(( $(date +%s) + 120 ))
health() { exec 3<>/dev/tcp/${ip}/12379 && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && grep -q '"health":"true"' <&3; }
until health 2>/dev/null; do
  [ $(date +%s) -lt $deadline ] || { ${stop}; echo "single-member etcd not healthy after 120 s" >&2; tail -5 ${shq(`${dir}/single-etcd.log`)} >&2; exit 1; }
  sleep 0.05
done
t3=$(date +%s%N)
${stop}
rm -rf ${shq(d)}
echo "$t0 $t1 $t2 $t3"`;
    const r = await gw.shell(CLUSTER, n.name).exec(`bash -c ${shq(script)}`, { check: true, timeoutMs: 10 * 60_000 });
    const [t0, t1, t2, t3] = r.stdout
      .trim()
      .split('\n')
      .pop()!
      .split(' ')
      .map((x) => Number(BigInt(x) / 1000n) / 1000);
    out.push({ node: n.name, restoreMs: t1! - t0!, spawnMs: t2! - t1!, healthyMs: t3! - t2!, totalMs: t3! - t0! });
  }
  say(`(c) run ${i}: single-member max ${secs(Math.max(...out.map((o) => o.totalMs)))} s`);
  return out;
}

/** What one SSH command costs here: `true` over drctl's pooled connection, alone and 3 nodes at once. */
async function sshRoundTrip() {
  const one = async (node: string) => {
    const t = Date.now();
    await gw.shell(CLUSTER, node).exec('true', { check: true });
    return Date.now() - t;
  };
  for (const n of NODES) await one(n); // connect first
  const seq: number[] = [];
  for (let i = 0; i < 10; i++) for (const n of NODES) seq.push(await one(n));
  const par: number[] = [];
  for (let i = 0; i < 10; i++) par.push(...(await Promise.all(NODES.map(one))));
  return {
    sequentialMedianMs: median(seq),
    sequentialMaxMs: Math.max(...seq),
    parallel3MedianMs: median(par),
    parallel3MaxMs: Math.max(...par),
  };
}

// ---------------------------------------------------------------------------------------------
// health, recovery, cleanup

async function assertHealthy(when: string) {
  const h = await siteHealthy(gw, 60_000);
  if (!h.ok) throw new Error(`${CLUSTER} not healthy ${when}: ${h.detail}`);
}

async function removeDrctlLeftovers(short: string) {
  // drctl keeps the moved-aside data dir and the journal "for the record"; a benchmark does not.
  await Promise.all(
    NODES.map((n) =>
      gw
        .shell(CLUSTER, n)
        .exec(`rm -rf /var/lib/etcd.drctl-${short} /var/lib/etcd/.drctl-*-${short} /var/lib/drctl-restore-${short}`, {
          check: true,
          timeoutMs: 120_000,
        }),
    ),
  );
}

async function removeManualLeftovers(id: string) {
  await Promise.all(
    NODES.map((n) =>
      gw.shell(CLUSTER, n).exec(`rm -rf ${shq(work(id))} /var/lib/etcd.bench-${id} /var/lib/etcd/.bench-*-${id}`, {
        check: true,
        timeoutMs: 120_000,
      }),
    ),
  );
}

/** After a failed measurement: if site-b is not healthy, put it back with a drctl restore. */
async function recoverIfNeeded(client: Client) {
  const h = await siteHealthy(gw, 30_000);
  if (h.ok) return;
  if (!lastSnapshot) throw new Error(`${CLUSTER} unhealthy (${h.detail}) and this run has no snapshot to restore from`);
  say(`RECOVERY: ${CLUSTER} unhealthy (${h.detail}); restoring it with drctl from ${lastSnapshot}`);
  const r = await drctlRestore(client, lastSnapshot, 'recovery');
  say(`RECOVERY: ${r.workflowId} ${r.result.outcome}`);
  await assertHealthy('after recovery');
}

async function cleanup(client: Client | undefined) {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
    }
  };
  if (client) await attempt('recovery', () => recoverIfNeeded(client));
  await attempt(`delete ${PREFIX} keys, compact, defrag`, async () => {
    const sizes = await deleteCompactDefrag(gw, [PREFIX]);
    say(
      `cleanup: ${PREFIX} deleted, compacted, defragmented: db ${sizes.map((s) => `${s.node}=${(s.dbSize / 1e6).toFixed(1)} MB`).join(' ')}`,
    );
  });
  for (const key of created.snapshots) await attempt(`delete ${key}`, () => gw.snapshots().remove(key));
  for (const s of created.drctlShorts) await attempt(`remove drctl run ${s} leftovers`, () => removeDrctlLeftovers(s));
  for (const id of created.manualIds)
    await attempt(`remove manual run ${id} leftovers`, () => removeManualLeftovers(id));
  say(`cleanup: ${created.snapshots.length} benchmark snapshot object(s) deleted, node-local leftovers removed`);
  return problems;
}

// ---------------------------------------------------------------------------------------------

const verdict = (ok: boolean[]) => (ok.every(Boolean) ? 'PASS' : ok.some(Boolean) ? 'MIXED' : 'FAIL');

async function main(): Promise<number> {
  say(`config ${configPath}; task queue ${taskQueue}; ${RUNS} run(s) of each measurement; ${CLUSTER} only`);
  let client: Client | undefined;
  let w: DrctlWorker | undefined;
  let running: Promise<void> | undefined;
  let failed: Error | undefined;
  const drctlRuns: DrctlRun[] = [];
  const manualRuns: ManualRun[] = [];
  const singleRuns: SingleRun[][] = [];
  let fillInfo: Awaited<ReturnType<typeof fill>> | undefined;
  const ssh: Awaited<ReturnType<typeof sshRoundTrip>>[] = [];
  try {
    w = await createWorker(config);
    running = w.worker.run();
    client = await temporalClient(config);
    await assertHealthy('before the benchmark');
    if ((await countPrefix(gw, PREFIX)) > 0) {
      say(`leftover ${PREFIX} keys from an earlier run: deleting them first`);
      await deleteCompactDefrag(gw, [PREFIX]);
    }
    say(`fill: ${KEYS} x 1 MiB under ${PREFIX} (generated on cp1, ${PARALLEL} parallel batches)`);
    fillInfo = await fill(gw, { prefix: PREFIX, count: KEYS, rawBytes: RAW_BYTES, parallel: PARALLEL });
    if (!fillInfo.ok || fillInfo.keys !== KEYS)
      throw new Error(`fill wrote ${fillInfo.keys}/${KEYS} keys: ${fillInfo.error ?? ''}`);
    say(
      `fill: ${fillInfo.keys} keys in ${secs(fillInfo.ms)} s; db ${(fillInfo.dbSize / 1e6).toFixed(1)} MB at revision ${fillInfo.revision}`,
    );
    for (let i = 1; i <= RUNS; i++) {
      ssh.push(await sshRoundTrip());
      say(`ssh exec round trip: ${JSON.stringify(ssh[ssh.length - 1])}`);
      drctlRuns.push(await measureDrctl(client, i));
      const m = await measureManual(client, i);
      manualRuns.push(m);
      singleRuns.push(await measureSingle(m, i));
      await removeManualLeftovers(m.id);
    }
  } catch (err) {
    failed = err as Error;
    say(`MEASUREMENT FAILED: ${failed.stack ?? failed.message}`);
  }

  const cleanupProblems = await cleanup(client);
  const check = await drctlClusterCheck();
  say(`final: node bin/drctl.js cluster check --cluster ${CLUSTER} → exit ${check.code}\n${check.out}`);
  if (w && running) {
    w.worker.shutdown();
    await running.catch(() => undefined);
    await w.connection.close();
    w.gateways.close();
  }
  await client?.connection.close();
  gw.close();

  // Report.
  const a = drctlRuns.map((r) => r.approveToQuorumMs);
  const aApi = drctlRuns.map((r) => r.approveToApiReadyMs);
  const b = manualRuns.map((r) => r.firstStopToQuorumMs);
  const bApi = manualRuns.map((r) => r.firstStopToApiReadyMs);
  const c = manualRuns.map((r) => r.bareMaxMs);
  const cSingle = singleRuns.map((s) => Math.max(...s.map((x) => x.totalMs)));
  const n = Math.min(a.length, b.length, c.length);
  const runCols = Array.from({ length: Math.max(a.length, b.length) }, (_, i) => `run ${i + 1} (s)`);
  const row = (label: string, xs: number[]) => [label, ...runCols.map((_, i) => secs(xs[i]))];
  console.log(
    `\nRestore of ${CLUSTER} (3 members), snapshot ~${drctlRuns[0] ? (drctlRuns[0].snapshotBytes / 1e6).toFixed(0) : '?'} MB (${KEYS} x 1 MiB under ${PREFIX})\n`,
  );
  console.log(
    table(
      ['measurement', ...runCols],
      [
        row('(a) drctl: approval → verify-quorum end', a),
        row('(a) drctl: approval → verify end (API ready)', aApi),
        row(
          '    drctl distribute (before the gate, excluded)',
          drctlRuns.map((r) => r.distributeMs),
        ),
        row('(b) manual sequential: first stop → quorum', b),
        row('(b) manual sequential: first stop → API ready', bApi),
        row(
          '    manual copy to 3 nodes, sequential (excluded)',
          manualRuns.map((r) => r.copyTotalMs),
        ),
        row(
          '    drctl snapshot before (a): upload step',
          drctlRuns.map((r) => r.snapshotTimings.upload ?? NaN),
        ),
        row('(c) slowest node: restore + start (process up)', c),
        row("(c') slowest node: single-member restore + healthy", cSingle),
        row(
          '    one SSH command (`true`), median, sequential',
          ssh.map((x) => x.sequentialMedianMs),
        ),
        row(
          '    one SSH command (`true`), median, 3 nodes at once',
          ssh.map((x) => x.parallel3MedianMs),
        ),
      ],
    ),
  );
  if (drctlRuns.length) {
    console.log(`\ndrctl steps (ms; start offset from approval in brackets)\n`);
    const steps = drctlRuns[0]!.steps.map((s) => s.step);
    console.log(
      table(
        ['step', ...drctlRuns.map((_, i) => `run ${i + 1}`)],
        steps.map((st) => [
          st,
          ...drctlRuns.map((r) => {
            const s = r.steps.find((x) => x.step === st);
            return s ? `${s.ms} [${s.startMs}]` : '-';
          }),
        ]),
      ),
    );
  }
  if (drctlRuns.length) {
    console.log(`\ndrctl activities after the approval, run 1 (ms; 'at' = scheduled, ms after the approval)\n`);
    console.log(
      table(
        ['activity', 'node', 'at', 'ms'],
        drctlRuns[0]!.activities.filter((x) => x.atMs >= 0).map((x) => [x.type, x.what, x.atMs, x.ms]),
      ),
    );
  }
  if (manualRuns.length) {
    console.log(`\nmanual steps (ms), run 1\n`);
    console.log(
      table(
        ['node', 'step', 'ms', 'at'],
        manualRuns[0]!.steps.map((s) => [s.node, s.step, s.ms, s.startMs]),
      ),
    );
    console.log(`\n(c) per node (ms): restore + into place + start, from (b); single-member restore + healthy\n`);
    console.log(
      table(
        ['run', 'node', 'restore', 'into place', 'start', 'bare', 'single restore', 'single healthy', 'single total'],
        manualRuns.flatMap((m, i) =>
          m.perNode.map((p) => {
            const s = singleRuns[i]?.find((x) => x.node === p.node);
            return [
              String(i + 1),
              p.node,
              p.restoreMs,
              p.intoPlaceMs,
              p.startMs,
              p.bareMs,
              s?.restoreMs.toFixed(0) ?? '-',
              s?.healthyMs.toFixed(0) ?? '-',
              s?.totalMs.toFixed(0) ?? '-',
            ];
          }),
        ),
      ),
    );
  }
  const t1 = Array.from({ length: n }, (_, i) => a[i]! <= 1.3 * c[i]!);
  const t1s = Array.from({ length: n }, (_, i) => a[i]! <= 1.3 * cSingle[i]!);
  const t2 = Array.from({ length: n }, (_, i) => a[i]! <= b[i]! / 2);
  type Target = { verdict: string; runs: { a: number | undefined; limit: number; ratio: number }[] };
  const targets: Record<string, Target> = n
    ? {
        'a <= 1.3 x c': {
          verdict: verdict(t1),
          runs: Array.from({ length: n }, (_, i) => ({ a: a[i], limit: 1.3 * c[i]!, ratio: a[i]! / c[i]! })),
        },
        "a <= 1.3 x c' (single-member, cross-check)": {
          verdict: verdict(t1s),
          runs: Array.from({ length: n }, (_, i) => ({
            a: a[i],
            limit: 1.3 * cSingle[i]!,
            ratio: a[i]! / cSingle[i]!,
          })),
        },
        'a <= b / 2': {
          verdict: verdict(t2),
          runs: Array.from({ length: n }, (_, i) => ({ a: a[i], limit: b[i]! / 2, ratio: a[i]! / b[i]! })),
        },
      }
    : {};
  console.log('\ntargets\n');
  for (const [name, t] of Object.entries(targets)) {
    console.log(
      `${t.verdict.padEnd(5)} ${name}: ${t.runs.map((r, i) => `run ${i + 1}: a=${secs(r.a)} s vs limit ${secs(r.limit)} s (a/${name.includes('b /') ? 'b' : 'c'} = ${r.ratio.toFixed(2)})`).join('; ')}`,
    );
  }
  const file = writeResults('restore', {
    startedFor: { cluster: CLUSTER, keys: KEYS, valueBytes: 1_048_576, runs: RUNS, taskQueue },
    fill: fillInfo,
    sshRoundTrip: ssh,
    drctl: drctlRuns,
    manual: manualRuns,
    single: singleRuns,
    summary: { a, aApi, b, bApi, c, cSingle },
    targets,
    failed: failed?.message,
    cleanupProblems,
    finalClusterCheck: check,
  });
  console.log(`\nresults: ${file}`);
  if (cleanupProblems.length) console.log(`cleanup problems:\n  ${cleanupProblems.join('\n  ')}`);
  return failed || cleanupProblems.length || check.code !== 0 ? 1 : 0;
}

process.exit(await main());
