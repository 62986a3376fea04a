// The seed's latency table, reproduced on the lab's stretched cluster (5 members, 3 at site A and 2
// at site B; every cross-site connection through the lab link):
//   for each tuning (etcd's defaults 100/1000, then the seed's 250/2500, set with `drctl etcd tune`),
//   each inter-site round trip (0, 2, 5, 10, 20, 40 ms added by `drctl lab link`), and the leader on
//   either site (`etcdctl move-leader` to a1 or b1):
//   a client at site A (writing through a2, never the leader) makes BENCH_PUTS sequential puts of 256
//   bytes (bench/etcd-load, etcd's own Go client, one connection): p50/p99 write latency; over the
//   same window, leader elections (raft's "elected leader" lines in every member's log) and etcd's
//   "took too long" warnings.
// The baseline is the same run's 0 ms row. With the sites frozen (lab stretched up --freeze-sites), as
// the advisor's measurements are. Leaves the cluster on etcd's defaults and the link at 0 ms.
//   npx tsx bench/stretched-latency.ts            (BENCH_PUTS=200, BENCH_RTTS=0,2,5,10,20,40)
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bin, onHost, paths, REPO, STRETCHED } from '../lab/topology.ts';
import { say, sleep, table, writeResults } from './lib/common.ts';

const run = promisify(execFile);
const PUTS = Number(process.env.BENCH_PUTS ?? 200);
const RTTS = (process.env.BENCH_RTTS ?? '0,2,5,10,20,40').split(',').map(Number);
const WINDOW_MS = 20_000;
const TUNINGS = [
  { heartbeatMs: 100, electionMs: 1000 },
  { heartbeatMs: 250, electionMs: 2500 },
];

const drctl = (args: string[]) =>
  spawnSync('node', [join(REPO, 'bin/drctl.js'), '--config', paths.config, ...args], { encoding: 'utf8' });
