// Restoring deleted namespaces in place (`drctl restore namespace`): the read-only preflight, and
// making the volumes their claims left behind bindable again. Velero restores the claims; a Retain
// volume still names the deleted claim's uid (Released), so the restored claim could never bind it
// and its data would stay out of reach. Releasing it (the claim's uid removed) is marked on the
// volume itself (the uid it had, the run that removed it), so a retried or resumed activity never
// does it twice and an undo knows exactly what to put back.
import { FailureType, failure } from '../common/errors.ts';
import {
  backupsBefore,
  contentsOf,
  holds,
  type NamespaceRestorePreflight,
  type RetainedVolume,
  systemNamespace,
} from '../common/namespace-restore.ts';
import type { Gateways } from '../gateways/index.ts';
import type { PersistentVolumeState } from '../gateways/kube.ts';
import { recordsPointingAt } from './dns.ts';
import { siteReadiness } from './site-checks.ts';
import { backupRef } from './velero.ts';

/** On a volume this run released: the claim uid it named before, and the run. */
export const CLAIM_UID_BEFORE = 'drctl.io/claim-uid-before';
export const RELEASED_BY = 'drctl.io/released-by';

/** A Retain volume of one of `namespaces` whose claim is gone: its data waits for the restored claim. */
function retained(v: PersistentVolumeState, namespaces: string[]): boolean {
  return v.reclaimPolicy === 'Retain' && !!v.claim && namespaces.includes(v.claim.namespace) && v.phase !== 'Bound';
}

