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
import { defineSearchAttributeKey, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  type ChildWorkflowHandle,
  condition,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  patched,
  proxySinks,
  sleep,
  startChild,
  isCancellation,
  defineQuery,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType, rootMessage } from '../common/errors.ts';
import { heldMessage, LEASE_MEMO_KEY, type LeaseHolder, leaseId, preempts } from '../common/lease.ts';
import {
  type Attention,
  type DecisionRecord,
  type DrctlSinks,
  FINAL_PHASES,
  memoOf,
  type Phase,
  type RunbookName,
  type RunbookStatus,
  SEARCH_KEYS as SA,
  signerText,
  startSearchAttributes,
  STATUS_MEMO_KEY,
  type Step,
} from '../common/runbook.ts';
import type { DecisionKind } from '../common/signed.ts';
import { quick } from './activity-options.ts';

const { drctlMetrics } = proxySinks<DrctlSinks>();
import { approveSignal, decideUpdate, rejectSignal } from './approval.ts';
import { releaseSignal, siteLease } from './lease.ts';

export { approveSignal, decideUpdate, rejectSignal } from './approval.ts';
export { signerText } from '../common/runbook.ts';

/** Set by Temporal on a run a schedule started. */
const SCHEDULED_BY = defineSearchAttributeKey('TemporalScheduledById', 'KEYWORD');