function must(args: string[]) {
  const r = drctl(args);
  if (r.status !== 0) throw new Error(`drctl ${args.join(' ')}: exit ${r.status}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const node = (name: string) => STRETCHED.nodes.find((n) => n.name === name)!;
const pki = (f: string) => onHost(node('b1'), `/etc/kubernetes/pki/etcd/${f}`);
const tls = [
  `--cacert=${pki('ca.crt')}`,
  `--cert=${pki('healthcheck-client.crt')}`,
  `--key=${pki('healthcheck-client.key')}`,
];
const all = `--endpoints=${STRETCHED.nodes.map((n) => `https://${n.ip}:2379`).join(',')}`;
const etcdctl = (args: string[]) =>
  run(join(bin.etcdVersionDir(STRETCHED.etcdVersion), 'etcdctl'), [all, ...tls, '--command-timeout=15s', ...args]);

/** Member id (hex) by name, and who leads now. */
async function cluster(): Promise<{ ids: Record<string, string>; leader?: string }> {
  const { stdout } = await etcdctl(['endpoint', 'status', '-w', 'json']);
  const st = JSON.parse(stdout.replace(/("(?:member_id|leader)"\s*:\s*)(\d+)/g, '$1"$2"')) as {
    Endpoint: string;
    Status: { header: { member_id: string }; leader: string };
  }[];
  const ids: Record<string, string> = {};
  let leader: string | undefined;
  for (const s of st) {
    const name = STRETCHED.nodes.find((n) => s.Endpoint.includes(n.ip))!.name;
    ids[name] = BigInt(s.Status.header.member_id).toString(16);
    if (s.Status.leader === s.Status.header.member_id) leader = name;
  }
  return { ids, leader };
}

async function leaderOn(name: string) {
  for (let i = 0; i < 5; i++) {
    const c = await cluster();
    if (c.leader === name) return;
    await etcdctl(['move-leader', c.ids[name]!]).catch(() => undefined);
    await sleep(1000);
  }
  throw new Error(`leadership did not move to ${name}`);
}

/** Every line of every member's etcd log so far (the kubelet's pod logs on the node's disk). */
function logLines(): string[] {
  const out: string[] = [];
  for (const n of STRETCHED.nodes) {
    const dir = onHost(n, '/var/log/pods');
    if (!existsSync(dir)) continue;
    for (const pod of readdirSync(dir).filter((d) => d.startsWith('kube-system_etcd-'))) {
      const cdir = join(dir, pod, 'etcd');
      if (!existsSync(cdir)) continue;
      for (const f of readdirSync(cdir)) out.push(...readFileSync(join(cdir, f), 'utf8').split('\n'));
    }
  }
  return out;
}
const counts = () => {
  const lines = logLines();
  return {
    elections: lines.filter((l) => l.includes('elected leader')).length,
    tooLong: lines.filter((l) => l.includes('took too long')).length,
  };
};

function tuning(): string {
  const m = readFileSync(onHost(node('a1'), '/etc/kubernetes/manifests/etcd.yaml'), 'utf8');
  return `${/--heartbeat-interval=(\d+)/.exec(m)?.[1] ?? '100'}/${/--election-timeout=(\d+)/.exec(m)?.[1] ?? '1000'}`;
}

async function tune(t: { heartbeatMs: number; electionMs: number }) {
  if (tuning() === `${t.heartbeatMs}/${t.electionMs}`) return;
  say(`tuning to ${t.heartbeatMs}/${t.electionMs} (a rolling restart, ~5 min)`);
  must(['lab', 'link', '--between', 'site-a', 'site-b', '--rtt', '0ms']);
  must([
    'etcd',
    'tune',
    '--cluster',
    'stretched',
    '--heartbeat',
    `${t.heartbeatMs}ms`,
    '--election',
    `${t.electionMs}ms`,
    '--as',
    'alice',
    '--key',
    paths.personKey('alice'),
  ]);
  for (let i = 0; i < 120; i++) {
    const st = JSON.parse(must(['status', 'etcd-tune-stretched', '--json'])) as { phase: string };
    if (st.phase === 'waiting-approval') break;
    await sleep(1000);
  }
  must(['approve', 'etcd-tune-stretched', '--key', paths.personKey('bob'), '--reason', 'bench']);
  must(['status', 'etcd-tune-stretched', '--wait']);
}

const load = execFileSync('bash', [join(REPO, 'bench/etcd-load/build.sh')], { encoding: 'utf8' }).trim();

say('the stretched cluster up, sites frozen');
must(['lab', 'stretched', 'up', '--freeze-sites']);
const rows: (string | number)[][] = [];
const raw: unknown[] = [];
try {
  for (const t of TUNINGS) {
    await tune(t);
    for (const rtt of RTTS) {
      must(['lab', 'link', '--between', 'site-a', 'site-b', '--rtt', `${rtt}ms`]);
      for (const leader of ['a1', 'b1']) {
        await leaderOn(leader);
        await sleep(2000);
        const before = counts();
        const t0 = Date.now();
        const r = await run(load, [
          `--endpoint=https://${node('a2').ip}:2379`,
          `--cacert=${pki('ca.crt')}`,
          `--cert=${pki('healthcheck-client.crt')}`,
          `--key=${pki('healthcheck-client.key')}`,
          `--n=${PUTS}`,
          `--prefix=/drctl-bench/${rtt}/${leader}/`,
        ]).catch((e: Error & { stdout?: string; stderr?: string }) => ({
          stdout: e.stdout ?? '',
          stderr: e.stderr ?? e.message,
        }));
        await sleep(Math.max(0, WINDOW_MS - (Date.now() - t0)));
        const after = counts();
        const m = (r.stdout.trim() ? JSON.parse(r.stdout) : {}) as { p50?: number; p99?: number; failed?: number };
        const cell = {
          tuning: `${t.heartbeatMs}/${t.electionMs}`,
          rttMs: rtt,
          leader: node(leader).location,
          p50: m.p50,
          p99: m.p99,
          failed: m.failed,
          elections: after.elections - before.elections,
          tooLong: after.tooLong - before.tooLong,
          windowS: Math.round((Date.now() - t0) / 1000),
        };
        raw.push(cell);
        rows.push([
          cell.tuning,
          rtt,
          cell.leader,
          cell.p50 ?? '-',
          cell.p99 ?? '-',
          cell.failed ?? '-',
          cell.elections,
          cell.tooLong,
        ]);
        say(JSON.stringify(cell));
      }
    }
  }
} finally {
  must(['lab', 'link', '--between', 'site-a', 'site-b', '--rtt', '0ms']);
}
await tune(TUNINGS[0]!).catch((e: Error) => say(`could not put the defaults back: ${e.message}`));
console.log(
  table(['tuning', 'added RTT ms', 'leader at', 'p50 ms', 'p99 ms', 'failed', 'elections', '"took too long"'], rows),
);
console.log(`raw: ${writeResults('stretched-latency', raw)}`);
