/**
 * Proxies to the synchronization objects a manager holds (CPython: `AcquirerProxy`,
 * `ConditionProxy`, `EventProxy`, `BarrierProxy`). They have the API of the native classes
 * (`Lock`, `Semaphore`, ...), except that every method is a round trip to the server and so
 * returns a promise (`release()`, `locked()`, `set()`, ... included), and there is no
 * `acquireSync()` (it would block the event loop on a socket). They work for a client on any
 * machine that can reach the manager, and what a client holds is given back when its
 * connection ends (a client that dies holding a lock does not deadlock the others).
 *
 * @module
 */
import type { AcquireOptions } from "./lock.ts";
import { checkWait, Deadline, timeoutMs } from "./_wait.ts";
import { holdWith } from "./_sync_wait.ts";
import { BaseProxy, call, extraOf, registerProxy, relatedProxy } from "./_manager_proxy.ts";

function acquireWith(proxy: BaseProxy, options: AcquireOptions | undefined): Promise<boolean> {
  const w = checkWait(options, "acquire()");
  return call(proxy, "acquire", [{ block: w.block, timeout: w.timeout }], w.signal);
}

/** The wait of `wait(timeout, { signal })` methods, checked here. */
function waitArgs(timeout: unknown, options: { signal?: AbortSignal } | undefined, what: string) {
  const t = timeoutMs(timeout, what);
  return { timeout: t, signal: checkWait(options, what).signal };
}

/**
 * A lock held by a manager's server (Python's `Manager().Lock()`): anyone may release it; the
 * holder's connection ending releases it.
 *
 * @example Hold the lock for a block
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const lock = await manager.lock();
 * {
 *   await using _held = await lock.hold();
 *   console.log(await lock.locked()); // true
 * }
 * console.log(await lock.locked()); // false
 * ```
 */
export class LockProxy extends BaseProxy {
  /** Acquires; false when `timeout` ms passed (or `block: false` and it is taken). */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return acquireWith(this, options);
  }
  /** Releases (`RangeError` when it is not held). */
  release(): Promise<void> {
    return call(this, "release", []);
  }
  /** True when some client holds it. */
  locked(): Promise<boolean> {
    return call(this, "locked", []);
  }
  /** Acquires, and releases when disposed: `await using _ = await lock.hold()`. */
  hold(options?: AcquireOptions): Promise<Disposable & AsyncDisposable> {
    return holdWith("lock", (o) => this.acquire(o), () => this.release(), options);
  }
}

/**
 * A reentrant lock held by a manager's server; its owner is a client process (connection).
 *
 * @example Acquire twice, release twice
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const rlock = await manager.rlock();
 * await rlock.acquire();
 * await rlock.acquire(); // the same client: re-entered
 * await rlock.release();
 * await rlock.release();
 * ```
 */
export class RLockProxy extends LockProxy {
  /** Releases once (an `Error` when another client holds it, `RangeError` when nobody does). */
  override release(): Promise<void> {
    return call(this, "release", []);
  }
}

/**
 * A semaphore held by a manager's server; units a client took come back when it disconnects.
 *
 * @example Take a unit
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const sem = await manager.semaphore(2);
 * await sem.acquire();
 * console.log(await sem.getValue()); // 1
 * await sem.release();
 * ```
 */
export class SemaphoreProxy extends BaseProxy {
  /** Takes a unit; false when `timeout` ms passed first. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return acquireWith(this, options);
  }
  /** Gives a unit back. */
  release(): Promise<void> {
    return call(this, "release", []);
  }
  /** The number of units available now. */
  getValue(): Promise<number> {
    return call(this, "getValue", []);
  }
  /** Takes a unit, and gives it back when disposed. */
  hold(options?: AcquireOptions): Promise<Disposable & AsyncDisposable> {
    return holdWith("semaphore", (o) => this.acquire(o), () => this.release(), options);
  }
}

/**
 * A bounded semaphore held by a manager's server: releasing above the start value is a `RangeError`.
 *
 * @example Releasing one unit too many
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const sem = await manager.boundedSemaphore(1);
 * await sem.release().catch((e) => console.log(e.message)); // above its start value
 * ```
 */
export class BoundedSemaphoreProxy extends SemaphoreProxy {}

/**
 * A condition variable held by a manager's server (on its own rlock, or a lock of the manager).
 *
 * @example Wait with a timeout
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const cond = await manager.condition();
 * await cond.acquire();
 * console.log(await cond.wait(10)); // false: nobody notified
 * await cond.release();
 * ```
 */
