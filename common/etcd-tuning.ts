// The stretched-cluster advisor's decisions, pure: the seed's latency table, etcd's own tuning
// rules, what to recommend, and the readings they are made from (a member's static pod manifest,
// its Prometheus metrics). `drctl etcd latency` reports them; `drctl etcd tune` refuses values
// that break a rule, naming it.
//
// The seed's table (inter-site round trip of a stretched etcd):
//   < 2 ms excellent · 2–5 ms good · 5–10 ms acceptable with tuning (heartbeat 250 ms, election
//   2500 ms) · 10–20 ms degraded, leader-election risk · > 20 ms do not stretch.
// etcd's rules (op-guide/tuning): heartbeat about the round trip (0.5–1.5x), election at least 10x
// the round trip and 5–10x the heartbeat, at most 50 s, the same values on every member.
import type { Signed } from './signed.ts';

export type LatencyRow = 'excellent' | 'good' | 'acceptable-with-tuning' | 'degraded' | 'do-not-stretch';

export interface Tuning {
  heartbeatMs: number;
  electionMs: number;
}

/** etcd's defaults (--heartbeat-interval=100, --election-timeout=1000). */
export const ETCD_DEFAULTS: Tuning = { heartbeatMs: 100, electionMs: 1000 };
/** The seed's values for its 5–10 ms row. */
export const SEED_TUNED: Tuning = { heartbeatMs: 250, electionMs: 2500 };
/** etcd refuses an election timeout above 50 s. */
export const MAX_ELECTION_MS = 50_000;

export const LATENCY_TABLE: readonly { row: LatencyRow; belowMs: number; says: string }[] = [
  { row: 'excellent', belowMs: 2, says: 'stretch freely' },
  { row: 'good', belowMs: 5, says: "etcd's defaults are fine" },
  { row: 'acceptable-with-tuning', belowMs: 10, says: 'acceptable with heartbeat 250 ms, election 2500 ms' },
  { row: 'degraded', belowMs: 20, says: 'degraded: leader elections at risk under jitter or load' },
  { row: 'do-not-stretch', belowMs: Infinity, says: 'do not stretch etcd over this link' },
];

export function latencyRow(rttMs: number): LatencyRow {
  if (!Number.isFinite(rttMs) || rttMs < 0)
    throw new RangeError(`round trip must be a number of ms >= 0, got ${rttMs}`);
  return LATENCY_TABLE.find((r) => rttMs < r.belowMs)!.row;
}

/**
 * What to run at this round trip: etcd's defaults up to 5 ms, the seed's 250/2500 up to 10 ms,
 * twice that up to 20 ms (still inside every rule; the row stays degraded), nothing beyond: a link
 * that slow is not for a stretched etcd whatever the flags say.
 */
export function recommendedTuning(rttMs: number): Tuning | undefined {
  switch (latencyRow(rttMs)) {
    case 'excellent':
    case 'good':
      return ETCD_DEFAULTS;
    case 'acceptable-with-tuning':
      return SEED_TUNED;
    case 'degraded':
      return { heartbeatMs: 2 * SEED_TUNED.heartbeatMs, electionMs: 2 * SEED_TUNED.electionMs };
    case 'do-not-stretch':
      return undefined;
  }
}

export interface RuleBreak {
  /** A stable name: the CLI and the tune runbook's refusal say it. */
  rule:
    | 'heartbeat-positive'
    | 'election-5x-heartbeat'
    | 'election-10x-heartbeat'
    | 'election-max-50s'
    | 'heartbeat-half-rtt'
    | 'election-10x-rtt'
    | 'same-on-every-member'
    | 'tuned-for-the-row';
  detail: string;
}

