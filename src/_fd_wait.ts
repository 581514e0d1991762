/**
 * Waiting for a file descriptor to become ready (readable, writable), without blocking the event
 * loop for long: the fd driver of the one wait loop (`waitSteps` in `_wait.ts`, where the policy
 * and its numbers are).
 *
 * A spin re-polls the fd with a zero timeout; a step that parks polls it on this thread (`ppoll`,
 * at most the park's length); a step that sleeps polls it on a worker thread (a non-blocking FFI
 * call: the event loop runs meanwhile) for at most one slice, raced against `stop`, so that
 * close, abort and deadlines are noticed. A wait that ends before it sleeps is answered
 * synchronously (a boolean, not a promise): no async function, no extra microtask turns. The
 * driver itself ({@linkcode parkHere}, {@linkcode sleepOff}) takes the poll as a function, so
 * the manager server's loop drives its whole poll set with it too.
 * `Turns` bounds how long waits that block the thread (the manager's) follow one another.
 *
 * @module
 */
import { pollFds, pollFdsAsync } from "../native/mod.ts";
import { Deadline, Eagerness, PARK_MS, SLICE_MS, type Step, waitSteps, whenAborted } from "./_wait.ts";

export { SLICE_MS };

const FOREVER = new Deadline(Infinity);
const UNREF = { unref: true } as const;

/**
 * Waits for one fd again and again: one per connection end and direction, as it keeps what the
 * loop learnt about this peer's answers (whether spins and parks pay).
 */
export class Waiter {
  #eager = new Eagerness();
  #unref: boolean;

  /**
   * `unref`: the wait does not keep the program alive by itself (its sleeps are unref'd polls):
   * for a wait whose work the exit hook finishes anyway (a queue's drain).
   */
  constructor(options?: { unref?: boolean }) {
    this.#unref = options?.unref ?? false;
  }

  /**
   * True when `fd` (or one of several) has `events`, false when one of `stop` aborts first or at
   * `deadline` (a `performance.now()` time); a promise of that once the wait sleeps off the
   * thread. Nothing of the wait stays attached to the signals afterwards: a connection waits
   * millions of times on the one signal that its `close()` aborts. (`stop` may also be a promise
   * that lives no longer than the caller's wait: each wait adds a reaction to it.) `parkMs` is
   * the loop's park length (`waitSteps`).
   */
  ready(
    fd: number | readonly number[],
    events: number,
    stop: readonly AbortSignal[] | Promise<unknown>,
    deadline = Infinity,
    parkMs = PARK_MS,
  ): boolean | Promise<boolean> {
    const fds = typeof fd === "number" ? [fd] : [...fd];
    const steps = waitSteps(
      { tryTake: () => pollFds(fds, events, 0).length > 0, wakeTakes: true },
      deadline === Infinity ? FOREVER : Deadline.until(deadline),
      this.#eager,
      undefined,
      parkMs,
    );
    const step = parkHere(steps, (ms) => pollFds(fds, events, ms).length > 0);
    return step.done
      ? step.value
      : sleepOnFds(steps, step.value, fds, events, stop, this.#unref ? UNREF : undefined);
  }

  /**
   * Waits on this thread only: the loop's try, spin and park (up to `parkMs`). True when `fd`
   * has `events`; false when it has not by then (the wait would go on off the thread).
   */
  readyHere(fd: number, events: number, parkMs: number): boolean {
    const fds = [fd];
    const steps = waitSteps(
      { tryTake: () => pollFds(fds, events, 0).length > 0, wakeTakes: true },
      FOREVER,
      this.#eager,
      undefined,
      parkMs,
    );
    const step = parkHere(steps, (ms) => pollFds(fds, events, ms).length > 0);
    if (step.done) return step.value;
    steps.return(false);
    return false;
  }
}

/** Polls what a wait watches: up to `ms` on this thread (true: ready). */
export type PollHere = (ms: number) => boolean;
/** Polls what a wait watches on a worker thread for up to `ms`: true ready, false not yet, null stopped. */
export type PollOff = (ms: number) => Promise<boolean | null>;

/**
 * Runs the loop's first steps on this thread, up to its first sleep (or its end): the fd driver
 * of the loop for a `Waiter` and for the manager server's poll set alike.
 */
export function parkHere(
  steps: Generator<Step, boolean, boolean>,
  poll: PollHere,
): IteratorResult<Step, boolean> {
  try {
    let step = steps.next();
    while (!step.done && step.value.park) step = steps.next(poll(step.value.ms));
    return step;
  } catch (e) {
    steps.return(false);
    throw e;
  }
}

/** The loop's sleeps, from `first` on, each a `poll` off the thread; false once one says it stopped. */
export async function sleepOff(
  steps: Generator<Step, boolean, boolean>,
  first: Step,
  poll: PollOff,
): Promise<boolean> {
  try {
    let step: IteratorResult<Step, boolean> = { done: false, value: first };
    while (!step.done) {
      const ready = await poll(step.value.ms);
      if (ready === null) return false;
      step = steps.next(ready);
    }
    return step.value;
  } finally {
    steps.return(false);
  }
}

/** {@linkcode sleepOff} on `fds`, each sleep a worker thread's poll raced against `stop`. */
async function sleepOnFds(
  steps: Generator<Step, boolean, boolean>,
  first: Step,
  fds: number[],
  events: number,
  stop: readonly AbortSignal[] | Promise<unknown>,
  options: typeof UNREF | undefined,
): Promise<boolean> {
  const aborted = Array.isArray(stop) ? whenAborted(stop as AbortSignal[]) : null;
  let stopped = false;
  const stopping = (aborted ? aborted.promise : stop as Promise<unknown>)
    .then(() => stopped = true, () => stopped = true).then(() => null);
  try {
    return await sleepOff(steps, first, async (ms) => {
      const ready = await Promise.race([pollFdsAsync(fds, events, ms | 0 || 1, options), stopping]);
      return stopped || ready === null ? null : ready.length > 0;
    });
  } finally {
    aborted?.dispose();
  }
}

/**
 * Counts how long waits that block the thread followed one another (an answered manager call goes
 * on in a microtask): after one `SLICE_MS`, one wait goes through the event loop, so
 * that timers and I/O do not starve (not more often: a turn costs a worker thread's wake-up,
 * milliseconds on a full machine). A pause of over 1 ms since `blocked()` counts as a turn.
 */
export class Turns {
  #since = -Infinity;
  #last = -Infinity;

  /** Whether the next wait may block the thread (else it goes through the event loop). */
  mayBlock(now = performance.now()): boolean {
    if (now - this.#last > 1) this.#since = now;
    return now - this.#since < SLICE_MS;
  }

  /** The thread was kept from the event loop until now. */
  blocked(now = performance.now()): void {
    this.#last = now;
  }

  /** The event loop turned. */
  turned(now = performance.now()): void {
    this.#since = this.#last = now;
  }
}
