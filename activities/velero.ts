// Velero at a site: which backup to restore, taking one (failback), restoring it and undoing that,
// and what a backup holds. Creating is idempotent (the names are the run's), so a retried activity
// finds what its first attempt created and waits on that.
import { FailureType, failure } from '../common/errors.ts';
import type { BackupRef } from '../common/failover.ts';
import { stopChange } from '../common/fence.ts';
import type { Gateways } from '../gateways/index.ts';
import type { BackupInfo, RestoreInfo, RestoreResults } from '../gateways/velero.ts';
import { recordsPointingAt } from './dns.ts';
import { failoverSettings } from './settings.ts';
import { done, heartbeat, notYet, pollUntil } from './support.ts';

/** Phases after which Velero does nothing more with a Backup or Restore. */
const FAILED = ['Failed', 'PartiallyFailed', 'FailedValidation'];

export function newestCompleted(backups: BackupInfo[], namespaces: string[], location: string): BackupInfo | undefined {
  return backups
    .filter((b) => b.phase === 'Completed' && b.completedAt && (b.storageLocation ?? location) === location)
    .filter((b) => b.includedNamespaces.includes('*') || namespaces.every((ns) => b.includedNamespaces.includes(ns)))
    .sort((a, b) => Date.parse(b.completedAt!) - Date.parse(a.completedAt!))[0];
}

export function backupRef(b: BackupInfo, now = Date.now()): BackupRef {
  // The data is as old as the backup's start: that is what the RPO measures.
  const capturedAt = Date.parse(b.startedAt ?? b.completedAt!);
  return {
    name: b.name,
    completedAt: b.completedAt!,
    ageSeconds: Math.max(0, Math.round((now - capturedAt) / 1000)),
    itemsBackedUp: b.itemsBackedUp,
    includedNamespaces: b.includedNamespaces,
  };
}

/**
 * The label drctl puts on a namespace one of its restores created, valued with the restore's name
 * (which names the run). An undo or a cleanup deletes a namespace only when it carries its own
 * restore's name here: never one another run (or a person) made.
 */
export const RESTORED_BY = 'drctl.io/restored-by';

/** The namespaces a restore's resource list says it created ("demo-app(created)"). */
export function createdNamespaces(list: Record<string, string[]>): string[] {
  return (list['v1/Namespace'] ?? [])
    .filter((e) => e.endsWith('(created)'))
    .map((e) => e.slice(0, -'(created)'.length));
}

