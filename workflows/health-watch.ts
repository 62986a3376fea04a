// The health watch: one long-running workflow per app record. Every interval it probes the app at
// the site serving the record (per DNS), and the standby's platform (its API server). N failures in a row mark a site down,
// M successes in a row up again (the seed's 3 / 5). When the serving site goes down while the
// standby is up, it starts a failover, which waits at the go/no-go gate (unless the config says
// auto-approve), and notifies. It never fails over to a site that is down. Continue-as-new keeps its
// history bounded.
import {
  ApplicationFailure,
  continueAsNew,
  ParentClosePolicy,
  sleep,
  startChild,
  workflowInfo,
  defineQuery,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
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
}

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

  for (let round = 0; round < perRun; round++) {
    const serving = await quick.servingSite({ record: input.record });
    if (serving.site !== state.serving) {
      // Who serves changed (a failover): each site is judged afresh by its new role.
      for (const s of policy.sites) state.sites[s] = { up: true, failures: 0, successes: 0 };
      state.serving = serving.site;
    }
    // The serving site must answer as the app; a standby has no app running (active-passive), so
    // it counts as up while its platform answers (API server ready) — it can take the traffic.
    const probes = await Promise.all(
      policy.sites.map(async (site) => ({
        site,
        ...(await quick.probeSite({ site, as: site === serving.site ? 'app' : 'standby' })),
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

    const from = serving.site;
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
          await quick.notify({
            event: 'failover-started',
            workflowId,
            url: policy.webUi
              ? `${policy.webUi}/namespaces/${workflowInfo().namespace}/workflows/${workflowId}`
              : undefined,
            text: `${from} is down (${state.sites[from]!.lastDetail}); failover ${from} → ${to} started${policy.autoApprove ? ' (auto-approved)' : ' and waits for go/no-go'}`,
          });
        } catch (err) {
          // One failover per direction at a time: an earlier one is still running (or waiting).
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
      }
    }
    await sleep(policy.intervalMs);
  }
  if (!policy.sites.length) throw ApplicationFailure.create({ nonRetryable: true, message: 'no sites to watch' });
  return continueAsNew<typeof healthWatch>({ ...input, state });
}