export function createNamespaceRestoreActivities(gw: Gateways) {
  const kubeOf = (site: string) => gw.kube(gw.site(site).cluster.name);

  return {
    /** Read-only: what the go/no-go shows, and what refuses the run. */
    async namespaceRestorePreflight(input: {
      site: string;
      namespaces: string[];
      before: string;
    }): Promise<NamespaceRestorePreflight> {
      const site = gw.site(input.site);
      const system = input.namespaces.filter((ns) => systemNamespace(ns, site.velero.namespace));
      if (!input.namespaces.length || system.length)
        throw failure(
          FailureType.PreflightFailed,
          input.namespaces.length
            ? `${system.join(', ')}: the cluster's own namespaces are never restored in place`
            : 'no namespaces to restore',
        );
      const before = Date.parse(input.before);
      if (Number.isNaN(before)) throw failure(FailureType.PreflightFailed, `before: not a time (${input.before})`);
      const kube = kubeOf(site.name);
      const velero = gw.velero(site.name);
      const [{ drReady }, present, backups, volumes, records] = await Promise.all([
        siteReadiness(gw, site),
        Promise.all(input.namespaces.map(async (ns) => ({ namespace: ns, ...(await kube.namespace(ns)) }))),
        velero.backups(),
        kube.persistentVolumes(),
        recordsPointingAt(gw, site.name),
      ]);
      // The newest backup before the loss that holds the namespaces: a scheduled backup that ran
      // after the deletion holds nothing of them, and restoring it would bring nothing back.
      const warnings: string[] = [];
      let chosen;
      let list: Record<string, string[]> = {};
      for (const b of backupsBefore(backups, input.namespaces, site.velero.storageLocation, before).slice(0, 20)) {
        const l = await velero.download<Record<string, string[]>>('BackupResourceList', b.name);
        if (holds(l, input.namespaces)) {
          [chosen, list] = [b, l];
          break;
        }
        warnings.push(
          `backup ${b.name} (started ${b.startedAt ?? '?'}) skipped: it holds nothing of ${input.namespaces.filter((ns) => !holds(l, [ns])).join(', ')} (taken after the deletion?)`,
        );
      }
      for (const p of present)
        if (p.phase === 'Active')
          warnings.push(
            `namespace ${p.namespace} exists (created ${p.createdAt ?? '?'}): what is in it is kept as it is, only what is missing is restored`,
          );
      const kept: RetainedVolume[] = volumes
        .filter((v) => retained(v, input.namespaces))
        .map((v) => ({
          name: v.name,
          claim: `${v.claim!.namespace}/${v.claim!.name}`,
          phase: v.phase,
          staleUid: v.claim!.uid,
        }));
      for (const claim of list['v1/PersistentVolumeClaim'] ?? []) {
        if (!input.namespaces.some((ns) => claim.startsWith(`${ns}/`))) continue;
        if (
          !kept.some((v) => v.claim === claim) &&
          !volumes.some((v) => v.phase === 'Bound' && `${v.claim?.namespace}/${v.claim?.name}` === claim)
        )
          warnings.push(
            `claim ${claim}: no retained volume names it; the backup holds no volume data (no snapshots), so it comes back empty or Pending`,
          );
      }
      const f = gw.config.failover;
      const tier = f && input.namespaces.every((ns) => f.namespaces.includes(ns)) ? f.tier : undefined;
      const rpo = tier ? gw.config.targets[tier]?.rpo : undefined;
      return {
        site: site.name,
        namespaces: input.namespaces,
        before: new Date(before).toISOString(),
        drReady,
        present: present.map((p) => ({
          namespace: p.namespace,
          phase: p.phase ?? 'absent',
          createdAt: p.createdAt,
        })),
        backup: chosen
          ? { ...backupRef(chosen, before), startedAt: chosen.startedAt ?? chosen.completedAt! }
          : undefined,
        contents: contentsOf(list, input.namespaces),
        volumes: kept,
        records,
        siteAddress: site.appAddress,
        tier,
        rpoTargetSeconds: rpo === undefined ? undefined : rpo / 1000,
        warnings,
      };
    },

    /**
     * Makes the Retain volumes the deleted claims left behind bindable by the restored claims: the
     * stale claim uid removed (the volume stays reserved for that namespace/name). Only a volume of
     * `namespaces`, not Bound, whose claim does not exist; each marked with the uid it had and the
     * run. Idempotent: a volume this run marked already is reported again, not changed.
     */
    async releaseRetainedVolumes(input: { site: string; namespaces: string[]; tag: string }): Promise<string[]> {
      const kube = kubeOf(input.site);
      const out: string[] = [];
      for (const v of await kube.persistentVolumes()) {
        if (!retained(v, input.namespaces)) continue;
        if (v.annotations[RELEASED_BY] === input.tag) {
          out.push(v.name);
          continue;
        }
        if (!v.claim?.uid) continue; // nothing stale: it binds as it is
        // A namespace that is gone lists no claims; an API error is not "no claims": it fails the step.
        const claims = await kube.pvcs(v.claim.namespace);
        if (claims.some((c) => c.name === v.claim!.name)) continue; // its claim exists: not ours to touch
        await kube.patchVolume(v.name, {
          annotations: { [CLAIM_UID_BEFORE]: v.claim.uid, [RELEASED_BY]: input.tag },
          claimUid: null,
        });
        out.push(v.name);
      }
      return out;
    },

    /**
     * After the run: the marks of `tag` removed. `undo`: a volume that no claim bound again gets the
     * claim uid it had before the run (Released, as it was).
     */
    async settleReleasedVolumes(input: { site: string; tag: string; undo: boolean }): Promise<string[]> {
      const kube = kubeOf(input.site);
      const out: string[] = [];
      for (const v of await kube.persistentVolumes()) {
        if (v.annotations[RELEASED_BY] !== input.tag) continue;
        const back = input.undo && v.phase !== 'Bound' && !v.claim?.uid ? v.annotations[CLAIM_UID_BEFORE] : undefined;
        await kube.patchVolume(v.name, {
          annotations: { [CLAIM_UID_BEFORE]: null, [RELEASED_BY]: null },
          ...(back ? { claimUid: back } : {}),
        });
        out.push(back ? `${v.name} names claim uid ${back} again (${v.phase} → Released)` : `${v.name} ${v.phase}`);
      }
      return out;
    },
  };
}
