// The health watch: one long-running workflow per app record. Every interval it probes the app at
// the site serving the record (per DNS), and the standby's platform (its API server). N failures in a row mark a site down,
// M successes in a row up again (the seed's 3 / 5). When the serving site goes down while the
// standby is up, it starts a failover, which waits at the go/no-go gate (unless the config says
// auto-approve), and notifies. It never fails over to a site that is down. Continue-as-new keeps its
// history bounded. When the DNS API cannot say who serves, the watch rides it out: it keeps probing
// (each site in its last known role), backs off, shows the API's error in its status, notifies once
// per outage, and starts no failover until the API answers again.
import {
  ApplicationFailure,
  continueAsNew,
  isCancellation,
  ParentClosePolicy,
  sleep,
  startChild,
  workflowInfo,
  defineQuery,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { rootMessage } from '../common/errors.ts';
import { type SiteHealth, nextHealth, type WatchEvent } from '../common/health.ts';
import type { RunbookStatus } from '../common/runbook.ts';
import { quick } from './activity-options.ts';
import { Runbook } from './runbook.ts';
import { siteFailover } from './site-failover.ts';

/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<WatchStatus>('status');

export interface HealthWatchInput {
  record: string;
  /** Carried across continue-as-new. */
  state?: WatchState;
  /** Rounds per run before continue-as-new (default 360: an hour at 10 s). */
  roundsPerRun?: number;
}

export interface WatchState {
  sites: Record<string, SiteHealth>;
  serving?: string;
  events: WatchEvent[];
  failovers: { workflowId: string; from: string; to: string; at: string }[];
  rounds: number;
  /** The DNS API that says who serves the record: absent or no failures while it answers. */
  dnsApi?: DnsApiHealth;
}

/** The DNS API's errors in a row; `down` once they reach the site threshold (declared, notified). */
export interface DnsApiHealth {
  failures: number;
  /** The first error of this streak. */
  since?: string;
  lastError?: string;
  down: boolean;
}

/** The event and item name the DNS API goes by among the sites. */
export const DNS_API = 'DNS API';
/** The longest wait between rounds while the DNS API fails (the interval doubles per error up to this). */
export const DNS_API_MAX_BACKOFF_MS = 5 * 60_000;

/** The watch's status: the runbook status, its one step `probe` per site, and the watch's state. */
export type WatchStatus = RunbookStatus & { watch: WatchState };

export async function healthWatch(input: HealthWatchInput): Promise<never> {
  const state: WatchState = input.state ?? { sites: {}, events: [], failovers: [], rounds: 0 };
  // Created before anything else, so the query answers from the first moment of every run.
  const rb = new Runbook(
    { runbook: 'health-watch', title: `health watch of ${input.record}`, steps: ['probe'] },
    { watch: state },
  );
  const probeStep = rb.step('probe');
  probeStep.state = 'running';
  const policy = await quick.loadWatchPolicy({ record: input.record });
  rb.status.sites = policy.sites;
  for (const s of policy.sites) state.sites[s] ??= { up: true, failures: 0, successes: 0 };
  const perRun = input.roundsPerRun ?? 360;

  const runUrl = (workflowId: string) =>
    policy.webUi ? `${policy.webUi}/namespaces/${workflowInfo().namespace}/workflows/${workflowId}` : undefined;
  /** Best effort: a webhook that fails must never stop the watch. */
  const notify = (event: string, text: string, workflowId = workflowInfo().workflowId) =>
    quick.notify({ event, workflowId, url: runUrl(workflowId), text }).catch(() => undefined);

  for (let round = 0; round < perRun; round++) {
    // Who serves, per the DNS API. An API that does not answer is not a site that is down.
    let serving: { site?: string } | undefined;
    try {
      serving = await quick.servingSite({ record: input.record });
    } catch (err) {
      if (isCancellation(err)) throw err;
      const at = new Date().toISOString();
      const d: DnsApiHealth = state.dnsApi?.failures ? { ...state.dnsApi } : { failures: 0, since: at, down: false };
      d.failures++;
      d.lastError = rootMessage(err);
      if (!d.down && d.failures >= policy.failuresToDown) {
        d.down = true;
        const event: WatchEvent = { site: DNS_API, at, state: 'down', detail: d.lastError };
        state.events = [...state.events, event].slice(-20);
        await notify(
          'dns-api-down',
          `health watch of ${input.record}: the DNS API fails since ${d.since} (${d.lastError}); no failover starts until it answers again`,
        );
      }
      state.dnsApi = d;
      probeStep.items[DNS_API] =
        `${d.down ? 'DOWN' : 'failing'} since ${d.since}, ${d.failures} error(s) in a row: ${d.lastError}`;
      rb.status.error = `DNS API: ${d.lastError} (since ${d.since}); no failover while it fails`;
      rb.setPhase('running');
    }
    if (serving && state.dnsApi?.failures) {
      const d = state.dnsApi;
      const at = new Date().toISOString();
      if (d.down) {
        state.events = [...state.events, { site: DNS_API, at, state: 'up' as const, detail: 'answers again' }].slice(
          -20,
        );
        await notify(
          'dns-api-up',
          `health watch of ${input.record}: the DNS API answers again (failed since ${d.since})`,
        );
      }
      state.dnsApi = { failures: 0, down: false };
      probeStep.items[DNS_API] = `ok (failed ${d.failures} time(s) since ${d.since})`;
      rb.status.error = undefined;
      rb.setPhase('running');
    }
    if (serving && serving.site !== state.serving) {
      // Who serves changed (a failover): each site is judged afresh by its new role.
      for (const s of policy.sites) state.sites[s] = { up: true, failures: 0, successes: 0 };
      state.serving = serving.site;
    }
    // The serving site must answer as the app; a standby has no app running (active-passive), so
    // it counts as up while its platform answers (API server ready) — it can take the traffic.
    const probes = await Promise.all(
      policy.sites.map(async (site) => ({
        site,
        ...(await quick.probeSite({ site, as: site === state.serving ? 'app' : 'standby' })),
      })),
    );
    const now = new Date().toISOString();
    for (const p of probes) {
      const { health, event } = nextHealth(state.sites[p.site]!, p.ok, policy, now, p.site, p.detail);
      state.sites[p.site] = health;
      if (event) state.events = [...state.events, event].slice(-20);
    }
    state.rounds++;
    for (const [site, h] of Object.entries(state.sites)) {
      probeStep.items[site] =
        `${h.up ? 'up' : 'DOWN'}${site === state.serving ? ' (serving)' : ''}: ${h.lastDetail ?? ''}`;
    }

    // No failover while the DNS API fails: who serves is unknown, and a failover needs the API.
    const from = serving?.site;
    const to = policy.sites.find((s) => s !== from);
    if (from && to && !state.sites[from]!.up && state.sites[to]!.up && policy.autoFailover) {
      const workflowId = `failover-${from}-to-${to}`;
      if (
        !state.failovers.some(
          (f) =>
            f.workflowId === workflowId &&
            f.from === from &&
            Date.parse(f.at) >= Date.parse(state.sites[from]!.since ?? now),
        )
      ) {
        try {
          await startChild(siteFailover, {
            workflowId,
            parentClosePolicy: ParentClosePolicy.ABANDON,
            typedSearchAttributes: rb.childSearchAttributes('site-failover', 'health-watch'),
            args: [
              {
                from,
                to,
                requestedBy: 'health-watch',
                reason: `${from} down since ${state.sites[from]!.since}`,
                declaredAt: state.sites[from]!.firstFailureAt,
              },
            ],
          });
          state.failovers = [...state.failovers, { workflowId, from, to, at: now }].slice(-10);
          await notify(
            'failover-started',
            `${from} is down (${state.sites[from]!.lastDetail}); failover ${from} → ${to} started${policy.autoApprove ? ' (auto-approved)' : ' and waits for go/no-go'}`,
            workflowId,
          );
        } catch (err) {
          // One failover per direction at a time: an earlier one is still running (or waiting).
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
      }
    }
    const errors = state.dnsApi?.failures ?? 0;
    await sleep(
      errors
        ? Math.min(
            policy.intervalMs * 2 ** Math.min(errors - 1, 20),
            Math.max(policy.intervalMs, DNS_API_MAX_BACKOFF_MS),
          )
        : policy.intervalMs,
    );
  }
  if (!policy.sites.length) throw ApplicationFailure.create({ nonRetryable: true, message: 'no sites to watch' });
  return continueAsNew<typeof healthWatch>({ ...input, state });
}
