// Pure drill logic: per-tier verdicts, pods against the source, the criteria, the HTML report,
// and the config's drill plans. No lab needed.
import { describe, expect, it } from 'vitest';
import { renderDrillHtml } from '../../common/drill-html.ts';
import {
  type DrillPlan,
  type DrillReport,
  failureCause,
  podsMatch,
  tierResults,
  verdicts,
} from '../../common/drill.ts';
import { drillSummary } from '../../client/render.ts';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ConfigError, parseConfig } from '../../config/load.ts';

const plan: DrillPlan = {
  name: 'q',
  from: 'site-a',
  to: 'site-b',
  toCluster: 'cluster-b',
  workloads: [
    { tier: 'e-commerce', namespaces: ['shop'] },
    { tier: 'payment', namespaces: ['pay'] },
  ],
  record: { name: 'drill.app.example.com', ttl: 30 },
  criteria: ['backup-present', 'rpo-met', 'rto-met'],
  etcdRestore: false,
  approvalTimeoutMs: 60_000,
  signoffTimeoutMs: 60_000,
  verifyTimeoutMs: 60_000,
  approvers: ['alice', 'bob'],
  twoPersonRule: true,
  targets: { 'e-commerce': { rpoSeconds: 300, rtoSeconds: 900 }, payment: { rpoSeconds: 0, rtoSeconds: 60 } },
};

describe('drill verdicts', () => {
  it("judges RTO and RPO per tier against that tier's targets", () => {
    const t = tierResults(plan, 120, 75);
    expect(t).toEqual([
      {
        tier: 'e-commerce',
        namespaces: ['shop'],
        rpoSeconds: 120,
        rpoTargetSeconds: 300,
        rtoSeconds: 75,
        rtoTargetSeconds: 900,
        rpoMet: true,
        rtoMet: true,
      },
      {
        tier: 'payment',
        namespaces: ['pay'],
        rpoSeconds: 120,
        rpoTargetSeconds: 0,
        rtoSeconds: 75,
        rtoTargetSeconds: 60,
        rpoMet: false,
        rtoMet: false,
      },
    ]);
    // A drill that never served has no RTO: not met.
    expect(tierResults(plan, 10, undefined).every((x) => !x.rtoMet)).toBe(true);
  });

  it("compares the DR site's available pods with the source's replicas", () => {
    expect(podsMatch({ 'shop/web': 3 }, [{ name: 'shop/web', available: 3 }])).toEqual({
      ok: true,
      detail: 'shop/web 3/3',
    });
    expect(podsMatch({ 'shop/web': 3, 'shop/db': 1 }, [{ name: 'shop/web', available: 2 }])).toEqual({
      ok: false,
      detail: 'differs: shop/db missing/1, shop/web 2/3',
    });
    expect(podsMatch(undefined, [])).toMatchObject({ ok: false, detail: expect.stringMatching(/unreachable/) });
    expect(podsMatch({}, [])).toMatchObject({ ok: false });
  });

  it('gives one verdict per criterion of the plan; a step never reached fails', () => {
    const backup = { name: 'b1', completedAt: '2026-11-24T10:00:00Z', ageSeconds: 60, includedNamespaces: ['shop'] };
    const v = verdicts(
      ['backup-present', 'restore-complete', 'pods-match-source', 'app-serves', 'rto-met', 'cleanup'],
      {
        backup,
        restore: { phase: 'Completed', errors: 0, itemsRestored: 9, totalItems: 10 },
        tiers: tierResults({ ...plan, workloads: [plan.workloads[0]!] }, 60, 30),
        cleanup: { ok: true, detail: 'gone' },
      },
    );
    expect(v.map((x) => [x.criterion, x.ok])).toEqual([
      ['backup-present', true],
      ['restore-complete', false], // 9 of 10 items: not all resources
      ['pods-match-source', false],
      ['app-serves', false],
      ['rto-met', true],
      ['cleanup', true],
    ]);
    expect(v[1]!.detail).toBe('Completed, 9/10 items, 0 error(s)');
    expect(v[2]!.detail).toBe('not reached');
  });
});

