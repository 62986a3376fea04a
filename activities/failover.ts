// Site failover: the go/no-go's read-only preflight and fencing the primary (its workloads to 0,
// its backup location read-only), plus every activity the site runbooks share, by concern:
// site-checks.ts, velero.ts, dns.ts, probe.ts, notify.ts. Each looks before it acts, so a retried
// or resumed activity never does a destructive step twice: fencing records what it changed in
// annotations on the objects themselves, and undoing reads them back.
import { FailureType, failure } from '../common/errors.ts';
import type { FailoverPreflight } from '../common/failover.ts';
import type { Gateways } from '../gateways/index.ts';
import { createDnsActivities } from './dns.ts';
import { createNotifyActivities } from './notify.ts';
import { createProbeActivities } from './probe.ts';
import { failoverSettings } from './settings.ts';
import { createSiteCheckActivities, siteReadiness } from './site-checks.ts';
import { backupRef, createVeleroActivities, newestCompleted } from './velero.ts';

/** Annotations fencing leaves, so unfencing (and a retried fence) knows what it did. */
export const FENCED_REPLICAS = 'drctl.io/fenced-replicas';
export const FENCED_BY = 'drctl.io/fenced-by';
export const MODE_BEFORE = 'drctl.io/access-mode-before';

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
    if (bsl.accessMode === mode && !Object.keys(remember).length) return;
    await velero.patchStorageLocation(s.velero.storageLocation, { accessMode: mode, annotations: remember });
  }

  async function restoreMode(site: string, tag: string): Promise<string[]> {
    const s = gw.site(site);
    const velero = gw.velero(s.name);
    const before = (await velero.storageLocation(s.velero.storageLocation))?.annotations[MODE_BEFORE];
    if (!before) return [];
    const cut = before.indexOf(':');
    const mode = before.slice(0, cut);
    if (before.slice(cut + 1) !== tag) return [];
    await velero.patchStorageLocation(s.velero.storageLocation, {
      accessMode: mode,
      annotations: { [MODE_BEFORE]: null },
    });
    return [`BackupStorageLocation ${s.velero.storageLocation} ${mode}`];
  }

  return {
    /** Scales the primary's workloads to 0 and makes its backup location read-only. Remembers what it changed. */
    async fencePrimary(input: {
      site: string;
      namespaces: string[];
      tag: string;
    }): Promise<{ fenced: string[]; skipped?: string }> {
      const s = gw.site(input.site);
      const kube = kubeOf(s.name);
      const ready = await kube.readyz(3000);
      if (!ready.ready)
        return {
          fenced: [],
          skipped: `${s.name} API server not reachable (${ready.detail.slice(0, 80)}): nothing to fence`,
        };
      const fenced: string[] = [];
      for (const d of await kube.deploymentsIn(input.namespaces)) {
        if (d.annotations[FENCED_REPLICAS] !== undefined) {
          fenced.push(`${d.namespace}/${d.name} (already)`);
          continue;
        }
        await kube.patchDeployment(d.namespace, d.name, {
          replicas: 0,
          annotations: { [FENCED_REPLICAS]: String(d.replicas), [FENCED_BY]: input.tag },
        });
        fenced.push(`${d.namespace}/${d.name} ${d.replicas}→0`);
      }
      await setMode(s.name, 'ReadOnly', input.tag);
      fenced.push(`BackupStorageLocation ${s.velero.storageLocation} ReadOnly`);
      return { fenced };
    },

    /** Undo of fencePrimary: replicas and the backup location's mode back to what they were. */
    async unfencePrimary(input: { site: string; namespaces: string[]; tag: string }): Promise<string[]> {
      const s = gw.site(input.site);
      const kube = kubeOf(s.name);
      const done: string[] = [];
      for (const d of await kube.deploymentsIn(input.namespaces)) {
        const before = d.annotations[FENCED_REPLICAS];
        if (before === undefined || d.annotations[FENCED_BY] !== input.tag) continue;
        await kube.patchDeployment(d.namespace, d.name, {
          replicas: Number(before),
          annotations: { [FENCED_REPLICAS]: null, [FENCED_BY]: null },
        });
        done.push(`${d.namespace}/${d.name} →${before}`);
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

    /**
     * The site that now serves is the one to back up: its location read-write, whoever made it
     * read-only (this run, or an earlier failover that fenced it), and no fence marks left on its
     * workloads (their replicas came from the restore).
     */
    async promoteSite(input: { site: string; namespaces: string[] }): Promise<string[]> {
      const s = gw.site(input.site);
      const kube = kubeOf(s.name);
      const done: string[] = [];
      for (const d of await kube.deploymentsIn(input.namespaces)) {
        if (d.annotations[FENCED_REPLICAS] === undefined) continue;
        await kube.patchDeployment(d.namespace, d.name, {
          annotations: { [FENCED_REPLICAS]: null, [FENCED_BY]: null },
        });
        done.push(`${d.namespace}/${d.name}: fence marks cleared`);
      }
      await gw.velero(s.name).patchStorageLocation(s.velero.storageLocation, {
        accessMode: 'ReadWrite',
        annotations: { [MODE_BEFORE]: null },
      });
      done.push(`BackupStorageLocation ${s.velero.storageLocation} ReadWrite`);
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
