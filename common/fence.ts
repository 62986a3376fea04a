// Fencing a site's workloads, as pure decisions: what a fence changes on each Deployment,
// StatefulSet and CronJob, what it remembers in annotations on the object itself, and how an
// unfence (or a promotion) reads that back. The activities (activities/failover.ts) apply these
// through the kube gateway; the unit tests check them without a cluster.
import type { WorkloadChange, WorkloadState } from '../gateways/kube.ts';

/** Replicas a Deployment or StatefulSet had before the fence scaled it to 0. */
export const FENCED_REPLICAS = 'drctl.io/fenced-replicas';
/** A CronJob's `spec.suspend` before the fence suspended it ("true" or "false"). */
export const FENCED_SUSPEND = 'drctl.io/fenced-suspend';
/** The run (`<workflowId>.<run>`) whose fence this is: only that run's undo lifts it. */
export const FENCED_BY = 'drctl.io/fenced-by';
/** A BackupStorageLocation's access mode before a run changed it, `<mode>:<tag>`. */
export const MODE_BEFORE = 'drctl.io/access-mode-before';
/**
 * The run (tag) that paused a Velero Schedule while it held the schedule's location read-only: only
 * that run's undo (or a promotion) unpauses it, and a schedule paused by someone else stays paused.
 * Why pause at all: a scheduled backup against a read-only location fails validation, and Velero
 * 1.18.0-1.18.3 can then stop dequeuing backups for good until it restarts (velero #10519, fixed in
 * 1.18.4): the site's backups would sit Queued after the location is writable again.
 */
export const PAUSED_BY = 'drctl.io/schedule-paused-by';

const label = (w: Pick<WorkloadState, 'kind' | 'namespace' | 'name'>) => `${w.kind} ${w.namespace}/${w.name}`;

/** The annotation that says a workload is fenced, by kind. */
const markOf = (w: Pick<WorkloadState, 'kind'>) => (w.kind === 'CronJob' ? FENCED_SUSPEND : FENCED_REPLICAS);

export function isFenced(w: WorkloadState): boolean {
  return w.annotations[markOf(w)] !== undefined;
}

/**
 * What fencing does to one workload: scale to 0 (or suspend), remembering the value before in an
 * annotation. A workload already fenced (by this run's earlier attempt, or by another run) is left
 * as it is: its annotation still holds the value from before the first fence.
 */
export function fenceChange(w: WorkloadState, tag: string): { change?: WorkloadChange; item: string } {
  if (isFenced(w)) return { item: `${label(w)} (already fenced)` };
  if (w.kind === 'CronJob') {
    const before = w.suspend ?? false;
    return {
      change: { suspend: true, annotations: { [FENCED_SUSPEND]: String(before), [FENCED_BY]: tag } },
      item: `${label(w)} suspended${before ? ' (was already)' : ''}`,
    };
  }
  const replicas = w.replicas ?? 1;
  return {
    change: { replicas: 0, annotations: { [FENCED_REPLICAS]: String(replicas), [FENCED_BY]: tag } },
    item: `${label(w)} ${replicas}→0`,
  };
}

/**
 * The undo of `fenceChange` for the run `tag`: the remembered value back and the marks removed.
 * Nothing for a workload this run did not fence (another run's fence stays), or whose mark is not
 * a value fencing writes (a person edited it: left for them).
 */
export function unfenceChange(w: WorkloadState, tag: string): { change: WorkloadChange; item: string } | undefined {
  const before = w.annotations[markOf(w)];
  if (before === undefined || w.annotations[FENCED_BY] !== tag) return undefined;
  if (w.kind === 'CronJob') {
    if (before !== 'true' && before !== 'false') return undefined;
    return {
      change: { suspend: before === 'true', annotations: { [FENCED_SUSPEND]: null, [FENCED_BY]: null } },
      item: `${label(w)} suspend ${before}`,
    };
  }
  const replicas = Number(before);
  if (before === '' || !Number.isInteger(replicas) || replicas < 0) return undefined;
  return {
    change: { replicas, annotations: { [FENCED_REPLICAS]: null, [FENCED_BY]: null } },
    item: `${label(w)} →${replicas}`,
  };
}

/**
 * Promotion (the site now serves): the fence marks are removed whoever left them, and nothing else
 * changes (the replicas and schedules came from the restore).
 */
export function clearFenceChange(w: WorkloadState): { change: WorkloadChange; item: string } | undefined {
  if (!isFenced(w) && w.annotations[FENCED_BY] === undefined) return undefined;
  return {
    change: { annotations: { [markOf(w)]: null, [FENCED_BY]: null } },
    item: `${label(w)}: fence marks cleared`,
  };
}

/**
 * What an undo does to a workload of a namespace that existed at the target before the restore
 * updated it: stopped (scaled to 0, or suspended), never deleted.
 */
export function stopChange(w: WorkloadState): { change: WorkloadChange; item: string } | undefined {
  if (w.kind === 'CronJob') return w.suspend ? undefined : { change: { suspend: true }, item: `${label(w)} suspended` };
  return (w.replicas ?? 1) === 0 ? undefined : { change: { replicas: 0 }, item: `${label(w)} →0` };
}
