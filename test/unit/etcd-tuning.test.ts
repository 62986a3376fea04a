// The stretched-cluster advisor's pure decisions: the seed's latency table at and around each
// boundary, etcd's tuning rules one by one, the verdict the CLI exits on, and the readings (a
// kubeadm etcd manifest, a member's /metrics page) they are made from.
import { describe, expect, it } from 'vitest';
import {
  ETCD_DEFAULTS,
  latencyReport,
  latencyRow,
  latencyVerdict,
  leaderChangesSeen,
  manifestWithTuning,
  peerRoundTripsMs,
  recommendedTuning,
  ruleBreaks,
  SEED_TUNED,
  tuningFromManifest,
  rollOrder,
  tuneRefusal,
} from '../../common/etcd-tuning.ts';
import { parseLook } from '../../activities/etcd-tune.ts';
import { parseTiming } from '../../activities/etcd-latency.ts';

describe("the seed's latency table", () => {
  it.each([
    [0, 'excellent'],
    [1.99, 'excellent'],
    [2, 'good'],
    [4.9, 'good'],
    [5, 'acceptable-with-tuning'],
    [7, 'acceptable-with-tuning'],
    [10, 'degraded'],
    [19.9, 'degraded'],
    [20, 'do-not-stretch'],
    [25, 'do-not-stretch'],
  ] as const)('%s ms is %s', (rtt, row) => {
    expect(latencyRow(rtt)).toBe(row);
  });

  it('refuses a negative or non-numeric round trip', () => {
    expect(() => latencyRow(-1)).toThrow(/>= 0/);
    expect(() => latencyRow(Number.NaN)).toThrow(/number/);
  });

  it("recommends etcd's defaults below 5 ms, the seed's 250/2500 to 10 ms, twice that to 20 ms, nothing beyond", () => {
    expect(recommendedTuning(1)).toEqual(ETCD_DEFAULTS);
    expect(recommendedTuning(3)).toEqual(ETCD_DEFAULTS);
    expect(recommendedTuning(7)).toEqual(SEED_TUNED);
    expect(recommendedTuning(12)).toEqual({ heartbeatMs: 500, electionMs: 5000 });
    expect(recommendedTuning(25)).toBeUndefined();
    // Every recommendation keeps every rule at the slowest round trip of its row.
    for (const rtt of [1.99, 4.99, 9.99, 19.99]) expect(ruleBreaks(recommendedTuning(rtt)!, rtt)).toEqual([]);
  });
});

describe("etcd's tuning rules", () => {
  const rules = (hb: number, el: number, rtt?: number) =>
    ruleBreaks({ heartbeatMs: hb, electionMs: el }, rtt).map((b) => b.rule);

  it("keeps etcd's defaults and the seed's values", () => {
    expect(rules(100, 1000)).toEqual([]);
    expect(rules(250, 2500, 7)).toEqual([]);
  });

  it('names each rule a pair breaks', () => {
    expect(rules(0, 1000)).toContain('heartbeat-positive');
    expect(rules(100, 400)).toEqual(['election-5x-heartbeat']);
    expect(rules(100, 1500)).toEqual(['election-10x-heartbeat']);
    expect(rules(6000, 60_000)).toEqual(['election-max-50s']);
    expect(rules(100, 1000, 250)).toEqual(['heartbeat-half-rtt', 'election-10x-rtt']);
    expect(rules(100, 1000, 150)).toEqual(['election-10x-rtt']);
  });

  it('says the numbers in each refusal', () => {
    const [b] = ruleBreaks({ heartbeatMs: 100, electionMs: 400 });
    expect(b!.detail).toBe('election 400 ms is below 5x the heartbeat (500 ms): etcd refuses to start');
  });
});

describe('the verdict `drctl etcd latency` exits on', () => {
  const members = (hb: number, el: number, n = 5) =>
    Array.from({ length: n }, (_, i) => ({ member: `m${i + 1}`, tuning: { heartbeatMs: hb, electionMs: el } }));

  it('1 ms with the defaults: excellent, safe', () => {
    const v = latencyVerdict(1, members(100, 1000));
    expect(v).toMatchObject({ row: 'excellent', safe: true, problems: [], recommended: ETCD_DEFAULTS });
  });

  it('7 ms with the defaults: not safe until tuned, and says to what', () => {
    const v = latencyVerdict(7, members(100, 1000));
    expect(v.row).toBe('acceptable-with-tuning');
    expect(v.safe).toBe(false);
    expect(v.recommended).toEqual(SEED_TUNED);
    expect(v.problems.map((p) => p.rule)).toEqual(['tuned-for-the-row']);
    expect(v.problems[0]!.detail).toMatch(/heartbeat 250 ms, election 2500 ms; m1 runs 100\/1000/);
  });

  it('7 ms tuned to 250/2500 on every member: safe', () => {
    expect(latencyVerdict(7, members(250, 2500)).safe).toBe(true);
  });

  it('members that disagree are mistuned whatever the round trip', () => {
    const m = members(100, 1000);
    m[4] = { member: 'm5', tuning: SEED_TUNED };
    const v = latencyVerdict(1, m);
    expect(v.safe).toBe(false);
    expect(v.problems[0]).toMatchObject({ rule: 'same-on-every-member' });
    expect(v.problems[0]!.detail).toContain('m5 250/2500');
  });

  it('12 ms: degraded, never safe, even tuned', () => {
    const v = latencyVerdict(12, members(500, 5000));
    expect(v).toMatchObject({ row: 'degraded', safe: false, problems: [] });
  });

  it('25 ms: do not stretch, no recommendation', () => {
    const v = latencyVerdict(25, members(250, 2500));
    expect(v).toMatchObject({ row: 'do-not-stretch', safe: false, recommended: undefined });
  });

  it('a rule broken on several members is said once, naming them all', () => {
    const v = latencyVerdict(1, members(100, 400, 2));
    expect(v.problems.map((p) => p.detail)).toEqual([
      'm1, m2: election 400 ms is below 5x the heartbeat (500 ms): etcd refuses to start',
    ]);
  });
});

