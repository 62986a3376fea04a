// drctl's Prometheus alert rules (alerts/drctl.rules.yml) under the real promtool (built from the
// Prometheus Go module by lab/install.sh): they load, their unit tests pass, a rule bent the wrong
// way fails them, every alert has a test that fires it, and every metric a rule reads is one the
// worker exports.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DR_GAUGES } from '../../common/dr-metrics.ts';
import { bin } from '../../lab/topology.ts';

const run = promisify(execFile);
const alerts = fileURLToPath(new URL('../../alerts/', import.meta.url));
const RULES = join(alerts, 'drctl.rules.yml');
const TESTS = join(alerts, 'drctl.rules.test.yml');
const DRILL_TESTS = join(alerts, 'drctl.rules.drill.test.yml');

const promtool = async (...args: string[]) =>
  run(bin.promtool, args, { encoding: 'utf8' }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: e.code ?? -1,
      out: `${e.stdout ?? ''}${e.stderr ?? ''}`,
    }),
  );

type Rule = { alert: string; expr: string; for?: string };
const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

describe('alert rules, under the real promtool', () => {
  it('load (promtool check rules)', async () => {
    const r = await promtool('check', 'rules', RULES);
    expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.code).toBe(0);
  });

  it('pass their unit tests (promtool test rules)', async () => {
    const r = await promtool('test', 'rules', TESTS, DRILL_TESTS);
    expect(r.out).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('a rule bent the wrong way fails the tests (the tests can fail)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drctl-rules-'));
    copyFileSync(TESTS, join(dir, 'drctl.rules.test.yml'));
    const bent = readFileSync(RULES, 'utf8').replace(
      '> 2 * max by (cluster) (drctl_etcd_snapshot_interval_seconds)',
      '> 3 * max by (cluster) (drctl_etcd_snapshot_interval_seconds)',
    );
    expect(bent).not.toBe(readFileSync(RULES, 'utf8'));
    writeFileSync(join(dir, 'drctl.rules.yml'), bent);
    const r = await promtool('test', 'rules', join(dir, 'drctl.rules.test.yml'));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('DrctlSnapshotScheduleStalled');
  });

  it('every alert has a test in which it fires', () => {
    const tests = [TESTS, DRILL_TESTS].flatMap(
      (f) =>
        (
          parse(readFileSync(f, 'utf8')) as {
            tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
          }
        ).tests,
    );
    const fired = new Set(
      tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length).map((a) => a.alertname)),
    );
    expect(rules.map((r) => r.alert).filter((a) => !fired.has(a))).toEqual([]);
  });

  it('every drctl metric a rule reads is one the worker exports', () => {
    const exported = new Set(Object.values(DR_GAUGES).map((g) => g.name));
    const read = new Set(rules.flatMap((r) => r.expr.match(/\bdrctl_[a-z_]+/g) ?? []));
    expect([...read].filter((m) => !exported.has(m))).toEqual([]);
  });
});
