/**
 * Locks, semaphores, events, conditions and barriers that work across processes (CPython:
 * `synchronize.py`).
 *
 * Each object is a handle on a shared memory block (its state, changed with `Atomics`) and a
 * named semaphore (the wake-up channel for processes that must wait); see `_sync_core.ts` for
 * the design. Who owns what:
 *
 * - The process that constructs an object creates both names and unlinks them on `close()`, when
 *   the object is garbage collected, or at its exit; the resource tracker unlinks them if the
 *   whole process tree ends first (SIGKILL included).
 * - Passing an object to a child (a `Process` argument, later a queue message) sends only its
 *   name; the child opens the same semaphore and block and sees the same state.
 * - `Lock`/`RLock` keep the holder's pid in the block; `Semaphore` keeps, per process, how many
 *   units it holds. A waiter that has slept a slice (50 ms) checks those pids: units and locks of
 *   a process that no longer runs are given back, so a holder killed by SIGKILL never deadlocks
 *   the others (CPython does, bpo-44138).
 * - `Lock`/`RLock`: the lock word is the holder's pid (plus a flag a waiter sets before it
 *   sleeps), so acquire and release are one compare-and-swap each when nobody waits, and a
 *   release posts the semaphore only when the flag says someone may sleep.
 * - `Condition` gives each waiter a slot in its block (waiting / notified / taken, and a ticket
 *   for the order of arrival), changed under its lock. `notify(n)` marks the n oldest waiting
 *   slots notified and posts n times; a waiter returns true only for its own slot. So a waiter
 *   that came later cannot take a notification meant for an earlier one, a waiter that timed
 *   out takes none, and an aborted waiter that had been notified hands it to the next.
 * - `Barrier` is one word, `generation << 16 | arrived`: each party adds one (its index), the
 *   last starts the next generation and wakes the others, who wait for the generation to move.
 *   Waiters of alternate generations sleep on two semaphores, so a fast party's next `wait()`
 *   cannot take a wake-up meant for a slow party of the previous pass (`Event` does the same
 *   across `clear()`).
 *
 * @module
 */
import { OS } from "../native/mod.ts";
import { adopted, construct } from "./_adopt.ts";
import { callerModule } from "./_caller.ts";
import { registerReducer } from "./_reduction.ts";
import {
  COND_SLOTS,
  Core,
  isDead,
  KIND,
  N_COND_SLOTS,
  noteGiven,
  noteTaken,
  PID,
  reclaimDeadSlots,
  spin,
  undoGiven,
  W,
  waitersWord,
  type WaitSpec,
  waitUntil,
  waitUntilSync,
  waitWith,
} from "./_sync_core.ts";
import { type CheckedWait, checkWait, Deadline, timeoutMs } from "./_wait.ts";
import { BrokenBarrierError } from "./errors.ts";

/** Options of `acquire()` and `hold()`. */
export interface AcquireOptions {
  /** False: try once and never wait (wins over `timeout`). Default true. */
  block?: boolean;
  /** Milliseconds to wait at most; undefined waits forever, 0 or less does not wait. */
  timeout?: number;
  /** Aborting rejects the wait with `signal.reason`; nothing stays acquired. */
  signal?: AbortSignal;
}

/** Options of `acquireSync()`. */
export interface AcquireSyncOptions {
  /** False: try once and never wait (wins over `timeout`). Default true. */
  block?: boolean;
  /** Milliseconds to wait at most; undefined waits forever, 0 or less does not wait. */
  timeout?: number;
}

const TRUE = Promise.resolve(true);
/** No options: wait forever, no signal. */
const FOREVER: CheckedWait = checkWait(undefined, "");

/**
 * The checked form of the `(timeout?, { signal? })` arguments of `Event.wait()`,
 * `Condition.wait()` and `Barrier.wait()`; `call` names the call in errors.
 */
function timedWait(timeout: unknown, options: unknown, call: string): CheckedWait {
  const { signal } = checkWait(options, call);
  return { block: true, timeout: timeoutMs(timeout, call), signal };
}

/** The cores behind each public object, for {@linkcode _resourceNames}. */
const coresOf = new WeakMap<object, Core[]>();

/**
 * The names of the named resources behind a primitive: `sem` for `sem_open`, `shm` for
 * `shm_open` (tests use it to check that nothing is left behind). Not part of the public API.
 *
 * @internal
 */
