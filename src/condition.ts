/**
 * Condition variables shared between processes (CPython: `Condition` in `synchronize.py`).
 *
 * A Condition is a lock (`lock.ts`) plus a shared block of its own (`_sync_block.ts`). The block
 * gives each waiter a slot of two words at `COND_SLOTS` (state: free / waiting / notified /
 * taken, and a ticket for the order of arrival), changed under the lock; `W.A` is the next ticket
 * and `W.B` how many slots have ever been used. `notify(n)` marks the n oldest waiting slots
 * notified and posts n times; a waiter returns true only for its own slot. So a waiter that came
 * later cannot take a notification meant for an earlier one, a waiter that timed out takes none,
 * and an aborted waiter that had been notified hands it to the next.
 *
 * @module
 */
import { adopted, construct } from "./_adopt.ts";
import { described, inspect } from "./_inspect.ts";
import { registerReducer } from "./_reduction.ts";
import { blocksBehind, COND_SLOTS, KIND, N_COND_SLOTS, registerBlocks, SyncBlock, W } from "./_sync_block.ts";
import {
  type AcquireOptions,
  type AcquireSyncOptions,
  holdWith,
  timedWait,
  waitUntil,
} from "./_sync_wait.ts";
import { Deadline } from "./_wait.ts";
import { Lock, type LockOps, lockOps, type LockState, reduceLock, reviveLock, RLock } from "./lock.ts";

// Condition words: the next ticket, and how many waiter slots have ever been used.
const SEQ = W.A;
const HIGH = W.B;
// Waiter slot states.
const FREE = 0;
const WAITING = 1;
const NOTIFIED = 2;
const TAKEN = 3;

/**
 * A condition variable shared between processes, as Python's `multiprocessing.Condition`:
 * `wait()` releases the lock, sleeps until `notify()`, and takes the lock back.
 *
 * @example Wait for a value another process sets
 * ```ts
 * import { Condition } from "@mp/multiprocessing";
 *
 * using cond = new Condition();
 * let ready = false;
 * setTimeout(async () => {
 *   using _ = await cond.hold();
 *   ready = true;
 *   cond.notifyAll();
 * }, 10);
 * using _ = await cond.hold();
 * console.log(await cond.waitFor(() => ready, 1000)); // true
 * ```
 */
export class Condition {
  #core: SyncBlock;
  #lock: Lock | RLock;
  #ops: LockOps;
  #ownsLock: boolean;

  /** Creates a condition over `lock` (default: a new `RLock`). */
  constructor(lock?: Lock | RLock) {
    const revived = adopted<{ core: SyncBlock; lock: Lock | RLock }>(new.target);
    if (revived) lock = revived.lock;
    if (lock !== undefined && !lockOps(lock)) {
      throw new TypeError("Invalid lock: expected a Lock or an RLock from this module");
    }
    this.#ownsLock = lock === undefined;
    this.#lock = lock ?? new RLock();
    this.#ops = lockOps(this.#lock)!;
    this.#core = revived?.core ?? SyncBlock.create(KIND.condition);
    registerBlocks(this, [this.#core, ...(this.#ownsLock ? blocksBehind(this.#lock) : [])]);
  }

  /** The lock this condition uses. */
  get lock(): Lock | RLock {
    return this.#lock;
  }

  /** Acquires the underlying lock. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return this.#ops.acquire(options);
  }

  /** Acquires the underlying lock, blocking the thread. */
  acquireSync(options?: AcquireSyncOptions): boolean {
    return this.#ops.acquireSync(options);
  }

  /** Releases the underlying lock. */
  release(): void {
    this.#ops.release();
  }

  /** Holds the underlying lock until disposed. */
  hold(options?: AcquireOptions): Promise<Disposable & AsyncDisposable> {
    return holdWith("condition lock", (o) => this.acquire(o), () => this.release(), options);
  }

  /**
   * Releases the lock, waits for a notification, and takes the lock back (also on timeout or
   * abort). Resolves true when notified, false after `timeout` ms. Throws `Error` when this
   * process does not hold the lock.
   */
  async wait(timeout?: number, options?: { signal?: AbortSignal }): Promise<boolean> {
    const wait = timedWait(timeout, options, "Condition.wait()");
    const core = this.#core;
    core.check("condition");
    const ops = this.#ops;
    if (!ops.owned()) {
      throw new Error("Cannot wait on condition: its lock is not held by this process; acquire it first");
    }
    const w = core.words;
    const slot = this.#claimSlot();
    const saved = ops.releaseSave();
    let notified = false;
    let failure: { error: unknown } | undefined;
    try {
      notified = await waitUntil(core, {
        what: "condition",
        tryTake: () => Atomics.compareExchange(w, slot, NOTIFIED, TAKEN) === NOTIFIED,
        stray: () => {
          // We took a post meant for a notified waiter that still sleeps: pass it on.
          if (this.#pending() > 0) core.post(1);
        },
      }, wait);
    } catch (error) {
      failure = { error };
    }
    // As Python: the lock is held again when wait() returns, whatever happened.
    await ops.reacquire();
    ops.restore(saved);
    if (!core.closed) {
      // A notification that arrived after we gave up is still ours; if we leave because of an
      // abort, hand it to the next waiter so that it is not lost.
      if (!notified && Atomics.load(w, slot) === NOTIFIED) {
        if (failure) this.#notifyOldest(1);
        else notified = true;
      }
      Atomics.store(w, slot, FREE);
    }
    if (failure) throw failure.error;
    return notified;
  }

  /** Takes a free waiter slot, with the next ticket. Caller holds the lock. */
  #claimSlot(): number {
    const w = this.#core.words;
    for (let i = 0; i < N_COND_SLOTS; i++) {
      const at = COND_SLOTS + 2 * i;
      if (Atomics.load(w, at) !== FREE) continue;
      Atomics.store(w, at + 1, Atomics.add(w, SEQ, 1));
      Atomics.store(w, at, WAITING);
      if (i >= Atomics.load(w, HIGH)) Atomics.store(w, HIGH, i + 1);
      return at;
    }
    throw new Error(`Cannot wait on condition: ${N_COND_SLOTS} waiters already wait on it`);
  }

  /** How many notified waiters have not woken yet. */
  #pending(): number {
    const w = this.#core.words;
    const high = Atomics.load(w, HIGH);
    let n = 0;
    for (let i = 0; i < high; i++) if (Atomics.load(w, COND_SLOTS + 2 * i) === NOTIFIED) n++;
    return n;
  }

  /** Notifies the `n` longest-waiting waiters. Caller holds the lock. */
  #notifyOldest(n: number): void {
    const core = this.#core;
    const w = core.words;
    const high = Atomics.load(w, HIGH);
    const waiting: number[] = [];
    for (let i = 0; i < high; i++) {
      const at = COND_SLOTS + 2 * i;
      if (Atomics.load(w, at) === WAITING) waiting.push(at);
    }
    if (waiting.length === 0) return;
    if (n < waiting.length) {
      waiting.sort((a, b) => (Atomics.load(w, a + 1) - Atomics.load(w, b + 1)) | 0);
      waiting.length = n;
    }
    for (const at of waiting) Atomics.store(w, at, NOTIFIED);
    core.post(waiting.length);
  }

