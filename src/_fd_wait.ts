/**
 * Waiting for a file descriptor to become ready (readable, writable), without blocking the event
 * loop for long: the fd driver of the one wait loop (`waitSteps` in `_wait.ts`, where the policy
 * and its numbers are).
 *
 * A spin re-polls the fd with a zero timeout; a step that parks polls it on this thread (`ppoll`, at most `PARK_MS`); a step that sleeps
 * polls it on a worker thread (a non-blocking FFI call: the event loop runs meanwhile) for at most
 * one slice, raced against `stop`, so that close, abort and deadlines are noticed.
 *
 * @module
 */
import { pollFds, pollFdsAsync } from "../native/mod.ts";
import { Deadline, Eagerness, SLICE_MS, waitSteps, whenAborted } from "./_wait.ts";

export { SLICE_MS };

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
   * Resolves true when `fd` (or one of several) has `events`, false when one of `stop` aborts first or at `deadline`
   * (a `performance.now()` time). Nothing of the wait stays attached to the signals afterwards: a
   * connection waits millions of times on the one signal that its `close()` aborts. (`stop` may
   * also be a promise that lives no longer than the caller's wait: each wait adds a reaction to
   * it.)
   */
  async ready(
    fd: number | readonly number[],
    events: number,
    stop: readonly AbortSignal[] | Promise<unknown>,
    deadline = Infinity,
  ): Promise<boolean> {
    const fds = typeof fd === "number" ? [fd] : [...fd];
    const steps = waitSteps(
      { tryTake: () => pollFds(fds, events, 0).length > 0 },
      Deadline.until(deadline),
      this.#eager,
    );
    try {
      let step = steps.next();
      // Parks happen here, before any promise is made for the stop signals.
      while (!step.done && step.value.park) step = steps.next(pollFds(fds, events, step.value.ms).length > 0);
      if (step.done) return step.value;
      const aborted = Array.isArray(stop) ? whenAborted(stop as AbortSignal[]) : null;
      let stopped = false;
      const stopping = (aborted ? aborted.promise : stop as Promise<unknown>)
        .then(() => stopped = true, () => stopped = true).then(() => null);
      try {
        while (!step.done) {
          const ready = await Promise.race([
            pollFdsAsync(fds, events, step.value.ms | 0 || 1, this.#unref ? UNREF : undefined),
            stopping,
          ]);
          if (stopped || ready === null) return false;
          step = steps.next(ready.length > 0);
        }
        return step.value;
      } finally {
        aborted?.dispose();
      }
    } finally {
      steps.return(false);
    }
  }
}
