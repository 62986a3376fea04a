// The etcd restore refuses, aborts or stops before touching anything when it should: dry run,
// a healthy cluster without --force, a planted unsigned snapshot, a corrupt off-site object, a
// wrong host key, the approval gate's rules (via Web-UI-style signals and via the CLI), an
// approval timeout, a second restore.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Client, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FailureType } from '../common/errors.ts';
import { manifestJson, manifestKeyOf, snapshotKey, type SnapshotRef } from '../common/snapshots.ts';
import type { DrctlConfig } from '../config/schema.ts';
import { signClaims } from '../gateways/ssh-signatures.ts';
import type { Gateways } from '../worker/gateways.ts';
import { createWorker } from '../worker/worker.ts';
import { approveSignal, etcdRestore, rejectSignal, statusQuery } from '../workflows/etcd-restore.ts';
import {
  drctlCli,
  ensureLabHealthy,
  keyFingerprint,
  labConfig,
  personKey,
  signedDecision,
  signedInput,
  snapshotNow,
  startTestEnv,
  type TestEnv,
  until,
  workflows,
} from './support/lab.ts';

let env: TestEnv;
let config: DrctlConfig;
let gw: Gateways;
let client: Client;
let taskQueue: string;
let snapB: SnapshotRef;
const dir = mkdtempSync(join(tmpdir(), 'drctl-safety-'));

/** The CLI's restore of site-b always has this id: one restore per cluster at a time. */
const CLI_RESTORE = 'etcd-restore-site-b';

beforeAll(async () => {
  // Site B with all three members healthy (the quorum refusal names 3/3), sshd everywhere.
  await ensureLabHealthy();
  env = await startTestEnv('restore-safety');
  ({ config, gw, client, taskQueue } = env);
  // A CLI restore an interrupted earlier run left behind would refuse this file's own (one per
  // cluster); its worker is gone with that run. Past its gate it would have changed site B, which
  // ensureLabHealthy has just proven healthy, so it can only be waiting at the gate: nothing to undo.
  const stale = client.workflow.getHandle(CLI_RESTORE);
  const running = await stale.describe().then(
    (d) => d.status.name === 'RUNNING',
    () => false,
  );
  if (running) await stale.terminate('restore-safety: left running by an interrupted earlier test run');
  snapB = await snapshotNow(client, taskQueue, gw, 'site-b');
});
afterAll(() => env?.close());

/** etcd's pid on every node of a cluster: unchanged pids prove nothing was stopped. */
async function etcdPids(cluster: string): Promise<string[]> {
  return Promise.all(
    ['cp1', 'cp2', 'cp3'].map(async (n) =>
      (await gw.shell(cluster, n).exec('pgrep -x etcd', { check: true })).stdout.trim(),
    ),
  );
}

async function failureOf(p: Promise<unknown>): Promise<{ type?: string; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as {
    type?: string;
    message: string;
    cause?: { type?: string; message: string };
  };
  return cause.type ? cause : (cause.cause ?? cause);
}

/** A restore of site B requested by alice, her request signed with her key (as `drctl etcd restore` does). */
const start = async (
  args: Partial<Parameters<typeof etcdRestore>[0]>,
  id = `safety-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`,
) =>
  client.workflow.start(etcdRestore, {
    taskQueue,
    workflowId: id,
    args: [await signedInput({ config }, 'etcd-restore', id, { cluster: 'site-b', snapshot: snapB.key, ...args })],
  });

