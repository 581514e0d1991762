/**
 * The one driver of the one wait loop. {@linkcode waitSteps} (`_wait.ts`) decides what a wait
 * does next, as a {@linkcode Step}: park (block this thread up to `ms`) or sleep (up to `ms`,
 * off the thread where it can); {@linkcode drive} does the steps with what the waiter gives it
 * (a {@linkcode Doer}) and feeds each step's outcome back, until the loop answers.
 *
 * Every wait on another process runs here: a primitive's shared word and the queue's put and
 * join (`_sync_wait.ts`, `_queue_handle.ts`: park = `sem_timedwait` on this thread, sleep = the
 * same on a worker thread), an fd (`_fd_wait.ts`: park = `ppoll` on this thread, sleep = `poll`
 * on a worker thread raced against a stop), the manager server's poll set
 * (`_manager_listen.ts`).
 *
 * The rules, the same for every waiter:
 * - **Answered in the same call** while no step has gone off the thread: a wait that its try,
 *   spin or park ends returns a boolean, not a promise (no async function, no microtask turn: a
 *   hand-off's speed depends on it). The first step that returns a promise (a sleep off the
 *   thread, or a park that awaits a turn of the event loop first: see below) makes the rest of
 *   the wait asynchronous. A `sleep` that answers synchronously keeps it all on the thread: a
 *   wait that blocks throughout (`acquireSync()`: every step blocks), or one that stops at its
 *   first sleep (a sleep that says `null`: `readyHere`).
 * - A sleep that says **`null`** was stopped (a close, the server stopping): the wait answers
 *   false.
 * - After each step that took nothing, an abort of `signal` ends the wait with `signal.reason`:
 *   it wins over a try that had not happened yet (a Condition.wait() aborted in the turn that a
 *   notify() came must not take it). A wake-up it took is the loop's to keep or pass on.
 * - `check()` runs after each step and may throw (a handle closed meanwhile).
 * - However the wait ends (an answer, a throw, a stop), the driver calls `steps.return(false)`
 *   (the loop undoes its registration among the waiters) and then `end()`.
 * - **Parks keep the event loop turning:** a park blocks the event loop, and a peer that answers
 *   every wait within a (learnt, up to 5 ms) park would otherwise keep it from turning for as
 *   long as the exchange lasts. So a thread's waits park for at most {@linkcode PARK_BUDGET_MS}
 *   in all; then a wait that would park first lets the event loop turn once (timers and I/O
 *   run, ~30 µs on a quiet machine), which renews the budget, and parks then, for what is left
 *   of its park. One turn serves every wait of the thread that waits for it. What that turn ran
 *   may have ended the wait: an abort and `check()` are looked at, and a doer may say it was
 *   stopped (`stopped()`). A wait that must stay on the thread (a {@linkcode Doer} that is
 *   `blocking`) sleeps instead: `acquireSync()`'s sleep blocks as its park does, `readyHere`'s
 *   ends the wait.
 *
 * @module
 */
import type { Step } from "./_wait.ts";

/** How long this thread's waits have parked since the budget was last renewed, in ms. */
let parked = 0;
/** The turn of the event loop that the waits past the budget wait for. */
let turn: Promise<void> | undefined;

/**
 * Resolves after the event loop turned once (timers and I/O ran), with the budget renewed: a
 * message to itself through a channel closed at once, so nothing stays to keep the program alive
 * (~30 µs; `setTimeout(0)` takes ~2 ms here, and `node:timers`' `setImmediate` ~8 ms to load).
 */
function nextTurn(): Promise<void> {
  if (turn) return turn;
  const { port1, port2 } = new MessageChannel();
  const turned = new Promise<void>((resolve) => {
    port1.onmessage = () => {
      port1.close();
      turn = undefined;
      parked = 0;
      resolve();
    };
  });
  try {
    port2.postMessage(null);
  } catch (e) {
    port1.close();
    throw e;
  } finally {
    port2.close();
  }
  return turn = turned;
}

/**
 * How long a thread's waits may park in all before one of them lets the event loop turn, in ms.
 * Only that turn renews it: a turn that other code made may wake several waits, and each would
 * otherwise park a whole budget (four waits: a 56 ms gap between timer ticks). A Pipe exchange
 * whose peer answers after 1 or 3 ms (50 fast answers first, so that parks are learnt long), with
 * a 1 ms timer chain beside it, longest gap between timer ticks: no bound 254 / 674 ms; renewed
 * at each wait's sleep: 50 ms 110 / 53, 10 ms 11 / 20, 5 ms 9 / 11; 10 ms renewed once per turn
 * seen by a timer, then a sleep off the thread: 3–4 / 10; as now: 11–13 / 7–10 (0752135, before
 * learnt parks: 4 / 6).
 */