  /**
   * Waits until `predicate()` is truthy, re-checking after each notification; resolves its
   * final truthiness (false when `timeout` ms passed first). Must hold the lock.
   */
  async waitFor(
    predicate: () => unknown,
    timeout?: number,
    options?: { signal?: AbortSignal },
  ): Promise<boolean> {
    if (typeof predicate !== "function") {
      throw new TypeError(
        `Invalid predicate for Condition.waitFor(): expected a function, got ${typeof predicate}`,
      );
    }
    const deadline = new Deadline(timedWait(timeout, options, "Condition.waitFor()").timeout);
    let result = predicate();
    while (!result) {
      const left = deadline.left();
      if (left <= 0) break;
      await this.wait(left, options);
      result = predicate();
    }
    return Boolean(result);
  }

  /** Wakes up to `n` (default 1) waiting processes, longest-waiting first. Must hold the lock. */
  notify(n = 1): void {
    if (typeof n !== "number" || Number.isNaN(n)) {
      throw new TypeError(
        `Invalid count for Condition.notify(): expected a number of waiters, got ${String(n)}`,
      );
    }
    if (n < 0 || (!Number.isInteger(n) && n !== Infinity)) {
      throw new RangeError(
        `Invalid count for Condition.notify(): expected a whole number of waiters (0 or more, or Infinity), got ${n}`,
      );
    }
    const core = this.#core;
    core.check("condition");
    if (!this.#ops.owned()) {
      throw new Error("Cannot notify: the condition's lock is not held by this process; acquire it first");
    }
    if (n > 0) this.#notifyOldest(n);
  }

  /** Wakes every waiting process. Must hold the lock. */
  notifyAll(): void {
    this.notify(Infinity);
  }

  /** Closes this handle (and the lock, when the condition made it). Idempotent. */
  close(): void {
    this.#core.close();
    if (this.#ownsLock) this.#lock.close();
  }

  /** Same as {@linkcode Condition.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** How it prints: `Condition(RLock(unlocked), waiting=0)`: its lock, and how many wait. */
  [inspect](): string {
    return described("Condition", this.#core.closed, () => {
      const w = this.#core.words;
      let waiting = 0;
      for (let i = 0; i < Atomics.load(w, HIGH); i++) {
        if (Atomics.load(w, COND_SLOTS + 2 * i) === WAITING) waiting++;
      }
      return [this.#lock[inspect](), `waiting=${waiting}`];
    });
  }

  static {
    registerReducer(Condition, {
      name: "mp.Condition",
      reduce: (c: Condition): ConditionState => {
        c.#core.check("condition");
        return { name: c.#core.name, lock: reduceLock(c.#ops) };
      },
      revive: (s: ConditionState) => {
        const lock = reviveLock(s.lock);
        return construct(Condition, { core: SyncBlock.open(s.name, KIND.condition, "Condition"), lock });
      },
    });
  }
}

interface ConditionState {
  name: string;
  lock: LockState;
}