describe('etcd restore safety', () => {
  it('--dry-run returns the per-node plan with exact commands and changes nothing', async () => {
    const pids = await etcdPids('site-b');
    const r = await (await start({ dryRun: true })).result();
    expect(r.outcome).toBe('dry-run');
    expect(r.refusal).toMatch(/^site-b has quorum \(3\/3 members healthy \(quorum\)\)/);
    expect(r.plan.nodes).toHaveLength(3);
    for (const n of r.plan.nodes) {
      // etcdutl from the node's own etcd image (the kubeadm node has no etcd binary).
      expect(n.restoreCommand).toMatch(
        new RegExp(
          `^ctr --address /run/containerd/containerd.sock -n k8s.io run --rm --net-host .*registry\\.drctl\\.lab/etcd:3\\.6\\.16-0 drctl-restore-\\w+ /usr/local/bin/etcdutl snapshot restore \\S+ --name=${n.node} --initial-cluster=`,
        ),
      );
      expect(n.restoreCommand).toContain(`--initial-advertise-peer-urls=${n.peerUrl}`);
      expect(n.restoreCommand).toContain(`--initial-cluster-token=${r.plan.token}`);
      const ls = await gw.shell('site-b', n.node).exec(`test -e ${n.workDir} || echo absent`);
      expect(ls.stdout.trim()).toBe('absent');
    }
    expect(await etcdPids('site-b')).toEqual(pids);
  });

  it('refuses a cluster that has quorum unless --force', async () => {
    const f = await failureOf((await start({})).result());
    expect(f.type).toBe(FailureType.ClusterHasQuorum);
    expect(f.message).toMatch(/has quorum \(3\/3 members healthy \(quorum\)\).*--force/);
  });

  /** Every node's drctl-restore-* work dirs: a restore that touched a node has made one. */
  async function workDirs(cluster: string): Promise<string[]> {
    return Promise.all(
      ['cp1', 'cp2', 'cp3'].map(
        async (n) => (await gw.shell(cluster, n).exec('ls -d /var/lib/drctl-restore-* 2>/dev/null || true')).stdout,
      ),
    );
  }

  async function objectBytes(key: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of await gw.store().get(key)) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  it('a planted unsigned snapshot is refused before any node is touched', async () => {
    // What anyone with write access to the bucket can do, each newer than every real snapshot:
    const prefix = config.objectStore.prefix;
    const at = (s: number) => new Date(Date.now() + 86_400_000 + s * 1000);
    // 1. the real etcd snapshot (decrypted: a plain etcd db) with the metadata drctl used to trust;
    const plain: Buffer[] = [];
    await pipeline(
      await gw.store().get(snapB.key),
      gw.snapshots().keys.decryptStream(),
      new Writable({ write: (c: Buffer, _e, cb) => (plain.push(c), cb()) }),
    );
    const plainKey = snapshotKey(prefix, 'site-b', at(1), snapB.revision + 1);
    await gw.store().put(plainKey, Readable.from([Buffer.concat(plain)]), {
      cluster: 'site-b',
      revision: String(snapB.revision + 1),
      sha256: snapB.sha256,
      size: String(snapB.size),
      'taken-at': at(1).toISOString(),
    });
    // 2. a copy of a real snapshot's object and manifest under a newer name (the manifest rewritten);
    const copyKey = snapshotKey(prefix, 'site-b', at(2), snapB.revision + 2);
    await gw.store().put(copyKey, Readable.from([await objectBytes(snapB.key)]));
    await gw
      .store()
      .put(
        manifestKeyOf(copyKey),
        manifestJson({ ...snapB, key: copyKey, takenAt: at(2).toISOString(), revision: snapB.revision + 2 }),
      );
    // 3. the real object with no manifest at all.
    const bareKey = snapshotKey(prefix, 'site-b', at(3), snapB.revision + 3);
    await gw.store().put(bareKey, Readable.from([await objectBytes(snapB.key)]));
    try {
      const pids = await etcdPids('site-b');
      const dirs = await workDirs('site-b');
      for (const [key, why] of [
        [plainKey, /unsigned \(no drctl manifest/],
        [copyKey, /the signature does not verify/],
        [bareKey, /unsigned \(no drctl manifest/],
      ] as const) {
        const handle = await start({ snapshot: key, force: true });
        const f = await failureOf(handle.result());
        expect(f.type, key).toBe(FailureType.SnapshotUntrusted);
        expect(f.message, key).toContain(key);
        expect(f.message, key).toMatch(why);
        const st = await handle.query(statusQuery);
        expect(st.steps.find((x) => x.step === 'preflight')?.state, key).toBe('failed');
        expect(st.steps.find((x) => x.step === 'distribute')?.state, key).toBe('pending');
        expect(st.plan, key).toBeUndefined();
      }
      // Nothing on any node: same etcd processes, no restore work dir, no staged copy.
      expect(await etcdPids('site-b')).toEqual(pids);
      expect(await workDirs('site-b')).toEqual(dirs);

      // 'latest' passes over all three (newer by name and by claimed time) for a signed snapshot.
      const dry = await (await start({ snapshot: 'latest', dryRun: true })).result();
      expect([plainKey, copyKey, bareKey]).not.toContain(dry.plan.snapshot.key);
      expect(gw.snapshots().keys.verify(dry.plan.snapshot)).toBeUndefined();
      const listed = await gw.snapshots().list('site-b');
      expect(listed.ignored.map((i) => i.key)).toEqual(expect.arrayContaining([plainKey, copyKey, bareKey]));
    } finally {
      for (const k of [plainKey, copyKey, bareKey]) await gw.snapshots().remove(k);
    }
  });

  it('a signed snapshot whose object was damaged is refused before any node is stopped', async () => {
    // A snapshot of its own (signed by drctl), one byte of its stored object flipped afterwards.
    const snap = await snapshotNow(client, taskQueue, gw, 'site-b');
    const body = await objectBytes(snap.key);
    body[Math.floor(body.length / 2)]! ^= 0xff; // same size, same manifest
    await gw.store().put(snap.key, Readable.from([body]));
    try {
      const pids = await etcdPids('site-b');
      const handle = await start({ snapshot: snap.key, force: true });
      const f = await failureOf(handle.result());
      expect(f.type).toBe(FailureType.SnapshotCorrupt);
      expect(f.message).toMatch(
        new RegExp(
          `^${snap.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: chunk \\d+ does not authenticate: the object is corrupt, truncated or was tampered with$`,
        ),
      );
      const st = await handle.query(statusQuery);
      expect(st.steps.find((s) => s.step === 'distribute')?.state).toBe('failed');
      expect(st.steps.find((s) => s.step === 'stop')?.state).toBe('pending');
      expect(await etcdPids('site-b')).toEqual(pids);
      // Nothing half-written stays staged on a node.
      for (const n of st.plan!.nodes) {
        const r = await gw
          .shell('site-b', n.node)
          .exec(`test -e ${n.stagedSnapshot} || test -e ${n.stagedSnapshot}.part || echo clean`);
        expect(r.stdout.trim(), n.node).toBe('clean');
      }
    } finally {
      await gw.snapshots().remove(snap.key);
    }
  });

  it('a node whose host key does not match its pin is refused at preflight', async () => {
    const q = `${taskQueue}-badkey`;
    const bad = labConfig(q);
    const nodes = bad.sites[1]!.cluster.nodes;
    nodes[2]!.ssh.hostKeyFingerprint = nodes[0]!.ssh.hostKeyFingerprint;
    const w2 = await createWorker(bad, await workflows());
    try {
      const h = await client.workflow.start(etcdRestore, {
        taskQueue: q,
        workflowId: `badkey-${Date.now()}`,
        args: [{ cluster: 'site-b', snapshot: snapB.key, requestedBy: 'alice', force: true }],
      });
      const f = await w2.worker.runUntil(failureOf(h.result()));
      expect(f.type).toBe(FailureType.HostKeyMismatch);
      expect(f.message).toMatch(/cp3.*does not match the pinned/);
    } finally {
      w2.gateways.close();
      await w2.connection.close();
    }
  });

  /** A worker on its own queue whose config `change` breaks; the restore's failure, with site B untouched. */
  async function refusedAtPreflight(name: string, change: (c: DrctlConfig) => void) {
    const q = `${taskQueue}-${name}`;
    const bad = labConfig(q);
    change(bad);
    const before = await etcdPids('site-b');
    const manifests = async () =>
      (
        await gw
          .shell('site-b', 'cp2')
          .exec('ls /etc/kubernetes/manifests /etc/kubernetes/manifests-parked', { check: true })
      ).stdout;
    const listed = await manifests();
    const w2 = await createWorker(bad, await workflows());
    try {
      const h = await client.workflow.start(etcdRestore, {
        taskQueue: q,
        workflowId: `${name}-${Date.now()}`,
        args: [{ cluster: 'site-b', snapshot: snapB.key, requestedBy: 'alice', force: true }],
      });
      const f = await w2.worker.runUntil(failureOf(h.result()));
      expect(await etcdPids('site-b')).toEqual(before);
      expect(await manifests()).toBe(listed);
      return f;
    } finally {
      w2.gateways.close();
      await w2.connection.close();
    }
  }

  it("site B's bastion: a wrong bastion host key is refused at preflight, naming the hop", async () => {
    const f = await refusedAtPreflight('badjump', (c) => {
      const n = c.sites[1]!.cluster.nodes[1]!;
      n.ssh.jump!.hostKeyFingerprint = n.ssh.hostKeyFingerprint;
    });
    expect(f.type).toBe(FailureType.HostKeyMismatch);
    expect(f.message).toMatch(
      /^site-b\/cp2 via bastion 172\.30\.20\.250:22: bastion host key SHA256:\S+ does not match the pinned/,
    );
  });

  it('a login user without the sudo right gets a preflight error naming it; nothing on any node changes', async () => {
    const f = await refusedAtPreflight('nosudo', (c) => {
      c.sites[1]!.cluster.nodes[1]!.ssh.user = 'drctl-nosudo';
    });
    expect(f.type).toBe(FailureType.MissingPrivilege);
    expect(f.message).toContain('site-b/cp2: user drctl-nosudo may not run commands as root');
  });

  it('an unlisted approver or the requester does not open the gate (Web UI signals); a reject aborts with nothing changed', async () => {
    const pids = await etcdPids('site-b');
    const handle = await start({ force: true });
    await until(
      'waiting-approval',
      () => handle.query(statusQuery),
      (s) => s.phase === 'waiting-approval',
      120_000,
    );
    // The Web UI lists a workflow's signals from this built-in query.
    const meta = await handle.query<{
      definition: {
        signalDefinitions: { name: string; description?: string }[];
        updateDefinitions: { name: string }[];
      };
    }>('__temporal_workflow_metadata');
    expect(meta.definition.signalDefinitions.map((d) => d.name).sort()).toEqual(['approve', 'reject']);
    expect(meta.definition.signalDefinitions.find((d) => d.name === 'approve')?.description).toContain(
      'drctl approve <workflow-id> --sign-only',
    );
    expect(meta.definition.updateDefinitions.map((d) => d.name)).toEqual(['decide']);
    // What the Web UI's Signal could send: a typed name (the old form), alice's genuine signature
    // on her own restore, bob's genuine signature replayed from another run, and bob's signature
    // over evidence other than this gate's. Each is refused and recorded; the gate stays shut.
    const bobs = await signedDecision({ config, client }, handle.workflowId, 'bob');
    await handle.signal(approveSignal, { by: 'bob', reason: 'typed, not signed' });
    await handle.signal(approveSignal, await signedDecision({ config, client }, handle.workflowId, 'alice'));
    await handle.signal(approveSignal, await signClaims({ ...bobs.claims, runId: 'another-run' }, personKey('bob')));
    await handle.signal(
      approveSignal,
      await signClaims({ ...bobs.claims, evidence: '0'.repeat(64) }, personKey('bob')),
    );
    const st = await until(
      'four refused decisions',
      () => handle.query(statusQuery),
      (s) => s.decisions.length === 4,
    );
    expect(st.phase).toBe('waiting-approval');
    // The typed name is kept as typed, unproven: no fingerprint.
    expect(st.decisions.map((d) => [d.by, d.accepted, !!d.fingerprint])).toEqual([
      ['bob', false, false],
      ['alice', false, true],
      ['bob', false, false],
      ['bob', false, false],
    ]);
    expect(st.decisions.map((d) => d.why)).toEqual([
      expect.stringMatching(/^unsigned: a decision must be signed/),
      'two-person rule: alice requested this restore and cannot approve it',
      expect.stringMatching(/^signed for run another-run of .*, not this run/),
      expect.stringMatching(/^signed over evidence 000000000000…, but this gate's evidence is/),
    ]);
    await handle.signal(
      rejectSignal,
      await signedDecision({ config, client }, handle.workflowId, 'carol', 'reject', 'wrong snapshot'),
    );
    const f = await failureOf(handle.result());
    expect(f.type).toBe(FailureType.ApprovalRejected);
    expect(f.message).toBe('rejected by carol: wrong snapshot; nothing was changed');
    expect((await handle.query(statusQuery)).approval).toMatchObject({
      by: 'carol',
      fingerprint: keyFingerprint('carol'),
      approve: false,
    });
    expect(await etcdPids('site-b')).toEqual(pids);
    const plan = (await handle.query(statusQuery)).plan!;
    for (const n of plan.nodes) {
      const r = await gw.shell('site-b', n.node).exec(`test -e ${n.stagedSnapshot} || echo cleaned`);
      expect(r.stdout.trim(), `${n.node} staged snapshot removed`).toBe('cleaned');
    }
  });

  it('approval timeout aborts and leaves everything as it was', async () => {
    const pids = await etcdPids('site-b');
    const handle = await start({ force: true, approvalTimeoutMs: 3000 });
    const f = await failureOf(handle.result());
    expect(f.type).toBe(FailureType.ApprovalTimedOut);
    expect(f.message).toBe('no approval within 3 s; nothing was changed');
    expect((await handle.query(statusQuery)).phase).toBe('aborted');
    expect(await etcdPids('site-b')).toEqual(pids);
  });

  it('CLI: a second restore of the same cluster is refused; approve by a non-approver or by the requester exits 2 with the reason; reject ends the first', async () => {
    const cfgFile = join(dir, 'drctl.yaml');
    writeFileSync(cfgFile, stringify(config));
    // A HOME with no ~/.ssh: the only keys are the ones a command names.
    const home = join(dir, 'home');
    mkdirSync(home, { recursive: true });
    const drctl = (...args: string[]) =>
      drctlCli(['--config', cfgFile, ...args], { DRCTL_USER: 'alice', HOME: home, DRCTL_SIGNING_KEY: '' });
    const first = await drctl(
      'etcd',
      'restore',
      '--cluster',
      'site-b',
      '--snapshot',
      snapB.key,
      '--force',
      '--json',
      '--key',
      personKey('alice'),
    );
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    const id = (JSON.parse(first.stdout) as { workflowId: string; runbook: string }).workflowId;
    expect(id).toBe(CLI_RESTORE);
    try {
      const second = await drctl('etcd', 'restore', '--cluster', 'site-b', '--force');
      expect(second.status).toBe(1);
      expect(second.stderr).toContain(`a restore of cluster 'site-b' is already running (workflow ${id})`);
      await until(
        'waiting-approval',
        () => client.workflow.getHandle(id).query(statusQuery),
        (s) => s.phase === 'waiting-approval',
        120_000,
      );
      // Another's name without their key: nothing is sent.
      const forged = await drctl('approve', id, '--as', 'bob');
      expect(`${forged.status} ${forged.stderr.trim()}`).toBe(
        '2 error: --key: a decision is signed with your SSH key (--key, $DRCTL_SIGNING_KEY or ~/.ssh/id_ed25519)',
      );
      const unlisted = await drctl('approve', id, '--key', personKey('dave'));
      expect(`${unlisted.status} ${unlisted.stderr.trim()}`).toBe(
        `2 error: ${id}: dave is not an approver (allowlist: alice, bob, carol)`,
      );
      const self = await drctl('approve', id, '--key', personKey('alice'));
      expect(`${self.status} ${self.stderr.trim()}`).toBe(
        `2 error: ${id}: two-person rule: alice requested this restore and cannot approve it`,
      );
      const status = await drctl('status', id, '--json');
      expect(JSON.parse(status.stdout)).toMatchObject({
        phase: 'waiting-approval',
        requestedBy: 'alice',
        gate: { requester: { by: 'alice' }, approvalsNeeded: 1 },
        decisions: [
          { by: 'dave', accepted: false },
          { by: 'alice', accepted: false },
        ],
      });
      const text = await drctl('status', id);
      expect(text.stdout).toMatch(/requested by alice, proven by key SHA256:/);
      expect(text.stdout).toMatch(/approve by dave \(SHA256:[^)]+\) at .* refused \(dave is not an approver/);
      const rej = await drctl('reject', id, '--key', personKey('bob'), '--reason', 'drill over');
      expect(rej.status).toBe(0);
      const end = await drctl('status', id, '--wait');
      expect(end.status).toBe(1);
      expect(end.stdout).toContain('ABORTED');
    } finally {
      await client.workflow
        .getHandle(id)
        .terminate('test cleanup')
        .catch(() => undefined);
    }
  });
});
