/**
 * Waiting for a file descriptor to become ready (readable, writable), without blocking the event
 * loop for long: the one wait loop (`waitSteps` in `_wait.ts`, where the policy and its numbers
 * are) on fds, driven by the one driver (`drive` in `_wait_drive.ts`).
 *
 * A spin re-polls the fds with a zero timeout; a step that parks polls them on this thread
 * (`ppoll`, at most the park's length); a step that sleeps polls them on a worker thread (a
 * non-blocking FFI call: the event loop runs meanwhile) for at most one slice, raced against
 * `stop`, so that close, abort and deadlines are noticed (a stop ends the wait: false). A wait
 * that ends before it sleeps (and was not made to let the event loop turn first: `drive` in
 * `_wait_drive.ts`) is answered synchronously (a boolean, not a promise): no async function, no
 * extra microtask turns. The manager server's loop drives its whole poll set the same way
 * (`_manager_listen.ts`).
 *
 * @module
 */
import { pollFds, pollFdsAsync } from "../native/mod.ts";
import { type Attempt, Deadline, Eagerness, PARK_MS, waitSteps, whenAborted } from "./_wait.ts";
import { type Doer, drive, turnDue } from "./_wait_drive.ts";

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
   * `deadline` (a `performance.now()` time); a promise of that once the wait goes through the
   * event loop. Nothing of the wait stays attached to the signals afterwards: a connection waits
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
    const wait = new FdWait(typeof fd === "number" ? [fd] : [...fd], events, stop, this.#unref);
    const when = deadline === Infinity ? FOREVER : Deadline.until(deadline);
    return drive(waitSteps(wait, when, this.#eager, undefined, parkMs), wait);
  }

  /**
   * Waits on this thread only: the loop's try, spin and park (up to `parkMs`). True when `fd`
   * has `events`; false when it has not by then (the wait would go on off the thread), and at
   * once, without a try, when the event loop is due a turn (`turnDue`): the caller's wait then
   * goes through the loop, which lets it turn (a try that found an answer there would not).
   */
  readyHere(fd: number, events: number, parkMs: number): boolean {
    if (turnDue()) return false;
    const wait = new FdWait([fd], events, [], false);
    const here = { park: (ms: number) => wait.park(ms), sleep: () => null, blocking: true as const }; // the first sleep stops it
    return drive(waitSteps(wait, FOREVER, this.#eager, undefined, parkMs), here);
  }
}

/**
 * One wait for `fds` to have `events`: what the loop tries, and how the driver parks and sleeps.
 * Its sleeps race a worker thread's poll against `stop` (watched from the first sleep to the end
 * of the wait).
 */
class FdWait implements Attempt, Doer {
  readonly wakeTakes = true;
  #fds: number[];
  #events: number;
  #stop: readonly AbortSignal[] | Promise<unknown>;
  #unref: boolean;
  #stopped = false;
  /** Resolves to null once `stop` happened; made at the first sleep. */
  #stopping: Promise<null> | undefined;
  #aborted: { dispose(): void } | undefined;

  constructor(
    fds: number[],
    events: number,
    stop: readonly AbortSignal[] | Promise<unknown>,
    unref: boolean,
  ) {
    this.#fds = fds;
    this.#events = events;
    this.#stop = stop;
    this.#unref = unref;
  }

  tryTake(): boolean {
    return pollFds(this.#fds, this.#events, 0).length > 0;
  }

  park(ms: number): boolean {
    return pollFds(this.#fds, this.#events, ms).length > 0;
  }

  sleep(ms: number): Promise<boolean | null> {
    if (!this.#stopping) {
      const stop = this.#stop;
      const aborted = Array.isArray(stop) ? whenAborted(stop as AbortSignal[]) : undefined;
      this.#aborted = aborted;
      this.#stopping = (aborted ? aborted.promise : stop as Promise<unknown>)
        .then(() => this.#stopped = true, () => this.#stopped = true).then(() => null);
    }
    return this.#sleep(ms, this.#stopping);
  }

  async #sleep(ms: number, stopping: Promise<null>): Promise<boolean | null> {
    const polled = pollFdsAsync(this.#fds, this.#events, ms | 0 || 1, this.#unref ? UNREF : undefined);
    const ready = await Promise.race([polled, stopping]);
    return this.#stopped || ready === null ? null : ready.length > 0;
  }

  stopped(): boolean {
    return this.#stopped ||
      (Array.isArray(this.#stop) && (this.#stop as AbortSignal[]).some((s) => s.aborted));
  }

  end(): void {
    this.#aborted?.dispose();
  }
}
