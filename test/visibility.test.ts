// What the Temporal server knows of drctl's runs, against the lab's real server: the search
// attributes a run started from the CLI carries and keeps up to date (`drctl runs`, the Web UI's
// filters), its memo, and `drctl status` when no worker answers the status query.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunbookStatus } from '../common/runbook.ts';
import { statusQuery } from '../workflows/etcd-restore.ts';
import { drctlCli, ensureLabHealthy, snapshotNow, startTestEnv, type TestEnv, until } from './support/lab.ts';

let env: TestEnv;
beforeAll(async () => {
  await ensureLabHealthy();
  env = await startTestEnv('visibility');
}, 300_000);
afterAll(async () => {
  await env?.close();
});

const cli = (args: string[]) => drctlCli(args, { DRCTL_CONFIG: `${process.cwd()}/.lab/drctl.yaml` });

describe('visibility: search attributes, memo and status without a worker', () => {
  it('a run started from the CLI is listed by `drctl runs` with its runbook, cluster and final phase', async () => {
    const started = await cli(['cluster', 'check', '--cluster', 'site-b', '--json']);
    expect(started.status, started.stderr).toBe(0);
    const [run] = JSON.parse(started.stdout) as { workflowId: string; runbook: string }[];
    expect(run!.runbook).toBe('cluster-health');
    // Visibility is eventually consistent: the list catches up within a second or two.
    const listed = await until(
      'the run listed as completed',
      async () => {
        const r = await cli(['runs', '--runbook', 'cluster-health', '--phase', 'completed', '--json']);
        expect(r.status, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as { workflowId: string; cluster?: string; phase: string; runbook: string }[];
      },
      (rows) => rows.some((x) => x.workflowId === run!.workflowId),
      30_000,
      500,
    );
    expect(listed.find((x) => x.workflowId === run!.workflowId)).toMatchObject({
      runbook: 'cluster-health',
      cluster: 'site-b',
      phase: 'completed',
    });
    const bad = await cli(['runs', '--phase', 'sleeping']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--phase/);
  });

  it('with its worker gone, `drctl status` shows the memo the run left on the server, and says so', async () => {
    // A restore of site-b that waits at its gate (site-b has quorum: --force), served by this
    // file's own worker, which then stops.
    await snapshotNow(env.client, env.taskQueue, env.gw, 'site-b');
    const workflowId = `visibility-restore-${Date.now()}`;
    const h = await env.client.workflow.start('etcdRestore', {
      taskQueue: env.taskQueue,
      workflowId,
      args: [{ cluster: 'site-b', snapshot: 'latest', requestedBy: 'alice', force: true, approvalTimeoutMs: 600_000 }],
    });
    try {
      const st = await until(
        'the gate',
        () => h.query(statusQuery),
        (s: RunbookStatus) => s.phase === 'waiting-approval' || s.phase === 'failed',
        240_000,
        250,
      );
      expect(st.phase, st.error).toBe('waiting-approval');
      const memo = (await h.describe()).memo?.drctlStatus as { phase: string; waitingFor?: string };
      expect(memo.phase).toBe('waiting-approval');
      // An unsigned request (started here without alice's key): two approvers, over this evidence.
      expect(memo.waitingFor).toMatch(
        /^go\/no-go from two of alice, bob, carol \(not alice\), signed over evidence [0-9a-f]{12}$/,
      );

      await env.close();
      const shown = await cli(['status', workflowId]);
      expect(shown.stderr + shown.stdout).toMatch(/no worker answered the status query; showing what the server holds/);
      expect(shown.stdout).toMatch(/WAITING-APPROVAL/);
      expect(shown.stdout).toMatch(/distribute/);
    } finally {
      await h.terminate('visibility test done').catch(() => undefined);
      env = await startTestEnv('visibility');
    }
  });
});
