// The runbook kernel: what every runbook shares, once. A runbook file is its numbered steps and
// their undos; this file is everything around them:
// - the status (the `status` query, the memo the server keeps, the Web UI's current details and
//   the search attributes the Web UI filters on), one step type, `run(step, fn)` and `each(...)`;
// - the saga: `undo(name, fn, check)` registers a step's undo BEFORE the step runs (a fan-out may
//   fail half-way: every undo is idempotent, so undoing an item the step never reached is harmless);
//   `compensate()` runs them in reverse in a non-cancellable scope, each with bounded retries, and
//   when one cannot finish the run ends `needs-attention`, naming what a human must check; an undo
//   that finds the change past its point of no return (a failover whose target already serves)
//   calls `keep(why)`: the older undos are not run, and the run ends `rolled-forward`;
// - the go/no-go gate and any other wait for a person (the drill's sign-off) as steps.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  defineQuery,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType, rootMessage } from '../common/errors.ts';
import {
  type Attention,
  type Decision,
  type DecisionRecord,
  memoOf,
  type Phase,
  type RunbookName,
  type RunbookStatus,
  SEARCH_KEYS as SA,
  startSearchAttributes,
  STATUS_MEMO_KEY,
  type Step,
} from '../common/runbook.ts';
import { approveSignal, decideUpdate, rejectSignal } from './approval.ts';

export { approveSignal, decideUpdate, rejectSignal } from './approval.ts';

/** Every runbook answers this query with its RunbookStatus (plus its own fields). */
export const statusQuery = defineQuery<RunbookStatus>('status');

export interface RunbookInit {
  runbook: RunbookName;
  title: string;
  /** Every step in order, as `drctl status` lists them before they run. */
  steps: readonly string[];
  requestedBy?: string;
  sites?: string[];
  cluster?: string;
  /** The step that lists the undos as they run (`compensate`; the drill's `cleanup`). */
  undoStep?: string;
}

interface Undo {
  name: string;
  fn: () => Promise<unknown>;
  /** What a human must check if this undo cannot finish. */
  check: string;
}

/** The approver policy a gate applies (from the worker's config, read by an activity). */
export interface GatePolicy {
  approvers: string[];
  twoPersonRule: boolean;
}

export class Runbook<E = unknown, X extends object = object> {
  readonly status: RunbookStatus<E> & X;
  private readonly undos: Undo[] = [];
  private readonly undoStep: string;
  /** True once the gate opened: from then on a failure means something may have changed. */
  private changing = false;
  /** The server knows drctl's search attributes: the starter set them (an unknown one fails the start). */
  private readonly indexed: boolean;
  private indexedPhase?: Phase;
  /** The memo last written: a transition that changes nothing in it writes nothing. */
  private published?: string;
  /** Set by an undo that rolls the run forward: why the older undos are kept, not run. */
  private kept?: string;

  constructor(init: RunbookInit, extra: X) {
    this.undoStep = init.undoStep ?? 'compensate';
    this.status = {
      runbook: init.runbook,
      title: init.title,
      phase: 'running',
      requestedBy: init.requestedBy,
      sites: init.sites ?? [],
      cluster: init.cluster,
      steps: init.steps.map((step) => ({ step, state: 'pending', items: {} })),
      decisions: [],
      ...extra,
    };
    this.indexed = workflowInfo().typedSearchAttributes.get(SA.runbook) !== undefined;
    setHandler(statusQuery, () => this.status, {
      description: 'Phase, evidence and progress of every step (per node, check or undo)',
    });
    this.publish();
  }

  /** The step record, created (after the planned ones) if the runbook did not plan it. */
  step(name: string): Step {
    let s = this.status.steps.find((x) => x.step === name);
    if (!s) this.status.steps.push((s = { step: name, state: 'pending', items: {} }));
    return s;
  }