export function _resourceNames(obj: object): { sem: string[]; shm: string[] } {
  const cores = coresOf.get(obj) ?? [];
  return {
    sem: cores.flatMap((c) => c.resourceNames.sem),
    shm: cores.map((c) => c.resourceNames.shm),
  };
}

async function holdWith(
  what: string,
  acquire: (o?: AcquireOptions) => Promise<boolean>,
  release: () => void,
  options: AcquireOptions | undefined,
): Promise<Disposable & AsyncDisposable> {
  if (!(await acquire(options))) {
    throw new Deno.errors.TimedOut(
      options?.block === false
        ? `Cannot hold ${what}: it is taken and block is false`
        : `Cannot hold ${what}: not acquired within ${options?.timeout} ms`,
    );
  }
  let released = false;
  const dispose = () => {
    if (released) return;
    released = true;
    release();
  };
  return { [Symbol.dispose]: dispose, [Symbol.asyncDispose]: () => Promise.resolve(dispose()) };
}

/** What a Condition needs from its lock. */
interface LockOps {
  kind: "lock" | "rlock";
  core: Core;
  /** True when this process holds the lock. */
  owned(): boolean;
  /** Releases completely; returns what {@linkcode LockOps.restore} needs. */
  releaseSave(): number;
  restore(saved: number): void;
  /** Waits for the lock, ignoring any signal (used to get it back after a wait). */
  reacquire(): Promise<boolean>;
  acquire(o?: AcquireOptions): Promise<boolean>;
  acquireSync(o?: AcquireSyncOptions): boolean;
  release(): void;
}
// Each filled in by its class's static block, which can read `#ops`.
let opsOfLock: (lock: object) => LockOps | undefined;
let opsOfRLock: (lock: object) => LockOps | undefined;

/** The {@linkcode LockOps} of a Lock or an RLock of this module; undefined for anything else. */
function lockOps(lock: unknown): LockOps | undefined {
  if (typeof lock !== "object" || lock === null) return undefined;
  return opsOfLock(lock) ?? opsOfRLock(lock);
}

// ---------------------------------------------------------------------------------------------

// The lock word of Lock and RLock: the holder's pid, plus FLAG when a waiter may sleep (then
// the release must post). Taking and releasing a lock nobody waits for is one compare-and-swap each.
const FLAG = 0x4000_0000;
const OWNER = FLAG - 1;
/** What a closed handle looks at: a lock word no compare-and-swap matches, so every fast path
 * falls through to the slow path, which reports the handle closed. */
const CLOSED_WORDS = new Int32Array(W.E + 1).fill(-1);

/** The wait spec shared by Lock and RLock; `took` runs once the lock word is ours. */
function lockSpec(core: Core, took: () => void): WaitSpec {
  const w = core.words;
  return {
    what: "lock",
    tryTake() {
      // A waiter that gets the lock while others still wait keeps FLAG set, so its release wakes them.
      if (Atomics.compareExchange(w, W.A, 0, Atomics.load(w, W.WAITERS) > 1 ? PID | FLAG : PID) !== 0) {
        return false;
      }
      took();
      return true;
    },
    beforeSleep() {
      // Make sure the holder's release posts: set FLAG in its lock word.
      const c = Atomics.load(w, W.A);
      if (c === 0) return false;
      return (c & FLAG) !== 0 || Atomics.compareExchange(w, W.A, c, c | FLAG) === c;
    },
    recover() {
      // The holder is gone (SIGKILL, crash, exit while holding): free the lock for the waiters.
      for (let i = 0; i < 3; i++) {
        const c = Atomics.load(w, W.A);
        if (c === 0 || !isDead(c & OWNER)) return;
        if (Atomics.compareExchange(w, W.A, c, 0) === c) return;
      }
    },
    passOn() {
      // We took a release's post but give up: hand it to another waiter.
      if (Atomics.load(w, W.WAITERS) > 1) core.post(1);
    },
  };
}

/**
 * A lock shared between processes, as Python's `multiprocessing.Lock`: one holder at a time;
 * any process may release it. If the holding process ends without releasing it (even killed by
 * SIGKILL), a waiter frees the lock within about 50 ms and acquires it.
 *
 * @example Take turns with a child process
 * ```ts
 * import { Lock, Process } from "@mp/multiprocessing";
 *
 * export async function work(lock: Lock) {
 *   using _ = await lock.hold();
 *   console.log("only one of us prints at a time");
 * }
 *
 * if (import.meta.main) {
 *   using lock = new Lock();
 *   const p = new Process({ target: work, args: [lock] });
 *   await p.start();
 *   await work(lock);
 *   await p.join();
 * }
 * ```
 */