// What kubeadm 1.35 writes (trimmed to the command; the lab's manifests have this shape).
const MANIFEST = `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://172.30.10.11:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --data-dir=/var/lib/etcd
    - --name=cp1
    image: registry.drctl.lab/etcd:3.5.35-0
    name: etcd
`;

describe('reading and writing a member manifest', () => {
  it("reads etcd's defaults when kubeadm set no flag", () => {
    expect(tuningFromManifest(MANIFEST)).toEqual(ETCD_DEFAULTS);
  });

  it('adds both flags after `- etcd`, in the list style, and changes nothing else', () => {
    const tuned = manifestWithTuning(MANIFEST, SEED_TUNED);
    expect(tuningFromManifest(tuned)).toEqual(SEED_TUNED);
    expect(tuned).toContain('    - etcd\n    - --election-timeout=2500\n    - --heartbeat-interval=250\n');
    expect(tuned.replace(/ {4}- --(heartbeat-interval|election-timeout)=\d+\n/g, '')).toBe(MANIFEST);
  });

  it('replaces flags already there (the undo puts the old values back byte for byte)', () => {
    const tuned = manifestWithTuning(MANIFEST, SEED_TUNED);
    const retuned = manifestWithTuning(tuned, { heartbeatMs: 500, electionMs: 5000 });
    expect(tuningFromManifest(retuned)).toEqual({ heartbeatMs: 500, electionMs: 5000 });
    expect(manifestWithTuning(retuned, SEED_TUNED)).toBe(tuned);
  });

  it('refuses a manifest that is not etcd', () => {
    expect(() => tuningFromManifest('kind: Pod\n')).toThrow(/not an etcd/);
  });
});

describe("reading a member's /metrics", () => {
  const PAGE = `# HELP etcd_network_peer_round_trip_time_seconds Round-Trip-Time histogram between peers
# TYPE etcd_network_peer_round_trip_time_seconds histogram
etcd_network_peer_round_trip_time_seconds_bucket{To="8e9e05c52164694d",le="0.0001"} 0
etcd_network_peer_round_trip_time_seconds_bucket{To="8e9e05c52164694d",le="+Inf"} 4
etcd_network_peer_round_trip_time_seconds_sum{To="8e9e05c52164694d"} 0.028
etcd_network_peer_round_trip_time_seconds_count{To="8e9e05c52164694d"} 4
etcd_network_peer_round_trip_time_seconds_sum{To="91bc3c398fb3c146"} 0
etcd_network_peer_round_trip_time_seconds_count{To="91bc3c398fb3c146"} 0
# TYPE etcd_server_leader_changes_seen_total counter
etcd_server_leader_changes_seen_total 3
`;

  it('gives the mean round trip per peer in ms, leaving out peers without a sample', () => {
    expect(peerRoundTripsMs(PAGE)).toEqual({ '8e9e05c52164694d': 7 });
  });

  it('reads the leader changes seen, or nothing when the page has none', () => {
    expect(leaderChangesSeen(PAGE)).toBe(3);
    expect(leaderChangesSeen('# nothing\n')).toBeUndefined();
  });
});

