/**
 * Waiting for a file descriptor to become ready, without blocking the event loop for long.
 *
 * A wait first spins for a few tens of microseconds, polling the fd with a zero timeout: a peer
 * that is busy talking to us usually answers that fast, and catching the answer this way costs a
 * few microseconds instead of an event-loop wake-up (~50-100 µs here). It spins only when the
 * previous wait was short; otherwise, and after the spin, it sleeps in `poll()` on a worker thread
 * (a non-blocking FFI call), one slice at a time so that close, abort and deadlines are noticed.
 *
 * @module
 */
import { pollFds, pollFdsAsync } from "../native/mod.ts";

/** How long a wait spins before it sleeps, in ms. */
const SPIN_MS = 0.1;
/** How long one sleeping poll lasts before it looks at close/abort/timeout again, in ms. */
export const SLICE_MS = 200;

/** A wait that lasted longer than this was not worth spinning for: the next one sleeps at once. */
const SPIN_WORTH_MS = 4 * SPIN_MS;

/**
 * Waits for an fd to be ready: spins briefly when the last wait was short (a peer that answers
 * at once), else sleeps in poll() on a worker thread.
 */
export class Waiter {
  #lastMs = 0;

  /** Resolves true when `fd` has `events`, false when `stop` settles first or at `deadline`. */
  async ready(fd: number, events: number, stop: Promise<unknown>, deadline = Infinity): Promise<boolean> {
    const t0 = performance.now();
    if (this.#lastMs < SPIN_WORTH_MS) {
      const end = t0 + SPIN_MS;
      do {
        if (pollFds([fd], events, 0).length > 0) {
          this.#lastMs = performance.now() - t0;
          return true;
        }
      } while (performance.now() < end);
    }
    let stopped = false;
    const stopping = stop.then(() => stopped = true, () => stopped = true).then(() => null);
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
      this.#lastMs = performance.now() - t0;
    }
  }
}
