// What every runbook command shares: start a run (one --json shape), read its status (from the run
// itself through a worker, else from what the server holds: memo, search attributes, history),
// follow it to its end (redrawn in place on a terminal, one line per transition elsewhere).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Client,
  type WorkflowExecutionDescription,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type WorkflowStartOptions,
} from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { createLogUpdate } from 'log-update';
import { UsageError } from '../common/errors.ts';
import {
  FINAL_PHASES,
  type Phase,
  RUNBOOKS,
  type RunbookName,
  SEARCH_KEYS,
  startSearchAttributes,
  STATUS_MEMO_KEY,
  type StatusMemo,
  type WorkflowType,
} from '../common/runbook.ts';
import { FailedOutcome, printJson } from './output.ts';
import {
  type AnyStatus,
  failureOf,
  gateHelp,
  renderStatus,
  serverNote,
  settled,
  type Shown,
  transitions,
} from './render.ts';
import { type Session, webUiUrl } from './temporal.ts';

/** Every runbook's query, update and signal names (the contract in common/runbook.ts). */
export const STATUS_QUERY = 'status';
export const DECIDE_UPDATE = 'decide';
export const SIGN_UPDATE = 'sign';

/** A query waits for a worker; past this the server's own record is shown instead. */
const QUERY_TIMEOUT_MS = 10_000;
const POLL_MS = 1000;

export { SEARCH_KEYS };

interface RunInput {
  requestedBy?: string;
  cluster?: string;
  from?: string;
  to?: string;
  plan?: string;
  record?: string;
  snapshot?: string;
  site?: string;
  namespaces?: string[];
}

/** One line naming what a run is about, for the Web UI's list: "etcd-restore site-a (latest) by alice". */
export function runSummary(runbook: RunbookName, i: RunInput): string {
  const what = [
    i.cluster,
    i.site && i.namespaces ? `${i.namespaces.join(',')} at ${i.site}` : undefined,
    i.from && i.to ? `${i.from} → ${i.to}` : undefined,
    i.plan ? `plan ${i.plan}` : undefined,
    i.record,
    i.snapshot ? `(${i.snapshot})` : undefined,
  ].filter(Boolean);
  return [runbook, ...what, i.requestedBy ? `by ${i.requestedBy}` : undefined].filter(Boolean).join(' ');
}

/** The search attributes a run of `workflowType` starts with (the run keeps its phase up to date). */
export function runbookSearchAttributes(workflowType: string, requestedBy?: string) {
  return isWorkflowType(workflowType) ? startSearchAttributes(RUNBOOKS[workflowType], requestedBy) : [];
}

export function isWorkflowType(type: string): type is WorkflowType {
  return Object.hasOwn(RUNBOOKS, type);
}

export function typeOfRunbook(name: RunbookName): WorkflowType {
  return (Object.keys(RUNBOOKS) as WorkflowType[]).find((t) => RUNBOOKS[t] === name)!;
}

/** The run's server record; an unknown id or a workflow that is not a drctl runbook is bad input. */
export async function describeRun(
  client: Client,
  workflowId: string,
): Promise<{ desc: WorkflowExecutionDescription; type: WorkflowType }> {
  let desc;
  try {
    desc = await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UsageError(`${workflowId}: no such workflow`);
    throw err;
  }
  if (!isWorkflowType(desc.type)) throw new UsageError(`${workflowId} is a ${desc.type}, not a drctl runbook`);
  return { desc, type: desc.type };
}

/** The run's status: its own answer when a worker gives one in time, else what the server holds. */
export async function readStatus(client: Client, workflowId: string): Promise<Shown & { type: WorkflowType }> {
  const { desc, type } = await describeRun(client, workflowId);
  const execution = desc.status.name;
  try {
    const status = await client.connection.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () =>
      client.workflow.getHandle(workflowId, desc.runId).query<AnyStatus>(STATUS_QUERY),
    );
    return { status, source: 'worker', execution, type };
  } catch (err) {
    if (process.env.DRCTL_DEBUG) process.stderr.write(`status query failed: ${(err as Error).message}\n`);
    return { ...(await fromServer(client, desc, type)), type };
  }
}

