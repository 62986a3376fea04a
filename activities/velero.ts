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

export function createVeleroActivities(gw: Gateways) {
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
      timeoutMs?: number;
    }): Promise<RestoreInfo> {
      const velero = gw.velero(input.site);
      await velero.createRestore({ name: input.restoreName, backup: input.backup, namespaces: input.namespaces });
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
          if (r.phase === 'Completed') return done(r);
          if (FAILED.includes(r.phase)) {
            heartbeat({ phase: r.phase });
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
     * Undo of the restore: deletes the namespaces the restore created (they did not exist before)
     * and stops (0 replicas, CronJobs suspended) what it updated in namespaces that did; then the
     * Restore object. Never at a site an app record points at: that site serves, and what it serves
     * is not this undo's to remove (refused, non-retryable: a person decides).
     */
    async removeRestored(input: {
      site: string;
      restoreName: string;
      created: string[];
      existed: string[];
      tag: string;
    }): Promise<string[]> {
      const kube = gw.kube(gw.site(input.site).cluster.name);
      const out: string[] = [];
      if (input.created.length || input.existed.length) {
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
      if (ended !== 'absent') out.push(`restore ${input.restoreName} ${ended}`);
      await Promise.all(
        input.created.map(async (ns) => {
          await kube.deleteNamespace(ns, 180_000, () => heartbeat({ deleting: ns }));
          out.push(`namespace ${ns} deleted`);
        }),
      );
      for (const w of await kube.workloadsIn(input.existed)) {
        const c = stopChange(w);
        if (!c) continue;
        await kube.patchWorkload(w, c.change);
        out.push(c.item);
      }
      await velero.delete('restores', input.restoreName);
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
