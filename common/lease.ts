// Leases: one runbook at a time per site. Before it changes anything at a site, a runbook holds
// the site's lease: a child workflow with the fixed id `lease-<site>` (workflows/lease.ts). The
// Temporal server lets only one workflow run under an id, so taking a lease is atomic, and a
// lease cannot outlive its holder: the server terminates it when the holder's run closes in any
// way (completed, failed, cancelled, terminated, timed out). Pure code: workflows and the CLI use it.
import type { RunbookName } from './runbook.ts';

export const leaseId = (site: string): string => `lease-${site}`;

/** The memo key under which a lease names its holder (read with `describe`, shown in refusals). */
export const LEASE_MEMO_KEY = 'holder';

/** Who holds a site: the run that took its lease. */
export interface LeaseHolder {
  site: string;
  workflowId: string;
  runbook: RunbookName;
  title: string;
  requestedBy?: string;
  /** When the lease was taken (ISO). */
  since: string;
}

/**
 * Whether a runbook that wants a site takes it from the holder: a drill yields to any runbook that
 * is not a drill (a real failover or restore is never blocked by a rehearsal; the drill is
 * cancelled, and its cleanup removes only what it created). Everything else is refused.
 */
export function preempts(taker: RunbookName, holder: RunbookName): boolean {
  return holder === 'drill' && taker !== 'drill';
}

/** The refusal a person reads: which run holds the site, since when, and what to do. */
export function heldMessage(h: LeaseHolder): string {
  return (
    `${h.site} is held by ${h.runbook} ${h.workflowId} (${h.title}${h.requestedBy ? `, requested by ${h.requestedBy}` : ''}, since ${h.since}): ` +
    `one runbook per site at a time; wait for it to end, or \`drctl cancel ${h.workflowId}\``
  );
}
