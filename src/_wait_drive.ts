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
 *   hand-off's speed depends on it). The first sleep that returns a promise makes the rest of
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
 *
 * @module
 */
import type { Step } from "./_wait.ts";

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
}

/** A {@linkcode Doer} whose sleeps answer on this thread: the whole wait does. */
export interface SyncDoer extends Doer {
  sleep(ms: number): boolean | null;
}

/** The steps of one wait: `waitSteps()`. */
export type Steps = Generator<Step, boolean, boolean>;

/**
 * Drives `steps` to their answer: true when the wait took what it waited for, false when it
 * gave up (deadline, stopped). Synchronously while every step answers synchronously; a promise
 * from the first sleep that goes off the thread on. Throws (or rejects) with what `check()` or
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
      const took = step.value.park ? doer.park(step.value.ms) : doer.sleep(step.value.ms);
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

/** The rest of a wait, from its first sleep off the thread (`pending`) on. */
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
      pending = step.value.park ? doer.park(step.value.ms) : doer.sleep(step.value.ms);
    }
  } finally {
    steps.return(false);
    doer.end?.();
  }
}