/** A status rebuilt from the memo the run keeps and the search attributes it upserts. */
async function fromServer(client: Client, desc: WorkflowExecutionDescription, type: WorkflowType): Promise<Shown> {
  const memo = desc.memo?.[STATUS_MEMO_KEY] as StatusMemo | undefined;
  const sa = desc.typedSearchAttributes;
  const phase = memo?.phase ?? (sa.get(SEARCH_KEYS.phase) as Phase | undefined) ?? phaseOfExecution(desc.status.name);
  const status: AnyStatus = {
    runbook: memo?.runbook ?? RUNBOOKS[type],
    title: memo?.title ?? `${RUNBOOKS[type]} ${desc.workflowId}`,
    phase,
    requestedBy: sa.get(SEARCH_KEYS.requestedBy),
    sites: sa.get(SEARCH_KEYS.sites) ?? [],
    cluster: sa.get(SEARCH_KEYS.cluster),
    steps: (memo?.steps ?? []).map((s) => ({ ...s, items: {} })),
    decisions: [],
    waitingFor: memo?.waitingFor,
    error: memo?.error,
    attention: memo?.attention,
    rolledForward: memo?.rolledForward,
  };
  return { status, source: 'server', asOf: await lastMemoUpdate(client, desc, memo), execution: desc.status.name };
}

function phaseOfExecution(execution: string): Phase {
  if (execution === 'RUNNING') return 'running';
  if (execution === 'COMPLETED') return 'completed';
  return 'failed';
}

/**
 * When the run last wrote its memo: the newest "properties modified" event among the last page of
 * its history, else the newest step time the memo names, else the start.
 */
async function lastMemoUpdate(
  client: Client,
  desc: WorkflowExecutionDescription,
  memo: StatusMemo | undefined,
): Promise<string> {
  try {
    const page = await client.workflowService.getWorkflowExecutionHistoryReverse({
      namespace: client.options.namespace,
      execution: { workflowId: desc.workflowId, runId: desc.runId },
      maximumPageSize: 200,
    });
    const ev = page.history?.events?.find((e) => e.workflowPropertiesModifiedEventAttributes);
    const t = ev?.eventTime;
    // seconds is a Long from the wire: its decimal string is exact.
    if (t?.seconds != null) return new Date(Number(String(t.seconds)) * 1000 + (t.nanos ?? 0) / 1e6).toISOString();
  } catch {
    // The history is a refinement: the memo's own times below are the fallback.
  }
  const times = (memo?.steps ?? []).flatMap((s) => [s.startedAt, s.endedAt]).filter((t): t is string => !!t);
  return times.sort().at(-1) ?? desc.startTime.toISOString();
}

/** Status as --json prints it: the run's fields, plus where they came from. */
export function statusJson(shown: Shown) {
  return { ...shown.status, source: shown.source, execution: shown.execution, asOf: shown.asOf };
}

/**
 * Follows a run until it settles. On a terminal the status is redrawn in place once a second (the
 * running step's elapsed time ticking); elsewhere one line per transition and the final table once.
 * Prints nothing but the server note with `json`.
 */
export async function follow(
  client: Client,
  workflowId: string,
  opts: { json?: boolean; url?: string | null; tty?: boolean; pollMs?: number } = {},
): Promise<Shown & { type: WorkflowType }> {
  const live = (opts.tty ?? process.stdout.isTTY) && !opts.json ? createLogUpdate(process.stdout) : undefined;
  let prev: AnyStatus | undefined;
  let toldServer = false;
  for (;;) {
    const shown = await readStatus(client, workflowId);
    if (shown.source === 'server' && !toldServer && !live) process.stderr.write(`${serverNote(shown.asOf)}\n`);
    toldServer = shown.source === 'server';
    const frame = () => renderStatus(workflowId, shown.type, shown, { url: opts.url });
    if (live) live(frame());
    else if (!opts.json)
      for (const line of transitions(shown.type, prev, shown.status)) process.stdout.write(`${line}\n`);
    prev = shown.status;
    if (settled(shown.type, shown.status) || shown.execution !== 'RUNNING') {
      if (live) live.done();
      else if (!opts.json) process.stdout.write(`\n${frame()}\n`);
      return shown;
    }
    await sleep(opts.pollMs ?? POLL_MS);
  }
}

/** Why a followed run that is over counts as a failure (exit 1); undefined when it succeeded. */
export function outcomeOf(workflowId: string, shown: Shown & { type: WorkflowType }): string | undefined {
  if (!settled(shown.type, shown.status) && shown.execution && shown.execution !== 'RUNNING')
    return `${workflowId}: ${shown.execution.toLowerCase()} in phase ${shown.status.phase}`;
  return failureOf(workflowId, shown.type, shown.status);
}

