// Site failover: the go/no-go's read-only preflight and fencing a site (its Deployments and
// StatefulSets to 0 replicas, its CronJobs suspended, its backup location read-only), plus every
// activity the site runbooks share, by concern: site-checks.ts, velero.ts, dns.ts, probe.ts,
// notify.ts. Each looks before it acts, so a retried or resumed activity never does a destructive
// step twice: fencing records what it changed in annotations on the objects themselves
// (common/fence.ts), and undoing reads them back.
import { FailureType, failure } from '../common/errors.ts';
import type { FailoverPreflight } from '../common/failover.ts';
import {
  clearFenceChange,
  fenceChange,
  FENCED_BY,
  FENCED_REPLICAS,
  FENCED_SUSPEND,
  MODE_BEFORE,
  PAUSED_BY,
  unfenceChange,
} from '../common/fence.ts';
import type { Gateways } from '../gateways/index.ts';
import { createDnsActivities, recordsPointingAt } from './dns.ts';
import { createNotifyActivities } from './notify.ts';
import { createProbeActivities } from './probe.ts';
import { failoverSettings } from './settings.ts';
import { createSiteCheckActivities, siteReadiness } from './site-checks.ts';
import { backupRef, createVeleroActivities, newestCompleted } from './velero.ts';

/** Annotations fencing leaves, so unfencing (and a retried fence) knows what it did. */
export { FENCED_BY, FENCED_REPLICAS, FENCED_SUSPEND, MODE_BEFORE, PAUSED_BY };

