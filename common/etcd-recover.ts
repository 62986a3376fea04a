// `drctl etcd recover` (quorum lost: a new cluster from the survivors' own data, no snapshot) and
// `drctl etcd rejoin` (a returning member added back wiped): their inputs, evidence, results and
// the decisions they make, pure. The workflows (workflows/etcd-recover.ts) run them.
//
// Why --force-new-cluster and not a restore of the survivor's own member/snap/db: the survivor's
// bbolt file holds what it had applied; its WAL also holds entries committed after that. Forcing a
// new cluster keeps both (etcd replays the WAL up to the persisted commit index, then commits a
// configuration with this member alone), keeps the cluster id, member id and revision history
// (clients' watches and the API server's resourceVersions never go back, so no revision bump is
// needed), and touches nothing but the WAL. A restore of the db file would drop the WAL's tail,
// need --skip-hash-check (a live db has no snapshot hash) and give new ids.
import type { Signed } from './signed.ts';

/** The runbook's steps, in order, as the workflow runs them and `drctl status` lists them. */
export const RECOVER_STEPS = [
  'lease',
  'preflight',
  'approval',
  'recheck',
  'fence',
  'force-new-cluster',
  'add-survivors',
  'start-apiservers',
  'verify',
] as const;

export const REJOIN_STEPS = [
  'lease',
  'preflight',
  'approval',
  'recheck',
  'wipe',
  'member-add',
  'start',
  'verify',
] as const;

/** An approval's reason that attests, for members whose hosts cannot be reached, that they are fenced. */
export const ATTEST_PREFIX = 'attest:';

export interface RecoverInput {
  cluster: string;
  requestedBy: string;
  request?: Signed;
  approvalTimeoutMs?: number;
  /** How long one member may take to come back healthy (default 3 min). */
  memberTimeoutMs?: number;
  dryRun?: boolean;
}

export interface RejoinInput extends RecoverInput {
  node: string;
}

/** One member as the preflight read it: nothing started, nothing changed. */
export interface RecoverMemberState {
  node: string;
  site?: string;
  memberName: string;
  peerUrl: string;
  /** Its host answered over SSH. */
  reachable: boolean;
  /** An etcd process runs on it (or its client port is open). */
  etcdRunning: boolean;
  /**
   * What it holds, from its own /metrics (served even while it has no leader, when its client port
   * is not: a member restarted without a quorum never becomes ready to serve clients).
   */
  memberId?: string;
  /** It follows a leader (etcd_server_has_leader). */
  hasLeader?: boolean;
  revision?: number;
  /**
   * The highest raft index it has committed or applied (etcd_server_proposals_committed_total is
   * 0 after a restart without a leader; applied is then the commit index it replayed): what
   * --force-new-cluster keeps.
   */
  raftIndex?: number;
  /** When its WAL was last written (mtime of its newest WAL file): its last write received. */
  walWrittenAt?: string;
  /** Its etcd manifest is parked (fenced by an earlier run or by hand). */
  parked?: boolean;
  error?: string;
}

export type FenceHow = 'park-manifest' | 'already-parked' | 'attestation';

export interface RecoverPlan {
  /** The survivor whose data is kept: the highest committed raft index. */
  keep: string;
  /** The other survivors, added back one at a time with their data moved aside. */
  addBack: string[];
  /** Members dropped from the cluster, and how each is kept from coming back with its data. */
  dropped: { node: string; site?: string; fence: FenceHow }[];
  revisionKept: number;
  raftIndexKept: number;
  lastWriteKeptAt?: string;
}

export interface RecoverEvidence {
  cluster: string;
  survivors: RecoverMemberState[];
  plan: RecoverPlan;
  /** The members whose hosts do not answer: the approval must attest they are fenced. */
  attestationNeeded: string[];
  newestSnapshot?: { key: string; takenAt: string; revision: number };
  /** Revisions the survivors hold beyond the newest off-site snapshot (what a restore would lose). */
  revisionsBeyondSnapshot?: number;
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface RecoverResult {
  outcome: 'recovered' | 'dry-run';
  plan: RecoverPlan;
  attestation?: string;
  members?: string[];
  revision?: number;
}

export interface RejoinEvidence {
  cluster: string;
  node: string;
  /** The healthy member the member add goes through. */
  via: string;
  members: string[];
  /** What the returning member holds now (moved aside, never started again). */
  returning: RecoverMemberState;
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface RejoinResult {
  outcome: 'rejoined' | 'already-member' | 'dry-run';
  node: string;
  members: string[];
  /** Where its old data went on the node (kept; drctl never deletes it). */
  oldDataAt?: string;
}

/** A member that has a leader: the cluster still has quorum somewhere. */
export const hasLeader = (m: RecoverMemberState) => !!m.hasLeader;

/**
 * What a recover would do with these members, or why it must not run (a refusal, for a person).
 * Refused: a member still has a leader (quorum is reachable: nothing is lost, nothing should be
 * forced); no survivor answers; the survivors are a majority (they would elect a leader on their
 * own: something else is wrong).
 */
export function planRecover(members: RecoverMemberState[]): { plan?: RecoverPlan; refusal?: string } {
  const led = members.filter(hasLeader);
  if (led.length)
    return {
      refusal: `quorum is reachable: ${led.map((m) => `${m.node} has a leader`).join(', ')}; nothing is lost and nothing should be forced (use \`drctl etcd restore\` or wait)`,
    };
  const survivors = members.filter((m) => m.reachable && m.raftIndex !== undefined && !m.parked);
  if (!survivors.length)
    return {
      refusal: `no member answers with its data: ${members.map((m) => `${m.node}: ${m.error ?? (m.reachable ? 'etcd not answering' : 'host unreachable')}`).join('; ')}`,
    };
  if (survivors.length > members.length / 2)
    return {
      refusal: `${survivors.length} of ${members.length} members answer (${survivors.map((s) => s.node).join(', ')}), a majority, yet none has a leader: not a lost quorum; look at them first`,
    };
  const sorted = [...survivors].sort(
    (a, b) => b.raftIndex! - a.raftIndex! || (b.revision ?? 0) - (a.revision ?? 0) || a.node.localeCompare(b.node),
  );
  const keep = sorted[0]!;
  const dropped = members
    .filter((m) => !survivors.includes(m))
    .map((m) => ({
      node: m.node,
      site: m.site,
      fence: (m.parked ? 'already-parked' : m.reachable ? 'park-manifest' : 'attestation') as FenceHow,
    }));
  return {
    plan: {
      keep: keep.node,
      addBack: sorted.slice(1).map((s) => s.node),
      dropped,
      revisionKept: keep.revision ?? 0,
      raftIndexKept: keep.raftIndex!,
      lastWriteKeptAt: keep.walWrittenAt,
    },
  };
}

/** The attestation in an approval's reason ("attest: site A is powered off"), if it carries one. */
export function attestationOf(reason: string | undefined): string | undefined {
  const r = reason?.trim() ?? '';
  if (!r.toLowerCase().startsWith(ATTEST_PREFIX)) return undefined;
  const text = r.slice(ATTEST_PREFIX.length).trim();
  return text || undefined;
}

/** `--initial-cluster` for a member joining `members` (name=peerURL, the joiner included). */
export const initialClusterOf = (members: { name: string; peerUrl: string }[]) =>
  members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
