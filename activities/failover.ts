// Site failover activities over the kube, velero and dns gateways. Each looks before it acts, so a
// retried or resumed activity never does a destructive step twice: fencing records what it changed
// in annotations on the objects themselves, and undoing reads them back.
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, failure } from '../common/errors.ts';
import type { BackupRef, CheckResult, FailoverPreflight } from '../common/failover.ts';
import type { SiteConfig } from '../config/schema.ts';
import { type BackupInfo, restoreInfo, type RestoreResults } from '../gateways/velero.ts';
import type { Gateways } from '../worker/gateways.ts';
import { heartbeat } from './support.ts';

/** Annotations fencing leaves, so unfencing (and a retried fence) knows what it did. */
export const FENCED_REPLICAS = 'drctl.io/fenced-replicas';
export const FENCED_BY = 'drctl.io/fenced-by';
export const MODE_BEFORE = 'drctl.io/access-mode-before';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function httpOk(url: string, host?: string, timeoutMs = 3000): Promise<{ ok: boolean; detail: string }> {
  try {
    const res = await fetch(url, { headers: host ? { Host: host } : {}, signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.text()).trim().slice(0, 120);
    return { ok: res.status === 200, detail: `HTTP ${res.status}${body ? ` ${body}` : ''}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { ok: false, detail: e.cause?.code ?? e.message };
  }
}

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

/** Is the site ready to take workloads: its API server, its nodes, its Velero storage location. */
export async function siteReadiness(
  gw: Gateways,
  site: SiteConfig,
): Promise<{ drReady: CheckResult[]; bsl?: { phase?: string; accessMode: string; message?: string } }> {
  const kube = gw.kube(site.cluster.name);
  const [readyz, nodes, bsl] = await Promise.all([
    kube.readyz(),
    kube.nodes().catch((e: Error) => e),
    gw.velero(site.name).storageLocation(site.velero.storageLocation),
  ]);
  const drReady: CheckResult[] = [
    { check: `${site.name} API server ready`, ok: readyz.ready, detail: readyz.detail.slice(0, 120) },
    nodes instanceof Error
      ? { check: `${site.name} nodes Ready`, ok: false, detail: nodes.message }
      : {
          check: `${site.name} nodes Ready`,
          ok: nodes.length > 0 && nodes.every((n) => n.ready),
          detail: `${nodes.filter((n) => n.ready).length}/${nodes.length} Ready`,
        },
    {
      check: `${site.name} Velero sees BackupStorageLocation ${site.velero.storageLocation}`,
      ok: bsl?.phase === 'Available',
      detail: bsl
        ? `${bsl.phase ?? 'unknown'}, ${bsl.accessMode}${bsl.message ? `: ${bsl.message}` : ''}`
        : 'not found',
    },
  ];
  return { drReady, bsl };
}

export function createFailoverActivities(gw: Gateways) {
  const cfg = () => {
    const f = gw.config.failover;
    if (!f) throw failure(FailureType.PreflightFailed, "no failover section in the worker's config");
    return f;
  };
  const siteOf = (name: string): SiteConfig => gw.site(name);
  const kubeOf = (site: string) => gw.kube(siteOf(site).cluster.name);

  async function probe(site: string): Promise<{ ok: boolean; detail: string }> {
    const s = siteOf(site);
    if (!s.appEndpoint) return { ok: false, detail: `site ${site} has no appEndpoint` };
    return httpOk(s.appEndpoint);
  }

  /** The post-restore checklist (the seed's "pods Ready but 503" questions), once. */
  async function checklist(
    site: string,
    namespaces: string[],
    expected: { secrets: string[]; configMaps: string[] },
  ): Promise<CheckResult[]> {
    const kube = kubeOf(site);
    const out: CheckResult[] = [];
    for (const ns of namespaces) {
      const [deps, eps, pods, pvcs, secrets, cms] = await Promise.all([
        kube.deployments(ns),
        kube.serviceEndpoints(ns),
        kube.pods(ns),
        kube.pvcs(ns),
        kube.names('Secret', ns),
        kube.names('ConfigMap', ns),
      ]);
      const notAvail = deps.filter((d) => d.available < d.replicas);
      out.push({
        check: `${ns}: deployments available`,
        ok: deps.length > 0 && notAvail.length === 0,
        detail:
          deps.length === 0
            ? 'no deployments'
            : notAvail.length
              ? notAvail.map((d) => `${d.name} ${d.available}/${d.replicas}`).join(', ')
              : deps.map((d) => `${d.name} ${d.available}/${d.replicas}`).join(', '),
      });
      const empty = eps.filter((e) => e.ready === 0);
      out.push({
        check: `${ns}: endpointslices populated`,
        ok: empty.length === 0,
        detail: empty.length
          ? `no ready endpoints: ${empty.map((e) => e.service).join(', ')}`
          : eps.map((e) => `${e.service}: ${e.ready}`).join(', ') || 'no services with selectors',
      });
      const unbound = pvcs.filter((c) => c.phase !== 'Bound');
      out.push({
        check: `${ns}: pvcs bound`,
        ok: unbound.length === 0,
        detail: unbound.length ? unbound.map((c) => `${c.name} ${c.phase}`).join(', ') : `${pvcs.length} bound`,
      });
      const missing = [
        ...expected.secrets
          .filter((x) => x.startsWith(`${ns}/`) && !secrets.includes(x.slice(ns.length + 1)))
          .map((x) => `Secret ${x}`),
        ...expected.configMaps
          .filter((x) => x.startsWith(`${ns}/`) && !cms.includes(x.slice(ns.length + 1)))
          .map((x) => `ConfigMap ${x}`),
      ];
      out.push({
        check: `${ns}: secrets and configmaps from the backup present`,
        ok: missing.length === 0,
        detail: missing.length ? `missing ${missing.join(', ')}` : 'all present',
      });
      const pending = pods.filter((p) => p.phase === 'Pending');
      out.push({
        check: `${ns}: no pending pods`,
        ok: pending.length === 0,
        detail: pending.length
          ? pending.map((p) => `${p.name}${p.unschedulable ? ` (${p.unschedulable})` : ''}`).join('; ')
          : `${pods.length} pods, ${pods.filter((p) => p.ready).length} ready`,
      });
    }
    const dns = (await kube.deployments('kube-system')).filter((d) => d.name === 'coredns');
    out.push({
      check: 'cluster DNS (kube-system/coredns) available',
      ok: dns.length === 1 && dns[0]!.available > 0 && dns[0]!.available >= dns[0]!.replicas,
      detail: dns[0] ? `${dns[0].available}/${dns[0].replicas}` : 'no coredns deployment',
    });
    const app = await probe(site);
    out.push({ check: `app endpoint ${siteOf(site).appEndpoint ?? '(none)'}`, ok: app.ok, detail: app.detail });
    return out;
  }

  return {
    /** Read-only: everything the go/no-go needs to know, and whether the failover may go ahead. */
    async failoverPreflight(input: { from: string; to: string; namespaces?: string[] }): Promise<FailoverPreflight> {
      const f = cfg();
      const from = siteOf(input.from);
      const to = siteOf(input.to);
      if (from.name === to.name)
        throw failure(FailureType.FailoverRefused, `--from and --to are the same site (${from.name})`);
      const namespaces = input.namespaces?.length ? input.namespaces : f.namespaces;
      const target = gw.config.targets[f.tier];
      if (!target) throw failure(FailureType.PreflightFailed, `unknown tier ${f.tier}`);
      const dnsCfg = gw.config.dns;
      if (!dnsCfg) throw failure(FailureType.PreflightFailed, "no dns section in the worker's config");
      if (!from.appAddress || !to.appAddress)
        throw failure(FailureType.PreflightFailed, 'both sites need an appAddress');
      const kube = kubeOf(to.name);
      const velero = gw.velero(to.name);
      const warnings: string[] = [];

      const [{ drReady, bsl }, backups, records, primary, existing] = await Promise.all([
        siteReadiness(gw, to),
        velero.backups(),
        Promise.all(
          dnsCfg.records.map(async (r) => ({
            name: r.name,
            ttl: r.ttl,
            addresses: (await gw.dns().getA(r.name))?.addresses ?? [],
          })),
        ),
        kubeOf(from.name).readyz(3000),
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

    /** Failback's first step: a fresh backup of the serving site, visible at the other site's Velero. */
    async takeBackup(input: {
      site: string;
      seenBy: string;
      name: string;
      namespaces: string[];
      timeoutMs?: number;
    }): Promise<BackupRef> {
      const s = siteOf(input.site);
      const velero = gw.velero(s.name);
      await velero.create('backups', 'Backup', {
        metadata: { name: input.name, labels: { 'app.kubernetes.io/managed-by': 'drctl' } },
        spec: {
          includedNamespaces: input.namespaces,
          storageLocation: s.velero.storageLocation,
          snapshotVolumes: false,
          ttl: '720h0m0s',
        },
      });
      const deadline = Date.now() + (input.timeoutMs ?? 5 * 60_000);
      for (;;) {
        const b = await velero.get('backups', input.name);
        const phase = String(b?.status?.phase ?? 'New');
        heartbeat({ phase });
        if (phase === 'Completed') break;
        if (['Failed', 'PartiallyFailed', 'FailedValidation'].includes(phase)) {
          throw ApplicationFailure.create({
            type: FailureType.VeleroError,
            nonRetryable: true,
            message: `backup ${input.name} at ${s.name} ended ${phase}: ${JSON.stringify(b?.status?.validationErrors ?? b?.status?.failureReason ?? '')}`,
          });
        }
        if (Date.now() > deadline)
          throw failure(FailureType.Timeout, `backup ${input.name} at ${s.name} still ${phase}`);
        await sleep(1000);
      }
      // The other site's Velero learns of the backup through its backup-sync loop.
      const seen = gw.velero(input.seenBy);
      for (;;) {
        const b = await seen.get('backups', input.name);
        heartbeat({ phase: 'syncing' });
        if (b?.status?.phase === 'Completed')
          return backupRef((await seen.backups()).find((x) => x.name === input.name)!);
        if (Date.now() > deadline)
          throw failure(
            FailureType.Timeout,
            `backup ${input.name} not visible at ${input.seenBy} yet (Velero backup sync)`,
          );
        await sleep(1000);
      }
    },

    /** Scales the primary's workloads to 0 and makes its backup location read-only. Remembers what it changed. */
    async fencePrimary(input: {
      site: string;
      namespaces: string[];
      tag: string;
    }): Promise<{ fenced: string[]; skipped?: string }> {
      const s = siteOf(input.site);
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
      const s = siteOf(input.site);
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
      const s = siteOf(input.site);
      const kube = kubeOf(s.name);
      const done: string[] = [];
      for (const d of await kube.deploymentsIn(input.namespaces)) {
        if (d.annotations[FENCED_REPLICAS] === undefined) continue;
        await kube.patchDeployment(d.namespace, d.name, {
          annotations: { [FENCED_REPLICAS]: null, [FENCED_BY]: null },
        });
        done.push(`${d.namespace}/${d.name}: fence marks cleared`);
      }
      await gw.velero(s.name).mergePatch('backupstoragelocations', s.velero.storageLocation, {
        metadata: { annotations: { [MODE_BEFORE]: null } },
        spec: { accessMode: 'ReadWrite' },
      });
      done.push(`BackupStorageLocation ${s.velero.storageLocation} ReadWrite`);
      return done;
    },

    /** Creates the Velero Restore (once: the name is the run's) and waits for it to finish. */
    async veleroRestore(input: {
      site: string;
      backup: string;
      namespaces: string[];
      restoreName: string;
      timeoutMs?: number;
    }) {
      const velero = gw.velero(input.site);
      await velero.create('restores', 'Restore', {
        metadata: { name: input.restoreName, labels: { 'app.kubernetes.io/managed-by': 'drctl' } },
        // Endpoints and EndpointSlices name the source site's pod IPs: restored, they would stay
        // stale next to the ones the target's controllers make (and fool the endpoint check).
        spec: {
          backupName: input.backup,
          includedNamespaces: input.namespaces,
          excludedResources: ['endpoints', 'endpointslices.discovery.k8s.io'],
          existingResourcePolicy: 'update',
          restorePVs: false,
        },
      });
      const deadline = Date.now() + (input.timeoutMs ?? cfg().restoreTimeout);
      for (;;) {
        const o = await velero.get('restores', input.restoreName);
        if (!o) throw failure(FailureType.VeleroError, `restore ${input.restoreName} disappeared`);
        const r = restoreInfo(o);
        heartbeat({ phase: r.phase, items: r.itemsRestored });
        if (r.phase === 'Completed') return r;
        if (r.phase === 'PartiallyFailed' || r.phase === 'Failed' || r.phase === 'FailedValidation') {
          let items: string[] = [];
          try {
            const res = await velero.download<RestoreResults>('RestoreResults', input.restoreName);
            items = [
              ...(res.errors.velero ?? []).map((m) => `velero: ${m}`),
              ...(res.errors.cluster ?? []).map((m) => `cluster: ${m}`),
              ...Object.entries(res.errors.namespaces ?? {}).flatMap(([ns, ms]) => ms.map((m) => `${ns}: ${m}`)),
            ];
          } catch (err) {
            items = [`(per-item results unavailable: ${(err as Error).message})`];
          }
          throw ApplicationFailure.create({
            type: FailureType.VeleroError,
            nonRetryable: true,
            message: `Velero restore ${input.restoreName} ended ${r.phase}${r.failureReason ? ` (${r.failureReason})` : ''}: ${r.errors} error(s)\n${items.join('\n')}`,
            details: [{ phase: r.phase, errors: items }],
          });
        }
        if (Date.now() > deadline)
          throw failure(
            FailureType.Timeout,
            `restore ${input.restoreName} still ${r.phase} after ${Math.round((input.timeoutMs ?? cfg().restoreTimeout) / 1000)} s`,
          );
        // A lab restore takes ~1.5 s: a 1 s poll added up to a second to the RTO (bench/failover.ts).
        await sleep(250);
      }
    },

    /**
     * Undo of the restore: deletes the namespaces the restore created (they did not exist before)
     * and fences again what it updated in namespaces that did; then the Restore object.
     */
    async removeRestored(input: {
      site: string;
      restoreName: string;
      created: string[];
      existed: string[];
      tag: string;
    }): Promise<string[]> {
      const kube = kubeOf(input.site);
      const done: string[] = [];
      await Promise.all(
        input.created.map(async (ns) => {
          await kube.deleteNamespace(ns, 180_000, () => heartbeat({ deleting: ns }));
          done.push(`namespace ${ns} deleted`);
        }),
      );
      for (const d of await kube.deploymentsIn(input.existed)) {
        if (d.replicas === 0) continue;
        await kube.patchDeployment(d.namespace, d.name, { replicas: 0 });
        done.push(`${d.namespace}/${d.name} →0`);
      }
      await gw.velero(input.site).delete('restores', input.restoreName);
      return done;
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

    /** Runs the checklist until every check passes (pods take a moment) or the time is up. */
    async verifySite(input: {
      site: string;
      namespaces: string[];
      expected: { secrets: string[]; configMaps: string[] };
      timeoutMs?: number;
    }): Promise<CheckResult[]> {
      const deadline = Date.now() + (input.timeoutMs ?? cfg().verifyTimeout);
      for (;;) {
        const checks = await checklist(input.site, input.namespaces, input.expected);
        heartbeat({ failing: checks.filter((c) => !c.ok).map((c) => c.check) });
        if (checks.every((c) => c.ok)) return checks;
        if (Date.now() > deadline) {
          throw ApplicationFailure.create({
            type: FailureType.VerificationFailed,
            nonRetryable: true,
            message: `post-restore verification failed at ${input.site}:\n${checks
              .filter((c) => !c.ok)
              .map((c) => `${c.check}: ${c.detail}`)
              .join('\n')}`,
            details: [checks],
          });
        }
        await sleep(1000);
      }
    },

    async probeApp(input: { site: string }): Promise<{ ok: boolean; detail: string }> {
      return probe(input.site);
    },

    /** The health watch's probe: the app for the serving site, the API server for a standby. */
    async probeSite(input: { site: string; as: 'app' | 'standby' }): Promise<{ ok: boolean; detail: string }> {
      if (input.as === 'app') return probe(input.site);
      const r = await kubeOf(input.site).readyz(3000);
      return { ok: r.ready, detail: `API ${r.detail.slice(0, 80)}` };
    },

    /** The health watch's settings, and the sites that have an app endpoint to probe. */
    async loadWatchPolicy(input: { record: string }) {
      const f = cfg();
      if (!gw.config.dns?.records.some((r) => r.name === input.record)) {
        throw ApplicationFailure.create({
          type: FailureType.PreflightFailed,
          nonRetryable: true,
          message: `record ${input.record} is not in the config's dns.records`,
        });
      }
      const w = f.healthWatch;
      return {
        sites: gw.config.sites.filter((s) => s.appEndpoint && s.appAddress).map((s) => s.name),
        intervalMs: w.interval,
        failuresToDown: w.failuresToDown,
        successesToUp: w.successesToUp,
        autoFailover: w.autoFailover,
        autoApprove: w.autoApprove,
        webUi: gw.config.temporal.webUi,
      };
    },

    /** Which site the record points at now (by the sites' appAddress), per the DNS server's database. */
    async servingSite(input: { record: string }): Promise<{ site?: string; addresses: string[] }> {
      const addresses = (await gw.dns().getA(input.record))?.addresses ?? [];
      return { site: gw.config.sites.find((s) => s.appAddress && addresses.includes(s.appAddress))?.name, addresses };
    },

    /** Points the records at `addresses` (PowerDNS REPLACE: idempotent). Returns what they were. */
    async switchDns(input: {
      records: { name: string; ttl: number }[];
      addresses: string[];
    }): Promise<{ name: string; before: string[] }[]> {
      const dns = gw.dns();
      const out: { name: string; before: string[] }[] = [];
      for (const r of input.records) {
        const before = (await dns.getA(r.name))?.addresses ?? [];
        // No addresses: the record did not exist before (a drill record's undo), so remove it.
        if (input.addresses.length) await dns.setA({ name: r.name, ttl: r.ttl, addresses: input.addresses });
        else await dns.deleteA(r.name);
        out.push({ name: r.name, before });
      }
      return out;
    },

    /** The authoritative server answers the new addresses, and the app answers through that name. */
    async verifyDns(input: {
      records: string[];
      addresses: string[];
      site: string;
      timeoutMs?: number;
    }): Promise<CheckResult[]> {
      const dns = gw.dns();
      const health = siteOf(input.site).appEndpoint;
      const deadline = Date.now() + (input.timeoutMs ?? 30_000);
      for (;;) {
        const out: CheckResult[] = [];
        for (const name of input.records) {
          const ans = await dns
            .resolveA(name)
            .catch((e: Error) => ({ addresses: [] as string[], ttl: 0, error: e.message }));
          const ok = ans.addresses.join(',') === [...input.addresses].sort().join(',');
          out.push({
            check: `DNS ${name} → ${input.addresses.join(',')}`,
            ok,
            detail: 'error' in ans ? ans.error : `answers ${ans.addresses.join(',')} (ttl ${ans.ttl})`,
          });
          if (ok && health && ans.addresses[0]) {
            const u = new URL(health);
            u.hostname = ans.addresses[0];
            const r = await httpOk(u.toString(), `${name}${u.port ? `:${u.port}` : ''}`);
            out.push({ check: `app answers through ${name}`, ok: r.ok, detail: `${u.toString()}: ${r.detail}` });
          }
        }
        heartbeat({ failing: out.filter((c) => !c.ok).length });
        if (out.every((c) => c.ok)) return out;
        if (Date.now() > deadline) {
          throw ApplicationFailure.create({
            type: FailureType.VerificationFailed,
            nonRetryable: true,
            message: `DNS switch not effective:\n${out
              .filter((c) => !c.ok)
              .map((c) => `${c.check}: ${c.detail}`)
              .join('\n')}`,
            details: [out],
          });
        }
        await sleep(500);
      }
    },

    /** Tells people (the config's webhook) that something needs them. Best effort, never fails the caller. */
    async notify(input: { event: string; text: string; workflowId?: string; url?: string }): Promise<string> {
      const hook = gw.config.failover?.healthWatch.webhook;
      if (!hook) return 'no webhook configured';
      try {
        const res = await fetch(hook, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(input),
          signal: AbortSignal.timeout(5000),
        });
        return `webhook HTTP ${res.status}`;
      } catch (err) {
        return `webhook failed: ${(err as Error).message}`;
      }
    },
  };

  async function setMode(site: string, mode: 'ReadOnly' | 'ReadWrite', tag: string) {
    const s = siteOf(site);
    const velero = gw.velero(s.name);
    const bsl = await velero.get('backupstoragelocations', s.velero.storageLocation);
    if (!bsl) throw failure(FailureType.VeleroError, `${s.name}: no BackupStorageLocation ${s.velero.storageLocation}`);
    const ann = bsl.metadata.annotations ?? {};
    const current = String(bsl.spec?.accessMode ?? 'ReadWrite');
    // Remember the mode from before the first change only (a retry must not overwrite it).
    const remember = ann[MODE_BEFORE] === undefined ? { [MODE_BEFORE]: `${current}:${tag}` } : {};
    if (current === mode && !Object.keys(remember).length) return;
    await velero.mergePatch('backupstoragelocations', s.velero.storageLocation, {
      metadata: { annotations: remember },
      spec: { accessMode: mode },
    });
  }

  async function restoreMode(site: string, tag: string): Promise<string[]> {
    const s = siteOf(site);
    const velero = gw.velero(s.name);
    const bsl = await velero.get('backupstoragelocations', s.velero.storageLocation);
    const before = bsl?.metadata.annotations?.[MODE_BEFORE];
    if (!bsl || !before) return [];
    const cut = before.indexOf(':');
    const mode = before.slice(0, cut);
    if (before.slice(cut + 1) !== tag) return [];
    await velero.mergePatch('backupstoragelocations', s.velero.storageLocation, {
      metadata: { annotations: { [MODE_BEFORE]: null } },
      spec: { accessMode: mode },
    });
    return [`BackupStorageLocation ${s.velero.storageLocation} ${mode}`];
  }
}
