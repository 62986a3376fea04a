// Flag values several commands take, refused with one line naming the flag (UsageError: exit 2)
// before the config is read or anything connects.
import { parseDuration } from '../common/duration.ts';
import { UsageError } from '../common/errors.ts';

/** `--keep 3`, `--limit 20`, `--bump-revision 1000000000`: digits only, at least 1. */
export function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`${flag}: expected an integer >= 1 (got '${value}')`);
  return n;
}

/** `--approval-timeout 30m`: a duration above 0 (a zero timeout gives up before anyone can answer). */
export function positiveDuration(flag: string, value: string, like = '30m, 1h'): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new UsageError(`${flag}: expected a duration like ${like} (got '${value}')`);
  if (ms <= 0) throw new UsageError(`${flag}: expected a duration above 0 (got '${value}')`);
  return ms;
}

/** The flag's value through `parse` when given. */
export function optional<T>(value: string | undefined, parse: (v: string) => T): T | undefined {
  return value === undefined ? undefined : parse(value);
}