export class Lock {
  #core: Core;
  #w: Int32Array;
  #spec: WaitSpec;
  #ops: LockOps;

  /** Creates a new, unlocked lock. */
  constructor() {
    const core = adopted<Core>(new.target) ?? Core.create(KIND.lock);
    const w = core.words;
    this.#core = core;
    this.#w = w;
    this.#spec = lockSpec(core, () => {});
    coresOf.set(this, [core]);
    this.#ops = {
      kind: "lock",
      core,
      owned: () => (core.check("lock"), (Atomics.load(w, W.A) & OWNER) === PID),
      releaseSave: () => (this.release(), 1),
      restore: () => {},
      reacquire: () => waitUntil(core, this.#spec, FOREVER),
      acquire: (o) => this.acquire(o),
      acquireSync: (o) => this.acquireSync(o),
      release: () => this.release(),
    };
  }

  /**
   * Acquires the lock; resolves true once held, false after `timeout` ms or at once with
   * `block: false`. Never blocks the event loop.
   */
  acquire(options?: AcquireOptions): Promise<boolean> {
    if (options === undefined) {
      // Taken at once, or within a short spin: no promise machinery beyond the one returned.
      if (Atomics.compareExchange(this.#w, W.A, 0, PID) === 0) return TRUE;
      if (!this.#core.closed && spin(this.#spec)) return TRUE;
      return waitUntil(this.#core, this.#spec, FOREVER, true);
    }
    return waitWith(this.#core, this.#spec, options, "Lock.acquire()");
  }

  /** Acquires the lock, blocking the calling thread (and the event loop) while it waits. */
  acquireSync(options?: AcquireSyncOptions): boolean {
    if (options === undefined && Atomics.compareExchange(this.#w, W.A, 0, PID) === 0) return true;
    return waitUntilSync(this.#core, this.#spec, checkWait(options, "Lock.acquireSync()"));
  }

  /** Releases the lock (any process may). Throws `RangeError` if it is not held. */
  release(): void {
    if (Atomics.compareExchange(this.#w, W.A, PID, 0) !== PID) this.#releaseSlow();
  }

  #releaseSlow(): void {
    const core = this.#core;
    core.check("lock");
    const w = core.words;
    for (;;) {
      const c = Atomics.load(w, W.A);
      if (c === 0) throw new RangeError("Cannot release lock: it is not held");
      if (Atomics.compareExchange(w, W.A, c, 0) === c) {
        if (c & FLAG) core.post(1);
        return;
      }
    }
  }

  /** True when some process holds the lock. */
  locked(): boolean {
    this.#core.check("lock");
    return Atomics.load(this.#w, W.A) !== 0;
  }

  /**
   * Acquires, and releases when the returned object is disposed: `using _ = await lock.hold()`.
   * Rejects with `Deno.errors.TimedOut` when not acquired in time.
   */
  hold(options?: AcquireOptions): Promise<Disposable & AsyncDisposable> {
    return holdWith("lock", (o) => this.acquire(o), () => this.release(), options);
  }

  /** Closes this handle (idempotent); the creating process also removes the names. */
  close(): void {
    this.#w = CLOSED_WORDS;
    this.#core.close();
  }

  /** Same as {@linkcode Lock.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    opsOfLock = (lock) => #ops in lock ? lock.#ops : undefined;
    registerReducer(Lock, {
      name: "mp.Lock",
      reduce: (lock: Lock): LockState => reduceLock(lock.#ops),
      revive: (s: LockState) => reviveLock(s) as Lock,
    });
  }
}

/**
 * A re-entrant lock shared between processes, as Python's `multiprocessing.RLock`: the holding
 * process may acquire it again, and must release it as many times. Only the holder may release.
 * A holder that ends without releasing is recovered from as for {@linkcode Lock}.
 *
 * @example Re-enter from the same process
 * ```ts
 * import { RLock } from "@mp/multiprocessing";
 *
 * using lock = new RLock();
 * await lock.acquire();
 * await lock.acquire(); // same process: no wait
 * lock.release();
 * lock.release();
 * ```
 */
export class RLock {
  #core: Core;
  #w: Int32Array;
  #spec: WaitSpec;
  #ops: LockOps;

  /** Creates a new, unlocked re-entrant lock. */
  constructor() {
    const core = adopted<Core>(new.target) ?? Core.create(KIND.rlock);
    const w = core.words;
    this.#core = core;
    this.#w = w;
    coresOf.set(this, [core]);
    const inner = lockSpec(core, () => {
      w[W.B] = 1;
    });
    this.#spec = {
      ...inner,
      tryTake() {
        if ((Atomics.load(w, W.A) & OWNER) === PID) {
          w[W.B]++;
          return true;
        }
        return inner.tryTake();
      },
    };
    this.#ops = {
      kind: "rlock",
      core,
      owned: () => (core.check("lock"), (Atomics.load(w, W.A) & OWNER) === PID),
      releaseSave: () => {
        const count = w[W.B];
        w[W.B] = 1;
        this.release();
        return count;
      },
      restore: (count) => {
        w[W.B] = count;
      },
      reacquire: () => waitUntil(core, this.#spec, FOREVER),
      acquire: (o) => this.acquire(o),
      acquireSync: (o) => this.acquireSync(o),
      release: () => this.release(),
    };
  }

  /** As {@linkcode Lock.acquire}; resolves true at once when this process already holds it. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    if (options === undefined) {
      if (this.#fast()) return TRUE;
      if (!this.#core.closed && spin(this.#spec)) return TRUE;
      return waitUntil(this.#core, this.#spec, FOREVER, true);
    }
    return waitWith(this.#core, this.#spec, options, "RLock.acquire()");
  }

  /** As {@linkcode Lock.acquireSync}. */
  acquireSync(options?: AcquireSyncOptions): boolean {
    if (options === undefined && this.#fast()) return true;
    return waitUntilSync(this.#core, this.#spec, checkWait(options, "RLock.acquireSync()"));
  }

  #fast(): boolean {
    const w = this.#w;
    if (Atomics.compareExchange(w, W.A, 0, PID) === 0) {
      w[W.B] = 1;
      return true;
    }
    if ((w[W.A] & OWNER) === PID) {
      w[W.B]++;
      return true;
    }
    return false;
  }

  /**
   * Releases one level. Throws `RangeError` if nobody holds it and `Error` if another process
   * holds it.
   */
  release(): void {
    const w = this.#w;
    if ((w[W.A] & OWNER) !== PID) return this.#notOwned();
    const count = w[W.B] - 1;
    if (count > 0) {
      w[W.B] = count;
      return;
    }
    w[W.B] = 0;
    if (Atomics.compareExchange(w, W.A, PID, 0) === PID) return;
    // FLAG is set: a waiter sleeps. Only we can clear our own lock word.
    Atomics.store(w, W.A, 0);
    this.#core.post(1);
  }

  #notOwned(): never {
    this.#core.check("lock");
    const owner = Atomics.load(this.#w, W.A) & OWNER;
    if (owner === 0) throw new RangeError("Cannot release RLock: it is not held");
    throw new Error(
      `Cannot release RLock: it is held by process ${owner}, not by this one (${PID}); only the holder may release it`,
    );
  }

  /** True when some process holds the lock. */
  locked(): boolean {
    this.#core.check("lock");
    return Atomics.load(this.#w, W.A) !== 0;
  }

  /** As {@linkcode Lock.hold}. */
  hold(options?: AcquireOptions): Promise<Disposable & AsyncDisposable> {
    return holdWith("lock", (o) => this.acquire(o), () => this.release(), options);
  }

  /** Closes this handle (idempotent); the creating process also removes the names. */
  close(): void {
    this.#w = CLOSED_WORDS;
    this.#core.close();
  }

  /** Same as {@linkcode RLock.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    opsOfRLock = (lock) => #ops in lock ? lock.#ops : undefined;
    registerReducer(RLock, {
      name: "mp.RLock",
      reduce: (lock: RLock): LockState => reduceLock(lock.#ops),
      revive: (s: LockState) => reviveLock(s) as RLock,
    });
  }
}

// ---------------------------------------------------------------------------------------------

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
  #core: Core;
  #w: Int32Array;
  #spec: WaitSpec;

  /** Creates a semaphore holding `value` units (default 1). */
  constructor(value = 1) {
    const bounded = this instanceof BoundedSemaphore;
    const revived = adopted<Core>(new.target);
    if (!revived) {
      const what = bounded ? "BoundedSemaphore" : "Semaphore";
      if (typeof value !== "number" || !Number.isInteger(value)) {
        throw new TypeError(`Invalid ${what} value: expected an integer, got ${String(value)}`);
      }
      if (value < 0 || value > OS.SEM_VALUE_MAX) {
        throw new RangeError(`Invalid ${what} value: expected 0 to ${OS.SEM_VALUE_MAX}, got ${value}`);
      }
    }
    const core = revived ?? Core.create(KIND.semaphore);
    const w = core.words;
    if (!revived) {
      w[W.B] = bounded ? value : -1;
      Atomics.store(w, W.A, value);
    }
    this.#core = core;
    this.#w = w;
    coresOf.set(this, [core]);
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
      if (this.#spec.tryTake() || spin(this.#spec)) return TRUE;
      return waitUntil(this.#core, this.#spec, FOREVER, true);
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

  static {
    semaphoreName = (s) => (s.#core.check("semaphore"), s.#core.name);
    registerReducer(Semaphore, {
      name: "mp.Semaphore",
      reduce: semaphoreName,
      revive: (name: string) => construct(Semaphore, Core.open(name, KIND.semaphore, "Semaphore")),
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
        construct(BoundedSemaphore, Core.open(name, KIND.semaphore, "BoundedSemaphore")),
    });
  }
}

// ---------------------------------------------------------------------------------------------

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
  #core: Core;
  #w: Int32Array;

  /** Creates a new event, not set. */
  constructor() {
    this.#core = adopted<Core>(new.target) ?? Core.create(KIND.event);
    this.#w = this.#core.words;
    coresOf.set(this, [this.#core]);
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

  static {
    registerReducer(Event, {
      name: "mp.Event",
      reduce: (e: Event) => (e.#core.check("event"), e.#core.name),
      revive: (name: string) => construct(Event, Core.open(name, KIND.event, "Event")),
    });
  }
}

// ---------------------------------------------------------------------------------------------

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
  #core: Core;
  #lock: Lock | RLock;
  #ops: LockOps;
  #ownsLock: boolean;

  /** Creates a condition over `lock` (default: a new `RLock`). */
  constructor(lock?: Lock | RLock) {
    const revived = adopted<{ core: Core; lock: Lock | RLock }>(new.target);
    if (revived) lock = revived.lock;
    if (lock !== undefined && !lockOps(lock)) {
      throw new TypeError("Invalid lock: expected a Lock or an RLock from this module");
    }
    this.#ownsLock = lock === undefined;
    this.#lock = lock ?? new RLock();
    this.#ops = lockOps(this.#lock)!;
    this.#core = revived?.core ?? Core.create(KIND.condition);
    coresOf.set(this, [this.#core, ...(this.#ownsLock ? coresOf.get(this.#lock)! : [])]);
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

  static {
    registerReducer(Condition, {
      name: "mp.Condition",
      reduce: (c: Condition): ConditionState => {
        c.#core.check("condition");
        return { name: c.#core.name, lock: reduceLock(c.#ops) };
      },
      revive: (s: ConditionState) => {
        const lock = reviveLock(s.lock);
        return construct(Condition, { core: Core.open(s.name, KIND.condition, "Condition"), lock });
      },
    });
  }
}

// ---------------------------------------------------------------------------------------------

// Barrier words: the pass word (generation << 16 | parties arrived), broken, parties.
const PASS = W.A;
const BROKEN = W.B;
const PARTIES = W.C;
const COUNT_MASK = 0xffff;
const GEN_MASK = 0x7fff;

/** Options of {@linkcode Barrier}. */
export interface BarrierOptions {
  /**
   * Runs once per pass, in the last process to arrive, before any party is released. To run in
   * a child, it must be exported from the module that created the barrier (as a Process target).
   */
  action?: () => unknown;
  /** Default timeout of `wait()`, in ms. */
  timeout?: number;
}

interface ActionRef {
  name: string;
  module: string;
}

/**
 * A barrier for a fixed number of parties across processes, as Python's
 * `multiprocessing.Barrier`: each `wait()` blocks until `parties` waits are pending, then all
 * are released together and each gets a distinct index.
 *
 * Unlike CPython's (a Condition and a lock), it is one shared word: `generation << 16 | arrived`.
 * Each party adds one (its index); the last one runs the action, then starts the next
 * generation with none arrived and wakes everyone; the others wait for the generation to move
 * on. `reset()` moves it on by two, which the waiters of the old generation read as broken.
 *
 * @example Two parties meet
 * ```ts
 * import { Barrier } from "@mp/multiprocessing";
 *
 * using barrier = new Barrier(2);
 * const [a, b] = await Promise.all([barrier.wait(), barrier.wait()]);
 * console.log([a, b].sort()); // [0, 1]
 * ```
 */
export class Barrier {
  #core: Core;
  #w: Int32Array;
  #parties: number;
  #timeout: number | undefined;
  #action: (() => unknown) | undefined;
  #actionRef: ActionRef | null;

  /** Creates a barrier for `parties` parties. */
  constructor(parties: number, options: BarrierOptions = {}) {
    const revived = adopted<BarrierState>(new.target);
    if (revived) {
      this.#core = revived.core;
      this.#parties = revived.core.words[PARTIES];
      this.#timeout = revived.timeout;
      this.#action = undefined;
      this.#actionRef = revived.action;
    } else {
      if (
        typeof parties !== "number" || !Number.isInteger(parties) || parties < 1 || parties > COUNT_MASK - 1
      ) {
        throw new RangeError(`Invalid parties: expected an integer from 1 to 65534, got ${String(parties)}`);
      }
      const { action, timeout } = options;
      if (action !== undefined && typeof action !== "function") {
        throw new TypeError(`Invalid action: expected a function, got ${typeof action}`);
      }
      timeoutMs(timeout, "new Barrier()");
      this.#parties = parties;
      this.#timeout = timeout;
      this.#action = action;
      const module = action ? callerModule() : undefined;
      this.#actionRef = action && module && action.name ? { name: action.name, module } : null;
      this.#core = Core.create(KIND.barrier);
      this.#core.words[PARTIES] = parties;
    }
    this.#w = this.#core.words;
    coresOf.set(this, [this.#core]);
  }

  /** The number of parties needed to pass. */
  get parties(): number {
    return this.#parties;
  }

  /** How many parties are waiting now. */
  get nWaiting(): number {
    this.#core.check("barrier");
    if (Atomics.load(this.#w, BROKEN)) return 0;
    const arrived = Atomics.load(this.#w, PASS) & COUNT_MASK;
    return arrived >= this.#parties ? 0 : arrived;
  }

  /** True when the barrier is broken (aborted, or a wait timed out); `reset()` repairs it. */
  get broken(): boolean {
    this.#core.check("barrier");
    return Atomics.load(this.#w, BROKEN) !== 0;
  }

  /**
   * Waits for the other parties; resolves a distinct index 0..parties-1. Rejects with
   * `BrokenBarrierError` when the barrier is or becomes broken, and breaks it when this wait
   * times out or is aborted (the other parties cannot pass without this one any more).
   */
  async wait(timeout?: number, options?: { signal?: AbortSignal }): Promise<number> {
    const { timeout: ms, signal } = timedWait(timeout ?? this.#timeout, options, "Barrier.wait()");
    const core = this.#core;
    core.check("barrier");
    signal?.throwIfAborted();
    const w = this.#w;
    const parties = this.#parties;
    for (;;) {
      if (Atomics.load(w, BROKEN)) throw new BrokenBarrierError();
      const v = Atomics.load(w, PASS);
      const gen = (v >>> 16) & GEN_MASK;
      const index = v & COUNT_MASK;
      if (index >= parties) {
        // The last party of this pass is running the action: wait for the next generation.
        await waitUntil(core, {
          what: "barrier",
          channel: gen & 1,
          tryTake: () => Atomics.load(w, PASS) !== v || Atomics.load(w, BROKEN) !== 0,
        }, { block: true, timeout: Infinity, signal });
        continue;
      }
      if (Atomics.compareExchange(w, PASS, v, v + 1) !== v) continue;
      if (index + 1 === parties) {
        if (this.#action || this.#actionRef) {
          try {
            await (await this.#findAction())();
          } catch (error) {
            this.#break();
            throw error;
          }
          if (Atomics.load(w, BROKEN) || Atomics.load(w, PASS) !== v + 1) throw new BrokenBarrierError();
        }
        // Next generation, nobody arrived yet; wake everyone of this one.
        if (Atomics.compareExchange(w, PASS, v + 1, ((gen + 1) & GEN_MASK) << 16) !== v + 1) {
          throw new BrokenBarrierError();
        }
        this.#wake(gen);
        return index;
      }
      let passed: boolean;
      try {
        passed = await waitUntil(core, {
          what: "barrier",
          // Each generation sleeps on its own channel (by parity): the next generation's early
          // arrivals cannot take the posts that wake this one.
          channel: gen & 1,
          tryTake: () => ((Atomics.load(w, PASS) >>> 16) & GEN_MASK) !== gen || Atomics.load(w, BROKEN) !== 0,
        }, { block: true, timeout: ms, signal });
      } catch (error) {
        this.#breakIfStill(gen);
        throw error;
      }
      const now = (Atomics.load(w, PASS) >>> 16) & GEN_MASK;
      // The generation moved on by one: this pass completed (even if broken since).
      if (now === ((gen + 1) & GEN_MASK)) return index;
      if (now !== gen) throw new BrokenBarrierError("Barrier is broken: it was reset while waiting");
      if (!passed) {
        this.#breakIfStill(gen);
        throw new BrokenBarrierError(`Barrier is broken: wait timed out after ${ms} ms`);
      }
      throw new BrokenBarrierError();
    }
  }

  async #findAction(): Promise<() => unknown> {
    if (this.#action) return this.#action;
    const ref = this.#actionRef!;
    const mod = await import(ref.module);
    const fn = mod[ref.name];
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot run the barrier's action "${ref.name}" in this process: it is not exported from ${ref.module}. Export it so other processes can import it.`,
      );
    }
    return this.#action = fn;
  }

  /** Wakes every sleeper of generation `gen`. */
  #wake(gen: number): void {
    const channel = gen & 1;
    this.#core.post(Atomics.load(this.#w, waitersWord(channel)), channel);
  }

  #break(): void {
    Atomics.store(this.#w, BROKEN, 1);
    this.#wake(0);
    this.#wake(1);
  }

  #breakIfStill(gen: number): void {
    if (((Atomics.load(this.#w, PASS) >>> 16) & GEN_MASK) === gen) this.#break();
  }

  /** Breaks the barrier: every waiting and future `wait()` rejects with `BrokenBarrierError`. */
  abort(): void {
    this.#core.check("barrier");
    this.#break();
  }

  /** Returns the barrier to its empty state; current waiters reject with `BrokenBarrierError`. */
  reset(): void {
    this.#core.check("barrier");
    const w = this.#w;
    for (;;) {
      const v = Atomics.load(w, PASS);
      const gen = (v >>> 16) & GEN_MASK;
      // Two generations on: waiters of this one read it as a reset, not as a completed pass.
      if (Atomics.compareExchange(w, PASS, v, ((gen + 2) & GEN_MASK) << 16) === v) break;
    }
    Atomics.store(w, BROKEN, 0);
    this.#wake(0);
    this.#wake(1);
  }

  /** Closes this handle (idempotent); the creating process also removes the names. */
  close(): void {
    this.#core.close();
  }

  /** Same as {@linkcode Barrier.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    registerReducer(Barrier, {
      name: "mp.Barrier",
      reduce: (b: Barrier): BarrierWire => {
        b.#core.check("barrier");
        return { name: b.#core.name, timeout: b.#timeout, action: b.#actionRef };
      },
      revive: (s: BarrierWire) =>
        construct(Barrier, {
          core: Core.open(s.name, KIND.barrier, "Barrier"),
          timeout: s.timeout,
          action: s.action,
        }),
    });
  }
}

interface BarrierState {
  core: Core;
  timeout: number | undefined;
  action: ActionRef | null;
}

interface BarrierWire {
  name: string;
  timeout: number | undefined;
  action: ActionRef | null;
}

// ---------------------------------------------------------------------------------------------
// Travelling to other processes: only the name goes; the receiver opens the same resources.
// Each class registers its reducer in its own `static {}` block; these are the lock helpers the
// Lock, RLock and Condition reducers share.

interface LockState {
  kind: "lock" | "rlock";
  name: string;
}

interface ConditionState {
  name: string;
  lock: LockState;
}

function reduceLock(ops: LockOps): LockState {
  ops.core.check("lock");
  return { kind: ops.kind, name: ops.core.name };
}

function reviveLock(state: LockState): Lock | RLock {
  const core = Core.open(state.name, KIND[state.kind], state.kind === "lock" ? "Lock" : "RLock");
  return state.kind === "lock" ? construct(Lock, core) : construct(RLock, core);
}