describe('drill report HTML', () => {
  const report: DrillReport = {
    kind: 'drctl.drill-report/v1',
    plan: 'q',
    workflowId: 'drill-q-1',
    runId: 'r',
    outcome: 'failed',
    requestedBy: 'alice <script>',
    from: 'site-a',
    to: 'site-b',
    record: 'drill.app.example.com',
    namespaces: ['shop'],
    startedAt: '2026-11-24T10:00:00.000Z',
    endedAt: '2026-11-24T10:01:00.000Z',
    tiers: tierResults(plan, 120, 75),
    verdicts: [{ criterion: 'rto-met', ok: false, detail: 'payment: 75.0 s / 60 s' }],
    checks: [],
    timeline: [
      {
        step: 'restore',
        state: 'done',
        startedAt: '2026-11-24T10:00:10.000Z',
        endedAt: '2026-11-24T10:00:20.000Z',
        seconds: 10,
        items: {},
      },
    ],
    approvals: [{ by: 'bob', approve: true, at: '2026-11-24T10:00:05.000Z', accepted: true, reason: 'go' }],
    failures: ['x'],
    compensations: [{ name: 'ns', state: 'done' }],
    warnings: [],
  };
  const html = renderDrillHtml(report);

  it('is self-contained and escapes what people typed', () => {
    expect(html).not.toMatch(/<script|src=|href=/);
    expect(html).toContain('alice &lt;script&gt;');
  });

  it('carries the figures: a bar per tier and metric with its value and target', () => {
    expect(html).toContain('data-metric="payment RTO" data-value="75" data-target="60"');
    expect(html).toContain('data-metric="e-commerce RPO" data-value="120" data-target="300"');
    expect(html).toMatch(/id="outcome" class="badge failed">FAILED</);
    expect(html).toMatch(/approve by <b>bob<\/b>/);
  });
});

describe('a failed report says why (the drill at a DR site whose CoreDNS is down)', () => {
  // What the drill gets when site-b's CoreDNS is scaled to 0: verify gives up on the checklist, the
  // drill record is never switched, so the app never answers and there is no RTO.
  const facts = {
    backup: { name: 'b1', completedAt: '2026-11-24T10:00:00Z', ageSeconds: 60, includedNamespaces: ['shop'] },
    restore: { phase: 'Completed', errors: 0 },
    tiers: tierResults({ ...plan, workloads: [plan.workloads[0]!] }, 60, undefined),
  };
  const v = verdicts(['backup-present', 'restore-complete', 'app-serves', 'rpo-met', 'rto-met'], facts);
  const report: DrillReport = {
    kind: 'drctl.drill-report/v1',
    plan: 'q',
    workflowId: 'drill-q-2',
    runId: 'r',
    outcome: 'failed',
    requestedBy: 'alice',
    from: 'site-a',
    to: 'site-b',
    record: 'drill.app.example.com',
    namespaces: ['shop'],
    startedAt: '2026-11-24T10:00:00.000Z',
    endedAt: '2026-11-24T10:04:00.000Z',
    backup: facts.backup,
    tiers: facts.tiers,
    verdicts: v,
    checks: [],
    timeline: [
      { step: 'restore', state: 'done', items: {} },
      { step: 'verify', state: 'failed', items: {} },
      { step: 'switch-drill-record', state: 'pending', items: {} },
    ],
    approvals: [],
    failures: [
      'post-restore verification failed at site-b:\nshop: deployments available: web 0/2\ncluster DNS (kube-system/coredns) available: 0/2',
    ],
    compensations: [],
    warnings: [],
  };

  it('the cause is the deepest failing check (CoreDNS, not the app it broke), with what to do', () => {
    expect(failureCause(report)).toEqual({
      check: 'cluster DNS (kube-system/coredns) available',
      detail: '0/2',
      action: expect.stringContaining('CoreDNS at site-b is not available') as unknown as string,
    });
    expect(failureCause({ ...report, outcome: 'passed' })).toBeUndefined();
    expect(failureCause({ ...report, outcome: 'cancelled' })).toMatchObject({
      check: 'cancelled',
      detail: 'the drill was cancelled during its verify step, before it could pass',
    });
    // Without a failing check: the step that stopped the drill.
    expect(failureCause({ ...report, failures: ['velero restore timed out'] })).toMatchObject({
      check: 'step verify',
      detail: 'velero restore timed out',
    });
  });

  it('no figure is a "?": a missing one says why', () => {
    const rto = v.find((x) => x.criterion === 'rto-met')!;
    expect(rto.detail).toBe(
      'e-commerce: not measured (the app was never reached: the drill stopped before the drill record was switched) / 900 s',
    );
    expect(v.find((x) => x.criterion === 'restore-complete')!.detail).toBe(
      'Completed, 0 error(s) (Velero reported no item counts)',
    );
    const text = drillSummary(report);
    const html = renderDrillHtml(report);
    expect(text).not.toMatch(/\?/);
    expect(html).not.toMatch(/[>(\s]\?[\s<)]/);
    expect(text).toContain(
      'RTO not measured: the app never answered through drill.app.example.com (cluster DNS (kube-system/coredns) available: 0/2)',
    );
  });

  it('text and HTML lead with it: before the tiers and the verdicts', () => {
    const text = drillSummary(report).split('\n');
    expect(text[1]).toBe('  WHY: cluster DNS (kube-system/coredns) available: 0/2');
    expect(text[2]).toMatch(/^ {2}DO: CoreDNS at site-b is not available/);
    const html = renderDrillHtml(report);
    expect(html.indexOf('id="cause"')).toBeGreaterThan(0);
    expect(html.indexOf('id="cause"')).toBeLessThan(html.indexOf('id="verdicts"'));
    expect(html).toContain('<span id="cause-check">cluster DNS (kube-system/coredns) available</span>');
  });
});