function createFencingActivities(gw: Gateways) {
  const kubeOf = (site: string) => gw.kube(gw.site(site).cluster.name);

  async function setMode(site: string, mode: 'ReadOnly' | 'ReadWrite', tag: string) {
    const s = gw.site(site);
    const velero = gw.velero(s.name);
    const bsl = await velero.storageLocation(s.velero.storageLocation);
    if (!bsl) throw failure(FailureType.VeleroError, `${s.name}: no BackupStorageLocation ${s.velero.storageLocation}`);
    // Remember the mode from before the first change only (a retry must not overwrite it).
    const remember: Record<string, string> =
      bsl.annotations[MODE_BEFORE] === undefined ? { [MODE_BEFORE]: `${bsl.accessMode}:${tag}` } : {};
    if (!(bsl.accessMode === mode && !Object.keys(remember).length))
      await velero.patchStorageLocation(s.velero.storageLocation, { accessMode: mode, annotations: remember });
    if (mode === 'ReadOnly') await pauseSchedules(site, tag);
  }

  /** The site's Velero Schedules that write to its storage location (PAUSED_BY says why). */
  async function schedulesOf(site: string) {
    const s = gw.site(site);
    const all = await gw.velero(s.name).list('schedules');
    return all.filter((x) => {
      const spec = x.spec as { template?: { storageLocation?: string } } | undefined;
      const to = spec?.template?.storageLocation;
      return !to || to === s.velero.storageLocation;
    });
  }

  /** Pauses the running ones, marked with the run's tag; one already paused is left as it is. */
  async function pauseSchedules(site: string, tag: string): Promise<string[]> {
    const velero = gw.velero(gw.site(site).name);
    const done: string[] = [];
    for (const x of await schedulesOf(site)) {
      if ((x.spec as { paused?: boolean } | undefined)?.paused) continue;
      await velero.mergePatch('schedules', x.metadata.name, {
        metadata: { annotations: { [PAUSED_BY]: tag } },
        spec: { paused: true },
      });
      done.push(`Schedule ${x.metadata.name} paused`);
    }
    return done;
  }

  /** Unpauses the schedules this run paused (any run's, with `tag` undefined: a promotion). */
  async function unpauseSchedules(site: string, tag: string | undefined): Promise<string[]> {
    const velero = gw.velero(gw.site(site).name);
    const done: string[] = [];
    for (const x of await schedulesOf(site)) {
      const by = x.metadata.annotations?.[PAUSED_BY];
      if (by === undefined || (tag !== undefined && by !== tag)) continue;
      await velero.mergePatch('schedules', x.metadata.name, {
        metadata: { annotations: { [PAUSED_BY]: null } },
        spec: { paused: false },
      });
      done.push(`Schedule ${x.metadata.name} unpaused`);
    }
    return done;
  }

  async function restoreMode(site: string, tag: string): Promise<string[]> {
    const s = gw.site(site);
    const velero = gw.velero(s.name);
    const before = (await velero.storageLocation(s.velero.storageLocation))?.annotations[MODE_BEFORE];
    const done: string[] = [];
    if (before && before.slice(before.indexOf(':') + 1) === tag) {
      const mode = before.slice(0, before.indexOf(':'));
      await velero.patchStorageLocation(s.velero.storageLocation, {
        accessMode: mode,
        annotations: { [MODE_BEFORE]: null },
      });
      done.push(`BackupStorageLocation ${s.velero.storageLocation} ${mode}`);
    }
    // After the location: a schedule unpaused first would fire against it read-only.
    done.push(...(await unpauseSchedules(site, tag)));
    return done;
  }

  return {
    /**
     * Fences a site: its Deployments and StatefulSets to 0 replicas and its CronJobs suspended (the
     * values before remembered in annotations), its backup location read-only (so its stale backups
     * never become the newest). A site whose API server does not answer is skipped, and says so.
     * `unlessServing` (the fence-on-return): a site an app record points at is not fenced.
     */
    async fencePrimary(input: {
      site: string;
      namespaces: string[];
      tag: string;
      unlessServing?: boolean;
    }): Promise<{ fenced: string[]; skipped?: string; serving?: string[] }> {
      const s = gw.site(input.site);
      const kube = kubeOf(s.name);
      const ready = await kube.readyz(3000);
      if (!ready.ready)
        return {
          fenced: [],
          skipped: `${s.name} API server not reachable (${ready.detail.slice(0, 80)}): nothing to fence`,
        };
      if (input.unlessServing) {
        const serving = await recordsPointingAt(gw, s.name);
        if (serving.length)
          return { fenced: [], serving, skipped: `${serving.join(', ')} point(s) at ${s.name}: it serves, not fenced` };
      }
      const fenced: string[] = [];
      for (const w of await kube.workloadsIn(input.namespaces)) {
        const f = fenceChange(w, input.tag);
        if (f.change) await kube.patchWorkload(w, f.change);
        fenced.push(f.item);
      }
      await setMode(s.name, 'ReadOnly', input.tag);
      fenced.push(`BackupStorageLocation ${s.velero.storageLocation} ReadOnly`);
      const paused = (await schedulesOf(s.name)).filter((x) => x.metadata.annotations?.[PAUSED_BY] === input.tag);
      fenced.push(...paused.map((x) => `Schedule ${x.metadata.name} paused`));
      return { fenced };
    },

    /** Undo of fencePrimary by the run `tag`: replicas, suspend and the backup location's mode back. */
    async unfencePrimary(input: { site: string; namespaces: string[]; tag: string }): Promise<string[]> {
      const s = gw.site(input.site);
      const kube = kubeOf(s.name);
      const done: string[] = [];
      for (const w of await kube.workloadsIn(input.namespaces)) {
        const u = unfenceChange(w, input.tag);
        if (!u) continue;
        await kube.patchWorkload(w, u.change);
        done.push(u.item);
      }
      done.push(...(await restoreMode(s.name, input.tag)));
      return done;
    },

    async setStorageLocationMode(input: { site: string; mode: 'ReadOnly' | 'ReadWrite'; tag: string }): Promise<void> {
      await setMode(input.site, input.mode, input.tag);
    },

    async restoreStorageLocationMode(input: { site: string; tag: string }): Promise<string[]> {
      return restoreMode(input.site, input.tag);
    },

    /** Those of `namespaces` that exist at the site now (what a restore would not create). */
    async namespacesAt(input: { site: string; namespaces: string[] }): Promise<string[]> {
      return kubeOf(input.site).existingNamespaces(input.namespaces);
    },

    /**
     * The site that now serves is the one to back up: its location read-write, whoever made it
     * read-only (this run, or an earlier failover that fenced it), and no fence marks left on its
     * workloads (their replicas and schedules came from the restore).
     */
    async promoteSite(input: { site: string; namespaces: string[] }): Promise<string[]> {
      const s = gw.site(input.site);
      const kube = kubeOf(s.name);
      const done: string[] = [];
      for (const w of await kube.workloadsIn(input.namespaces)) {
        const c = clearFenceChange(w);
        if (!c) continue;
        await kube.patchWorkload(w, c.change);
        done.push(c.item);
      }
      await gw.velero(s.name).patchStorageLocation(s.velero.storageLocation, {
        accessMode: 'ReadWrite',
        annotations: { [MODE_BEFORE]: null },
      });
      done.push(`BackupStorageLocation ${s.velero.storageLocation} ReadWrite`);
      done.push(...(await unpauseSchedules(s.name, undefined)));
      return done;
    },
  };
}

