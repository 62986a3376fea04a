// Committed histories (recorded on the lab by scripts/record-histories.ts) replay against the
// current workflow code: a change that would break runs already in flight fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { workflowsPath } from '../../worker/worker.ts';

const dir = new URL('../histories/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
const history = (f: string) =>
  JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as { events: { eventType: string; [k: string]: unknown }[] };
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} };
let current: WorkflowBundle;

/**
 * The recorded run's workflow id, where the code derives something from it (the drill names its
 * etcd child `<id>-etcd`): read back from that child's id. Otherwise the replayer's default.
 */
function recordedWorkflowId(f: string): string | undefined {
  const child = history(f).events.find((e) => e.eventType === 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED') as
    { startChildWorkflowExecutionInitiatedEventAttributes?: { workflowId?: string } } | undefined;
  return child?.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId?.replace(/-etcd$/, '');
}

beforeAll(async () => {
  current = await bundleWorkflowCode({ workflowsPath, logger: quiet });
}, 120_000);

describe('replay of committed histories', () => {
  it('covers every runbook', () => {
    expect(files.sort()).toEqual([
      'audit.json',
      'cluster-health.json',
      'cluster-rebuild-compensated.json',
      'cluster-rebuild.json',
      'dr-drill-cancelled.json',
      'dr-drill-failed.json',
      'dr-drill.json',
      'etcd-latency.json',
      'etcd-recover-compensated.json',
      'etcd-recover.json',
      'etcd-rejoin.json',
      'etcd-restore-cancelled.json',
      'etcd-restore-compensated.json',
      'etcd-restore-needs-attention.json',
      'etcd-restore.json',
      'etcd-snapshot-proven.json',
      'etcd-snapshot.json',
      'etcd-tune-compensated.json',
      'etcd-tune.json',
      'health-watch.json',
      'namespace-restore.json',
      'protect-namespaces-compensated.json',
      'protect-namespaces.json',
      'site-failover-cancelled.json',
      'site-failover-compensated.json',
      'site-failover.json',
    ]);
  });

  // The unhappy paths (scripts/record-unit-histories.ts): each ends as its runbook says it must.
  it.each([
    [
      'etcd-restore-compensated.json',
      'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
      ['putOriginalBack', 'cleanupStaged'],
      'Compensated',
    ],
    [
      'etcd-restore-needs-attention.json',
      'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
      ['putOriginalBack'],
      'NeedsAttention',
    ],
    ['etcd-restore-cancelled.json', 'EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED', ['cleanupStaged'], undefined],
    // Recorded on the lab by test/stretched.test.ts: the second follower's kubelet stopped.
    [
      'etcd-tune-compensated.json',
      'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
      ['setMemberTuning', 'waitMemberTuned'],
      'Compensated',
    ],
    [
      'site-failover-compensated.json',
      'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
      ['unfencePrimary', 'removeRestored'],
      'Compensated',
    ],
    ['site-failover-cancelled.json', 'EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED', [], undefined],
    // Mocked (scripts/record-unit-histories.ts): b1's etcd did not start; b1, then b2, put back.
    [
      'etcd-recover-compensated.json',
      'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
      ['putOriginalBack', 'restoreEtcdManifest'],
      'Compensated',
    ],
    ['dr-drill-cancelled.json', 'EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED', [], undefined],
    // Mocked: cp3's restore failed; every host reset to what provisioning left.
    ['cluster-rebuild-compensated.json', 'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED', ['resetRebuiltHost'], 'Compensated'],
    // Recorded on the lab before the verify step waited for the API server to load the policy.
    [
      'protect-namespaces-compensated.json',
      'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
      ['unlabelProtected', 'removeProtectionPolicy'],
      'Compensated',
    ],
    [
      'dr-drill-failed.json',
      'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED',
      ['removeRestored', 'drillCleanupCheck'],
      undefined,
    ],
  ])('%s ends %s after its undos', (f, end, undos, type) => {
    const events = history(f).events;
    expect(events.at(-1)!.eventType).toBe(end);
    const h = JSON.stringify(events);
    for (const u of undos) expect(h).toContain(`"${u}"`);
    if (type) expect(h).toContain(`"type":"${type}"`);
  });

  it.each(files)('%s replays against the current code', async (f) => {
    await Worker.runReplayHistory({ workflowBundle: current, replayName: f }, history(f), recordedWorkflowId(f));
  });

  it('the restore history is a full run: approval gate (a refused self-approval, then an update), every step', () => {
    const h = JSON.stringify(history('etcd-restore.json'));
    for (const step of [
      'stopComponent',
      'moveDataDirAside',
      'restoreMember',
      'startComponent',
      'verifyQuorum',
      'countKeys',
    ])
      expect(h).toContain(step);
    expect(h).toContain('WORKFLOW_EXECUTION_SIGNALED');
    expect(h).toContain('WORKFLOW_EXECUTION_UPDATE_ACCEPTED');
    expect(h).toContain('WORKFLOW_EXECUTION_COMPLETED');
  });

  it('the failover history is a full run: a refused self-approval, an update, every step to the DNS switch', () => {
    const h = JSON.stringify(history('site-failover.json'));
    for (const step of [
      'failoverPreflight',
      'fencePrimary',
      'setStorageLocationMode',
      'veleroRestore',
      'backupContents',
      'verifySite',
      'switchDns',
      'verifyDns',
      'promoteSite',
    ])
      expect(h).toContain(step);
    expect(h).toContain('WORKFLOW_EXECUTION_SIGNALED');
    expect(h).toContain('WORKFLOW_EXECUTION_UPDATE_ACCEPTED');
    expect(h).toContain('WORKFLOW_EXECUTION_COMPLETED');
  });

  it('the drill history is a full run: the go, the etcd restore drill as a child approved by the drill, restore, drill record, cleanup, report, sign-off', () => {
    const h = JSON.stringify(history('dr-drill.json'));
    for (const x of [
      'drillPreflight',
      'openGate',
      'verifyDecision',
      // The child is approved by its parent's gate through its input: no signal to it.
      'START_CHILD_WORKFLOW_EXECUTION_INITIATED',
      'CHILD_WORKFLOW_EXECUTION_COMPLETED',
      'veleroRestore',
      'verifySite',
      'switchDns',
      'removeRestored',
      'drillCleanupCheck',
      'writeDrillReport',
    ])
      expect(h).toContain(x);
    expect(h).not.toContain('SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED');
    expect(h).toContain('WORKFLOW_EXECUTION_UPDATE_ACCEPTED');
    expect(h).toContain('WORKFLOW_EXECUTION_SIGNALED');
    expect(h).toContain('WORKFLOW_EXECUTION_COMPLETED');
  });

  it('the health-watch history probes, sleeps and continues as new', () => {
    const h = JSON.stringify(history('health-watch.json'));
    for (const x of [
      'loadWatchPolicy',
      'servingSite',
      'probeSite',
      'TIMER_STARTED',
      'WORKFLOW_EXECUTION_CONTINUED_AS_NEW',
    ])
      expect(h).toContain(x);
  });

  it('an incompatible change to a workflow is caught as a DeterminismViolationError', async () => {
    const changed = await bundleWorkflowCode({
      workflowsPath: fileURLToPath(new URL('../fixtures/changed-workflows.ts', import.meta.url)),
      logger: quiet,
    });
    await expect(
      Worker.runReplayHistory({ workflowBundle: changed, replayName: 'changed' }, history('etcd-snapshot.json')),
    ).rejects.toBeInstanceOf(DeterminismViolationError);
  }, 120_000);

  it('no history carries a secret: payloads hold names and paths, never keys or credentials', () => {
    for (const f of files) {
      const text = readFileSync(new URL(f, dir), 'utf8');
      const payloads = [...text.matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)]
        .map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'))
        .join('\n');
      expect(payloads.length, f).toBeGreaterThan(100);
      for (const bad of [
        'PRIVATE KEY',
        'secretAccessKey',
        'accessKeyId',
        'privateKeyPath',
        'client-key-data',
        'apiKey',
        'aws_secret_access_key',
      ])
        expect(payloads, `${f} contains ${bad}`).not.toContain(bad);
    }
  });
});
