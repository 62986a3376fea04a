// Pure decisions of the failover and the health watch (no servers involved): the up/down table,
// the RPO policy, where DNS goes on undo, and the merge patches fencing sends for Deployments,
// StatefulSets and CronJobs (what it remembers, and how an unfence reads it back).
import { describe, expect, it } from 'vitest';
import { createdNamespaces } from '../../activities/velero.ts';
import { dnsOnUndo, rpoVerdict } from '../../common/failover.ts';
import { clearFenceChange, fenceChange, stopChange, unfenceChange } from '../../common/fence.ts';
import { nextHealth, type SiteHealth } from '../../common/health.ts';
import { heldMessage, preempts } from '../../common/lease.ts';
import { type WorkloadChange, type WorkloadState, workloadPatch } from '../../gateways/kube.ts';

const policy = { failuresToDown: 3, successesToUp: 5 };

function feed(probes: boolean[], start: SiteHealth = { up: true, failures: 0, successes: 0 }) {
  let h = start;
  const events: string[] = [];
  probes.forEach((ok, i) => {
    const r = nextHealth(h, ok, policy, `t${i}`, 'site-a', ok ? 'HTTP 200' : 'HTTP 503');
    h = r.health;
    if (r.event) events.push(`${r.event.state}@${r.event.at}`);
  });
  return { h, events };
}

describe('health: 3 failures in a row mark a site down, 5 successes up again', () => {
  it('three consecutive failures mark it down, declared from the first of them', () => {
    const { h, events } = feed([true, false, false, false]);
    expect(events).toEqual(['down@t3']);
    expect(h).toMatchObject({ up: false, firstFailureAt: 't1', since: 't3' });
  });

  it('a flapping endpoint (fail, fail, ok, ...) never goes down', () => {
    const { h, events } = feed([false, false, true, false, false, true, false, true, false, false, true]);
    expect(events).toEqual([]);
    expect(h.up).toBe(true);
  });

  it('a down site needs five good probes in a row; a failure in between starts the count again', () => {
    const down = feed([false, false, false]).h;
    expect(feed([true, true, true, true], down).h.up).toBe(false);
    expect(feed([true, true, true, true, false, true, true, true, true], down).h.up).toBe(false);
    const { h, events } = feed([true, true, true, true, true], down);
    expect(events).toEqual(['up@t4']);
    expect(h).toMatchObject({ up: true, failures: 0 });
  });
});

describe('RPO policy', () => {
  it('a backup within the target passes under either policy', () => {
    expect(rpoVerdict(120, 300_000, 'refuse')).toEqual({ ok: true, refuse: false });
  });
  it('an older one is refused under refuse, allowed with a warning under warn', () => {
    expect(rpoVerdict(301, 300_000, 'refuse')).toMatchObject({
      ok: false,
      refuse: true,
      message: expect.stringContaining('301 s old, over the RPO target of 300 s'),
    });
    expect(rpoVerdict(301, 300_000, 'warn')).toMatchObject({ ok: false, refuse: false });
  });
});

describe('DNS on undo (decided once the old primary is unfenced) ends on a site that serves', () => {
  it('back to the old site whenever it answers', () => {
    expect(dnsOnUndo(true, true)).toBe('revert');
    expect(dnsOnUndo(true, false)).toBe('revert');
  });
  it('rolls forward on the new site when only it answers', () => {
    expect(dnsOnUndo(false, true)).toBe('forward');
  });
  it('neither answers: neither (rolled forward, needs attention), never a revert onto a dead site', () => {
    expect(dnsOnUndo(false, false)).toBe('neither');
  });
});

const TAG = 'failover-site-a-to-site-b.r1';
const w = (x: Partial<WorkloadState> & Pick<WorkloadState, 'kind'>): WorkloadState => ({
  namespace: 'demo-app',
  name: x.kind.toLowerCase(),
  annotations: {},
  ...x,
});
const body = (c: { change?: WorkloadChange } | undefined) => (c?.change ? workloadPatch(c.change) : undefined);
/** The workload after a merge patch of `c` (what the API server would store). */
function applied(x: WorkloadState, c: WorkloadChange): WorkloadState {
  const annotations = { ...x.annotations };
  for (const [k, v] of Object.entries(c.annotations ?? {})) {
    if (v === null) delete annotations[k];
    else annotations[k] = v;
  }
  return {
    ...x,
    annotations,
    ...(c.replicas !== undefined ? { replicas: c.replicas } : {}),
    ...(c.suspend !== undefined ? { suspend: c.suspend } : {}),
  };
}

