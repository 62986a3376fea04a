// A site burns (`drctl lab site destroy site-a`: every process killed, every host wiped to what
// provisioning leaves, new SSH host keys) and `drctl cluster rebuild` brings its control plane back
// on the new hosts from the off-site snapshot and its control-plane bundle, through the lab's own
// workers and the real CLI, as an operator would. Also: a rebuild refused on hosts that still have a
// control plane, and a corrupt or missing bundle refused before any host is read.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failoverWorkflowId } from '../client/commands/failover.ts';
import { bundleKeyOf, bundleManifestKeyOf } from '../common/cp-bundle.ts';
import { fenceOnReturnId } from '../common/failover.ts';
import { readState, workerId, writeState } from '../lab/processes.ts';
import { writeConfigAndRestartWorkers } from '../lab/up-down.ts';
import { bin, onHost, paths, siteNamed } from '../lab/topology.ts';
import { createGateways } from '../worker/gateways.ts';
import { appAddress, NS, RECORD, resetFailoverLab } from './support/failover.ts';
import { drctlCli, ensureLabHealthy, labConfig, until } from './support/lab.ts';

const run = promisify(execFile);
const cli = (args: string[]) => drctlCli(['--config', paths.config, ...args]);
const SITE = siteNamed('site-a');
const SITE_B = siteNamed('site-b');
let afterCycle = () => undefined as void;
/** Set once the failback put the traffic back on A: else afterAll puts the failover baseline back. */
let cycleDone = false;
const asAlice = ['--as', 'alice', '--key', paths.personKey('alice')];
const kubectl = (args: string[], kubeconfig = SITE.kubeconfig) =>
  run(join(bin.kubeDir, 'kubectl'), ['--kubeconfig', kubeconfig, '--request-timeout=10s', ...args]).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: Error & { stdout?: string; stderr?: string; code?: number }) => ({
      code: typeof e.code === 'number' ? e.code : 1,
      out: e.stdout ?? '',
      err: e.stderr ?? e.message,
    }),
  );
const stamp = Date.now().toString(36);
const measured: string[] = [];

type Status = {
  phase: string;
  error?: string;
  steps: { step: string; state: string; startedAt?: string; detail?: string; items: Record<string, string> }[];
};
const status = async (id: string) => JSON.parse((await cli(['status', id, '--json'])).stdout) as Status;

let snapshotKey = '';

/** The run `id` (started at `since` or later) waiting at its gate, its preflight done. */
async function atGate(id: string, since: number): Promise<Status> {
  const st = await until(
    `${id} waits at its gate`,
    () => status(id),
    (x) => x.phase !== 'running' && Date.parse(x.steps[0]?.startedAt ?? '0') >= since - 1000,
    180_000,
    1000,
  );
  expect(st.phase, st.error).toBe('waiting-approval');
  return st;
}
const approve = async (id: string, reason: string) => {
  const ok = await cli(['approve', id, '--key', paths.personKey('bob'), '--reason', reason]);
  expect(ok.status, ok.stderr).toBe(0);
};
/** A failover or failback through the CLI as alice asks it, approved by bob at its gate, followed to its end. */
async function moveTraffic(kind: 'failover' | 'failback', from: string, to: string, reason: string) {
  const t = Date.now();
  const id = failoverWorkflowId(from, to);
  const run = cli([kind, '--from', from, '--to', to, '--wait', '--json', '--reason', reason, ...asAlice]);
  await atGate(id, t);
  await approve(id, reason);
  const done = await run;
  expect(done.status, done.stdout.slice(-2000) + done.stderr.slice(-1000)).toBe(0);
}
const healthz = (site: string) =>
  fetch(labConfig().sites.find((x) => x.name === site)!.appEndpoint!).then(
    (r) => r.status,
    () => 0,
  );

beforeAll(async () => {
  await ensureLabHealthy();
}, 600_000);

afterAll(async () => {
  afterCycle();
  // Whatever happened, the lab's site A must serve the files after this one: rebuilt and back up,
  // or (the rebuild failed) laid out afresh by kubeadm, as a new lab would have it.
  const down = readState().sitesDown?.['site-a'];
  if (down?.destroyed) {
    const up = await cli(['lab', 'site', 'up', 'site-a']);
    if (up.status !== 0) {
      const state = readState();
      delete state.sitesDown!['site-a'];
      writeState(state);
      await cli(['lab', 'up']);
    }
  }
  if (!cycleDone) {
    const gw = createGateways(labConfig());
    try {
      await resetFailoverLab(gw, labConfig());
    } finally {
      gw.close();
    }
  }
}, 900_000);