describe('drill plans in the config', () => {
  const VALID = parse(readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
  const dns = {
    powerdns: { api: 'http://10.0.30.5:8081', apiKey: { env: 'PDNS_KEY' } },
    nameserver: '10.0.30.5:53',
    zone: 'example.com',
    records: [{ name: 'app.example.com' }],
  };
  const sites = (VALID.sites as { appAddress?: string }[]).map((s, i) => ({ ...s, appAddress: `10.0.${i + 1}.100` }));
  const withDrills = (drills: unknown[]) => stringify({ ...VALID, sites, dns, drills });
  const good = {
    name: 'quarterly',
    from: 'site-a',
    to: 'site-b',
    workloads: [{ tier: 'e-commerce', namespaces: ['shop'] }],
    record: { name: 'drill.app.example.com' },
  };
  const problems = (text: string): string[] => {
    try {
      parseConfig(text, 'drctl.yaml');
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
  };

  it('accepts a plan and fills the defaults (quarterly, no etcd restore)', () => {
    const c = parseConfig(withDrills([good]), 'drctl.yaml');
    expect(c.drills[0]).toMatchObject({ schedule: '0 6 1 1,4,7,10 *', etcdRestore: false, record: { ttl: 30 } });
  });

  it('names every wrong field: a production record, an unknown site and tier, etcd criterion without etcdRestore', () => {
    expect(
      problems(
        withDrills([
          {
            ...good,
            from: 'site-x',
            to: 'site-x',
            record: { name: 'app.example.com' },
            workloads: [{ tier: 'gold', namespaces: ['shop'] }],
            criteria: ['etcd-restore'],
          },
        ]),
      ),
    ).toEqual(
      expect.arrayContaining([
        "drills[0].from: unknown site 'site-x' (sites: site-a, site-b)",
        "drills[0].to: the DR site must differ from 'from' (site-x)",
        "drills[0].workloads[0].tier: unknown tier 'gold' (targets: payment, e-commerce, internal, dev)",
        "drills[0].record.name: 'app.example.com' is a production record (dns.records): a drill must switch its own record",
        "drills[0].criteria: criterion 'etcd-restore' needs etcdRestore: true",
      ]),
    );
    expect(problems(withDrills([{ ...good, record: { name: 'drill.other.org' } }]))).toEqual([
      "drills[0].record.name: 'drill.other.org' is not in the zone example.com",
    ]);
  });
});

describe('drctl drill: bad input', () => {
  // A valid config with one plan, whose Temporal address nothing listens on: bad input must be
  // refused (exit 2, one line) before any connection is tried.
  const VALID = parse(readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
  const sites = (VALID.sites as object[]).map((s, i) => ({ ...s, appAddress: `10.0.${i + 1}.100` }));
  const file = join(mkdtempSync(join(tmpdir(), 'drctl-drill-cli-')), 'drctl.yaml');
  writeFileSync(
    file,
    stringify({
      ...VALID,
      sites,
      temporal: { ...(VALID.temporal as object), address: '127.0.0.1:1' },
      dns: {
        powerdns: { api: 'http://10.0.30.5:8081', apiKey: { env: 'PDNS_KEY' } },
        nameserver: '10.0.30.5:53',
        zone: 'example.com',
        records: [{ name: 'app.example.com' }],
      },
      drills: [
        {
          name: 'quarterly',
          from: 'site-a',
          to: 'site-b',
          workloads: [{ tier: 'e-commerce', namespaces: ['shop'] }],
          record: { name: 'drill.app.example.com' },
        },
      ],
    }),
  );
  const drctl = (...args: string[]) =>
    spawnSync(process.execPath, ['bin/drctl.js', '--config', file, 'drill', ...args], { encoding: 'utf8' });

  it.each([
    [['run', '--plan', 'nope'], "error: --plan: no drill plan 'nope' in the config (plans: quarterly)"],
    [
      ['run', '--plan', 'quarterly', '--approval-timeout', 'soon'],
      "error: --approval-timeout: expected a duration like 30m, 1h (got 'soon')",
    ],
    [
      ['schedule', '--plan', 'quarterly', '--cron', 'every day'],
      "error: --cron: expected a cron expression like '*/15 * * * *' or '@hourly' (got 'every day')",
    ],
    [['pause', '--plan', 'yearly'], "error: --plan: no drill plan 'yearly' in the config (plans: quarterly)"],
    [['history', '--limit', '0'], "error: --limit: expected an integer >= 1 (got '0')"],
  ])('%j exits 2 naming what is wrong', (args, line) => {
    const r = drctl(...args);
    expect(`${r.status} ${r.stderr.trim()}`).toBe(`2 ${line}`);
  });
});
