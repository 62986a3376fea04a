// TemporalGateway: what activities and the metrics collector read from Temporal itself: a
// schedule's state, how many runs match a visibility query, the newest finished one. Read-only; its
// own client connection, made on first use from the worker's temporal config.
import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { intervalOf } from '../common/dr-metrics.ts';
import { SEARCH_KEYS } from '../common/runbook.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { temporalConnectConfig } from '../config/temporal.ts';

export interface ScheduleState {
  paused: boolean;
  /** The time between two actions: the interval, else the next two calendar times. */
  intervalSeconds?: number;
}

export class TemporalGateway {
  private client?: Promise<Client>;

  constructor(private readonly temporal: DrctlConfig['temporal']) {}

  private connect(): Promise<Client> {
    this.client ??= (async () => {
      const { connectionOptions, namespace } = temporalConnectConfig(this.temporal);
      return new Client({ connection: await Connection.connect(connectionOptions), namespace });
    })();
    return this.client;
  }

  /** The schedule's state, or undefined when there is no such schedule. */
  async schedule(id: string): Promise<ScheduleState | undefined> {
    const client = await this.connect();
    try {
      const d = await client.schedule.getHandle(id).describe();
      const every = d.spec.intervals?.[0]?.every;
      return {
        paused: d.state.paused,
        intervalSeconds: every !== undefined ? Number(every) / 1000 : intervalOf(d.info.nextActionTimes),
      };
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return undefined;
      throw err;
    }
  }

  async count(query: string): Promise<number> {
    return (await (await this.connect()).workflow.count(query)).count;
  }

  /** The newest closed run among the first `scan` the query lists: its drctl phase and close time. */
  async lastClosed(query: string, scan = 20): Promise<{ phase: string; endedAt: number } | undefined> {
    const client = await this.connect();
    let best: { phase: string; endedAt: number } | undefined;
    let seen = 0;
    for await (const w of client.workflow.list({
      query: `${query} AND ExecutionStatus != 'Running'`,
      pageSize: scan,
    })) {
      const endedAt = w.closeTime?.getTime();
      if (endedAt !== undefined && (!best || endedAt > best.endedAt))
        best = {
          phase:
            w.typedSearchAttributes.get(SEARCH_KEYS.phase) ?? (w.status.name === 'COMPLETED' ? 'completed' : 'failed'),
          endedAt,
        };
      if (++seen >= scan) break;
    }
    return best;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await (await c).connection.close();
  }
}
