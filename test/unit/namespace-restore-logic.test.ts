// The namespace restore's pure decisions: which backup a loss at a given time restores, the
// changes it loses, what the backup holds of the namespaces, and the --before flag. No lab.
import { describe, expect, it } from 'vitest';
import { parseBefore } from '../../client/commands/namespace-restore.ts';
import {
  backupsBefore,
  changesLostSeconds,
  contentsOf,
  holds,
  systemNamespace,
} from '../../common/namespace-restore.ts';

const b = (name: string, startedAt: string, completedAt: string, more: object = {}) => ({
  name,
  phase: 'Completed',
  startedAt,
  completedAt,
  storageLocation: 'default',
  includedNamespaces: ['shop'],
  ...more,
});
type B = ReturnType<typeof b>;
const backupBefore = (l: B[], ns: string[], loc: string, before: number) => backupsBefore(l, ns, loc, before)[0];
const at = (t: string) => Date.parse(`2026-12-03T${t}Z`);

describe('backupsBefore: Completed backups finished before the loss, newest first', () => {
  const backups = [
    b('b0900', '2026-12-03T09:00:00Z', '2026-12-03T09:01:00Z'),
    b('b1000', '2026-12-03T10:00:00Z', '2026-12-03T10:01:00Z'),
    // Started before the deletion at 10:42 but finished after it: it may hold half-deleted state.
    b('b1041', '2026-12-03T10:41:30Z', '2026-12-03T10:42:30Z'),
    b('b1100', '2026-12-03T11:00:00Z', '2026-12-03T11:01:00Z'),
    b('failed', '2026-12-03T10:30:00Z', '2026-12-03T10:31:00Z', { phase: 'PartiallyFailed' }),
    b('other-ns', '2026-12-03T10:35:00Z', '2026-12-03T10:36:00Z', { includedNamespaces: ['payments'] }),
    b('other-bsl', '2026-12-03T10:36:00Z', '2026-12-03T10:37:00Z', { storageLocation: 'secondary' }),
  ];
  it('a loss at 10:42 restores the 10:00 backup (not the failed, other-namespace or other-location ones)', () => {
    expect(backupBefore(backups, ['shop'], 'default', at('10:42:00'))?.name).toBe('b1000');
  });
  it('a loss at 11:05 restores the 11:00 backup', () => {
    expect(backupBefore(backups, ['shop'], 'default', at('11:05:00'))?.name).toBe('b1100');
  });
  it('an all-namespaces backup counts; no backup before the loss is none', () => {
    const all = [...backups, b('all', '2026-12-03T10:20:00Z', '2026-12-03T10:21:00Z', { includedNamespaces: ['*'] })];
    expect(backupBefore(all, ['shop', 'payments'], 'default', at('10:42:00'))?.name).toBe('all');
    expect(backupBefore(backups, ['shop'], 'default', at('08:00:00'))).toBeUndefined();
  });
  it('changes lost run from the backup start to the loss, never negative', () => {
    expect(changesLostSeconds('2026-12-03T10:00:00Z', '2026-12-03T10:42:00Z')).toBe(42 * 60);
    expect(changesLostSeconds('2026-12-03T10:00:00Z', '2026-12-03T09:59:00Z')).toBe(0);
  });
});

describe('what the backup holds of the namespaces', () => {
  it('a backup taken after the deletion holds no Namespace entry: it is passed over', () => {
    expect(holds({ 'v1/Namespace': ['shop', 'payments'] }, ['shop'])).toBe(true);
    expect(holds({ 'v1/Namespace': ['payments'], 'v1/Secret': ['shop/db'] }, ['shop'])).toBe(false);
    expect(holds({}, ['shop'])).toBe(false);
  });
  it('counts per type, only items of the namespaces', () => {
    expect(
      contentsOf(
        {
          'v1/Namespace': ['shop', 'payments'],
          'v1/Secret': ['shop/db', 'shop/tls', 'payments/key'],
          'apps/v1/Deployment': ['payments/api'],
          'v1/PersistentVolume': ['pv-1'],
        },
        ['shop'],
      ),
    ).toEqual({ 'v1/Namespace': 1, 'v1/Secret': 2 });
  });
  it("the cluster's own namespaces are never restored in place", () => {
    expect(['kube-system', 'kube-public', 'default', 'velero', 'shop'].map((ns) => systemNamespace(ns))).toEqual([
      true,
      true,
      true,
      true,
      false,
    ]);
  });
});

describe('--before', () => {
  const now = Date.parse('2026-12-03T12:00:00Z');
  it('takes a time with its zone, or how long ago', () => {
    expect(parseBefore('2026-12-03T10:42:00Z', now)).toBe('2026-12-03T10:42:00.000Z');
    expect(parseBefore('2026-12-03T11:42:00+01:00', now)).toBe('2026-12-03T10:42:00.000Z');
    expect(parseBefore('78m', now)).toBe('2026-12-03T10:42:00.000Z');
  });
  it('refuses a time without a zone, words, and the future', () => {
    expect(() => parseBefore('2026-12-03T10:42', now)).toThrow(/expected a time with its zone/);
    expect(() => parseBefore('10:42', now)).toThrow(/expected a time with its zone/);
    expect(() => parseBefore('2026-12-03T12:30:00Z', now)).toThrow(/is in the future/);
  });
});