export function createFailoverActivities(gw: Gateways) {
  return {
    /** Read-only: everything the go/no-go needs to know, and whether the failover may go ahead. */
    async failoverPreflight(input: { from: string; to: string; namespaces?: string[] }): Promise<FailoverPreflight> {
      const f = failoverSettings(gw);
      // The app's namespaces only: a run started by any client gets the CLI's --namespaces check.
      const outside = (input.namespaces ?? []).filter((ns) => !f.namespaces.includes(ns));
      if (outside.length)
        throw failure(
          FailureType.FailoverRefused,
          `namespaces ${outside.join(', ')} are not in failover.namespaces (${f.namespaces.join(', ')})`,
        );
      const from = gw.site(input.from);
      const to = gw.site(input.to);
      if (from.name === to.name)
        throw failure(FailureType.FailoverRefused, `--from and --to are the same site (${from.name})`);
      const namespaces = input.namespaces?.length ? input.namespaces : f.namespaces;
      const target = gw.config.targets[f.tier];
      if (!target) throw failure(FailureType.PreflightFailed, `unknown tier ${f.tier}`);
      const dnsCfg = gw.config.dns;
      if (!dnsCfg) throw failure(FailureType.PreflightFailed, "no dns section in the worker's config");
      if (!from.appAddress || !to.appAddress)
        throw failure(FailureType.PreflightFailed, 'both sites need an appAddress');
      const kube = gw.kube(to.cluster.name);
      const warnings: string[] = [];

      const [{ drReady, bsl }, backups, records, primary, existing] = await Promise.all([
        siteReadiness(gw, to),
        gw.velero(to.name).backups(),
        Promise.all(
          dnsCfg.records.map(async (r) => ({
            name: r.name,
            ttl: r.ttl,
            addresses: (await gw.dns().getA(r.name))?.addresses ?? [],
          })),
        ),
        gw.kube(from.cluster.name).readyz(3000),
        kube.existingNamespaces(namespaces),
      ]);
      const newest = newestCompleted(backups, namespaces, to.velero.storageLocation);
      return {
        tier: f.tier,
        rpoTargetMs: target.rpo,
        rtoTargetMs: target.rto,
        rpoPolicy: f.rpoPolicy,
        namespaces,
        records,
        fromAddress: from.appAddress,
        toAddress: to.appAddress,
        drReady,
        storageLocation: {
          name: to.velero.storageLocation,
          phase: bsl?.phase,
          accessMode: bsl?.accessMode ?? 'unknown',
        },
        backup: newest ? backupRef(newest) : undefined,
        existingAtTarget: existing,
        primaryReachable: primary.ready,
        primaryDetail: primary.detail.slice(0, 120),
        verifyTimeoutMs: f.verifyTimeout,
        warnings,
      };
    },
    ...createFencingActivities(gw),
    ...createVeleroActivities(gw),
    ...createSiteCheckActivities(gw),
    ...createDnsActivities(gw),
    ...createProbeActivities(gw),
    ...createNotifyActivities(gw),
  };
}
