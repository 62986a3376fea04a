// The etcd quorum-restore plan and its shapes. Pure code: the workflow builds the plan with this,
// the CLI prints it for --dry-run, unit tests check it.
import type { DecisionRecord, RunbookStatus } from './runbook.ts';
import type { Signed } from './signed.ts';
import type { ClusterShape } from './types.ts';
import type { SnapshotRef } from './snapshots.ts';
import { dirOf, type NodeTools, toolCommand } from './etcd-tools.ts';
import { shq } from './shell.ts';

export interface RestoreInput {
  cluster: string;
  /** 'latest' or an object key. */
  snapshot: string;
  /** Who asked for the restore (two-person rule: they cannot approve it themselves). */
  requestedBy: string;
  /** Restore even though the cluster has quorum (throws away its newer writes). */
  force?: boolean;
  /** Stop after preflight and return the plan with the exact commands per node. */
  dryRun?: boolean;
  approvalTimeoutMs?: number;
  /** Override the computed --bump-revision. */
  bumpRevision?: number;
  /** The requester's signed request (`drctl etcd restore` signs it with their key). */
  request?: Signed;
  /**
   * A parent runbook's accepted approval (a drill approves its own etcd restore at its gate).
   * Honoured only when this run is a child of that workflow: a person cannot start a run with a parent.
   */
  approvedByParent?: DecisionRecord;
}

export interface NodePreflight {
  node: string;
  reachable: boolean;
  error?: string;
  etcdVersion?: string;
  tool?: 'etcdutl' | 'etcdctl';
  supportsBumpRevision?: boolean;
  freeBytes?: number;
  dataDirExists?: boolean;
  etcdHealthy?: boolean;
  revision?: number;
  /** The resolved etcd tools (host paths, or the etcd image and containerd): names and paths only. */
  tools?: NodeTools;
  /** The data dir is a mount point (a dedicated etcd disk): it cannot be renamed. */
  dataDirMountPoint?: boolean;
}

/**
 * How a node's data dir is set aside and replaced:
 *   rename:   mv DIR DIR.drctl-<run>; restore into <workDir>/restored; mv that to DIR (one rename each);
 *   contents: DIR is a mount point, which cannot be renamed (EBUSY): its contents move into
 *             DIR/.drctl-aside-<run>, the restore goes to DIR/.drctl-restored-<run> (the same
 *             filesystem) and its member dir moves into place. lost+found and .drctl-* stay put.
 */
export type DataDirLayout = 'rename' | 'contents';

export interface NodePlan {
  node: string;
  memberName: string;
  peerUrl: string;
  clientUrl: string;
  dataDir: string;
  /** Where the current data dir is moved, named after the run. */
  asideDir: string;
  /** Scratch dir on the node: the staged snapshot, the journal, step markers. */
  workDir: string;
  stagedSnapshot: string;
  tool: 'etcdutl' | 'etcdctl';
  bumpRevision?: number;
  markCompacted: boolean;
  apiserver: boolean;
  restoreCommand: string;
  /** Absent in plans made before it existed: 'rename'. */
  layout?: DataDirLayout;
  /** Where the restore writes before it moves into place (absent: <workDir>/restored). */
  scratchDir?: string;
  /** Image mode: the restore container's id (a leftover of a killed attempt is removed first). */
  restoreContainer?: string;
}

/** The plan's layout, for plans made before it was recorded too. */
export const layoutOf = (p: NodePlan): DataDirLayout => p.layout ?? 'rename';
export const scratchOf = (p: NodePlan): string => p.scratchDir ?? `${p.workDir}/restored`;

export interface RestorePlan {
  cluster: string;
  runId: string;
  token: string;
  initialCluster: string;
  snapshot: SnapshotRef;
  nodes: NodePlan[];
  /** Highest revision seen on the live cluster at preflight (writes after the snapshot are lost). */
  liveRevision?: number;
  writesLost?: number;
}

export type { Decision, DecisionRecord } from './runbook.ts';

/** The runbook's steps, in order, as the workflow runs them and `drctl status` lists them. */
export const RESTORE_STEPS = [
  'lease',
  'preflight',
  'distribute',
  'approval',
  'recheck',
  'stop',
  'move-aside',
  'restore',
  'start',
  'verify-quorum',
  'start-apiserver',
  'restart-controllers',
  'remove-staged',
] as const;
export type RestoreStep = (typeof RESTORE_STEPS)[number];

export interface RestoreStatus extends RunbookStatus<RestoreEvidence> {
  plan?: RestorePlan;
}