export const PARK_BUDGET_MS = 10;

/**
 * Does a step: a park while the budget above lasts (cut to what is left of it); past it, a turn
 * of the event loop first (a `blocking` doer sleeps instead).
 */
function doStep(doer: Doer, step: Step): boolean | null | Promise<boolean | null> {
  const { park, ms } = step;
  if (!park) return doer.sleep(ms);
  const left = PARK_BUDGET_MS - parked;
  if (left <= 0) {
    if (doer.blocking) return doer.sleep(ms);
    const asked = performance.now();
    return nextTurn().then(() => {
      if (doer.stopped?.()) return null;
      doer.signal?.throwIfAborted();
      doer.check?.();
      return doStep(doer, { park: true, ms: Math.max(0, ms - (performance.now() - asked)) });
    });
  }
  const start = performance.now();
  try {
    return doer.park(Math.min(ms, left));
  } finally {
    parked += performance.now() - start;
  }
}

/** What a waiter gives {@linkcode drive}: how to do each step, and what to look at between them. */
export interface Doer {
  /** Blocks this thread for up to `ms`; true when it took a wake-up (a post, readiness). */
  park(ms: number): boolean;
  /**
   * Sleeps for up to `ms`: true when it took a wake-up, false when not, `null` when the wait was
   * stopped (it answers false). A promise: off the thread; a value: on it.
   */
  sleep(ms: number): boolean | null | Promise<boolean | null>;
  /** An abort seen after a step that took nothing ends the wait with its reason. */
  readonly signal?: AbortSignal;
  /** Runs after each step; may throw (a handle closed meanwhile). */
  check?(): void;
  /** Runs once when the wait ends, however it ends (after `steps.return()`). */
  end?(): void;
  /**
   * After a turn of the event loop that this wait awaited before its park (past the budget):
   * true when the wait must end there (it answers false), as a stopped sleep does: its stop came,
   * or what it waits on may have changed meanwhile.
   */
  stopped?(): boolean;
  /**
   * Every step of this wait stays on the thread (`acquireSync()`, whose sleeps block; `readyHere`,
   * whose first sleep stops it): past the park budget it sleeps instead of awaiting a turn.
   */
  readonly blocking?: boolean;
}

/** A {@linkcode Doer} whose sleeps answer on this thread: the whole wait does. */
export interface SyncDoer extends Doer {
  sleep(ms: number): boolean | null;
  readonly blocking: true;
}

/** The steps of one wait: `waitSteps()`. */
export type Steps = Generator<Step, boolean, boolean>;

/**
 * Drives `steps` to their answer: true when the wait took what it waited for, false when it
 * gave up (deadline, stopped). Synchronously while every step answers synchronously; a promise
 * from the first step that does not on (a sleep off the thread, a park after a turn). Throws (or rejects) with what `check()` or
 * a step throws, or with `signal.reason` (see the module comment).
 */
export function drive(steps: Steps, doer: SyncDoer): boolean;
export function drive(steps: Steps, doer: Doer): boolean | Promise<boolean>;
export function drive(steps: Steps, doer: Doer): boolean | Promise<boolean> {
  let step: IteratorResult<Step, boolean> | undefined;
  let handed = false; // the rest of the wait, its ending included, is `driveOff`'s
  try {
    step = steps.next();
    while (!step.done) {
      const took = doStep(doer, step.value);
      if (took === null) return false;
      if (typeof took !== "boolean") {
        handed = true;
        return driveOff(steps, took, doer);
      }
      if (!took) doer.signal?.throwIfAborted();
      doer.check?.();
      step = steps.next(took);
    }
    return step.value;
  } finally {
    if (!handed) {
      if (!step?.done) steps.return(false);
      doer.end?.();
    }
  }
}

/** The rest of a wait, from its first step that answers with a promise (`pending`) on. */
async function driveOff(
  steps: Steps,
  pending: boolean | null | Promise<boolean | null>,
  doer: Doer,
): Promise<boolean> {
  try {
    for (;;) {
      const took = await pending;
      if (took === null) return false;
      if (!took) doer.signal?.throwIfAborted();
      doer.check?.();
      const step = steps.next(took);
      if (step.done) return step.value;
      pending = doStep(doer, step.value);
    }
  } finally {
    steps.return(false);
    doer.end?.();
  }
}