/** etcd's rules over one pair of values, and against a round trip when one was measured. */
export function ruleBreaks(t: Tuning, rttMs?: number): RuleBreak[] {
  const out: RuleBreak[] = [];
  const { heartbeatMs: hb, electionMs: el } = t;
  if (!(hb > 0)) out.push({ rule: 'heartbeat-positive', detail: `heartbeat ${hb} ms: must be above 0` });
  if (el < 5 * hb)
    out.push({
      rule: 'election-5x-heartbeat',
      detail: `election ${el} ms is below 5x the heartbeat (${5 * hb} ms): etcd refuses to start`,
    });
  if (el > 10 * hb)
    out.push({
      rule: 'election-10x-heartbeat',
      detail: `election ${el} ms is above 10x the heartbeat (${10 * hb} ms): a lost leader goes unnoticed for longer than needed`,
    });
  if (el > MAX_ELECTION_MS)
    out.push({ rule: 'election-max-50s', detail: `election ${el} ms is above etcd's limit of ${MAX_ELECTION_MS} ms` });
  if (rttMs !== undefined) {
    if (hb < 0.5 * rttMs)
      out.push({
        rule: 'heartbeat-half-rtt',
        detail: `heartbeat ${hb} ms is below half the round trip (${fmt(rttMs)} ms): heartbeats arrive late`,
      });
    if (el < 10 * rttMs)
      out.push({
        rule: 'election-10x-rtt',
        detail: `election ${el} ms is below 10x the round trip (${fmt(10 * rttMs)} ms): network variance starts elections`,
      });
  }
  return out;
}

export interface MemberTuning {
  member: string;
  tuning: Tuning;
}

export interface LatencyVerdict {
  /** The slowest pair that crosses sites (the whole cluster's when it does not span sites). */
  worstRttMs: number;
  row: LatencyRow;
  says: string;
  recommended?: Tuning;
  /** Broken rules, and members running other values than the recommendation where the row needs tuning. */
  problems: RuleBreak[];
  /** Inside the table's safe rows with every rule kept: `drctl etcd latency` exits 0. */
  safe: boolean;
}

/** The advisor's verdict over the worst round trip and every member's current values. */
export function latencyVerdict(worstRttMs: number, members: MemberTuning[]): LatencyVerdict {
  const row = latencyRow(worstRttMs);
  const says = LATENCY_TABLE.find((r) => r.row === row)!.says;
  const recommended = recommendedTuning(worstRttMs);
  const problems: RuleBreak[] = [];
  const distinct = new Set(members.map((m) => `${m.tuning.heartbeatMs}/${m.tuning.electionMs}`));
  if (distinct.size > 1)
    problems.push({
      rule: 'same-on-every-member',
      detail: `members disagree: ${members.map((m) => `${m.member} ${m.tuning.heartbeatMs}/${m.tuning.electionMs}`).join(', ')}`,
    });
  // One line per broken rule and values, naming every member that runs them.
  const broken = new Map<string, { b: RuleBreak; who: string[] }>();
  for (const m of members)
    for (const b of ruleBreaks(m.tuning, worstRttMs)) {
      const key = `${b.rule} ${b.detail}`;
      if (!broken.has(key)) broken.set(key, { b, who: [] });
      broken.get(key)!.who.push(m.member);
    }
  for (const { b, who } of broken.values()) problems.push({ ...b, detail: `${who.join(', ')}: ${b.detail}` });
  // The tuned row is safe only when tuned: slower values than recommended are not required.
  const untuned =
    row === 'acceptable-with-tuning' && recommended
      ? members.filter(
          (m) => m.tuning.heartbeatMs < recommended.heartbeatMs || m.tuning.electionMs < recommended.electionMs,
        )
      : [];
  if (untuned.length)
    problems.push({
      rule: 'tuned-for-the-row',
      detail: `at ${fmt(worstRttMs)} ms the table asks for heartbeat ${recommended!.heartbeatMs} ms, election ${recommended!.electionMs} ms; ${untuned.map((m) => `${m.member} runs ${m.tuning.heartbeatMs}/${m.tuning.electionMs}`).join(', ')}`,
    });
  const safeRow = row === 'excellent' || row === 'good' || row === 'acceptable-with-tuning';
  return { worstRttMs, row, says, recommended, problems, safe: safeRow && problems.length === 0 };
}

const fmt = (ms: number) => (Math.round(ms * 100) / 100).toString();

const FLAG = (name: string) => new RegExp(`--${name}=(\\d+)\\b`);

/**
 * A member's values from its static pod manifest's etcd command (kubeadm writes flags as
 * `--name=value`); etcd's defaults for a flag the manifest does not set.
 */
export function tuningFromManifest(manifest: string): Tuning {
  if (!/\betcd\b/.test(manifest)) throw new Error('not an etcd static pod manifest (no etcd command)');
  const hb = FLAG('heartbeat-interval').exec(manifest)?.[1];
  const el = FLAG('election-timeout').exec(manifest)?.[1];
  return {
    heartbeatMs: hb ? Number(hb) : ETCD_DEFAULTS.heartbeatMs,
    electionMs: el ? Number(el) : ETCD_DEFAULTS.electionMs,
  };
}

