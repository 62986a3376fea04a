// What `drctl etcd recover` keeps against what the newest off-site snapshot would have kept, on the
// lab's stretched cluster (3 members at site A, 2 at site B), in the same run:
//   1 an off-site snapshot of the cluster (`drctl snapshot now`): the baseline, what a restore has;
//   2 a client writes one key every 250 ms through b1/b2 for BENCH_WRITE_S (default 60) seconds;
//   3 site A burns (`lab site down site-a --hard`, in this process: the moment is known), killing
//     a1-a3; the client stops 2 s later;
//   4 `drctl etcd recover`, approved with an attestation; timed from the approval to its end;
//   5 the keys on the recovered cluster against every write acknowledged before the loss;
//   6 a1-a3 rejoined wiped (`drctl etcd rejoin`, one at a time), site A up again.
// Reported: writes acknowledged before the loss, kept by the recover, kept by the snapshot (those
// acknowledged before it was taken), and each path's RPO (the loss minus the newest write kept).
//   npx tsx bench/etcd-recover.ts          (lab up; it brings the stretched cluster up and down)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { siteDown, siteUp } from '../lab/site-loss.ts';
import { bin, onHost, paths, STRETCHED } from '../lab/topology.ts';
import { atGate, drctl, say, sleep, table, writeResults } from './lib/common.ts';

const WRITE_S = Number(process.env.BENCH_WRITE_S ?? 60);
const ROOT = `/drctl-bench/recover/${Date.now().toString(36)}`;
const B = STRETCHED.nodes.filter((n) => n.location === 'site-b');
const asAlice = ['--as', 'alice', '--key', paths.personKey('alice')];

function etcdctl(args: string[], nodes = B): Promise<{ code: number | null; out: string; err: string }> {
  const pki = (f: string) => onHost(B[0]!, `/etc/kubernetes/pki/etcd/${f}`);
  return new Promise((resolve) => {
    const p = spawn(join(bin.etcdVersionDir(STRETCHED.etcdVersion), 'etcdctl'), [
      `--endpoints=${nodes.map((n) => `https://${n.ip}:2379`).join(',')}`,
      `--cacert=${pki('ca.crt')}`,
      `--cert=${pki('healthcheck-client.crt')}`,
      `--key=${pki('healthcheck-client.key')}`,
      '--command-timeout=5s',
      ...args,
    ]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

say('the stretched cluster up, the link at 0 ms');
await drctl(['lab', 'stretched', 'up']);
await drctl(['lab', 'link', '--between', 'site-a', 'site-b', '--rtt', '0ms']);

// 1. The baseline: the newest off-site snapshot, as a scheduled one would be.
const snap = JSON.parse(await drctl(['snapshot', 'now', '--cluster', 'stretched', '--wait', '--json'])) as {
  result: { key: string; revision: number; takenAt: string };
};
const snapshotAt = Date.parse(snap.result.takenAt);
say(`snapshot ${snap.result.key} at revision ${snap.result.revision}`);

// 2. A client at site B writes every 250 ms.
let stop = false;
const acked: { key: string; at: number }[] = [];
const writing = (async () => {
  for (let i = 0; !stop; i++) {
    const t = Date.now();
    const key = `${ROOT}/${String(i).padStart(6, '0')}`;
    if ((await etcdctl(['put', key, String(t)])).code === 0) acked.push({ key, at: Date.now() });
    await sleep(Math.max(0, 250 - (Date.now() - t)));
  }
})();
await sleep(WRITE_S * 1000);

// 3. The fire.
const lostAt = Date.now();
await siteDown('site-a', { hard: true });
await sleep(2000);
stop = true;
await writing;
const before = acked.filter((a) => a.at < lostAt);
say(`site A lost; ${before.length} writes acknowledged before, ${acked.length - before.length} after`);
for (let i = 0; i < 120; i++) {
  const st = JSON.parse((await etcdctl(['endpoint', 'status', '-w', 'json'])).out || '[]') as {
    Status: { errors?: string[] };
  }[];
  if (st.length === 2 && st.every((x) => (x.Status.errors ?? []).some((e) => e.includes('no leader')))) break;
  await sleep(500);
}

// 4. The recover.
const asked = Date.now() - 1000;
await drctl(['etcd', 'recover', '--cluster', 'stretched', ...asAlice]);
await atGate('etcd-recover-stretched', asked);
const approvedAt = Date.now();
await drctl([
  'approve',
  'etcd-recover-stretched',
  '--key',
  paths.personKey('bob'),
  '--attest',
  'site A burned (bench)',
]);
await drctl(['status', 'etcd-recover-stretched', '--wait']);
const recoverS = (Date.now() - approvedAt) / 1000;

// 5. What each path keeps.
const got = await etcdctl(['get', ROOT, '--prefix', '--keys-only']);
const present = new Set(got.out.split('\n').filter(Boolean));
const kept = before.filter((a) => present.has(a.key));
const bySnapshot = before.filter((a) => a.at < snapshotAt);
const rpo = (xs: { at: number }[]) => (xs.length ? ((lostAt - xs.at(-1)!.at) / 1000).toFixed(2) : '-');
const rows = [
  ['etcd recover (the survivors)', before.length, kept.length, rpo(kept), recoverS.toFixed(1)],
  [
    'restore of the newest off-site snapshot',
    before.length,
    bySnapshot.length,
    ((lostAt - snapshotAt) / 1000).toFixed(2),
    '-',
  ],
];

// 6. Site A's members back, wiped; site A up; the cluster down.
for (const name of ['a1', 'a2', 'a3']) {
  await drctl(['lab', 'stretched', 'up', '--node', name]);
  const t0 = Date.now() - 1000;
  await drctl(['etcd', 'rejoin', '--cluster', 'stretched', '--node', name, ...asAlice]);
  await atGate(`etcd-rejoin-stretched-${name}`, t0);
  await drctl(['approve', `etcd-rejoin-stretched-${name}`, '--key', paths.personKey('bob'), '--reason', 'bench']);
  await drctl(['status', `etcd-rejoin-stretched-${name}`, '--wait']);
  say(`${name} rejoined`);
}
await siteUp('site-a');
await drctl(['lab', 'stretched', 'down']);

console.log(
  table(
    ['path', 'writes acknowledged before the loss', 'kept', 'RPO s (loss − newest kept)', 'after approval s'],
    rows,
  ),
);
console.log(
  `raw: ${writeResults('etcd-recover', { lostAt, snapshot: snap.result, before: before.length, kept: kept.length, bySnapshot: bySnapshot.length, recoverS, writeS: WRITE_S })}`,
);
