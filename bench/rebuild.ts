// Benchmark: `drctl cluster rebuild` of site-a against the same steps done by hand, in the same run,
// and the whole cycle fire → failover → rebuild → failback.
//   (a) by hand: site A burns (`drctl lab site destroy site-a`), then an operator's procedure over
//       SSH, one node after the other, as a wiki page would have it: the bundle fetched and
//       decrypted; per node, its PKI copied file by file, kubeadm's `init phase` certs, kubeconfig,
//       etcd local and control-plane run with the config drctl writes, the snapshot copied and
//       `etcdutl snapshot restore`d (drctl's flags: own name and peer URL, one initial cluster, a new
//       token, the revision bumped) on the dedicated etcd disk, the kubelet's config copied and the
//       kubelet restarted; then the API's /readyz awaited. Timed from the first step to /readyz ok.
//   (b) drctl: site A burns again; the traffic fails over to B; `drctl cluster rebuild --cluster
//       site-a` through the CLI and the lab's worker, asked by alice, approved by bob at its gate.
//       Timed from the approval to /readyz ok (the same probe as (a)) and to the run's end (verified).
//   (c) the whole cycle of (b): fire → failover → rebuild → `lab site up` → failback done.
// Both rebuild the same cluster from a snapshot of the same size on the same hosts. One run each
// (BENCH_RUNS for more, interleaved); each run takes about 5 min.
//   npx tsx bench/rebuild.ts          (lab up; site A is destroyed and rebuilt, the lab left as found)
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { failoverWorkflowId } from '../client/commands/failover.ts';
import { KUBEADM_PATHS } from '../common/cp-bundle.ts';
import { dirOf } from '../common/etcd-tools.ts';
import { bumpRevisionFor } from '../common/restore.ts';
import { bundleFilesUnder, kubeadmRebuildConfig } from '../gateways/rebuild-node.ts';
import { shq } from '../gateways/ssh.ts';
import { bin, paths, siteNamed } from '../lab/topology.ts';
import { resetFailoverLab } from '../test/support/failover.ts';
import { ensureLabHealthy, labConfig } from '../test/support/lab.ts';
import { createGateways } from '../worker/gateways.ts';
import { atGate, drctl, handRestoreCommand, median, say, secs, sleep, table, writeResults } from './lib/common.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 1);
const CLUSTER = 'site-a';
const SITE = siteNamed(CLUSTER);
const asAlice = ['--as', 'alice', '--key', paths.personKey('alice')];
const run = promisify(execFile);

type Status = { phase: string; error?: string; steps: { step: string; state: string; startedAt?: string }[] };
const status = async (id: string) => JSON.parse(await drctl(['status', id, '--json'])) as Status;

/** Resolves when site A's API answers /readyz with the pre-fire admin kubeconfig. */
async function apiReady(timeoutMs = 600_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await run(join(bin.kubeDir, 'kubectl'), [
      '--kubeconfig',
      SITE.kubeconfig,
      '--request-timeout=2s',
      'get',
      '--raw',
      '/readyz',
    ]).then(
      (r) => r.stdout.trim() === 'ok',
      () => false,
    );
    if (ok) return Date.now();
    await sleep(250);
  }
  throw new Error(`${CLUSTER}: the API not ready within ${timeoutMs / 1000} s`);
}

async function destroy(): Promise<number> {
  const t = Date.now();
  await drctl(['lab', 'site', 'destroy', CLUSTER, '--yes']);
  return Date.now() - t;
}

interface HandRun {
  destroyMs: number;
  totalMs: number;
  /** To every member healthy (by hand the API can be ready on two of three). */
  allMs: number;
  steps: { node: string; step: string; ms: number }[];
}