export interface RestoreEvidence {
  snapshotKey: string;
  snapshotTakenAt: string;
  snapshotAgeSeconds: number;
  revision: number;
  etcdHash: number;
  sha256: string;
  liveRevision?: number;
  writesLost?: number;
  bumpRevision?: number;
  quorumAtPreflight: boolean;
  perNode: { node: string; command: string; etcdVersion?: string; freeBytes?: number }[];
  approvers: string[];
  twoPersonRule: boolean;
  approvalDeadline: string;
}

export interface RestoreResult {
  outcome: 'completed' | 'dry-run';
  plan: RestorePlan;
  approval?: DecisionRecord;
  verification?: { node: string; revision: number; keys: number }[];
  timings: Record<string, number>;
  /** Dry run only: why the real run would be refused (e.g. the cluster has quorum and no --force). */
  refusal?: string;
}

/** The etcd docs' default: 1e9 covers a week-old snapshot at < 1500 writes/s. */
export const MIN_BUMP_REVISION = 1_000_000_000;

/**
 * --bump-revision: at least 1e9, and at least 10x the writes the snapshot misses (measured as the
 * live revision minus the snapshot's), so revisions never go backwards for any watcher.
 */
export function bumpRevisionFor(writesLost: number | undefined, override?: number): number {
  if (override !== undefined) return override;
  return Math.max(MIN_BUMP_REVISION, Math.ceil((writesLost ?? 0) * 10));
}

/**
 * A short, unique tag for a run, used in names on nodes and in clusters. Not the run id's head:
 * Temporal's run ids are UUIDv7, whose first 8 hex digits are a timestamp every run started in the
 * same ~65 s shares (two restores a minute apart once shared a work dir). The tail is random.
 */
export function runTag(runId: string): string {
  return runId.replace(/-/g, '').slice(-12).toLowerCase();
}

/** A restore's scratch dir on a node: beside the data dir, named after the run's tag. */
export function restoreWorkDir(dataDir: string, tag: string): string {
  return `${dataDir.replace(/\/[^/]+\/?$/, '') || ''}/drctl-restore-${tag}`;
}

export function planRestore(args: {
  shape: ClusterShape;
  snapshot: SnapshotRef;
  runId: string;
  preflight: NodePreflight[];
  bumpRevision?: number;
}): RestorePlan {
  const { shape, snapshot, runId, preflight } = args;
  const short = runTag(runId);
  const token = `drctl-${shape.cluster}-${short}`;
  const initialCluster = shape.nodes.map((n) => `${n.memberName}=${n.peerUrl}`).join(',');
  const liveRevision = Math.max(0, ...preflight.map((p) => p.revision ?? 0)) || undefined;
  const writesLost = liveRevision !== undefined ? Math.max(0, liveRevision - snapshot.revision) : undefined;
  const bump = bumpRevisionFor(writesLost, args.bumpRevision);
  const nodes = shape.nodes.map((n): NodePlan => {
    const pf = preflight.find((p) => p.node === n.name);
    const dataDir = n.dataDir;
    const workDir = restoreWorkDir(dataDir, short);
    const tool = pf?.tool ?? 'etcdutl';
    const supportsBump = pf?.supportsBumpRevision ?? false;
    const stagedSnapshot = `${workDir}/snapshot.db`;
    const layout: DataDirLayout = pf?.dataDirMountPoint ? 'contents' : 'rename';
    const scratchDir = layout === 'contents' ? `${dataDir}/.drctl-restored-${short}` : `${workDir}/restored`;
    const tools: NodeTools = pf?.tools ?? { from: 'host' };
    const restoreContainer = tools.from === 'image' ? `drctl-restore-${short}` : undefined;
    const restoreCommand = toolCommand(tools, {
      tool,
      env: tool === 'etcdctl' ? { ETCDCTL_API: '3' } : undefined,
      id: restoreContainer ?? 'unused',
      // The staged snapshot is read; the scratch dir's parent is where the restore writes.
      ro: [dirOf(stagedSnapshot)],
      rw: [dirOf(scratchDir)],
      args: [
        'snapshot restore',
        shq(stagedSnapshot),
        `--name=${shq(n.memberName)}`,
        `--initial-cluster=${shq(initialCluster)}`,
        `--initial-cluster-token=${shq(token)}`,
        `--initial-advertise-peer-urls=${shq(n.peerUrl)}`,
        `--data-dir=${shq(scratchDir)}`,
        ...(supportsBump && bump > 0 ? [`--bump-revision=${bump}`, '--mark-compacted'] : []),
      ].join(' '),
    });
    return {
      node: n.name,
      memberName: n.memberName,
      peerUrl: n.peerUrl,
      clientUrl: n.clientUrl,
      dataDir,
      asideDir: layout === 'contents' ? `${dataDir}/.drctl-aside-${short}` : `${dataDir}.drctl-${short}`,
      workDir,
      stagedSnapshot,
      tool,
      bumpRevision: supportsBump ? bump : undefined,
      markCompacted: supportsBump && bump > 0,
      apiserver: n.apiserver,
      restoreCommand,
      ...(layout === 'contents' ? { layout, scratchDir } : {}),
      ...(restoreContainer ? { restoreContainer } : {}),
    };
  });
  return { cluster: shape.cluster, runId, token, initialCluster, snapshot, nodes, liveRevision, writesLost };
}