/**
 * The manifest with these flags set on the etcd command: each replaced where it is, or added after
 * the command's first line with the same indentation and list style. Everything else byte for byte.
 * Values are plain words (numbers, URLs, name=URL lists): no quoting is needed or added.
 */
export function manifestWithFlags(manifest: string, flags: Record<string, string | number>): string {
  let out = manifest;
  for (const [name, value] of Object.entries(flags)) {
    const re = new RegExp(`--${name}=\\S*`);
    if (re.test(out)) out = out.replace(re, () => `--${name}=${value}`);
    else {
      const m = /^(\s*- )etcd\s*$/m.exec(out);
      if (!m) throw new Error('no `- etcd` command line in the manifest to add flags after');
      const at = m.index + m[0].length;
      out = `${out.slice(0, at)}\n${m[1]}--${name}=${value}${out.slice(at)}`;
    }
  }
  return out;
}

/** The manifest with these tuning values set (manifestWithFlags). */
export function manifestWithTuning(manifest: string, t: Tuning): string {
  return manifestWithFlags(manifest, { 'heartbeat-interval': t.heartbeatMs, 'election-timeout': t.electionMs });
}

/** One sample of the Prometheus text format: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of the named families from a /metrics page (comments and other families skipped). */
export function samples(text: string, names: string[]): Sample[] {
  const want = new Set(names);
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || !want.has(m[1]!)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return out;
}

/**
 * The mean round trip to each peer (by etcd's `To` label: the peer's member id, hex) from
 * `etcd_network_peer_round_trip_time_seconds` (sum / count), in ms; peers with no sample left out.
 */
export function peerRoundTripsMs(text: string): Record<string, number> {
  const s = samples(text, [
    'etcd_network_peer_round_trip_time_seconds_sum',
    'etcd_network_peer_round_trip_time_seconds_count',
  ]);
  const out: Record<string, number> = {};
  for (const sum of s.filter((x) => x.name.endsWith('_sum'))) {
    const count = s.find((x) => x.name.endsWith('_count') && x.labels.To === sum.labels.To)?.value ?? 0;
    if (count > 0 && sum.labels.To) out[sum.labels.To] = (sum.value / count) * 1000;
  }
  return out;
}

/** `etcd_server_leader_changes_seen_total`, or undefined when the page has none. */
export function leaderChangesSeen(text: string): number | undefined {
  return samples(text, ['etcd_server_leader_changes_seen_total'])[0]?.value;
}

/** One member's readings (activities/etcd-latency.ts). */
export interface MemberTiming {
  node: string;
  reachable: boolean;
  error?: string;
  memberId?: string;
  leader?: string;
  tuning?: Tuning;
  /** etcd's own mean round trip to each peer, by the peer's member id (hex). */
  histogramRttMs: Record<string, number>;
  /** The active probe's best of five round trips to each peer, by the peer's node name. */
  probeRttMs: Record<string, number>;
  /** Peers the probe could not reach, with why. */
  probeErrors: Record<string, string>;
  /** `etcd_server_leader_changes_seen_total`: since the member started. */
  leaderChanges?: number;
}

export interface PairLatency {
  from: string;
  to: string;
  /** From etcd's histogram on `from` (mean since it started). */
  histogramMs?: number;
  /** From the active probe on `from` (best of five, now). */
  probeMs?: number;
  crossesSites: boolean;
}

export interface EtcdLatencyReport {
  cluster: string;
  measuredAt: string;
  /** node -> site (a cluster within one site has one). */
  sites: Record<string, string>;
  stretched: boolean;
  pairs: PairLatency[];
  members: { node: string; memberId?: string; tuning?: Tuning; leaderChanges?: number; error?: string }[];
  leader?: { node: string; site: string };
  verdict: LatencyVerdict;
  /** Readings that could not be made (a member down, a probe without an answer). */
  problems: string[];
}

/**
 * The report from every member's readings. The verdict is over the slowest pair that crosses sites
 * (each pair's probe, or etcd's histogram when the probe failed), or over the slowest pair at all
 * when the cluster lies in one site.
 */
