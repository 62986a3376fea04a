// Telling people that something needs them: the config's webhook.
import type { Gateways } from '../gateways/index.ts';

export function createNotifyActivities(gw: Gateways) {
  return {
    /** Posts the event to the config's webhook. Best effort, never fails the caller: returns what happened. */
    async notify(input: { event: string; text: string; workflowId?: string; url?: string }): Promise<string> {
      const hook = gw.config.failover?.healthWatch.webhook;
      if (!hook) return 'no webhook configured';
      const r = await gw.http().postJson(hook, input);
      return 'status' in r ? `webhook HTTP ${r.status}` : `webhook failed: ${r.error}`;
    },
  };
}