  /** Runs one step: its state, times and, on failure, the activity's own message. */
  readonly run = async <T>(name: string, fn: (s: Step) => Promise<T>): Promise<T> => {
    const s = this.step(name);
    s.state = 'running';
    s.startedAt = new Date().toISOString();
    delete s.endedAt;
    this.publish();
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
      s.seconds = (Date.now() - t0) / 1000;
      this.publish();
    }
  };

  /** Milliseconds per step that ran, for a runbook's result (`timings`). */
  timings(): Record<string, number> {
    return Object.fromEntries(
      this.status.steps.filter((s) => s.seconds !== undefined).map((s) => [s.step, s.seconds! * 1000]),
    );
  }

  readonly skip = (name: string, why: string): void => {
    Object.assign(this.step(name), { state: 'skipped', detail: why });
    this.publish();
  };

  /** The same work on every item at once (nodes, sites), with per-item progress in the step. */
  readonly each = <I, T>(s: Step, items: I[], key: (i: I) => string, fn: (i: I) => Promise<T>): Promise<T[]> =>
    Promise.all(
      items.map(async (i) => {
        const k = key(i);
        s.items[k] = 'running';
        try {
          const out = await fn(i);
          s.items[k] = typeof out === 'string' ? out : 'done';
          return out;
        } catch (err) {
          s.items[k] = `failed: ${rootMessage(err)}`;
          throw err;
        }
      }),
    );

  setPhase(phase: Phase, waitingFor?: string): void {
    this.status.phase = phase;
    this.status.waitingFor = waitingFor;
    this.publish();
  }

  /** Registers the undo of the step about to run; `check` tells a human what to look at if it cannot finish. */
  undo(name: string, fn: () => Promise<unknown>, check: string): void {
    this.undos.unshift({ name, fn, check });
  }

  /** Nothing the run did is left to undo (the undos ran, or the run handed its changes over). */
  forgetUndos(): void {
    this.undos.length = 0;
  }

  /**
   * Called by an undo that finds the change past its point of no return: compensation stops after
   * this undo (whether it then finishes or not), the older undos are kept, not run (they would
   * take away what now serves), and the run ends `rolled-forward` (or `needs-attention` when an
   * undo could not finish). `why` says what was kept and where things stand, for a person.
   */
  keep(why: string): void {
    this.kept = why;
    this.status.rolledForward = why;
    this.publish();
  }

  /**
   * Runs every registered undo, newest first, even when the run was cancelled. `independent`
   * undos (a drill's cleanup) all run whatever one of them does; otherwise the first that cannot
   * finish stops the rest, because each later undo assumes the earlier ones succeeded (etcd must
   * not start before its original data is back). Returns what a human must check.
   */
  compensate(opts: { independent?: boolean; then?: (s: Step) => Promise<void> } = {}): Promise<Attention[]> {
    const undos = this.undos.splice(0);
    return CancellationScope.nonCancellable(() =>
      this.run(this.undoStep, async (s) => {
        const attention: Attention[] = [];
        for (const u of undos) {
          if (this.kept) {
            s.items[u.name] = `kept: rolled forward`;
            continue;
          }
          if (attention.length && !opts.independent) {
            s.items[u.name] = 'not run: an earlier undo did not finish';
            attention.push({ undo: u.name, error: 'not run', check: u.check });
            continue;
          }
          s.items[u.name] = 'running';
          try {
            await u.fn();
            if (s.items[u.name] === 'running') s.items[u.name] = 'done';
          } catch (err) {
            s.items[u.name] = `failed: ${rootMessage(err)}`;
            attention.push({ undo: u.name, error: rootMessage(err), check: u.check });
          }
        }
        if (attention.length) s.detail = `${attention.length} undo(s) did not finish: needs attention`;
        else if (this.kept) s.detail = `rolled forward: ${this.kept}`;
        await opts.then?.(s);
        return attention;
      }),
    );
  }

  /**
   * The standard life of a destructive runbook: run `body`; on a failure or cancel, undo what was
   * done and end `compensated`, or `needs-attention` when an undo could not finish, or
   * `rolled-forward` when an undo kept the rest (`keep`). A failure
   * before the gate opened ends `failed` (or `aborted` at the gate) after undoing what was
   * prepared (staged files): nothing of the cluster was changed.
   */
  async execute<T>(body: () => Promise<T>, compensated: (cause: string) => string): Promise<T> {
    try {
      const out = await body();
      this.setPhase('completed');
      return out;
    } catch (err) {
      this.status.error = rootMessage(err);
      const changed = this.changing;
      const hadUndos = this.undos.length > 0;
      // Before the gate opened the phase stays (aborted, or still the gate's) while what was
      // prepared is undone; setting it again ends any wait it named.
      if (hadUndos) this.setPhase(changed ? 'compensating' : this.status.phase);
      const attention = hadUndos ? await this.compensate() : [];
      if (attention.length) throw this.needsAttention(err, attention);
      if (this.kept) {
        this.setPhase('rolled-forward');
        if (isCancellation(err)) throw err;
        throw ApplicationFailure.create({
          type: FailureType.RolledForward,
          nonRetryable: true,
          message: `${this.status.title} failed (${rootMessage(err)}) past its point of no return; rolled forward, not undone: ${this.kept}`,
          cause: err as Error,
        });
      }
      if (!changed) {
        if (this.status.phase !== 'aborted') this.setPhase(isCancellation(err) ? 'aborted' : 'failed');
        throw err;
      }
      this.setPhase('compensated');
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.create({
        type: FailureType.Compensated,
        nonRetryable: true,
        message: compensated(rootMessage(err)),
        cause: err as Error,
      });
    }
  }

  /** Ends the run `needs-attention`: the failure names every undo that did not finish and what to check. */
  needsAttention(err: unknown, attention: Attention[]): ApplicationFailure {
    this.status.attention = attention;
    this.setPhase('needs-attention');
    return ApplicationFailure.create({
      type: FailureType.NeedsAttention,
      nonRetryable: true,
      message:
        `${this.status.title} failed (${rootMessage(err)}) and its undo could not finish; check:\n` +
        attention.map((a) => `- ${a.undo} (${a.error}): ${a.check}`).join('\n') +
        (this.kept ? `\nkept (rolled forward, not undone): ${this.kept}` : ''),
      cause: err as Error,
    });
  }

  /**
   * The go/no-go gate, as the step `approval`: waits for an allowlisted approver (not the requester
   * under the two-person rule). A rejection or no decision before the timeout aborts the run
   * (`aborted`, with what was prepared undone by `execute`); nothing was changed.
   */
  async gate(policy: GatePolicy, timeoutMs: number, what: string): Promise<DecisionRecord> {
    const requestedBy = this.status.requestedBy ?? '';
    const d = await this.run('approval', async (s) => {
      const decision = await this.waitForPerson<Decision & { approve: boolean }, DecisionRecord>({
        phase: 'waiting-approval',
        waitingFor: `go/no-go from one of ${policy.approvers.join(', ')}${policy.twoPersonRule && requestedBy ? ` (not ${requestedBy})` : ''}`,
        timeoutMs,
        listen: (consider, validate) => {
          setHandler(approveSignal, (x) => void consider({ ...x, approve: true }), {
            description: 'Go: open the gate. Input {"by": "<approver on the allowlist>", "reason": "..."}',
          });
          setHandler(rejectSignal, (x) => void consider({ ...x, approve: false }), {
            description: 'No-go: abort with nothing changed. Input {"by": "<approver>", "reason": "..."}',
          });
          setHandler(decideUpdate, consider, {
            description: "The CLI's approve/reject: refused at once unless the approver may decide",
            validator: validate,
          });
        },
        refusal: (x) => {
          if (!x || typeof x.by !== 'string' || !x.by) return 'a decision needs {"by": "<approver>"}';
          if (!policy.approvers.includes(x.by))
            return `${x.by} is not an approver (allowlist: ${policy.approvers.join(', ')})`;
          if (x.approve && policy.twoPersonRule && x.by === requestedBy)
            return `two-person rule: ${x.by} requested this ${what} and cannot approve it`;
          return undefined;
        },
        record: (x, why, accepted) => {
          const rec: DecisionRecord = {
            by: x?.by ?? '',
            reason: x?.reason,
            approve: !!x?.approve,
            at: new Date().toISOString(),
            accepted,
            why,
          };
          this.status.decisions.push(rec);
          return rec;
        },
      });
      if (!decision) {
        this.setPhase('aborted');
        throw ApplicationFailure.create({
          type: FailureType.ApprovalTimedOut,
          nonRetryable: true,
          message: `no approval within ${Math.round(timeoutMs / 1000)} s; nothing was changed`,
        });
      }
      s.detail = `${decision.approve ? 'approved' : 'rejected'} by ${decision.by}${decision.reason ? `: ${decision.reason}` : ''}`;
      return decision;
    });
    this.status.approval = d;
    if (!d.approve) {
      this.setPhase('aborted');
      throw ApplicationFailure.create({
        type: FailureType.ApprovalRejected,
        nonRetryable: true,
        message: `rejected by ${d.by}${d.reason ? `: ${d.reason}` : ''}; nothing was changed`,
      });
    }
    this.opened(d);
    return d;
  }

  /**
   * Search attributes for a child runbook this run starts: the same index, when this namespace has
   * it (a child started with an unknown attribute would fail to start).
   */
  childSearchAttributes(runbook: RunbookName, requestedBy?: string) {
    return this.indexed ? startSearchAttributes(runbook, requestedBy) : undefined;
  }

  /** The gate was passed without a person (a policy's auto-approval): the run changes things from here. */
  opened(d: DecisionRecord): void {
    this.status.approval = d;
    this.changing = true;
    this.setPhase('running');
  }

  /**
   * Waits for a person's input through signals (the Web UI) and a validated update (the CLI, which
   * refuses a bad input at once). Every input is recorded; the first one not refused is accepted.
   * Resolves undefined when `timeoutMs` passes first. Handlers are installed only now: an input sent
   * before (a parent approving its child runbook) is buffered and judged as one made now.
   */
  async waitForPerson<In, Rec>(w: {
    phase: Phase;
    waitingFor: string;
    timeoutMs: number;
    /** Installs the signal and update handlers that feed `consider` (updates validated by `validate`). */
    listen: (consider: (x: In) => Rec, validate: (x: In) => void) => void;
    refusal: (x: In) => string | undefined;
    record: (x: In, why: string | undefined, accepted: boolean) => Rec;
  }): Promise<Rec | undefined> {
    let accepted: Rec | undefined;
    const refusal = (x: In) =>
      this.status.phase !== w.phase ? `not waiting for this: the run is ${this.status.phase}` : w.refusal(x);
    this.setPhase(w.phase, w.waitingFor);
    w.listen(
      (x) => {
        const why = refusal(x);
        const rec = w.record(x, why, !why && accepted === undefined);
        if (!why && accepted === undefined) accepted = rec;
        return rec;
      },
      (x) => {
        const why = refusal(x);
        if (why) throw new Error(why);
      },
    );
    await condition(() => accepted !== undefined, w.timeoutMs);
    this.status.waitingFor = undefined;
    return accepted;
  }

  /** What the server keeps: the memo (for `drctl status` with no worker), details and search attributes. */
  private publish(): void {
    const s = this.status;
    const memo = memoOf(s);
    const key = JSON.stringify(memo);
    if (key === this.published) return;
    this.published = key;
    upsertMemo({ [STATUS_MEMO_KEY]: memo });
    const running = s.steps.find((x) => x.state === 'running');
    setCurrentDetails(
      [
        `**${s.title}**: ${s.phase}`,
        s.waitingFor ? `waits for ${s.waitingFor}` : running ? `step: ${running.step}` : undefined,
        s.error ? `error: ${s.error}` : undefined,
        ...(s.attention ?? []).map((a) => `check: ${a.undo}: ${a.check}`),
        s.rolledForward ? `rolled forward: ${s.rolledForward}` : undefined,
        s.steps.map((x) => `${x.step} ${x.state}`).join(' · '),
      ]
        .filter(Boolean)
        .join('\n\n'),
    );
    if (this.indexed && s.phase !== this.indexedPhase) {
      this.indexedPhase = s.phase;
      upsertSearchAttributes([
        { key: SA.phase, value: s.phase },
        { key: SA.sites, value: s.sites },
        ...(s.cluster ? [{ key: SA.cluster, value: s.cluster }] : []),
      ]);
    }
  }
}

/** A refusal: the run stops here, with a typed failure and the message a person reads. */
export function refuse(type: FailureType, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}