describe("a member's readings and the cluster's report", () => {
  const out = (probes: string) =>
    `=== manifest\n${MANIFEST.replace('    - --name=cp1\n', '    - --name=cp1\n    - --heartbeat-interval=250\n    - --election-timeout=2500\n')}\n=== metrics\netcd_network_peer_round_trip_time_seconds_sum{To="b"} 0.02\netcd_network_peer_round_trip_time_seconds_count{To="b"} 2\netcd_server_leader_changes_seen_total 1\netcd_server_id{server_id="a"} 1\netcd_server_is_leader 1\n${probes}`;

  it('reads the script output back: tuning, histogram, probes in ms and their errors, who it is and whether it leads', () => {
    const t = parseTiming(out('=== probe cp2 7350\n=== probe cp3 error: no answer from 10.0.0.3:2380 in 5 s\n'));
    expect(t).toEqual({
      tuning: SEED_TUNED,
      histogramRttMs: { b: 10 },
      probeRttMs: { cp2: 7.35 },
      probeErrors: { cp3: 'no answer from 10.0.0.3:2380 in 5 s' },
      leaderChanges: 1,
      memberId: 'a',
      isLeader: true,
    });
  });

  const timing = (node: string, memberId: string, probeRttMs: Record<string, number>, tuning = SEED_TUNED) => ({
    node,
    reachable: true,
    memberId,
    leader: 'a',
    tuning,
    histogramRttMs: {},
    probeRttMs,
    probeErrors: {},
  });

  it('judges a stretched cluster by its slowest inter-site pair, not its slower intra-site ones', () => {
    const sites = { cp1: 'site-a', cp2: 'site-a', cp3: 'site-b' };
    const r = latencyReport(
      'stretched',
      sites,
      [
        timing('cp1', 'a', { cp2: 12, cp3: 7 }),
        timing('cp2', 'b', { cp1: 12, cp3: 6 }),
        timing('cp3', 'c', { cp1: 7, cp2: 6.5 }),
      ],
      'now',
    );
    expect(r.stretched).toBe(true);
    expect(r.verdict).toMatchObject({ worstRttMs: 7, row: 'acceptable-with-tuning', safe: true });
    expect(r.leader).toEqual({ node: 'cp1', site: 'site-a' });
    expect(r.pairs.filter((p) => p.crossesSites)).toHaveLength(4);
  });

  it('judges a one-site cluster by its slowest pair, and is not safe when a member could not be read', () => {
    const sites = { cp1: 'a', cp2: 'a' };
    const ok = latencyReport(
      'a',
      sites,
      [timing('cp1', 'a', { cp2: 0.2 }, ETCD_DEFAULTS), timing('cp2', 'b', { cp1: 0.3 }, ETCD_DEFAULTS)],
      'now',
    );
    expect(ok.verdict).toMatchObject({ worstRttMs: 0.3, row: 'excellent', safe: true });
    const down = latencyReport(
      'a',
      sites,
      [
        timing('cp1', 'a', {}, ETCD_DEFAULTS),
        {
          node: 'cp2',
          reachable: false,
          error: 'connect ECONNREFUSED',
          histogramRttMs: {},
          probeRttMs: {},
          probeErrors: {},
        },
      ],
      'now',
    );
    expect(down.verdict.safe).toBe(false);
    expect(down.problems).toEqual(['cp2: connect ECONNREFUSED', 'no round trip could be measured']);
  });
});

describe('etcd tune: refusal, order, a member looked at', () => {
  it('refuses values that break a rule, naming each rule; the seed values pass', () => {
    expect(tuneRefusal({ heartbeatMs: 250, electionMs: 2500 })).toBeUndefined();
    expect(tuneRefusal({ heartbeatMs: 250, electionMs: 1000 })).toMatch(/^election-5x-heartbeat: /);
    expect(tuneRefusal({ heartbeatMs: 100, electionMs: 2000 })).toMatch(/^election-10x-heartbeat: /);
    expect(tuneRefusal({ heartbeatMs: 6000, electionMs: 60_000 })).toMatch(/election-max-50s/);
  });

  it('rolls the followers in config order, the leader last', () => {
    const m = (node: string, leader = false) => ({ node, leader });
    expect(rollOrder([m('a1', true), m('a2'), m('b1'), m('b2')]).map((x) => x.node)).toEqual(['a2', 'b1', 'b2', 'a1']);
    expect(rollOrder([m('a1'), m('a2'), m('b1', true)]).map((x) => x.node)).toEqual(['a1', 'a2', 'b1']);
  });

  it("reads the node's look: manifest values, the running process's flags, /health", () => {
    const manifest = '    - etcd\n    - --heartbeat-interval=250\n    - --election-timeout=2500\n';
    const out = `=== manifest\n${manifest}=== running\netcd --name=a1 --data-dir=/var/lib/etcd \n=== health\n{"health":"true","reason":""}\n`;
    expect(parseLook(out)).toEqual({
      manifest: { heartbeatMs: 250, electionMs: 2500 },
      running: { heartbeatMs: 100, electionMs: 1000 },
      healthy: true,
      health: '{"health":"true","reason":""}',
    });
    const down = parseLook(`=== manifest\n${manifest}=== running\n=== health\nnot listening\n`);
    expect(down).toMatchObject({ running: undefined, healthy: false, health: 'not listening' });
    expect(
      parseLook(`=== manifest\n${manifest}=== running\n=== health\n{"health":"false","reason":"RAFT NO LEADER"}`)
        .healthy,
    ).toBe(false);
  });
});