/** (a) The rebuild by hand, node after node, on hosts `lab site destroy` just left new. */
async function byHand(key: string): Promise<HandRun> {
  const destroyMs = await destroy();
  const gw = createGateways(labConfig()); // the new host keys
  try {
    const nodes = gw.cluster(CLUSTER).nodes;
    const snaps = gw.snapshots();
    await snaps.resolve(CLUSTER, key); // there, and signed
    const initialCluster = nodes.map((n) => `${n.etcd.memberName}=${n.etcd.peerUrl}`).join(',');
    const token = `hand-${CLUSTER}-${Date.now().toString(36)}`;
    const steps: HandRun['steps'] = [];
    const t0 = Date.now();
    const timed = async <T>(node: string, step: string, fn: () => Promise<T>): Promise<T> => {
      const s = Date.now();
      const r = await fn();
      steps.push({ node, step, ms: Date.now() - s });
      return r;
    };
    const bundle = await timed('-', 'fetch and decrypt the bundle', () => snaps.readBundle(key));
    const cc = bundle.files.get('kubeadm/ClusterConfiguration')!.toString('utf8');
    for (const n of nodes) {
      const shell = gw.shell(CLUSTER, n.name);
      const copy = async (path: string, mode: string, data: Buffer) => {
        await shell.exec(`mkdir -p ${shq(dirOf(path))}`, { check: true });
        const out = await shell.writeStream(path, Number.parseInt(mode, 8));
        await finished(out.end(data));
      };
      await timed(n.name, 'copy the PKI, file by file', async () => {
        for (const f of bundleFilesUnder(bundle, 'pki/', KUBEADM_PATHS.pki)) await copy(f.path, f.mode, f.data);
      });
      await timed(n.name, 'kubeadm init phase certs, kubeconfig, etcd local, control-plane', async () => {
        const cfg = '/root/hand-rebuild.yaml';
        await copy(cfg, '600', Buffer.from(kubeadmRebuildConfig(n, cc)));
        for (const p of ['certs all', 'kubeconfig all', 'etcd local', 'control-plane all'])
          await shell.exec(`kubeadm init phase ${p} --config ${cfg}`, { check: true, timeoutMs: 300_000 });
      });
      const work = '/var/lib/hand-rebuild';
      const staged = `${work}/snapshot.db`;
      await timed(n.name, 'copy the snapshot', async () => {
        await shell.exec(`mkdir -p ${work} && chmod 700 ${work}`, { check: true });
        await pipeline(
          await gw.store().get(key),
          snaps.keys.decryptStream(key),
          await shell.writeStream(staged, 0o600),
        );
      });
      await timed(n.name, 'etcdutl snapshot restore onto the etcd disk', async () => {
        const scratch = `${n.etcd.dataDir}/.hand-restored`;
        const restore = await handRestoreCommand(shell, n, {
          purpose: 'hand-restore',
          staged,
          initialCluster,
          token,
          dataDir: scratch,
          bump: bumpRevisionFor(0),
        });
        await shell.exec(
          `${restore} && mv ${shq(`${scratch}/member`)} ${shq(`${n.etcd.dataDir}/member`)} && rmdir ${shq(scratch)} && rm -rf ${work} /root/hand-rebuild.yaml`,
          { check: true, timeoutMs: 300_000 },
        );
      });
      await timed(n.name, "copy the kubelet's config, restart the kubelet", async () => {
        for (const f of bundleFilesUnder(bundle, `kubelet/${n.name}/`, KUBEADM_PATHS.kubelet))
          await copy(f.path, f.mode, f.data);
        const cp = n.controlPlane;
        await shell.exec(`${cp.profile === 'kubeadm' ? cp.kubeletRestart : 'true'} || true`, { timeoutMs: 60_000 });
      });
    }
    const ready = await timed('-', 'wait for the API (/readyz)', () => apiReady());
    // What drctl's start step proves before it looks at the API: every member healthy.
    await timed('-', 'wait for every member healthy', async () => {
      for (;;) {
        const h = await Promise.all(nodes.map((n) => gw.etcd(CLUSTER, n.name).health()));
        if (h.every((x) => x.health)) return;
        await sleep(250);
      }
    });
    const allMs = Date.now() - t0;
    say(`(a) by hand: API ready ${secs(ready - t0)} s after the first step, every member ${secs(allMs)} s`);
    return { destroyMs, totalMs: ready - t0, allMs, steps };
  } finally {
    gw.close();
  }
}

async function moveTraffic(kind: 'failover' | 'failback', from: string, to: string): Promise<number> {
  const t = Date.now();
  const id = failoverWorkflowId(from, to);
  const done = drctl([kind, '--from', from, '--to', to, '--wait', '--json', '--reason', 'bench', ...asAlice]);
  await atGate(id, t);
  await drctl(['approve', id, '--key', paths.personKey('bob'), '--reason', 'bench']);
  await done;
  return Date.now() - t;
}

interface CycleRun {
  destroyMs: number;
  failoverMs: number;
  readyMs: number;
  verifiedMs: number;
  siteUpMs: number;
  failbackMs: number;
  cycleMs: number;
  steps: Record<string, number>;
}

