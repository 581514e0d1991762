/**
 * Events shared between processes (CPython: `Event` in `synchronize.py`).
 *
 * Word `W.A` of the shared block (`_sync_block.ts`) is the flag; `W.B` counts the times it was
 * set (the generation). Waiters sleep on the wake-up channel of their generation's parity, so
 * waiters that arrive after a `clear()` cannot take the wake-ups `set()` posted for the earlier
 * ones.
 *
 * @module
 */
import { adopted, construct } from "./_adopt.ts";
import { registerReducer } from "./_reduction.ts";
import { described, inspect } from "./_inspect.ts";
import { KIND, registerBlocks, SyncBlock, W, waitersWord } from "./_sync_block.ts";
import { timedWait, waitUntil } from "./_sync_wait.ts";

/**
 * A flag shared between processes, as Python's `multiprocessing.Event`: `wait()` resolves once
 * some process calls `set()`.
 *
 * @example Wait for a start signal
 * ```ts
 * import { Event } from "@mp/multiprocessing";
 *
 * using ready = new Event();
 * setTimeout(() => ready.set(), 10);
 * console.log(await ready.wait(1000)); // true
 * ```
 */
export class Event {
  #core: SyncBlock;
  #w: Int32Array;

  /** Creates a new event, not set. */
  constructor() {
    this.#core = adopted<SyncBlock>(new.target) ?? SyncBlock.create(KIND.event);
    this.#w = this.#core.words;
    registerBlocks(this, [this.#core]);
  }

  /** Sets the flag and wakes every waiting process. */
  set(): void {
    this.#core.check("event");
    const w = this.#w;
    Atomics.store(w, W.A, 1);
    // Wake the waiters of the generation that ends here: they sleep on its channel (by parity),
    // where waiters that come after a clear() cannot take their wake-ups.
    const channel = Atomics.add(w, W.B, 1) & 1;
    this.#core.post(Atomics.load(w, waitersWord(channel)), channel);
  }

  /** Clears the flag. */
  clear(): void {
    this.#core.check("event");
    Atomics.store(this.#w, W.A, 0);
  }

  /** True when the flag is set. */
  isSet(): boolean {
    this.#core.check("event");
    return Atomics.load(this.#w, W.A) === 1;
  }

  /**
   * Waits until the flag is set: resolves true when it is (or was set while waiting), false
   * after `timeout` ms.
   */
  async wait(timeout?: number, options?: { signal?: AbortSignal }): Promise<boolean> {
    const wait = timedWait(timeout, options, "Event.wait()");
    const w = this.#w;
    this.#core.check("event");
    const generation = Atomics.load(w, W.B);
    return await waitUntil(this.#core, {
      what: "event",
      channel: generation & 1,
      tryTake: () => Atomics.load(w, W.A) === 1 || Atomics.load(w, W.B) !== generation,
    }, wait);
  }

  /** Closes this handle (idempotent); the creating process also removes the names. */
  close(): void {
    this.#core.close();
  }

  /** Same as {@linkcode Event.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** How it prints: `Event(set)`, `Event(unset)`, `Event(closed)`. */
  [inspect](): string {
    return described("Event", this.#core.closed, () => [Atomics.load(this.#w, W.A) === 1 ? "set" : "unset"]);
  }

  static {
    registerReducer(Event, {
      name: "mp.Event",
      reduce: (e: Event) => (e.#core.check("event"), e.#core.name),
      revive: (name: string) => construct(Event, SyncBlock.open(name, KIND.event, "Event")),
    });
  }
}