/** How long a runbook waits for a drill it preempts to clean up and let go of the site. */
const PREEMPT_WAIT_MS = 15 * 60_000;

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
  /** The run's input: its signed `request` (who asked, proven) and what that request was signed over. */
  input?: { request?: unknown };
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
  /** The run's end was reported to the worker's metrics (once, at its first final phase). */
  private counted = false;
  /** The memo last written: a transition that changes nothing in it writes nothing. */
  private published?: string;
  /** Set by an undo that rolls the run forward: why the older undos are kept, not run. */
  private kept?: string;
  /** The site leases this run holds (common/lease.ts). */
  private readonly leases: ChildWorkflowHandle<typeof siteLease>[] = [];

  /** The run's signed request, and its input without it (what the request's digest binds). */
  private readonly request?: unknown;
  private readonly runInput?: unknown;

  constructor(init: RunbookInit, extra: X) {
    if (init.input) {
      const { request, ...rest } = init.input;
      this.request = request;
      this.runInput = rest;
    }
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

  /**
   * The step `lease`: before it reads or changes anything, the run takes the lease of every site it
   * may change, and holds them until it releases them or ends. A site another run
   * holds is refused, naming it (LeaseHeld), unless that run is a drill and this one is not: the
   * drill is cancelled (its cleanup removes only what it created) and this run waits for the site.
   * A child runbook works under its parent's lease. Runs that started before leases existed
   * replay without this step.
   */
  async lease(sites: () => Promise<string[]>): Promise<void> {
    if (!patched('runbook-lease')) return;
    await this.run('lease', async (s) => {
      // At once: a runbook never waits for another that is not a drill (it is refused), and a drill
      // waits for nobody, so taking several sites together cannot deadlock.
      await Promise.all(
        [...new Set(await sites())].sort().map(async (site) => {
          s.items[site] = 'taking';
          s.items[site] = await this.take(site, s);
        }),
      );
      s.detail = Object.entries(s.items)
        .map(([site, how]) => `${site}: ${how}`)
        .join('; ');
    });
  }

  private async take(site: string, s: Step): Promise<string> {
    const info = workflowInfo();
    const me: LeaseHolder = {
      site,
      workflowId: info.workflowId,
      runbook: this.status.runbook,
      title: this.status.title,
      requestedBy: this.status.requestedBy,
      since: new Date().toISOString(),
    };
    const deadline = Date.now() + PREEMPT_WAIT_MS;
    let preempted: string | undefined;
    let vacant = 0;
    for (;;) {
      try {
        const h = await startChild(siteLease, {
          workflowId: leaseId(site),
          args: [me],
          memo: { [LEASE_MEMO_KEY]: me },
          // A lease whose holder ended may be taken again (said, not left to a server's default).
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          // The lease lives exactly as long as this run: a cancel of this run does not end it (the
          // undo still needs the site); the run closing, in any way, does.
          parentClosePolicy: ParentClosePolicy.TERMINATE,
          cancellationType: ChildWorkflowCancellationType.ABANDON,
        });
        this.leases.push(h);
        return preempted ? `held (preempted ${preempted})` : 'held';
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      const holder = await quick.leaseHolder({ site });
      // Taken, yet no run holds it, again and again: say so rather than wait for ever.
      if (!holder && ++vacant >= 5)
        throw refuse(FailureType.LeaseHeld, `${leaseId(site)} cannot be started, though no run holds it`);
      if (holder && holder.workflowId === info.parent?.workflowId)
        return `held by ${holder.workflowId}, this run's parent`;
      if (holder && !preempts(this.status.runbook, holder.runbook))
        throw refuse(FailureType.LeaseHeld, heldMessage(holder));
      if (holder && preempted !== holder.workflowId) {
        preempted = holder.workflowId;
        // A drill that ended meanwhile cannot be cancelled: the next try takes the site.
        await getExternalWorkflowHandle(holder.workflowId)
          .cancel()
          .catch((err: unknown) => {
            if (isCancellation(err)) throw err;
          });
        s.items[site] = `preempting ${holder.runbook} ${holder.workflowId}: cancelled, waiting for its cleanup`;
        this.publish();
      }
      if (Date.now() > deadline)
        throw refuse(
          FailureType.LeaseHeld,
          `${site}: ${preempted} was cancelled but did not let go of the site within ${PREEMPT_WAIT_MS / 60_000} min`,
        );
      await sleep(2000);
    }
  }

  /** This run is done with its sites (a drill once its cleanup ran): the next runbook may take them. */
  async release(): Promise<void> {
    const held = this.leases.splice(0);
    await CancellationScope.nonCancellable(() =>
      Promise.all(held.map((h) => h.signal(releaseSignal).catch(() => undefined))),
    );
  }

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

  /** A dry run ends after its preflight: every step not run is skipped, the phase `dry-run`. */
  endDryRun(): void {
    for (const s of this.status.steps) if (s.state === 'pending') this.skip(s.step, 'dry run');
    this.setPhase('dry-run');
  }

  /**
   * A step after the gate opened and before the first change: what the go was given for must still
   * hold (a gate may wait an hour). When it does not, or the run is cancelled here, the run aborts
   * as a rejection at the gate does: `aborted`, what was prepared undone, nothing changed.
   */
  readonly recheck = async <T>(name: string, fn: (s: Step) => Promise<T>): Promise<T> => {
    try {
      return await this.run(name, fn);
    } catch (err) {
      this.changing = false;
      this.status.error = rootMessage(err);
      this.setPhase('aborted');
      throw err;
    }
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
      return await this.executeHolding(body, compensated);
    } finally {
      await this.release();
    }
  }

  private async executeHolding<T>(body: () => Promise<T>, compensated: (cause: string) => string): Promise<T> {
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
   * The go/no-go gate, as the step `approval`. Before it waits, the worker digests the evidence
   * (what a decision is signed over) and checks the run's signed request. It opens on approvals
   * signed by allowlisted keys, bound to this run and this evidence (activities/approval.ts): one,
   * not the requester's; two from different people when the two-person rule has no proven
   * requester. An accepted rejection or no decision before the timeout aborts the run (`aborted`,
   * with what was prepared undone by `execute`); nothing was changed. A refused decision is
   * recorded with why, and the gate stays shut.
   */
  async gate(
    policy: GatePolicy,
    timeoutMs: number,
    what: string,
    opts: {
      /** What an approval must say besides go (e.g. an attestation); a refusal names what is missing. */
      approvalNeeds?: (reason: string | undefined) => string | undefined;
    } = {},
  ): Promise<DecisionRecord> {
    const claimed = this.status.requestedBy ?? '';
    const d = await this.run('approval', async (s) => {
      const info = workflowInfo();
      const opening = await quick.openGate({
        evidence: this.status.evidence ?? null,
        runbook: this.status.runbook,
        workflowId: info.workflowId,
        request: this.request,
        runInput: this.runInput,
        startedAtMs: info.startTime.getTime(),
      });
      const requester = opening.requester.ok ? opening.requester.signer : undefined;
      const system = this.startedBySystem();
      const needed = policy.twoPersonRule && !requester && !system ? 2 : 1;
      this.status.gate = {
        evidenceDigest: opening.evidenceDigest,
        unsignedAllowed: opening.unsignedAllowed,
        requester,
        requesterUnproven: requester
          ? undefined
          : (system ?? (opening.requester.ok ? undefined : opening.requester.why)),
        approvalsNeeded: needed,
      };
      const notRequester = requester?.by ?? claimed;
      const accepted = await this.waitForPerson({
        phase: 'waiting-approval',
        waitingFor:
          `go/no-go from ${needed === 2 ? 'two' : 'one'} of ${policy.approvers.join(', ')}` +
          `${policy.twoPersonRule && notRequester ? ` (not ${notRequester})` : ''}, signed over evidence ${opening.evidenceDigest.slice(0, 12)}`,
        timeoutMs,
        evidence: opening.evidenceDigest,
        listen: (consider) => {
          setHandler(approveSignal, (x) => void consider(x, 'approve'), {
            description:
              'Go: paste the JSON that `drctl approve <workflow-id> --sign-only` prints ({"claims": ..., "signature": ...})',
          });
          setHandler(rejectSignal, (x) => void consider(x, 'reject'), {
            description: 'No-go: paste the JSON that `drctl reject <workflow-id> --sign-only` prints',
          });
          setHandler(decideUpdate, (x) => consider(x.signed ?? x, x.approve ? 'approve' : 'reject', true), {
            description: "The CLI's signed approve/reject: answers at once with the verdict",
            validator: (_x) => this.refuseUnlessWaiting('waiting-approval'),
          });
        },
        allow: (by, decision, so, reason) => {
          if (!policy.approvers.includes(by))
            return `${by} is not an approver (allowlist: ${policy.approvers.join(', ')})`;
          if (decision === 'approve' && policy.twoPersonRule && by === notRequester)
            return `two-person rule: ${by} requested this ${what} and cannot approve it`;
          if (decision === 'approve' && so.some((a) => a.by === by))
            return `${by} already approved; the two-person rule needs a second approver`;
          if (decision === 'approve' && opts.approvalNeeds) return opts.approvalNeeds(reason);
          return undefined;
        },
        done: (so) => so.some((x) => !x.approve) || new Set(so.map((x) => x.by)).size >= needed,
      });
      if (!accepted) {
        this.setPhase('aborted');
        throw ApplicationFailure.create({
          type: FailureType.ApprovalTimedOut,
          nonRetryable: true,
          message: `no approval within ${Math.round(timeoutMs / 1000)} s; nothing was changed`,
        });
      }
      const rejected = accepted.find((x) => !x.approve);
      const last = rejected ?? accepted[accepted.length - 1]!;
      if (!rejected) this.status.approvals = accepted;
      s.detail = rejected
        ? `rejected by ${signerText(rejected)}${rejected.reason ? `: ${rejected.reason}` : ''}`
        : `approved by ${accepted.map(signerText).join(' and ')}`;
      return last;
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

  /** A run no person asked for directly: a schedule's, or a child of another runbook (which had its own gate). */
  startedBySystem(): string | undefined {
    const info = workflowInfo();
    if (info.typedSearchAttributes.get(SCHEDULED_BY) !== undefined)
      return `started by the schedule ${info.typedSearchAttributes.get(SCHEDULED_BY)}`;
    if (info.parent) return `started by ${info.parent.workflowId}`;
    return undefined;
  }

  refuseUnlessWaiting(phase: Phase): void {
    if (this.status.phase !== phase) throw new Error(`not waiting for this: the run is ${this.status.phase}`);
  }

  /**
   * Search attributes for a child runbook this run starts: the same index, when this namespace has
   * it (a child started with an unknown attribute would fail to start).
   */
  childSearchAttributes(runbook: RunbookName, requestedBy?: string) {
    return this.indexed ? startSearchAttributes(runbook, requestedBy) : undefined;
  }

  /**
   * The gate is passed without waiting: the config's auto-approval of a health watch's failover,
   * or a parent's approval of its child runbook. The step `approval` says who and why.
   */
  passGate(d: DecisionRecord, why: string): void {
    this.skip('approval', why);
    this.opened(d);
  }

  /** The gate was passed without a person (a policy's auto-approval): the run changes things from here. */
  opened(d: DecisionRecord): void {
    this.status.approval = d;
    this.changing = true;
    this.setPhase('running');
  }

  /**
   * Waits for people's signed decisions through signals (the Web UI) and an update (the CLI, which
   * gets the verdict as its answer). Each is verified by the worker (signature, this run, this
   * evidence, not expired), then judged by `allow`; every one is recorded in `decisions`, refused
   * ones with why. Resolves with the accepted ones once `done` says so, or undefined when
   * `timeoutMs` passes first. Handlers are installed only now: a decision sent before the gate
   * existed is judged now, against evidence its signer could not have seen, and refused.
   */
  async waitForPerson(w: {
    phase: Phase;
    waitingFor: string;
    timeoutMs: number;
    /** The evidence digest a decision must be signed over. */
    evidence: string;
    /** Installs the signal and update handlers that feed `consider` (`answer`: an update, which throws when refused). */
    listen: (consider: (sent: unknown, decision: DecisionKind, answer?: boolean) => Promise<DecisionRecord>) => void;
    /** Why this verified person may not make this decision now (undefined: they may). */
    allow: (
      by: string,
      decision: DecisionKind,
      accepted: DecisionRecord[],
      reason: string | undefined,
    ) => string | undefined;
    done: (accepted: DecisionRecord[]) => boolean;
  }): Promise<DecisionRecord[] | undefined> {
    const accepted: DecisionRecord[] = [];
    let finished = false;
    const info = workflowInfo();
    this.setPhase(w.phase, w.waitingFor);
    // One decision at a time, in the order they arrived: each is verified (an activity) before
    // the next is judged, so "the first acceptable one wins" means the first one sent.
    const judge = async (sent: unknown, decision: DecisionKind, answer?: boolean): Promise<DecisionRecord> => {
      const rec: DecisionRecord = { by: '', approve: decision !== 'reject', decision, at: '', accepted: false };
      if (this.status.phase !== w.phase) rec.why = `not waiting for this: the run is ${this.status.phase}`;
      else {
        const v = await quick.verifyDecision({
          sent,
          expect: { decision, workflowId: info.workflowId, runId: info.runId, evidence: w.evidence },
        });
        if (!v.ok) Object.assign(rec, { by: v.by ?? '', why: v.why });
        else {
          Object.assign(
            rec,
            v.unsigned ? { by: v.by, unsigned: true } : { by: v.signer.by, fingerprint: v.signer.fingerprint },
          );
          Object.assign(rec, { reason: v.reason, evidence: w.evidence });
          rec.why = finished ? 'the decision was already made' : w.allow(rec.by, decision, accepted, v.reason);
        }
      }
      rec.at = new Date().toISOString();
      rec.accepted = !rec.why;
      this.status.decisions.push(rec);
      if (rec.accepted) {
        accepted.push(rec);
        finished = w.done(accepted);
      }
      this.publish();
      if (answer && !rec.accepted)
        throw ApplicationFailure.create({ type: FailureType.ApprovalRefused, nonRetryable: true, message: rec.why! });
      return rec;
    };
    let queue: Promise<unknown> = Promise.resolve();
    const judgeInTurn = (sent: unknown, decision: DecisionKind, answer?: boolean): Promise<DecisionRecord> => {
      const turn = queue.then(() => judge(sent, decision, answer));
      queue = turn.catch(() => undefined);
      return turn;
    };
    w.listen(judgeInTurn);
    await condition(() => finished, w.timeoutMs);
    this.status.waitingFor = undefined;
    return finished ? accepted : undefined;
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
    if (FINAL_PHASES.includes(s.phase) && !this.counted) {
      this.counted = true;
      const seconds = Math.max(0, (Date.now() - workflowInfo().startTime.getTime()) / 1000);
      drctlMetrics.runEnded({ runbook: s.runbook, phase: s.phase, seconds });
    }
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