/** Free bytes a node needs next to its data dir: the staged and the restored snapshot, and some room. */
export const bytesNeeded = (snapshot: Pick<SnapshotRef, 'size'>): number => snapshot.size * 2 + 64 * 1024 * 1024;

/** Quorum: a majority of the members healthy. */
export function hasQuorum(preflight: Pick<NodePreflight, 'etcdHealthy'>[], members: number): boolean {
  return preflight.filter((p) => p.etcdHealthy).length >= Math.floor(members / 2) + 1;
}

/** The snapshot approved, as the bucket shows it when the gate opens. */
export type SnapshotNow =
  | { found: SnapshotRef }
  /** Gone (deleted by retention or by hand), or no longer a verified snapshot of this cluster. */
  | { gone: string }
  /** The bucket did not answer: not a change (the staged copies are checked against the approved sha256). */
  | { unreadable: string };

/** A node's staged copy re-read when the gate opens: its sha256, or why it cannot be used. */
export type StagedNow = { node: string; sha256: string } | { node: string; error: string };

/**
 * What no longer holds, once the gate opens, of what the go/no-go was given for (the gate may have
 * waited an hour): the preflight again, the approved snapshot in the bucket and its staged copies.
 * One line per change; none means the restore may go on. Pure: the workflow and its tests.
 */
export function changesSinceApproval(a: {
  members: number;
  force: boolean;
  snapshot: SnapshotRef;
  before: NodePreflight[];
  now: NodePreflight[];
  snapshotNow: SnapshotNow;
  staged: StagedNow[];
}): string[] {
  const out: string[] = [];
  const healthy = (ps: NodePreflight[]) => `${ps.filter((p) => p.etcdHealthy).length}/${a.members}`;
  if (!a.force && !hasQuorum(a.before, a.members) && hasQuorum(a.now, a.members)) {
    out.push(
      `quorum: ${healthy(a.before)} members healthy at preflight, ${healthy(a.now)} now: the cluster has quorum again, and restoring would throw away every write since the snapshot (--force restores anyway)`,
    );
  }
  const needs = bytesNeeded(a.snapshot);
  for (const p of a.now) {
    const was = a.before.find((x) => x.node === p.node);
    if (!p.reachable) {
      out.push(`${p.node}: unreachable now: ${p.error ?? 'no answer'}`);
      continue;
    }
    if ((p.freeBytes ?? 0) < needs) out.push(`${p.node}: ${p.freeBytes ?? 0} bytes free now; needs ${needs}`);
    if (was && (was.etcdVersion !== p.etcdVersion || was.tool !== p.tool))
      out.push(
        `${p.node}: etcd ${was.etcdVersion} (${was.tool}) at preflight, ${p.etcdVersion} (${p.tool}) now: the planned restore command is for the former`,
      );
    if (was && !!was.dataDirMountPoint !== !!p.dataDirMountPoint)
      out.push(
        `${p.node}: the data dir is ${p.dataDirMountPoint ? 'now' : 'no longer'} a mount point: the plan's layout no longer fits`,
      );
  }
  const s = a.snapshotNow;
  if ('gone' in s) out.push(`snapshot ${a.snapshot.key}: no longer usable in the bucket: ${s.gone}`);
  else if ('found' in s) {
    const diff = (['sha256', 'revision', 'etcdHash', 'size'] as const).filter((k) => s.found[k] !== a.snapshot[k]);
    if (diff.length)
      out.push(
        `snapshot ${a.snapshot.key}: not the one approved: ${diff.map((k) => `${k} ${a.snapshot[k]} approved, ${s.found[k]} now`).join(', ')}`,
      );
  }
  for (const st of a.staged) {
    if (a.now.some((p) => p.node === st.node && !p.reachable)) continue; // said above
    if ('error' in st) out.push(`${st.node}: the staged copy: ${st.error}`);
    else if (st.sha256 !== a.snapshot.sha256)
      out.push(`${st.node}: the staged copy's sha256 is ${st.sha256}, not the approved ${a.snapshot.sha256}`);
  }
  return out;
}
