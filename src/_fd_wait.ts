/**
 * Waiting for a file descriptor to become ready, without blocking the event loop for long.
 *
 * A wait first spins, polling the fd with a zero timeout, for about as long as the previous wait
 * took (50 µs to 0.3 ms): a peer that is busy talking to us usually answers that fast, and
 * catching the answer this way costs a few microseconds instead of a wake-up from a worker thread
 * (~100-150 µs here). After a longer wait it does not spin. Then it sleeps in `poll()` on a worker
 * thread (a non-blocking FFI call), one slice at a time so that close, abort and deadlines are
 * noticed. The event loop is blocked during a spin, never longer.
 *
 * @module
 */
import { pollFds, pollFdsAsync } from "../native/mod.ts";
import { whenAborted } from "./_wait.ts";

/** The shortest and longest a wait spins before it sleeps, in ms. */
const SPIN_MIN_MS = 0.05;
const SPIN_MAX_MS = 0.3;
/** How long one sleeping poll lasts before it looks at close/abort/timeout again, in ms. */
export const SLICE_MS = 200;

/**
 * Waits for an fd to be ready: spins for up to twice as long as the last wait took (at least
 * 50 µs, at most 0.3 ms), else sleeps in poll() on a worker thread. A last wait longer than that
 * (a slow peer) means no spinning at all. Spinning for as long as a worker-thread wake-up takes
 * matters: with shorter spins, two peers that both fell asleep once keep missing each other.
 */
export class Waiter {
  #lastMs = 0;

  /**
   * Resolves true when `fd` has `events`, false when one of `stop` aborts first or at `deadline`
   * (a `performance.now()` time). Nothing of the wait stays attached to the signals afterwards: a
   * connection waits millions of times on the one signal that its `close()` aborts. (`stop` may
   * also be a promise that lives no longer than the caller's wait: each wait adds a reaction to
   * it.)
   */
  async ready(
    fd: number,
    events: number,
    stop: readonly AbortSignal[] | Promise<unknown>,
    deadline = Infinity,
  ): Promise<boolean> {
    const t0 = performance.now();
    if (this.#lastMs <= SPIN_MAX_MS) {
      const end = t0 + Math.min(Math.max(2 * this.#lastMs, SPIN_MIN_MS), SPIN_MAX_MS);
      do {
        if (pollFds([fd], events, 0).length > 0) {
          this.#lastMs = performance.now() - t0;
          return true;
        }
      } while (performance.now() < end);
    }
    const aborted = Array.isArray(stop) ? whenAborted(stop as AbortSignal[]) : null;
    let stopped = false;
    const stopping = (aborted ? aborted.promise : stop as Promise<unknown>)
      .then(() => stopped = true, () => stopped = true).then(() => null);
    try {
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0) return false;
        const slice = Math.max(1, Math.min(left, SLICE_MS)) | 0;
        const ready = await Promise.race([pollFdsAsync([fd], events, slice), stopping]);
        if (stopped || ready === null) return false;
        if (ready.length > 0) return true;
      }
    } finally {
      aborted?.dispose();
      this.#lastMs = performance.now() - t0;
    }
  }
}