describe('drctl cluster rebuild: site A burns and comes back on new hosts', () => {
  it('a snapshot carries a complete control-plane bundle; a rebuild on hosts that still have a control plane is refused (dry run)', async () => {
    const snap = await cli(['snapshot', 'now', '--cluster', 'site-a', '--wait', '--json']);
    expect(snap.status, snap.stderr).toBe(0);
    const r = (JSON.parse(snap.stdout) as { result: { key: string; bundle: { complete: boolean } } }).result;
    expect(r.bundle.complete).toBe(true);
    const dry = await cli(['cluster', 'rebuild', '--cluster', 'site-a', '--dry-run', ...asAlice]);
    expect(dry.status).not.toBe(0);
    expect(dry.stdout + dry.stderr).toMatch(/cp1: not a new host \(\/etc\/kubernetes\/pki/);
    expect(dry.stdout + dry.stderr).toContain('is restored (drctl etcd restore), not rebuilt');
  });

  it('a corrupt or missing bundle is refused before any host is read', async () => {
    const gw = createGateways(labConfig());
    try {
      const { snapshots } = await gw.snapshots().list('site-a');
      const key = snapshots.find((s) => s.bundle?.complete)!.key;
      const store = gw.store();
      const read = async (k: string) => {
        const parts: Buffer[] = [];
        for await (const c of await store.get(k)) parts.push(c as Buffer);
        return Buffer.concat(parts);
      };
      const [data, manifest] = await Promise.all([read(bundleKeyOf(key)), read(bundleManifestKeyOf(key))]);
      const refusal = async () => {
        const dry = await cli(['cluster', 'rebuild', '--cluster', 'site-a', '--snapshot', key, '--dry-run', '--json']);
        expect(dry.status).not.toBe(0);
        const id = /cluster-rebuild-dry-run-site-a-\d+/.exec(dry.stdout + dry.stderr)?.[0];
        expect(id, dry.stdout + dry.stderr).toBeDefined();
        const st = await status(id!);
        const preflight = st.steps.find((s) => s.step === 'preflight')!;
        // Refused on the source: no host was read.
        expect(Object.keys(preflight.items).filter((k) => k.startsWith('cp'))).toEqual([]);
        return st.error ?? '';
      };
      try {
        const flipped = Buffer.from(data);
        flipped[flipped.length - 50]! ^= 1;
        await store.put(bundleKeyOf(key), flipped);
        expect(await refusal()).toMatch(/bundle\.enc: hashes to [0-9a-f]{64}, not the signed/);
        await store.put(bundleKeyOf(key), data);
        await store.delete(bundleManifestKeyOf(key));
        expect(await refusal()).toMatch(/no control-plane bundle .*not enough for a rebuild/);
      } finally {
        await store.put(bundleKeyOf(key), data);
        await store.put(bundleManifestKeyOf(key), manifest);
      }
    } finally {
      gw.close();
    }
  });

  it(
    'fire → failover to B → rebuild A (a kubeconfig, a service-account token and the data from before the fire work there) → failback: A serves again with what B wrote',
    async () => {
      // The failover baseline: DNS on A, A serving, a fresh backup of A seen at B.
      const gw0 = createGateways(labConfig());
      try {
        await resetFailoverLab(gw0, labConfig());
      } finally {
        gw0.close();
      }
      // Before the fire: a marker object, a service-account token, a snapshot with its bundle.
      const marker = `rebuild-marker-${stamp}`;
      expect(
        (await kubectl(['-n', 'default', 'create', 'configmap', marker, `--from-literal=stamp=${stamp}`])).code,
      ).toBe(0);
      const token = await kubectl(['-n', 'default', 'create', 'token', 'default', '--duration=2h']);
      expect(token.code, token.err).toBe(0);
      const snap = await cli(['snapshot', 'now', '--cluster', 'site-a', '--wait', '--json']);
      expect(snap.status, snap.stderr).toBe(0);
      snapshotKey = (JSON.parse(snap.stdout) as { result: { key: string } }).result.key;
      const configBefore = readFileSync(paths.config, 'utf8');

      // The fire.
      let t = Date.now();
      const fire = await cli(['lab', 'site', 'destroy', 'site-a', '--yes', '--json']);
      expect(fire.status, fire.stderr).toBe(0);
      measured.push(`lab site destroy: ${((Date.now() - t) / 1000).toFixed(1)} s`);
      const hostKeys = (JSON.parse(fire.stdout) as { hostKeys: Record<string, string> }).hostKeys;
      expect(Object.keys(hostKeys)).toEqual(['cp1', 'cp2', 'cp3']);
      // New hardware, new host keys: the lab config (the operator's inventory) pins them now.
      expect(configBefore).not.toContain(hostKeys.cp1!);
      expect(readFileSync(paths.config, 'utf8')).toContain(hostKeys.cp1!);
      expect((await kubectl(['get', '--raw', '/readyz'])).code).not.toBe(0);
      const fireAt = t;

      // The traffic to site B while A is gone (A cannot be fenced now: its fence-on-return waits).
      t = Date.now();
      await moveTraffic('failover', 'site-a', 'site-b', 'site A burned');
      measured.push(`failover to site B (site A destroyed): ${((Date.now() - t) / 1000).toFixed(1)} s`);
      const gw = createGateways(labConfig());
      const B = appAddress(labConfig(), 'site-b');
      const A = appAddress(labConfig(), 'site-a');
      afterCycle = () => gw.close();
      expect((await gw.dns().resolveA(RECORD)).addresses).toEqual([B]);
      expect(await healthz('site-b')).toBe(200);
      // What B writes while A is being rebuilt: the failback must carry it back.
      const written = `written-at-b-${stamp}`;
      const wrote = await kubectl(
        ['-n', NS, 'create', 'configmap', written, `--from-literal=stamp=${stamp}`],
        SITE_B.kubeconfig,
      );
      expect(wrote.code, wrote.err).toBe(0);

      // A first rebuild cancelled once it has laid the PKI: its undo returns every host to what
      // provisioning left (the next rebuild's preflight finds them new again).
      const id = 'cluster-rebuild-site-a';
      t = Date.now();
      const first = cli(['cluster', 'rebuild', '--cluster', 'site-a', '--wait', ...asAlice]);
      await atGate(id, t);
      await approve(id, 'rebuild site A (to be cancelled)');
      await until(
        'the first rebuild past lay-pki',
        () => status(id),
        (x) => x.steps.find((s) => s.step === 'lay-pki')?.state === 'done',
        180_000,
        300,
      );
      const cancel = await cli(['cancel', id, '--reason', 'test: the undo', '--as', 'alice']);
      expect(cancel.status, cancel.stderr).toBe(0);
      expect((await first).status).not.toBe(0);
      const undone = await status(id);
      expect(undone.phase, undone.error).toBe('compensated');
      for (const node of SITE.nodes) {
        expect(existsSync(onHost(node, '/etc/kubernetes/pki')), node.name).toBe(false);
        expect(readdirSync(onHost(node, '/etc/kubernetes/manifests')), node.name).toEqual([]);
        expect(existsSync(onHost(node, '/var/lib/kubelet/config.yaml')), node.name).toBe(false);
      }
      measured.push(`a rebuild cancelled after lay-pki, undone: ${((Date.now() - t) / 1000).toFixed(1)} s`);

      // The rebuild, asked by alice, approved by bob once its preflight's evidence is there.
      t = Date.now();
      const started = cli(['cluster', 'rebuild', '--cluster', 'site-a', '--wait', '--json', ...asAlice]);
      const gate = await until(
        `${id} waits at its gate`,
        () => status(id),
        (s) => s.phase !== 'running' && Date.parse(s.steps[0]?.startedAt ?? '0') >= t - 1000,
        180_000,
        1000,
      );
      expect(gate.phase, gate.error).toBe('waiting-approval');
      const pre = gate.steps.find((s) => s.step === 'preflight')!;
      for (const n of ['cp1', 'cp2', 'cp3']) expect(pre.items[n]).toMatch(/^new host/);
      const approvedAt = Date.now();
      await approve(id, 'rebuild site A');
      // A worker killed mid-rebuild (the only one left: site A's burned with it): a new one resumes
      // the run, and no node-side step runs twice (each node's restore journal says so below).
      const mid = await until(
        'the rebuild restoring etcd',
        () => status(id),
        (s) => ['restore-etcd', 'start'].some((step) => s.steps.find((x) => x.step === step)?.state === 'running'),
        300_000,
        200,
      );
      const killedIn = mid.steps.find((x) => x.state === 'running')!.step;
      const workerPid = readState().pids[workerId('site-b')]!;
      process.kill(workerPid, 'SIGKILL');
      await new Promise((res) => setTimeout(res, 2000));
      await writeConfigAndRestartWorkers(readState(), [siteNamed('site-b')]);
      measured.push(`worker SIGKILLed during step ${killedIn}; a new one resumed the run`);
      const r = await started;
      expect(r.status, r.stdout.slice(-3000) + r.stderr.slice(-1500)).toBe(0);
      const result = (JSON.parse(r.stdout) as { result: { snapshotKey: string; verified: Record<string, unknown> } })
        .result;
      measured.push(`rebuild, approval to API ready and verified: ${((Date.now() - approvedAt) / 1000).toFixed(1)} s`);
      expect(result.snapshotKey).toBe(snapshotKey);
      expect(result.verified).toMatchObject({ kubeadmConfigMatches: true });

      // Every node-side step of the etcd restore ran once, the worker's death notwithstanding.
      for (const node of SITE.nodes) {
        const varLib = onHost(node, '/var/lib');
        const dirs = readdirSync(varLib).filter((d) => d.startsWith('drctl-restore-'));
        expect(dirs, node.name).toHaveLength(1);
        const journal = readFileSync(join(varLib, dirs[0]!, 'journal'), 'utf8');
        expect(journal.match(/ moved-aside /g), `${node.name}: ${journal}`).toHaveLength(1);
        expect(journal.match(/ restored /g), `${node.name}: ${journal}`).toHaveLength(1);
      }
      const done = await status(id);
      for (const n of ['cp1', 'cp2', 'cp3'])
        expect(done.steps.find((x) => x.step === 'lay-pki')!.items[n]).toMatch(/^\d+ written$/);

      // The data from before the fire, read with the kubeconfig issued before it.
      const cm = await kubectl(['-n', 'default', 'get', 'configmap', marker, '-o', 'jsonpath={.data.stamp}']);
      expect(cm.out).toBe(stamp);
      // The service-account token minted before the fire authenticates on the rebuilt cluster.
      const whoami = await run(join(bin.kubeDir, 'kubectl'), [
        '--server',
        `https://${SITE.nodes[0]!.ip}:6443`,
        '--certificate-authority',
        join(paths.pki('site-a'), 'kubernetes', 'ca.crt'),
        '--token',
        token.out.trim(),
        'auth',
        'whoami',
        '-o',
        'jsonpath={.status.userInfo.username}',
      ]);
      expect(whoami.stdout).toBe('system:serviceaccount:default:default');
      // The API server's own view of its etcd.
      const ready = await kubectl(['get', '--raw', '/readyz?verbose']);
      expect(ready.out).toContain('[+]etcd ok');

      // Back in the lab: kwok, Velero, the app endpoint, the site's worker.
      t = Date.now();
      const up = await cli(['lab', 'site', 'up', 'site-a']);
      expect(up.status, up.stderr).toBe(0);
      measured.push(`lab site up after the rebuild: ${((Date.now() - t) / 1000).toFixed(1)} s`);
      await until(
        "site A's Velero location available again",
        async () =>
          (await kubectl(['-n', 'velero', 'get', 'backupstoragelocations', '-o', 'jsonpath={.items[*].status.phase}']))
            .out,
        (phases) => phases.split(' ').every((p) => p === 'Available') && phases.length > 0,
        180_000,
        2000,
      );

      // Failback: B backed up first, restored at A, DNS back on A, B standby again.
      t = Date.now();
      await moveTraffic('failback', 'site-b', 'site-a', 'site A rebuilt');
      measured.push(`failback to the rebuilt site A: ${((Date.now() - t) / 1000).toFixed(1)} s`);
      measured.push(`the whole cycle, fire → failback done: ${((Date.now() - fireAt) / 1000).toFixed(1)} s`);
      expect((await gw.dns().resolveA(RECORD)).addresses).toEqual([A]);
      expect(await healthz('site-a')).toBe(200);
      const back = await kubectl(['-n', NS, 'get', 'configmap', written, '-o', 'jsonpath={.data.stamp}']);
      expect(back.out, back.err).toBe(stamp);
      // The fence-on-return that waited for A has ended: superseded by the failback, or A fenced first.
      const watch = await status(fenceOnReturnId('site-a'));
      expect(['completed', 'aborted', 'cancelled'], JSON.stringify(watch).slice(0, 600)).toContain(watch.phase);
      cycleDone = true;
    },
    20 * 60_000,
  );
});

afterAll(() => {
  if (measured.length) console.log(`[measured] rebuild:\n  ${measured.join('\n  ')}`);
});