describe('fencing patches', () => {
  it('a StatefulSet is scaled to 0, its replicas remembered with the run', () => {
    expect(body(fenceChange(w({ kind: 'StatefulSet', replicas: 3 }), TAG))).toEqual({
      metadata: { annotations: { 'drctl.io/fenced-replicas': '3', 'drctl.io/fenced-by': TAG } },
      spec: { replicas: 0 },
    });
  });

  it('a CronJob is suspended, its previous suspend remembered (false, or true when it already was)', () => {
    expect(body(fenceChange(w({ kind: 'CronJob', suspend: false }), TAG))).toEqual({
      metadata: { annotations: { 'drctl.io/fenced-suspend': 'false', 'drctl.io/fenced-by': TAG } },
      spec: { suspend: true },
    });
    expect(body(fenceChange(w({ kind: 'CronJob', suspend: true }), TAG))).toEqual({
      metadata: { annotations: { 'drctl.io/fenced-suspend': 'true', 'drctl.io/fenced-by': TAG } },
      spec: { suspend: true },
    });
  });

  it('a Deployment as before: replicas to 0, remembered', () => {
    expect(fenceChange(w({ kind: 'Deployment', replicas: 2 }), TAG)).toEqual({
      change: { replicas: 0, annotations: { 'drctl.io/fenced-replicas': '2', 'drctl.io/fenced-by': TAG } },
      item: 'Deployment demo-app/deployment 2→0',
    });
  });

  it('fencing again (a retried activity) changes nothing: the value from before the first fence stays', () => {
    for (const x of [w({ kind: 'StatefulSet', replicas: 5 }), w({ kind: 'CronJob', suspend: false })]) {
      const once = applied(x, fenceChange(x, TAG).change!);
      expect(fenceChange(once, TAG).change).toBeUndefined();
      expect(fenceChange(once, 'another-run').change).toBeUndefined();
    }
  });

  it('unfence restores what fence remembered and removes the marks', () => {
    const set = w({ kind: 'StatefulSet', replicas: 3 });
    const fencedSet = applied(set, fenceChange(set, TAG).change!);
    expect(body(unfenceChange(fencedSet, TAG))).toEqual({
      metadata: { annotations: { 'drctl.io/fenced-replicas': null, 'drctl.io/fenced-by': null } },
      spec: { replicas: 3 },
    });
    expect(applied(fencedSet, unfenceChange(fencedSet, TAG)!.change)).toEqual(set);
    for (const suspend of [false, true]) {
      const cron = w({ kind: 'CronJob', suspend });
      const fencedCron = applied(cron, fenceChange(cron, TAG).change!);
      expect(body(unfenceChange(fencedCron, TAG))).toEqual({
        metadata: { annotations: { 'drctl.io/fenced-suspend': null, 'drctl.io/fenced-by': null } },
        spec: { suspend },
      });
      expect(applied(fencedCron, unfenceChange(fencedCron, TAG)!.change)).toEqual(cron);
    }
  });

  it("unfence leaves another run's fence, an unfenced workload, and a mark that is not fencing's", () => {
    const set = w({ kind: 'StatefulSet', replicas: 3 });
    expect(unfenceChange(applied(set, fenceChange(set, 'another-run').change!), TAG)).toBeUndefined();
    expect(unfenceChange(set, TAG)).toBeUndefined();
    const edited = w({
      kind: 'CronJob',
      suspend: true,
      annotations: { 'drctl.io/fenced-suspend': 'maybe', 'drctl.io/fenced-by': TAG },
    });
    expect(unfenceChange(edited, TAG)).toBeUndefined();
    const bad = w({
      kind: 'StatefulSet',
      replicas: 0,
      annotations: { 'drctl.io/fenced-replicas': '-1', 'drctl.io/fenced-by': TAG },
    });
    expect(unfenceChange(bad, TAG)).toBeUndefined();
  });

  it('promotion clears the marks only; an undo at the target stops what existed there, never deleting', () => {
    const cron = w({ kind: 'CronJob', suspend: false });
    expect(body(clearFenceChange(applied(cron, fenceChange(cron, TAG).change!)))).toEqual({
      metadata: { annotations: { 'drctl.io/fenced-suspend': null, 'drctl.io/fenced-by': null } },
    });
    expect(clearFenceChange(cron)).toBeUndefined();
    expect(body(stopChange(w({ kind: 'StatefulSet', replicas: 2 })))).toEqual({ spec: { replicas: 0 } });
    expect(body(stopChange(w({ kind: 'CronJob', suspend: false })))).toEqual({ spec: { suspend: true } });
    expect(stopChange(w({ kind: 'Deployment', replicas: 0 }))).toBeUndefined();
  });
});

describe('what a restore created, and who holds a site', () => {
  it("a restore's resource list: only the namespaces it says it created", () => {
    expect(
      createdNamespaces({
        'v1/Namespace': ['demo-app(created)', 'shared(skipped)', 'other(updated)', 'weird(created)x'],
        'apps/v1/Deployment': ['demo-app/web(created)'],
      }),
    ).toEqual(['demo-app']);
    expect(createdNamespaces({})).toEqual([]);
  });

  it('a drill yields the site to any runbook but another drill; everything else is refused', () => {
    expect(preempts('site-failover', 'drill')).toBe(true);
    expect(preempts('etcd-restore', 'drill')).toBe(true);
    expect(preempts('drill', 'drill')).toBe(false);
    expect(preempts('drill', 'site-failover')).toBe(false);
    expect(preempts('site-failover', 'etcd-restore')).toBe(false);
    expect(
      heldMessage({
        site: 'site-b',
        workflowId: 'drill-q-1',
        runbook: 'drill',
        title: 'DR drill q',
        requestedBy: 'alice',
        since: '2026-12-02T10:00:00.000Z',
      }),
    ).toBe(
      'site-b is held by drill drill-q-1 (DR drill q, requested by alice, since 2026-12-02T10:00:00.000Z): one runbook per site at a time; wait for it to end, or `drctl cancel drill-q-1`',
    );
  });
});