/** What every start command prints with --json (with --wait also `status` and, once completed, `result`). */
export interface Started {
  workflowId: string;
  runId: string;
  runbook: RunbookName;
  url: string | null;
}

/** Starts a runbook; a run of the same id still going is a failed outcome with `busy`'s message. */
export async function startRun<W extends Workflow>(
  s: Session,
  workflow: W,
  options: WorkflowStartOptions<W>,
  busy?: (workflowId: string) => string,
): Promise<Started> {
  if (!isWorkflowType(workflow.name)) throw new Error(`${workflow.name} is not a runbook of common/runbook.ts`);
  // The run's search attributes (the Web UI's and `drctl runs`' filters): set at start, which also
  // tells the run that this namespace knows them (the kernel then keeps its phase up to date). A
  // namespace that does not know them refuses the start: start again without them.
  const input = (options.args?.[0] ?? {}) as RunInput;
  const indexed = {
    ...options,
    // The Web UI's list shows this line for the run; its current details follow its steps.
    staticSummary: options.staticSummary ?? runSummary(RUNBOOKS[workflow.name], input),
    typedSearchAttributes: runbookSearchAttributes(workflow.name, input.requestedBy),
  } as WorkflowStartOptions<W>;
  try {
    const handle = await s.client.workflow
      .start(workflow, indexed)
      .catch((err: unknown) =>
        /search attribute/i.test(String((err as Error)?.message))
          ? s.client.workflow.start(workflow, options)
          : Promise.reject(err),
      );
    return {
      workflowId: handle.workflowId,
      runId: handle.firstExecutionRunId,
      runbook: RUNBOOKS[workflow.name],
      url: webUiUrl(s.config, s.client.options.namespace, handle.workflowId),
    };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError && busy) throw new FailedOutcome(busy(options.workflowId));
    throw err;
  }
}

/** How a person learns about a run just started: its id, where to see it, how to decide its gate. */
export function announce(started: Started, opts: { gate?: boolean; wait?: boolean } = {}): string {
  const lines = [`started ${started.runbook}: ${started.workflowId}`];
  if (started.url) lines.push(`  Web UI: ${started.url}`);
  if (!opts.wait) lines.push(`  follow: drctl status ${started.workflowId} --wait`);
  if (opts.gate) lines.push(...gateHelp(started.workflowId, started.url));
  return `${lines.join('\n')}\n`;
}

/**
 * After a start: print it (--json: the Started shape), or follow it with --wait and print the
 * final status and, once completed, the result (`human` says it for a person). Exit 1 unless it
 * succeeded.
 */
export async function afterStart<R>(
  s: Session,
  started: Started,
  opts: { wait?: boolean; json?: boolean; gate?: boolean; human?: (result: R) => string },
): Promise<void> {
  if (!opts.json) process.stdout.write(announce(started, opts));
  if (!opts.wait) {
    if (opts.json) printJson(started);
    return;
  }
  const shown = await follow(s.client, started.workflowId, { json: opts.json, url: started.url });
  const result = await resultOf<R>(s.client, started, shown);
  if (opts.json) printJson({ ...started, status: statusJson(shown), result });
  else if (result !== undefined && opts.human) process.stdout.write(opts.human(result));
  const failed = outcomeOf(started.workflowId, shown);
  if (failed) throw new FailedOutcome(failed);
}

/**
 * A dry run, over in seconds: its plan is the point, not its steps. Followed quietly to its end,
 * then printed (--json: Started, status and result; else `human` of the result). Exit 1 unless it
 * succeeded.
 */
export async function afterDryRun<R>(
  s: Session,
  started: Started,
  opts: { json?: boolean; human: (result: R) => string },
): Promise<void> {
  const shown = await follow(s.client, started.workflowId, { json: true });
  const result = (await s.client.workflow
    .getHandle(started.workflowId)
    .result()
    .catch(() => undefined)) as R | undefined;
  if (opts.json) printJson({ ...started, status: statusJson(shown), result });
  else if (result) process.stdout.write(opts.human(result));
  const failed = outcomeOf(started.workflowId, shown);
  if (failed) throw new FailedOutcome(failed);
}

/** The run's result once it has completed (a run that failed has none; its status says why). */
async function resultOf<R>(client: Client, started: Started, shown: Shown): Promise<R | undefined> {
  const over = FINAL_PHASES.includes(shown.status.phase) || shown.execution !== 'RUNNING';
  if (!over) return undefined;
  return (await client.workflow
    .getHandle(started.workflowId, started.runId)
    .result()
    .catch(() => undefined)) as R | undefined;
}