export function latencyReport(
  cluster: string,
  sites: Record<string, string>,
  timings: MemberTiming[],
  measuredAt: string,
): EtcdLatencyReport {
  const byId = new Map(timings.filter((t) => t.memberId).map((t) => [t.memberId!, t.node]));
  const stretched = new Set(Object.values(sites)).size > 1;
  const problems: string[] = [];
  const pairs: PairLatency[] = [];
  for (const t of timings) {
    if (t.error) problems.push(`${t.node}: ${t.error}`);
    for (const [peer, why] of Object.entries(t.probeErrors)) problems.push(`probe ${t.node} -> ${peer}: ${why}`);
    const histByNode = Object.fromEntries(
      Object.entries(t.histogramRttMs).flatMap(([id, ms]) => (byId.has(id) ? [[byId.get(id)!, ms]] : [])),
    );
    for (const to of Object.keys(sites)) {
      if (to === t.node) continue;
      const probeMs = t.probeRttMs[to];
      const histogramMs = histByNode[to];
      if (probeMs === undefined && histogramMs === undefined) continue;
      pairs.push({ from: t.node, to, probeMs, histogramMs, crossesSites: sites[t.node] !== sites[to] });
    }
  }
  const considered = pairs.filter((p) => !stretched || p.crossesSites);
  const worst = Math.max(0, ...considered.map((p) => p.probeMs ?? p.histogramMs ?? 0));
  const members = timings.map((t) => ({
    node: t.node,
    memberId: t.memberId,
    tuning: t.tuning,
    leaderChanges: t.leaderChanges,
    error: t.error,
  }));
  const tuned = members.flatMap((m) => (m.tuning ? [{ member: m.node, tuning: m.tuning }] : []));
  const verdict = latencyVerdict(worst, tuned);
  if (!considered.length) problems.push('no round trip could be measured');
  const leaderIds = new Set(timings.flatMap((t) => (t.leader ? [t.leader] : [])));
  const leaderNode = leaderIds.size === 1 ? byId.get([...leaderIds][0]!) : undefined;
  if (leaderIds.size > 1) problems.push(`members disagree on the leader: ${[...leaderIds].join(', ')}`);
  return {
    cluster,
    measuredAt,
    sites,
    stretched,
    pairs,
    members,
    leader: leaderNode ? { node: leaderNode, site: sites[leaderNode]! } : undefined,
    verdict: { ...verdict, safe: verdict.safe && problems.length === 0 && timings.every((t) => t.reachable) },
    problems,
  };
}

// ---- `drctl etcd tune`: the rolling change of heartbeat and election timeout ----

/** The runbook's steps, in order, as the workflow runs them and `drctl status` lists them. */
export const TUNE_STEPS = ['lease', 'preflight', 'approval', 'recheck', 'roll', 'verify'] as const;

export interface TuneInput {
  cluster: string;
  heartbeatMs: number;
  electionMs: number;
  /** Who asked (two-person rule: they cannot approve it themselves). */
  requestedBy: string;
  /** The requester's signed request (`drctl etcd tune` signs it with their key). */
  request?: Signed;
  approvalTimeoutMs?: number;
  /** How long one member may take to come back healthy with the new values (default 2 min). */
  memberTimeoutMs?: number;
  /** Stop after preflight and return the plan. */
  dryRun?: boolean;
}

/** One member's place in the roll: followers first (config order), the leader last. */
export interface TunePlanMember {
  node: string;
  site?: string;
  leader: boolean;
  from: Tuning;
}

export interface TuneEvidence {
  cluster: string;
  to: Tuning;
  order: TunePlanMember[];
  /** Every member healthy at preflight, and the leader named. */
  healthyAtPreflight: number;
  leader?: string;
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface TuneResult {
  outcome: 'tuned' | 'already' | 'dry-run';
  to: Tuning;
  order: TunePlanMember[];
  /** Per member: 'written' (restarted with the new values) or 'already'. */
  changed: Record<string, string>;
}

/** Values outside etcd's rules refused before anything runs, each named (the advisor's rules). */
export function tuneRefusal(t: Tuning): string | undefined {
  const breaks = ruleBreaks(t);
  return breaks.length ? breaks.map((b) => `${b.rule}: ${b.detail}`).join('; ') : undefined;
}

/** The roll's order: every follower in the config's order, the leader last (one election, at the end). */
export function rollOrder<T extends { node: string; leader: boolean }>(members: T[]): T[] {
  return [...members.filter((m) => !m.leader), ...members.filter((m) => m.leader)];
}
