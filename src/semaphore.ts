/**
 * Counting semaphores shared between processes (CPython: `Semaphore` and `BoundedSemaphore` in
 * `synchronize.py`).
 *
 * The value is word `W.A` of the shared block (`_sync_block.ts`), taken and given with
 * compare-and-swap; `W.B` is the bound of a `BoundedSemaphore` (-1: none). Each process counts the
 * units it holds in a holder slot (`_sync_holders.ts`), so that the units of a process that died
 * without releasing them (SIGKILL, crash) are given back by the next waiter that looks.
 *
 * @module
 */
import { OS } from "../native/mod.ts";
import { adopted, construct } from "./_adopt.ts";
import { registerReducer } from "./_reduction.ts";
import { described, inspect } from "./_inspect.ts";
import { KIND, registerBlocks, SyncBlock, W } from "./_sync_block.ts";
import { noteGiven, noteTaken, reclaimDeadSlots, undoGiven } from "./_sync_holders.ts";
import {
  type AcquireOptions,
  type AcquireSyncOptions,
  FOREVER,
  holdWith,
  TRUE,
  type WaitSpec,
  waitUntil,
  waitUntilSync,
  waitWith,
} from "./_sync_wait.ts";
import { checkWait } from "./_wait.ts";

/** The name a Semaphore travels as (filled in by its static block, which can read `#core`). */
let semaphoreName: (s: Semaphore) => string;

/**
 * A counting semaphore shared between processes, as Python's `multiprocessing.Semaphore`.
 * Units held by a process that died without releasing them (SIGKILL, crash) are given back;
 * units a process still held when it exited normally count as consumed.
 *
 * @example Let at most two processes in at once
 * ```ts
 * import { Semaphore } from "@mp/multiprocessing";
 *
 * using slots = new Semaphore(2);
 * {
 *   using _ = await slots.hold();
 *   console.log(slots.getValue()); // 1
 * }
 * ```
 */
export class Semaphore {
  #core: SyncBlock;
  #w: Int32Array;
  #spec: WaitSpec;

