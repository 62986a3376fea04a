// A runbook's steps as `drctl status` shows them: each runs through `run`, which records its state
// (running → done | failed), start, end and, on failure, the activity's own message.
import { rootMessage } from '../common/errors.ts';

export interface StepRecord {
  state: 'pending' | 'running' | 'done' | 'failed' | 'skipped';
  startedAt?: string;
  endedAt?: string;
  detail?: string;
}

/** `run(name, fn)` for the step records `step(name)` finds; `ended` hears each step's duration (ms). */
export function stepRunner<N extends string, S extends StepRecord>(
  step: (name: N) => S,
  ended: (name: N, ms: number, s: S) => void = () => undefined,
) {
  return async function run<T>(name: N, fn: (s: S) => Promise<T>): Promise<T> {
    const s = step(name);
    s.state = 'running';
    s.startedAt = new Date().toISOString();
    const t0 = Date.now();
    try {
      const out = await fn(s);
      s.state = 'done';
      return out;
    } catch (err) {
      s.state = 'failed';
      s.detail = rootMessage(err);
      throw err;
    } finally {
      s.endedAt = new Date().toISOString();
      ended(name, Date.now() - t0, s);
    }
  };
}