/** (b) and (c): fire → failover → `drctl cluster rebuild` → `lab site up` → failback. */
async function cycle(): Promise<CycleRun> {
  const gw0 = createGateways(labConfig());
  try {
    await resetFailoverLab(gw0, labConfig());
  } finally {
    gw0.close();
  }
  await drctl(['snapshot', 'now', '--cluster', CLUSTER, '--wait']);
  const fireAt = Date.now();
  const destroyMs = await destroy();
  const failoverMs = await moveTraffic('failover', CLUSTER, 'site-b');
  const id = `cluster-rebuild-${CLUSTER}`;
  const t = Date.now();
  const done = drctl(['cluster', 'rebuild', '--cluster', CLUSTER, '--wait', '--json', ...asAlice]);
  await atGate(id, t);
  const approvedAt = Date.now();
  await drctl(['approve', id, '--key', paths.personKey('bob'), '--reason', 'bench']);
  const ready = await apiReady();
  await done;
  const verifiedMs = Date.now() - approvedAt;
  const st = await status(id);
  const at = (step: string) => Date.parse(st.steps.find((s) => s.step === step)?.startedAt ?? '');
  const stepNames = ['lay-pki', 'kubeadm-phases', 'restore-etcd', 'start', 'verify', 'cleanup'];
  const steps = Object.fromEntries(stepNames.slice(0, -1).map((s, i) => [s, at(stepNames[i + 1]!) - at(s)])) as Record<
    string,
    number
  >;
  let u = Date.now();
  await drctl(['lab', 'site', 'up', CLUSTER]);
  const siteUpMs = Date.now() - u;
  u = Date.now();
  const failbackMs = await moveTraffic('failback', 'site-b', CLUSTER);
  const r = {
    destroyMs,
    failoverMs,
    readyMs: ready - approvedAt,
    verifiedMs,
    siteUpMs,
    failbackMs,
    cycleMs: Date.now() - fireAt,
    steps,
  };
  say(`(b) drctl: API ready ${secs(r.readyMs)} s after the approval; (c) the cycle ${secs(r.cycleMs)} s`);
  return r;
}

async function main() {
  await ensureLabHealthy();
  say('a snapshot of site-a with its control-plane bundle (for (a))');
  const snap = JSON.parse(await drctl(['snapshot', 'now', '--cluster', CLUSTER, '--wait', '--json'])) as {
    result: { key: string; size?: number };
  };
  const hand: HandRun[] = [];
  const cycles: CycleRun[] = [];
  for (let i = 1; i <= RUNS; i++) {
    say(`run ${i}: (a) by hand`);
    hand.push(await byHand(snap.result.key));
    await drctl(['lab', 'site', 'up', CLUSTER]);
    say(`run ${i}: (b)+(c) drctl, the whole cycle`);
    cycles.push(await cycle());
  }
  const med = (f: (x: CycleRun) => number) => secs(median(cycles.map(f)));
  const handMs = median(hand.map((h) => h.totalMs));
  const readyMs = median(cycles.map((d) => d.readyMs));
  console.log(
    table(
      ['rebuild of site-a (3 control-plane nodes)', 'median s', 'runs s'],
      [
        [
          '(a) by hand, node after node: first step → /readyz',
          secs(handMs),
          hand.map((h) => secs(h.totalMs)).join(', '),
        ],
        ['(b) drctl cluster rebuild: approval → /readyz', secs(readyMs), cycles.map((d) => secs(d.readyMs)).join(', ')],
        [
          '(a) by hand: first step → every etcd member healthy',
          secs(median(hand.map((h) => h.allMs))),
          hand.map((h) => secs(h.allMs)).join(', '),
        ],
        [
          '(b) drctl: approval → verified, run ended',
          med((d) => d.verifiedMs),
          cycles.map((d) => secs(d.verifiedMs)).join(', '),
        ],
        ['(b) / (a)', (readyMs / handMs).toFixed(2), ''],
      ],
    ),
  );
  console.log(
    table(
      ['the cycle (c)', 'median s'],
      [
        ['lab site destroy (the fire)', med((d) => d.destroyMs)],
        ['failover to site-b (ask → done, gate included)', med((d) => d.failoverMs)],
        ['rebuild: approval → verified', med((d) => d.verifiedMs)],
        ['lab site up (kwok, Velero again)', med((d) => d.siteUpMs)],
        ['failback (ask → done, gate included)', med((d) => d.failbackMs)],
        ['fire → failback done', med((d) => d.cycleMs)],
      ],
    ),
  );
  console.log(
    table(
      ['(a) step by hand', 'node', 's'],
      hand[0]!.steps.map((s) => [s.step, s.node, secs(s.ms)]),
    ),
  );
  console.log(
    table(
      ['(b) drctl step', 's'],
      Object.entries(cycles[0]!.steps).map(([k, v]) => [k, secs(v)]),
    ),
  );
  console.log(`raw: ${writeResults('rebuild', { snapshot: snap.result.key, hand, drctl: cycles })}`);
}

await main();