export class ConditionProxy extends BaseProxy {
  #lock: LockProxy | RLockProxy | undefined;
  /** The lock this condition uses (a proxy to it, the same object each time). */
  get lock(): LockProxy | RLockProxy {
    if (!this.#lock) {
      const { lockId, lockType } = extraOf(this);
      if (typeof lockId !== "number") {
        throw new TypeError(
          "This condition's lock is unknown: it was made by a client that did not give one",
        );
      }
      this.#lock = relatedProxy<LockProxy | RLockProxy>(this, lockId, lockType === "lock" ? "lock" : "rlock");
    }
    return this.#lock;
  }
  /** Acquires the condition's lock. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return acquireWith(this, options);
  }
  /** Releases the condition's lock. */
  release(): Promise<void> {
    return call(this, "release", []);
  }
  /** Acquires the lock, and releases it when disposed. */
  hold(options?: AcquireOptions): Promise<Disposable & AsyncDisposable> {
    return holdWith("condition", (o) => this.acquire(o), () => this.release(), options);
  }
  /** Releases the lock, waits for a notify (true) or `timeout` ms (false), takes the lock back. */
  wait(timeout?: number, options?: { signal?: AbortSignal }): Promise<boolean> {
    const w = waitArgs(timeout, options, "wait()");
    return call(this, "wait", [w.timeout], w.signal);
  }
  /** Waits until `predicate()` (run here) is truthy; its final truthiness. Must hold the lock. */
  async waitFor(
    predicate: () => unknown,
    timeout?: number,
    options?: { signal?: AbortSignal },
  ): Promise<boolean> {
    const deadline = new Deadline(timeoutMs(timeout, "waitFor()"));
    let result = await predicate();
    while (!result) {
      const left = deadline.left();
      if (left <= 0) break;
      await this.wait(left, options);
      result = await predicate();
    }
    return Boolean(result);
  }
  /** Wakes up to `n` (default 1) waiters, longest-waiting first. Must hold the lock. */
  notify(n = 1): Promise<void> {
    return call(this, "notify", [n]);
  }
  /** Wakes every waiter. Must hold the lock. */
  notifyAll(): Promise<void> {
    return call(this, "notifyAll", []);
  }
}

/**
 * An event held by a manager's server.
 *
 * @example Set and wait
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const ready = await manager.event();
 * await ready.set();
 * console.log(await ready.wait(1_000)); // true
 * ```
 */
export class EventProxy extends BaseProxy {
  /** Sets the flag and wakes every waiter. */
  set(): Promise<void> {
    return call(this, "set", []);
  }
  /** Clears the flag. */
  clear(): Promise<void> {
    return call(this, "clear", []);
  }
  /** True when the flag is set. */
  isSet(): Promise<boolean> {
    return call(this, "isSet", []);
  }
  /** Waits until the flag is set (true) or `timeout` ms passed (false). */
  wait(timeout?: number, options?: { signal?: AbortSignal }): Promise<boolean> {
    const w = waitArgs(timeout, options, "wait()");
    return call(this, "wait", [w.timeout], w.signal);
  }
}

/**
 * A barrier held by a manager's server.
 *
 * @example A barrier of one party
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const barrier = await manager.barrier(1);
 * console.log(await barrier.wait()); // 0
 * ```
 */
export class BarrierProxy extends BaseProxy {
  /** How many waiters it lets through at once. */
  get parties(): number {
    return extraOf(this).parties as number;
  }
  /** How many wait now. */
  get nWaiting(): Promise<number> {
    return call(this, "nWaiting", []);
  }
  /** True while broken (until `reset()`). */
  get broken(): Promise<boolean> {
    return call(this, "broken", []);
  }
  /**
   * Waits until `parties` waiters have come; resolves to this waiter's index (0 to parties-1).
   * `BrokenBarrierError` when it breaks (timeout, `abort()`, `reset()`) meanwhile.
   */
  wait(timeout?: number, options?: { signal?: AbortSignal }): Promise<number> {
    const w = waitArgs(timeout, options, "wait()");
    return call(this, "wait", [timeout === undefined ? undefined : w.timeout], w.signal);
  }
  /** Breaks it: every waiter, and later ones, get `BrokenBarrierError` until `reset()`. */
  abort(): Promise<void> {
    return call(this, "abort", []);
  }
  /** Back to its start: current waiters get `BrokenBarrierError`. */
  reset(): Promise<void> {
    return call(this, "reset", []);
  }
}

registerProxy("lock", LockProxy);
registerProxy("rlock", RLockProxy);
registerProxy("semaphore", SemaphoreProxy);
registerProxy("boundedSemaphore", BoundedSemaphoreProxy);
registerProxy("condition", ConditionProxy);
registerProxy("event", EventProxy);
registerProxy("barrier", BarrierProxy);
