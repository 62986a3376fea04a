// A site's lease (common/lease.ts): a workflow that does nothing but exist under the id
// `lease-<site>` while its holder (its parent) changes that site. It ends when the holder releases
// it, or when the server terminates it because the holder's run closed.
import { condition, defineSignal, setHandler } from '@temporalio/workflow';
import type { LeaseHolder } from '../common/lease.ts';

/** The holder is done with the site (its cleanup ran): the next runbook may take it. */
export const releaseSignal = defineSignal('release');

export async function siteLease(holder: LeaseHolder): Promise<LeaseHolder> {
  let released = false;
  setHandler(releaseSignal, () => void (released = true), {
    description: 'Sent by the holder when it is done with the site',
  });
  await condition(() => released);
  return holder;
}
