/**
 * Locks shared between processes (CPython: `Lock` and `RLock` in `synchronize.py`).
 *
 * The lock word of a Lock or an RLock (word `W.A` of its shared block, `_sync_block.ts`) is the
 * holder's pid, plus `FLAG` when a waiter may sleep (then the release must post the
 * block's semaphore). So acquire and release are one compare-and-swap each when nobody waits. An
 * RLock keeps its recursion count in `W.B`, which only the holder touches. A waiter that has slept
 * a slice (50 ms) checks the holder's pid: the lock of a process that no longer runs is freed, so
 * a holder killed by SIGKILL never deadlocks the others.
 *
 * A `Condition` (`condition.ts`) drives its lock through {@linkcode LockOps}, which each class
 * hands out from its own static block (see `lockOps`).
 *
 * @module
 */
import { adopted, construct } from "./_adopt.ts";
import { registerReducer } from "./_reduction.ts";
import { KIND, PID, registerBlocks, SyncBlock, W } from "./_sync_block.ts";
import { described, inspect } from "./_inspect.ts";
import { CLOSED_WORDS, FLAG, lockSpec, lockWordParts, OWNER } from "./_lock_word.ts";
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

export type { AcquireOptions, AcquireSyncOptions };

/** What a Condition needs from its lock. */
export interface LockOps {
  kind: "lock" | "rlock";
  core: SyncBlock;
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
export function lockOps(lock: unknown): LockOps | undefined {
  if (typeof lock !== "object" || lock === null) return undefined;
  return opsOfLock(lock) ?? opsOfRLock(lock);
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
  #core: SyncBlock;
  #w: Int32Array;
  #spec: WaitSpec;
  #ops: LockOps;

  /** Creates a new, unlocked lock. */
  constructor() {
    const core = adopted<SyncBlock>(new.target) ?? SyncBlock.create(KIND.lock);
    const w = core.words;
    this.#core = core;
    this.#w = w;
    this.#spec = lockSpec(core, () => {});
    registerBlocks(this, [core]);
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
      // Taken at once: no promise machinery beyond the one returned.
      if (Atomics.compareExchange(this.#w, W.A, 0, PID) === 0) return TRUE;
      return waitUntil(this.#core, this.#spec, FOREVER);
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

  /** How it prints: `Lock(unlocked)`, `Lock(locked, owner=1234)` (the holder's pid), `Lock(closed)`. */
  [inspect](): string {
    return described("Lock", this.#core.closed, () => lockWordParts(Atomics.load(this.#w, W.A)));
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
  #core: SyncBlock;
  #w: Int32Array;
  #spec: WaitSpec;
  #ops: LockOps;

  /** Creates a new, unlocked re-entrant lock. */
  constructor() {
    const core = adopted<SyncBlock>(new.target) ?? SyncBlock.create(KIND.rlock);
    const w = core.words;
    this.#core = core;
    this.#w = w;
    registerBlocks(this, [core]);
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
      return waitUntil(this.#core, this.#spec, FOREVER);
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

  /** How it prints: `RLock(unlocked)`, `RLock(locked, owner=1234, count=2)`, `RLock(closed)`. */
  [inspect](): string {
    return described("RLock", this.#core.closed, () => {
      const word = Atomics.load(this.#w, W.A);
      return word === 0 ? lockWordParts(word) : [...lockWordParts(word), `count=${this.#w[W.B]}`];
    });
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
// Travelling to other processes: only the name goes; the receiver opens the same resources.
// Each class registers its reducer in its own `static {}` block; these helpers are shared by the
// Lock, RLock and Condition reducers.

export interface LockState {
  kind: "lock" | "rlock";
  name: string;
}

/** A lock as it travels: its kind and name. */
export function reduceLock(ops: LockOps): LockState {
  ops.core.check("lock");
  return { kind: ops.kind, name: ops.core.name };
}

/** Opens the lock a {@linkcode LockState} names. */
export function reviveLock(state: LockState): Lock | RLock {
  const core = SyncBlock.open(state.name, KIND[state.kind], state.kind === "lock" ? "Lock" : "RLock");
  return state.kind === "lock" ? construct(Lock, core) : construct(RLock, core);
}