export function createVeleroActivities(gw: Gateways) {
  /**
   * Labels the namespaces restore `restoreName` created with RESTORED_BY=`restoreName`, and returns
   * them. Proof of creation: Velero's resource list of the restore says "(created)" and the
   * namespace was made while the restore ran (a namespace someone made since is not claimed). A
   * label copied from the backup (the source was itself restored) is overwritten. Idempotent; the
   * restore must have ended (the list is written then).
   */
  async function claimCreated(site: string, restoreName: string): Promise<string[]> {
    const velero = gw.velero(site);
    const kube = gw.kube(gw.site(site).cluster.name);
    const r = await velero.restore(restoreName);
    if (!r?.startedAt || !r.completedAt) return [];
    const list = await velero.download<Record<string, string[]>>('RestoreResourceList', restoreName);
    const window = [Date.parse(r.startedAt) - 1000, Date.parse(r.completedAt) + 1000];
    const out: string[] = [];
    for (const ns of createdNamespaces(list)) {
      const n = await kube.namespace(ns);
      if (!n) continue;
      if (n.labels[RESTORED_BY] !== restoreName) {
        const made = n.createdAt ? Date.parse(n.createdAt) : NaN;
        if (!(made >= window[0]! && made <= window[1]!)) continue;
        await kube.labelNamespace(ns, { [RESTORED_BY]: restoreName });
      }
      out.push(ns);
    }
    return out;
  }

  /** Velero's per-item errors of a restore, for the failure a person reads. */
  async function restoreErrors(site: string, restoreName: string): Promise<string[]> {
    try {
      const res = await gw.velero(site).download<RestoreResults>('RestoreResults', restoreName);
      return [
        ...(res.errors.velero ?? []).map((m) => `velero: ${m}`),
        ...(res.errors.cluster ?? []).map((m) => `cluster: ${m}`),
        ...Object.entries(res.errors.namespaces ?? {}).flatMap(([ns, ms]) => ms.map((m) => `${ns}: ${m}`)),
      ];
    } catch (err) {
      return [`(per-item results unavailable: ${(err as Error).message})`];
    }
  }

  return {
    /** Failback's first step: a fresh backup of the serving site, visible at the other site's Velero. */
    async takeBackup(input: {
      site: string;
      seenBy: string;
      name: string;
      namespaces: string[];
      timeoutMs?: number;
    }): Promise<BackupRef> {
      const s = gw.site(input.site);
      const velero = gw.velero(s.name);
      await velero.createBackup({
        name: input.name,
        namespaces: input.namespaces,
        storageLocation: s.velero.storageLocation,
      });
      const deadline = Date.now() + (input.timeoutMs ?? 5 * 60_000);
      await pollUntil(
        {
          what: `backup ${input.name} at ${s.name} to complete`,
          deadline,
          every: 1000,
          heartbeat: (phase) => ({ phase }),
        },
        async () => {
          const b = await velero.backup(input.name);
          const phase = b?.phase ?? 'New';
          if (phase === 'Completed') return done(undefined);
          if (FAILED.includes(phase))
            throw failure(
              FailureType.VeleroError,
              `backup ${input.name} at ${s.name} ended ${phase}: ${JSON.stringify(b?.validationErrors ?? b?.failureReason ?? '')}`,
              undefined,
              true,
            );
          return notYet(phase);
        },
      );
      // The other site's Velero learns of the backup through its backup-sync loop.
      const seen = gw.velero(input.seenBy);
      return pollUntil(
        {
          what: `backup ${input.name} to be visible at ${input.seenBy} (Velero backup sync)`,
          deadline,
          every: 1000,
          heartbeat: () => ({ phase: 'syncing' }),
        },
        async () => {
          const b = await seen.backup(input.name);
          return b?.phase === 'Completed' ? done(backupRef(b)) : notYet(b?.phase ?? 'not synced');
        },
      );
    },

    /** Creates the Velero Restore (once: the name is the run's) and waits for it to finish. */
    async veleroRestore(input: {
      site: string;
      backup: string;
      namespaces: string[];
      restoreName: string;
      existingResourcePolicy?: 'update' | 'none';
      timeoutMs?: number;
    }): Promise<RestoreInfo> {
      const velero = gw.velero(input.site);
      await velero.createRestore({
        name: input.restoreName,
        backup: input.backup,
        namespaces: input.namespaces,
        existingResourcePolicy: input.existingResourcePolicy,
      });
      return pollUntil(
        {
          what: `Velero restore ${input.restoreName} at ${input.site}`,
          timeoutMs: input.timeoutMs ?? failoverSettings(gw).restoreTimeout,
          // A lab restore takes ~1.5 s: a 1 s poll added up to a second to the RTO (bench/failover.ts).
          every: 250,
          heartbeat: (r: RestoreInfo) => ({ phase: r.phase, items: r.itemsRestored }),
        },
        async () => {
          const r = await velero.restore(input.restoreName);
          if (!r) throw failure(FailureType.VeleroError, `restore ${input.restoreName} disappeared`);
          if (r.phase === 'Completed') {
            await claimCreated(input.site, input.restoreName);
            return done(r);
          }
          if (FAILED.includes(r.phase)) {
            heartbeat({ phase: r.phase });
            await claimCreated(input.site, input.restoreName).catch(() => []);
            const items = await restoreErrors(input.site, input.restoreName);
            throw failure(
              FailureType.VeleroError,
              `Velero restore ${input.restoreName} ended ${r.phase}${r.failureReason ? ` (${r.failureReason})` : ''}: ${r.errors} error(s)\n${items.join('\n')}`,
              { phase: r.phase, errors: items },
              true,
            );
          }
          return notYet(r);
        },
      );
    },

    /**
     * Undo of the restore: deletes the namespaces the restore created and stops (0 replicas,
     * CronJobs suspended) what it created or updated in namespaces that existed; then the Restore
     * object. Only what carries this restore's mark: a namespace labelled RESTORED_BY=restoreName
     * (claimCreated), a workload labelled by Velero with velero.io/restore-name=restoreName; anything
     * else is left and named. Never at a site an app record points at: that site serves, and what it
     * serves is not this undo's to remove (refused, non-retryable: a person decides).
     * `inPlace` (a namespace restore at the site that serves): the namespaces the restore created
     * were missing before the run, so removing them puts the site back as it served; in namespaces
     * that existed nothing is stopped (they serve), what the restore added there is named and kept.
     */
    async removeRestored(input: {
      site: string;
      restoreName: string;
      created: string[];
      existed: string[];
      tag: string;
      inPlace?: boolean;
    }): Promise<string[]> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      const out: string[] = [];
      if (!input.inPlace && (input.created.length || input.existed.length)) {
        const serving = await recordsPointingAt(gw, input.site);
        if (serving.length)
          throw failure(
            FailureType.FailoverRefused,
            `${serving.join(', ')} point(s) at ${input.site}: not removing what restore ${input.restoreName} brought there (${[...input.created, ...input.existed].join(', ')}) from a site that serves`,
          );
      }
      // A run cancelled mid-restore leaves Velero restoring: deleting now, Velero would create the
      // objects again behind the cleanup. Look first: wait until the restore has ended.
      const velero = gw.velero(input.site);
      const ended = await pollUntil(
        {
          what: `Velero restore ${input.restoreName} at ${input.site} to end before its objects are removed`,
          timeoutMs: failoverSettings(gw).restoreTimeout,
          every: 500,
        },
        async () => {
          const r = await velero.restore(input.restoreName);
          return !r ||
            ![
              'New',
              'InProgress',
              'WaitingForPluginOperations',
              'WaitingForPluginOperationsPartiallyFailed',
              'Finalizing',
              'FinalizingPartiallyFailed',
            ].includes(r.phase)
            ? done(r?.phase ?? 'absent')
            : notYet(r.phase);
        },
      );
      if (ended !== 'absent') {
        out.push(`restore ${input.restoreName} ${ended}`);
        // The mark may be missing (the worker died between the restore's end and its claim).
        await claimCreated(input.site, input.restoreName);
      }
      await Promise.all(
        input.created.map(async (ns) => {
          const n = await kube.namespace(ns);
          if (!n) return;
          if (n.labels[RESTORED_BY] !== input.restoreName) {
            out.push(
              `namespace ${ns} kept: not created by ${input.restoreName} (${RESTORED_BY}=${n.labels[RESTORED_BY] ?? 'unset'})`,
            );
            return;
          }
          await kube.deleteNamespace(ns, 180_000, () => heartbeat({ deleting: ns }));
          out.push(`namespace ${ns} deleted`);
        }),
      );
      for (const w of await kube.workloadsIn(input.existed)) {
        if (w.labels?.['velero.io/restore-name'] !== input.restoreName) continue;
        if (input.inPlace) {
          out.push(`${w.kind} ${w.namespace}/${w.name} kept: restored into a namespace that serves`);
          continue;
        }
        const c = stopChange(w);
        if (!c) continue;
        await kube.patchWorkload(w, c.change);
        out.push(c.item);
      }
      await velero.delete('restores', input.restoreName);
      return out;
    },

    /**
     * A proven failback returns the site it left to standby, as before the failover: the
     * namespaces a drctl restore created there (RESTORED_BY) are deleted, so the next drill or
     * failover finds the DR site empty. Namespaces without the mark (made by a person) are kept,
     * fenced, and named. Never while an app record points at the site.
     */
    async returnToStandby(input: { site: string; namespaces: string[] }): Promise<string[]> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      const serving = await recordsPointingAt(gw, input.site);
      if (serving.length)
        throw failure(
          FailureType.FailoverRefused,
          `${serving.join(', ')} point(s) at ${input.site}: it serves, it is not returned to standby`,
        );
      const out: string[] = [];
      for (const ns of input.namespaces) {
        const n = await kube.namespace(ns);
        if (!n) continue;
        const by = n.labels[RESTORED_BY];
        if (!by) {
          out.push(`namespace ${ns} kept (fenced): no drctl restore created it`);
          continue;
        }
        await kube.deleteNamespace(ns, 180_000, () => heartbeat({ deleting: ns }));
        out.push(`namespace ${ns} deleted (restored by ${by})`);
      }
      return out;
    },

    /** What the backup holds: Secrets and ConfigMaps the restored site must have afterwards. */
    async backupContents(input: {
      site: string;
      backup: string;
    }): Promise<{ secrets: string[]; configMaps: string[]; total: number }> {
      const list = await gw.velero(input.site).download<Record<string, string[]>>('BackupResourceList', input.backup);
      return {
        secrets: list['v1/Secret'] ?? [],
        configMaps: list['v1/ConfigMap'] ?? [],
        total: Object.values(list).reduce((a, l) => a + l.length, 0),
      };
    },
  };
}
