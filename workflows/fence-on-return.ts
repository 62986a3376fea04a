// Runbook: fence a site as soon as it answers again. A failover that could not fence its old
// primary (its API server did not answer) starts this once the traffic is on the other site, with
// a deterministic id (`fence-on-return-<site>`: one per site, a second start finds the first) and
// parent-close policy ABANDON (it outlives the failover):
//   1 wait-for-return: looks at the site's API server, on durable timers backing off from 10 s to
//     5 min (a worker restart or a Temporal restart loses nothing), continuing as new to keep its
//     history short;
//   2 fence: its Deployments and StatefulSets to 0, CronJobs suspended, its backup location
//     read-only (activities/failover.ts fencePrimary, with the failover's tag: idempotent, and
//     that failover's marks) — unless an app record points at the site again (a person moved the
//     traffic back): then nothing is fenced.
// A later failover or failback towards the site sends `supersede` (it is about to make the site
// primary): the run ends at once, fencing nothing. `drctl status fence-on-return-<site>` shows it;
// `drctl cancel` stops it.
import {
  condition,
  ContinueAsNew,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { rootMessage } from '../common/errors.ts';
import type { FenceOnReturnInput, FenceOnReturnResult, FenceOnReturnState, Supersede } from '../common/failover.ts';
import type { RunbookStatus } from '../common/runbook.ts';
import { quick } from './activity-options.ts';
import { Runbook } from './runbook.ts';

export const FENCE_ON_RETURN_STEPS = ['wait-for-return', 'fence'] as const;

/** A later failover or failback towards the site: stop, fence nothing. */
export const supersedeSignal = defineSignal<[Supersede]>('supersede');

export type FenceOnReturnStatus = RunbookStatus & {
  returnWatch: FenceOnReturnState & { site: string; servingSite: string; startedBy: string; supersededBy?: string };
};
/** The run's status (the kernel answers it; typed here for clients). */
export const statusQuery = defineQuery<FenceOnReturnStatus>('status');

/** Looks per run before continue-as-new (about 10 history events each). */
const LOOKS_PER_RUN = 150;

export async function fenceOnReturn(input: FenceOnReturnInput): Promise<FenceOnReturnResult> {
  const { site, namespaces, tag } = input;
  const state: FenceOnReturnState = input.state ?? { attempts: 0, since: new Date().toISOString() };
  const watch: FenceOnReturnStatus['returnWatch'] = {
    ...state,
    site,
    servingSite: input.servingSite,
    startedBy: input.startedBy,
  };
  const rb = new Runbook(
    {
      runbook: 'fence-on-return',
      title: `fence ${site} as soon as it answers again (traffic on ${input.servingSite}; started by ${input.startedBy})`,
      steps: FENCE_ON_RETURN_STEPS,
      requestedBy: input.startedBy,
      sites: [site],
    },
    { returnWatch: watch },
  );
  let superseded: Supersede | undefined;
  setHandler(
    supersedeSignal,
    (x) => {
      superseded ??= x;
      watch.supersededBy = x.by;
    },
    {
      description:
        'A failover or failback towards this site: stop, fence nothing. Input {"by": "...", "reason": "..."}',
    },
  );
  const first = input.pollMs ?? 10_000;
  const max = input.maxPollMs ?? 5 * 60_000;
  const end = (outcome: FenceOnReturnResult['outcome'], detail: string, fenced: string[] = []) => {
    rb.setPhase('completed');
    return { outcome, site, attempts: watch.attempts, fenced, detail };
  };
  const supersededEnd = () => {
    const why = `superseded by ${superseded!.by}: ${superseded!.reason}`;
    rb.skip('fence', why);
    return end('superseded', why);
  };

  try {
    let looks = 0;
    let wait = first;
    for (;;) {
      // 1. Until its API server answers (or a failback supersedes this).
      const back = await rb.run('wait-for-return', async (s) => {
        rb.setPhase('running', `${site}'s API server to answer again (then it is fenced)`);
        for (;;) {
          if (superseded) return 'superseded' as const;
          if (looks >= (input.looksPerRun ?? LOOKS_PER_RUN) || workflowInfo().continueAsNewSuggested)
            return 'continue' as const;
          looks++;
          watch.attempts++;
          const p = await quick.probeSite({ site, as: 'standby' }).catch((err: unknown) => {
            if (isCancellation(err)) throw err;
            return { ok: false, detail: rootMessage(err) };
          });
          watch.lastDetail = `${new Date().toISOString()}: ${p.detail}`;
          s.detail = `look ${watch.attempts} since ${watch.since}: ${p.detail}`;
          if (p.ok) return 'back' as const;
          await condition(() => superseded !== undefined, wait);
          wait = Math.min(wait * 2, max);
        }
      });
      if (back === 'superseded') return supersededEnd();
      if (back === 'continue') {
        const { attempts, since, lastDetail } = watch;
        return await continueAsNew<typeof fenceOnReturn>({
          ...input,
          pollMs: wait,
          state: { attempts, since, lastDetail },
        });
      }
      if (superseded) return supersededEnd();

      // 2. It answers: fence it (unless the traffic is on it again).
      const r = await rb
        .run('fence', async (s) => {
          const f = await quick.fencePrimary({ site, namespaces, tag, unlessServing: true });
          for (const x of f.fenced) s.items[x] = 'fenced';
          s.detail = f.skipped ?? `${f.fenced.length} change(s) after ${watch.attempts} look(s)`;
          return f;
        })
        .catch((err: unknown) => {
          if (isCancellation(err)) throw err;
          // Answered, then not (or an API error): look again, backing off.
          return undefined;
        });
      if (r?.serving) return end('serving', r.skipped!);
      if (r && !r.skipped) return end('fenced', `fenced after ${watch.attempts} look(s)`, r.fenced);
      // Gone again before it could be fenced: back to waiting.
      await condition(() => superseded !== undefined, wait);
      wait = Math.min(wait * 2, max);
    }
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      rb.setPhase('aborted');
      throw err;
    }
    rb.status.error = rootMessage(err);
    rb.setPhase('failed');
    throw err;
  }
}
