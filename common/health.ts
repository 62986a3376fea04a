// Up/down from consecutive probes, the seed's table: 3 failures in a row mark a site down, 5
// successes in a row mark it up again. One bad probe never flips a site; a flapping endpoint whose
// failures never line up three in a row stays up. Pure code (the health watch and its tests).

export interface SiteHealth {
  up: boolean;
  failures: number;
  successes: number;
  /** When the current up/down state began. */
  since?: string;
  /** First failure of the current failure streak (a disaster is declared from here). */
  firstFailureAt?: string;
  lastDetail?: string;
}

export interface WatchEvent {
  site: string;
  at: string;
  state: 'down' | 'up';
  detail: string;
}

export function nextHealth(
  h: SiteHealth,
  ok: boolean,
  policy: { failuresToDown: number; successesToUp: number },
  at: string,
  site: string,
  detail: string,
): { health: SiteHealth; event?: WatchEvent } {
  if (ok) {
    const successes = h.successes + 1;
    if (!h.up && successes >= policy.successesToUp) {
      return {
        health: { up: true, failures: 0, successes, since: at, lastDetail: detail },
        event: { site, at, state: 'up', detail },
      };
    }
    return {
      health: { ...h, failures: 0, successes, firstFailureAt: h.up ? undefined : h.firstFailureAt, lastDetail: detail },
    };
  }
  const failures = h.failures + 1;
  const firstFailureAt = h.failures === 0 && h.up ? at : (h.firstFailureAt ?? at);
  if (h.up && failures >= policy.failuresToDown) {
    return {
      health: { up: false, failures, successes: 0, since: at, firstFailureAt, lastDetail: detail },
      event: { site, at, state: 'down', detail },
    };
  }
  return { health: { ...h, failures, successes: 0, firstFailureAt, lastDetail: detail } };
}