  /** Creates a semaphore holding `value` units (default 1). */
  constructor(value = 1) {
    const bounded = this instanceof BoundedSemaphore;
    const revived = adopted<SyncBlock>(new.target);
    if (!revived) {
      const what = bounded ? "BoundedSemaphore" : "Semaphore";
      if (typeof value !== "number" || !Number.isInteger(value)) {
        throw new TypeError(`Invalid ${what} value: expected an integer, got ${String(value)}`);
      }
      if (value < 0 || value > OS.SEM_VALUE_MAX) {
        throw new RangeError(`Invalid ${what} value: expected 0 to ${OS.SEM_VALUE_MAX}, got ${value}`);
      }
    }
    const core = revived ?? SyncBlock.create(KIND.semaphore);
    const w = core.words;
    if (!revived) {
      w[W.B] = bounded ? value : -1;
      Atomics.store(w, W.A, value);
    }
    this.#core = core;
    this.#w = w;
    registerBlocks(this, [core]);
    this.#spec = {
      what: "semaphore",
      tryTake() {
        let v = Atomics.load(w, W.A);
        while (v > 0) {
          const seen = Atomics.compareExchange(w, W.A, v, v - 1);
          if (seen === v) {
            noteTaken(core);
            return true;
          }
          v = seen;
        }
        return false;
      },
      recover: () => {
        // Units of holders that vanished without giving them back (SIGKILL, crash) come back.
        const n = reclaimDeadSlots(core);
        if (n > 0) {
          this.#add(n);
          core.post(Math.min(n, Atomics.load(w, W.WAITERS)));
        }
      },
    };
  }

  #add(n: number): void {
    const w = this.#w;
    const bound = w[W.B];
    let v = Atomics.load(w, W.A);
    for (;;) {
      const next = bound >= 0 ? Math.min(bound, v + n) : v + n;
      const seen = Atomics.compareExchange(w, W.A, v, next);
      if (seen === v) return;
      v = seen;
    }
  }

  /** Takes one unit; resolves false after `timeout` ms or at once with `block: false`. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    if (options === undefined && !this.#core.closed) {
      if (this.#spec.tryTake()) return TRUE;
      return waitUntil(this.#core, this.#spec, FOREVER);
    }
    return waitWith(this.#core, this.#spec, options, "Semaphore.acquire()");
  }

  /** Takes one unit, blocking the calling thread while it waits. */
  acquireSync(options?: AcquireSyncOptions): boolean {
    if (options === undefined && !this.#core.closed && this.#spec.tryTake()) return true;
    return waitUntilSync(this.#core, this.#spec, checkWait(options, "Semaphore.acquireSync()"));
  }

  /**
   * Gives back one unit (any process may). A `BoundedSemaphore` throws `RangeError` when that
   * would exceed its initial value.
   */
  release(): void {
    const core = this.#core;
    core.check("semaphore");
    const w = this.#w;
    const slot = noteGiven(core);
    const bound = w[W.B];
    if (bound < 0) Atomics.add(w, W.A, 1);
    else {
      let v = Atomics.load(w, W.A);
      for (;;) {
        if (v >= bound) {
          undoGiven(core, slot);
          throw new RangeError(
            `Cannot release BoundedSemaphore: it is already at its initial value ${bound} (released more often than acquired)`,
          );
        }
        const seen = Atomics.compareExchange(w, W.A, v, v + 1);
        if (seen === v) break;
        v = seen;
      }
    }
    if (Atomics.load(w, W.WAITERS) > 0) core.wakeOne();
  }

  /** The number of units available now. */
  getValue(): number {
    this.#core.check("semaphore");
    return Atomics.load(this.#w, W.A);
  }

  /** As {@linkcode Lock.hold}: one unit, given back on dispose. */
  hold(options?: AcquireOptions): Promise<Disposable & AsyncDisposable> {
    return holdWith("semaphore", (o) => this.acquire(o), () => this.release(), options);
  }

  /** Closes this handle (idempotent); the creating process also removes the names. */
  close(): void {
    this.#core.close();
  }

  /** Same as {@linkcode Semaphore.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** How it prints: `Semaphore(value=2)`, `BoundedSemaphore(value=1, max=2)`, `Semaphore(closed)`. */
  [inspect](): string {
    const bound = this.#w[W.B];
    return described(this.constructor.name, this.#core.closed, () => [
      `value=${Atomics.load(this.#w, W.A)}`,
      ...(bound >= 0 ? [`max=${bound}`] : []),
    ]);
  }

  static {
    semaphoreName = (s) => (s.#core.check("semaphore"), s.#core.name);
    registerReducer(Semaphore, {
      name: "mp.Semaphore",
      reduce: semaphoreName,
      revive: (name: string) => construct(Semaphore, SyncBlock.open(name, KIND.semaphore, "Semaphore")),
    });
  }
}

/**
 * A semaphore that refuses to go above its initial value: one `release()` too many throws
 * `RangeError`, as Python's `multiprocessing.BoundedSemaphore` (there `ValueError`).
 *
 * @example Catch an extra release
 * ```ts
 * import { BoundedSemaphore } from "@mp/multiprocessing";
 *
 * using sem = new BoundedSemaphore(1);
 * try {
 *   sem.release();
 * } catch (e) {
 *   console.log(e instanceof RangeError); // true
 * }
 * ```
 */
export class BoundedSemaphore extends Semaphore {
  /** Creates a bounded semaphore holding `value` units (default 1), at most `value`. */
  constructor(value = 1) {
    super(value);
  }

  static {
    registerReducer(BoundedSemaphore, {
      name: "mp.BoundedSemaphore",
      reduce: semaphoreName,
      revive: (name: string) =>
        construct(BoundedSemaphore, SyncBlock.open(name, KIND.semaphore, "BoundedSemaphore")),
    });
  }
}
