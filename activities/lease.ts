// Who holds a site's lease (common/lease.ts), for a refusal that names them. Reads the lease
// workflow through the worker's own Temporal client.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { FailureType, failure } from '../common/errors.ts';
import { LEASE_MEMO_KEY, type LeaseHolder, leaseId } from '../common/lease.ts';
import type { Gateways } from '../gateways/index.ts';

export function createLeaseActivities(gw: Gateways) {
  return {
    /**
     * The site whose cluster this is (leases are per site). A cluster across sites (`clusters:`,
     * a stretched one) is leased under its own name: its runbooks exclude each other, not the sites'.
     */
    async siteOfCluster(input: { cluster: string }): Promise<string> {
      gw.cluster(input.cluster); // an unknown cluster is refused here, naming it
      return gw.config.sites.find((s) => s.cluster.name === input.cluster)?.name ?? input.cluster;
    },

    /** The run holding `site`'s lease; undefined when none does (it was released meanwhile). */
    async leaseHolder(input: { site: string }): Promise<LeaseHolder | undefined> {
      try {
        gw.site(input.site);
      } catch (err) {
        // A cluster across sites is leased under its own name.
        if (!gw.config.clusters.some((c) => c.name === input.site)) throw err;
      }
      try {
        const d = await Context.current().client.workflow.getHandle(leaseId(input.site)).describe();
        if (d.status.name !== 'RUNNING') return undefined;
        const holder = d.memo?.[LEASE_MEMO_KEY] as LeaseHolder | undefined;
        if (holder) return holder;
        // Not one drctl took (every lease it takes names its holder): refused, naming what runs.
        throw failure(
          FailureType.LeaseHeld,
          `${leaseId(input.site)} is held by ${d.parentExecution?.workflowId ?? 'a workflow with no parent'}, which did not say what it is`,
        );
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    },
  };
}
