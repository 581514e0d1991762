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
 * - **Answered in the same call** while no step has gone through the event loop: a wait that
 *   its try, spin or park ends returns a boolean, not a promise (no async function, no microtask
 *   turn: a hand-off's speed depends on it). The first step that returns a promise (a sleep off
 *   the thread) makes the rest of the wait asynchronous, as does a turn of the event loop before
 *   the wait (see below). A `sleep` that answers synchronously keeps it all on the thread: a
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
 * - **Waits keep the event loop turning:** an answer taken on the thread resolves its promise in
 *   a microtask, so an exchange that its spins and parks keep answering would keep timers and
 *   I/O from running for as long as it lasts. So once this thread's waits have kept it from its
 *   event loop for {@linkcode TURN_BUDGET_MS} (since the first wait after the loop last turned,
 *   which an unref'd timer sees), a park sleeps instead (off the thread: the loop turns while
 *   the wait goes on), and every 8th wait that starts (or the next one, once a wait found the
 *   loop due: `overdue`) looks whether the loop is due and then lets it turn once first (`nextTurn`: one turn serves every wait that asks). What that turn
 *   ran may have ended the wait: an abort and `check()` are looked at, and a doer may say it was
 *   stopped (`stopped()`). A wait that must stay on the thread (a {@linkcode Doer} that is
 *   `blocking`) is never made to turn: its parks past the budget become its own sleeps
 *   (`acquireSync()`'s block as its parks do; `readyHere`'s end the wait, and `turnDue()` tells
 *   it not to start).
 *
 * @module
 */
import type { Step } from "./_wait.ts";

/** Since when this thread's waits have kept it from its event loop; undefined: it turned since. */
let blockedSince: number | undefined;
/** Waits driven on this thread (the entry check looks at the clock at every 8th). */
let waits = 0;
/** Whether the timer that sees the next turn of the event loop is set. */
let watching = false;
/** The turn of the event loop that the waits past the budget wait for. */
let turn: Promise<void> | undefined;

/** A wait found the loop due a turn (`turnDue`): the next wait that can let it turn does, at once. */
let overdue = false;

function turned(): void {
  blockedSince = undefined;
  overdue = false;
}

/**
 * For how long this thread's waits have kept it from its event loop, in ms: since the first wait
 * after the loop last turned. A turn is seen by a timer (unref'd), set by that first wait: it runs
 * only when the loop turns, whoever made it turn.
 */
function blockedFor(now: number): number {
  if (blockedSince !== undefined) return now - blockedSince;
  blockedSince = now;
  if (!watching) {
    watching = true;
    Deno.unrefTimer(setTimeout(() => {
      watching = false;
      turned();
    }, 0));
  }
  return 0;
}

/**
 * Whether this thread's waits have kept it from its event loop for {@linkcode TURN_BUDGET_MS}:
 * a wait that must stay on the thread then does not even try (`readyHere`).
 */
export function turnDue(): boolean {
  return overdue = blockedFor(performance.now()) >= TURN_BUDGET_MS;
}

/**
 * Resolves after the event loop turned once (timers and I/O ran): a message to itself through a
 * channel closed at once, so nothing stays to keep the program alive (~30 µs; `setTimeout(0)`
 * takes ~2 ms here, and `node:timers`' `setImmediate` ~8 ms to load).
 */
function nextTurn(): Promise<void> {
  if (turn) return turn;
  const { port1, port2 } = new MessageChannel();
  const turnedOnce = new Promise<void>((resolve) => {
    port1.onmessage = () => {
      port1.close();
      turn = undefined;
      turned();
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
  return turn = turnedOnce;
}

/**
 * How long a thread's waits may keep it from its event loop, in ms (their tries, spins and parks,
 * and whatever runs between them without a turn: a Pipe exchange answered in spins). Then a
 * park sleeps instead, and a wait that starts lets the loop turn once first. Longest gap between
 * the ticks of a 1 ms timer chain beside a Pipe exchange whose peer answers after 1 or 3 ms (50
 * fast answers first, so that parks are learnt long): no bound 254 / 674 ms; parks alone
 * counted, renewed at each wait's sleep: 50 ms 110 / 53, 10 ms 11 / 20, 5 ms 9 / 11; renewed once
 * per turn: 3–4 / 10 (0752135, before learnt parks: 4 / 6); as now: 12 / 5. A peer that answers
 * at once, 20 000 round trips answered in spins: parks alone counted 76 ms (0752135: 105 ms); as
 * now: 15 ms (12 ms for 3000).
 */
export const TURN_BUDGET_MS = 10;

/**
 * Does a step: a park while the budget above lasts; a park that would outlast it sleeps instead
 * (off the thread for an async wait: the event loop turns meanwhile, and the wait goes on). Not
 * a park cut to what is left, nor a turn first: a park cut short counts as one that missed (and
 * unlearns long parks), and a turn of its own, waiting for nothing meanwhile, took ~350 µs
 * under a Pipe exchange (55 turns: +12% round trip).
 */
function doStep(doer: Doer, { park, ms }: Step): boolean | null | Promise<boolean | null> {
  if (!park || TURN_BUDGET_MS - blockedFor(performance.now()) < ms) return doer.sleep(ms);
  return doer.park(ms);
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
   * After a turn of the event loop that this wait awaited before its first try (the loop was due
   * one): true when the wait must end there (it answers false), as a stopped sleep does: its stop
   * came, or what it waits on may have changed meanwhile.
   */
  stopped?(): boolean;
  /**
   * Every step of this wait stays on the thread (`acquireSync()`, whose sleeps block; `readyHere`,
   * whose first sleep stops it): it never awaits a turn; past the budget its parks become its own
   * sleeps (as every wait's do).
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
 * from the first step that does not on (a sleep off the thread), or when the wait lets the
 * event loop turn first. Throws (or rejects) with what `check()` or
 * a step throws, or with `signal.reason` (see the module comment).
 */
export function drive(steps: Steps, doer: SyncDoer): boolean;
export function drive(steps: Steps, doer: Doer): boolean | Promise<boolean>;
export function drive(steps: Steps, doer: Doer): boolean | Promise<boolean> {
  // The clock costs ~130 ns a look (a hand-off's wait: ~800 ns): every 8th wait looks.
  if (!doer.blocking && ((++waits & 7) === 0 || overdue) && turnDue()) return driveAfterTurn(steps, doer);
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

/**
 * A wait that lets the event loop turn before its first try: an abort, close or stop in that turn
 * comes first. Until `drive` takes over, the steps' return and `end()` are this function's.
 */
async function driveAfterTurn(steps: Steps, doer: Doer): Promise<boolean> {
  let stopped: boolean;
  try {
    await nextTurn();
    doer.signal?.throwIfAborted();
    doer.check?.();
    stopped = doer.stopped?.() ?? false;
  } catch (e) {
    steps.return(false);
    doer.end?.();
    throw e;
  }
  if (!stopped) return drive(steps, doer);
  steps.return(false);
  doer.end?.();
  return false;
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
