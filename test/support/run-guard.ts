// Lab tests share one Temporal server, and a runbook holds its sites' leases until it ends. A test
// that fails half-way can leave its run open (at its gate, say), and every later test touching
// those sites would then be refused with LeaseHeld, hiding the one real failure behind many.
// After each test, every runbook it started that is still open is terminated, and named on stderr.
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { Client } from '@temporalio/client';
import { RUNBOOKS as ALL } from '../../common/runbook.ts';
import { labConfig, temporalClient } from './lab.ts';

/** Every runbook that takes leases or changes a site (the health watch runs on purpose). */
const RUNBOOKS = [...Object.keys(ALL).filter((t) => t !== 'healthWatch'), 'siteLease'];

let client: Client | undefined;
let since = new Date();

beforeAll(async () => {
  client = await temporalClient(labConfig());
});

afterAll(async () => {
  await client?.connection.close();
});

beforeEach(() => {
  since = new Date();
});

afterEach(async (ctx) => {
  if (!client) return;
  const types = RUNBOOKS.map((t) => `'${t}'`).join(', ');
  const query = `WorkflowType IN (${types}) AND ExecutionStatus = 'Running' AND StartTime >= '${since.toISOString()}'`;
  const left: string[] = [];
  for await (const wf of client.workflow.list({ query })) {
    if (wf.type === 'siteLease') continue; // ends with its holder (parent close policy TERMINATE)
    left.push(wf.workflowId);
    await client.workflow
      .getHandle(wf.workflowId, wf.runId)
      .terminate(`the test "${ctx.task.name}" ended with this run open`)
      .catch(() => undefined);
  }
  // A lease whose holder is gone (it should have ended with it) is ended too.
  for await (const wf of client.workflow.list({
    query: query.replace(/WorkflowType IN \([^)]*\)/, "WorkflowType = 'siteLease'"),
  })) {
    const parent = (await client.workflow.getHandle(wf.workflowId, wf.runId).describe()).parentExecution;
    const parentOpen = parent?.workflowId
      ? (await client.workflow.getHandle(parent.workflowId, parent.runId ?? undefined).describe()).status.name ===
        'RUNNING'
      : false;
    if (parentOpen) continue;
    left.push(wf.workflowId);
    await client.workflow
      .getHandle(wf.workflowId, wf.runId)
      .terminate('its holder ended')
      .catch(() => undefined);
  }
  if (left.length) process.stderr.write(`[run-guard] "${ctx.task.name}" left open, terminated: ${left.join(', ')}\n`);
});
