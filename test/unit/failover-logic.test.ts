// Pure decisions of the failover and the health watch (no servers involved): the up/down table,
// the RPO policy, and where DNS goes on undo.
import { describe, expect, it } from 'vitest';
import { dnsOnUndo, rpoVerdict } from '../../common/failover.ts';
import { nextHealth, type SiteHealth } from '../../common/health.ts';

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

describe('DNS on undo never points at no healthy site', () => {
  it('reverts when the old site answers, or when neither does', () => {
    expect(dnsOnUndo(true, true)).toBe('revert');
    expect(dnsOnUndo(true, false)).toBe('revert');
    expect(dnsOnUndo(false, false)).toBe('revert');
  });
  it('keeps the new site when the old one is down and the new one answers', () => {
    expect(dnsOnUndo(false, true)).toBe('keep');
  });
});
