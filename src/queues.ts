/**
 * Queues between processes (CPython: `queues.py`).
 *
 * A queue is an OS pipe plus a little shared state, and every process holding the queue holds
 * both ends of the pipe (they travel to children as `Process` arguments). The parts:
 *
 * - `_queue_shared.ts`: the frame format, the control block, the count of items (one word,
 *   so `qsize()` is exact once a `put()` resolved), and the producer records that give a killed
 *   producer's places back.
 * - `_queue_feeder.ts`: this process's buffer, its drain into the pipe, the hand-over at exit.
 * - `_queue_reader.ts`: the shared read-ahead and segments, updated crash-safely.
 *
 * What holds, SIGKILL included: an item whose `put()` resolved reaches the queue unless the
 * process that put it is killed before its buffer reached the pipe (then the item is lost, and
 * its place is given back); at a normal exit, however it ends, a process hands its buffer over
 * (waiting as long as live processes hold the queue's locks). Every item is delivered at most
 * once, and exactly once unless the process that took it is killed before `get()` returned it. A
 * reader killed at any step leaves the shared state as it was before or after that step.
 *
 * @module
 */
import { OS } from "../native/mod.ts";
import { adopted, construct } from "./_adopt.ts";
import { Waiter } from "./_fd_wait.ts";
import { described, inspect } from "./_inspect.ts";
import { type Encoded, encodeItem, Feeder, heldReadLocks } from "./_queue_feeder.ts";
import { NOTHING, Reader } from "./_queue_reader.ts";
import {
  createShared,
  itemCount,
  MAX_ITEMS,
  reclaimDeadProducers,
  releaseShared,
  reviveShared,
  type Shared,
  W_JOIN_WAITERS,
  W_JOINABLE,
  W_PUT_WAITERS,
  W_UNFINISHED,
  wakePutters,
} from "./_queue_shared.ts";
import { deserialize, receivedFd, type ReduceContext, registerReducer, serialize } from "./_reduction.ts";
// A waiting put() or join() sleeps in slices as a lock does: then it looks at abort, close and
// dead producers.
import { SLICE_MS } from "./_sync_wait.ts";
import { type CheckedWait, checkWait, Deadline, whenAborted } from "./_wait.ts";
import { QueueEmptyError, QueueFullError } from "./errors.ts";
import type { Lock } from "./lock.ts";

/**
 * Options of `put()` and `get()`.
 *
 * @example Take an item, waiting at most 50 ms
 * ```ts
 * import { Queue, QueueEmptyError } from "@mp/multiprocessing";
 *
 * const q = new Queue<string>();
 * await q.put("job", { timeout: 1_000 });
 * console.log(await q.get({ timeout: 50 })); // job
 * await q.get({ block: false }).catch((e) => console.log(e instanceof QueueEmptyError)); // true
 * q.close();
 * ```
 */
export interface QueueWaitOptions {
  /** False: try once and never wait (wins over `timeout`). Default true. */
  block?: boolean;
  /** Milliseconds to wait at most; undefined or `Infinity` waits forever, 0 or less does not wait. */
  timeout?: number;
  /** Aborting rejects the wait with `signal.reason`; no item is lost or added. */
  signal?: AbortSignal;
}

/** qsize() looks for dead producers at most this often. */
const RECLAIM_EVERY_MS = 20;

/** A queue dropped without close() releases its handles when it is garbage collected. */
const finalizer = new FinalizationRegistry<Shared>((s) => {
  try {
    releaseShared(s);
  } catch {
    // nothing left to do
  }
});

const RESOLVED = Promise.resolve();

// Friend access, set in the classes' static blocks: the reducers and JoinableQueue reach
// private state through these (no `_` members in the public API).
let sharedOf: (q: Queue) => Shared;
let taskDoneOf: (q: Queue) => boolean;
let joinOf: (q: Queue) => Promise<void>;
let queueOf: (q: SimpleQueue) => Queue;

/**
 * A FIFO queue shared between processes, as Python's `multiprocessing.Queue`: any number of
 * processes may put and get; every item is delivered exactly once. Pass it to children as a
 * `Process` argument.
 *
 * @example Producer and consumer
 * ```ts
 * import { Process, Queue } from "@mp/multiprocessing";
 *
 * export async function produce(q: Queue<number | null>) {
 *   for (let i = 0; i < 3; i++) await q.put(i);
 *   await q.put(null);
 * }
 *
 * if (import.meta.main) {
 *   const q = new Queue<number | null>();
 *   const p = new Process({ target: produce, args: [q] });
 *   await p.start();
 *   for (let x = await q.get(); x !== null; x = await q.get()) console.log(x);
 *   await p.join();
 *   q.close();
 * }
 * ```
 */
export class Queue<T = unknown> {
  #s: Shared;
  #w: Int32Array;
  #reader: Reader;
  #feeder: Feeder;
  #closed = false;
  #released = false;
  /** Serializes this process's gets, so only one at a time waits for the reader lock. */
  #getChain: Promise<unknown> = Promise.resolve();
  #waiter = new Waiter();
  #getsPending = 0;
  /** True while a get() of this process holds the reader lock (across an await). */
  #holdsReadLock = false;
  /** Releases the reader lock a get() holds (at exit: the get is abandoned). */
  #dropReadLock = () => {
    if (!this.#holdsReadLock) return;
    this.#holdsReadLock = false;
    heldReadLocks.delete(this.#dropReadLock);
    this.#s.rlock.release();
  };
  /** This process's waits on the wake-up semaphore still running on a worker thread. */
  #inflight = 0;
  /** When #reclaimNow() last looked for dead producers. */
  #lastReclaim = -Infinity;
  /** Aborted by close(): stops this process's waits. */
  #closeCtl = new AbortController();

  /** Makes a queue holding at most `maxsize` items (0 or omitted: unbounded). */
  constructor(maxsize = 0) {
    const shared = adopted<Shared>(new.target);
    if (shared) {
      this.#s = shared;
    } else {
      if (typeof maxsize !== "number" || !Number.isInteger(maxsize) || maxsize < 0 || maxsize > MAX_ITEMS) {
        throw new RangeError(
          `Invalid maxsize: ${maxsize}: expected an integer from 0 (unbounded) to ${MAX_ITEMS}`,
        );
      }
      this.#s = createShared(maxsize);
    }
    finalizer.register(this, this.#s, this);
    this.#w = new Int32Array(this.#s.control.buffer, 0, 64 + 2 * 64);
    if (!shared && new.target === JoinableQueue) Atomics.store(this.#w, W_JOINABLE, 1);
    this.#reader = new Reader(this.#s, this.#w);
    this.#feeder = new Feeder(
      this.#s,
      this.#w,
      this.#reader,
      new.target === JoinableQueue,
      () => this.#maybeRelease(),
    );
  }

  /** `Queue(qsize=3, maxsize=10)` (no maxsize when unbounded), `JoinableQueue(...)`; `Queue(closed)` once closed. */
  [inspect](): string {
    return described(this.constructor.name, this.#closed, () => [
      `qsize=${itemCount(this.#w)}`,
      ...(this.#s.maxsize < MAX_ITEMS ? [`maxsize=${this.#s.maxsize}`] : []),
    ]);
  }

  /**
   * The number of items in the queue: exact once a `put()` has resolved. Places of items lost
   * with a killed producer are given back first.
   */
  qsize(): number {
    return this.#count("qsize");
  }

  /** True when the queue holds no item. */
  empty(): boolean {
    return this.#count("tell whether it is empty") === 0;
  }

  /** True when the queue holds `maxsize` items (never for an unbounded queue). */
  full(): boolean {
    return this.#count("tell whether it is full") >= this.#s.maxsize;
  }

  #count(what: string): number {
    this.#check(what);
    this.#reclaimNow();
    return itemCount(this.#w);
  }

  /**
   * Puts an item, waiting for room in a bounded queue; rejects with {@linkcode QueueFullError}
   * when there is none (with `block: false`, or after `timeout` ms). An item that cannot be
   * serialized throws a `DataCloneError` from this call, synchronously, and so do options that are
   * not `{ block?: boolean, timeout?: number, signal?: AbortSignal }` (a `TypeError`).
   */
  put(item: T, options?: QueueWaitOptions): Promise<void> {
    this.#check("put");
    const wait = checkWait(options, "Queue.put()");
    const bytes = encodeItem(item);
    if (wait.signal?.aborted) return Promise.reject(wait.signal.reason);
    if (this.#feeder.tryTake()) {
      this.#feeder.accept(bytes);
      return RESOLVED;
    }
    if (!wait.block || !(wait.timeout > 0)) {
      return Promise.reject(
        new QueueFullError(`Queue is full: it holds its maxsize of ${this.#s.maxsize} items`),
      );
    }
    return this.#putLater(bytes, wait);
  }

  /** Puts an item if there is room at once, else throws {@linkcode QueueFullError}. */
  putNowait(item: T): void {
    this.#check("putNowait");
    const bytes = encodeItem(item);
    if (!this.#feeder.tryTake()) {
      this.#reclaimNow();
      if (!this.#feeder.tryTake()) {
        throw new QueueFullError(`Queue is full: it holds its maxsize of ${this.#s.maxsize} items`);
      }
    }
    this.#feeder.accept(bytes);
  }

  /**
   * Takes the next item, waiting for one; rejects with {@linkcode QueueEmptyError} when there is
   * none (with `block: false`, or after `timeout` ms). Options that are not
   * `{ block?: boolean, timeout?: number, signal?: AbortSignal }` throw a `TypeError`.
   */
  get(options?: QueueWaitOptions): Promise<T> {
    this.#check("get");
    const wait = checkWait(options, "Queue.get()");
    // Gets of this process go one at a time, in order; the first needs no queueing.
    const run = () => this.#get(wait);
    const next = this.#getsPending++ === 0 ? run() : this.#getChain.then(run, run);
    this.#getChain = next;
    return next;
  }

  /** Takes the next item if there is one at once, else throws {@linkcode QueueEmptyError}. */
  getNowait(): T {
    this.#check("getNowait");
    const { rlock } = this.#s;
    // Another get() of this process may hold the reader lock: then there is no item "at once".
    if (!rlock.acquireSync({ block: false })) throw new QueueEmptyError();
    let got: unknown;
    try {
      this.#reader.recover();
      got = this.#reader.take();
    } finally {
      rlock.release();
    }
    if (got === NOTHING) throw new QueueEmptyError();
    wakePutters(this.#s, this.#w);
    return got as T;
  }

  /**
   * Says this process will put and get no more. Items it put keep draining into the pipe in the
   * background (see {@linkcode Queue.joinThread}). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeCtl.abort(
      new Deno.errors.BadResource("Cannot get or put: the queue was closed while waiting"),
    );
    this.#maybeRelease();
  }

  /** Resolves once every item this process put has left its buffer (is in the pipe). */
  joinThread(): Promise<void> {
    return this.#feeder.joinThread();
  }

  /**
   * At this process's exit, drop the items it put that are still in its buffer instead of handing
   * them over (Python's `cancel_join_thread`); their places are given back. Rarely wanted: by
   * default nothing is lost.
   */
  cancelJoinThread(): void {
    this.#feeder.cancelled = true;
  }

  /** Closes this process's handle (`using q = new Queue()`). */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    sharedOf = (q) => {
      if (q.#closed) throw new Deno.errors.BadResource("Cannot send a closed queue to another process");
      return q.#s;
    };
    taskDoneOf = (q) => (q.#check("taskDone"), q.#taskDone());
    joinOf = (q) => (q.#check("join"), q.#join());
  }

  /** Marks one task done; false when none is unfinished. */
  #taskDone(): boolean {
    const w = this.#w;
    for (;;) {
      const v = Atomics.load(w, W_UNFINISHED);
      if (v <= 0) return false;
      if (Atomics.compareExchange(w, W_UNFINISHED, v, v - 1) === v) {
        if (v === 1 && Atomics.load(w, W_JOIN_WAITERS) > 0) this.#s.wake.post();
        return true;
      }
    }
  }

  /**
   * JoinableQueue.join(): sleeps on the wake-up semaphore until no task is unfinished (the last
   * taskDone() posts it; slices bound the wait should a producer's post take it).
   */
  async #join(): Promise<void> {
    const w = this.#w;
    while (Atomics.load(w, W_UNFINISHED) > 0) {
      this.#check("join");
      Atomics.add(w, W_JOIN_WAITERS, 1);
      this.#inflight++;
      try {
        if (Atomics.load(w, W_UNFINISHED) <= 0) break;
        await this.#s.wake.waitAsync(SLICE_MS);
      } finally {
        this.#inflight--;
        if (!this.#released) Atomics.sub(w, W_JOIN_WAITERS, 1);
        if (this.#closed) queueMicrotask(() => this.#maybeRelease());
      }
      reclaimDeadProducers(w, this.#s);
    }
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Gives back the places of dead producers' lost items, looking at most every 20 ms (a look
   * reads /proc for each producer with items in its buffer).
   */
  #reclaimNow(): void {
    const now = performance.now();
    if (now - this.#lastReclaim < RECLAIM_EVERY_MS) return;
    this.#lastReclaim = now;
    reclaimDeadProducers(this.#w, this.#s);
  }

  #check(what: string): void {
    if (this.#closed) throw new Deno.errors.BadResource(`Cannot ${what}: the queue is closed`);
  }

  async #putLater(bytes: Encoded, { timeout, signal }: CheckedWait): Promise<void> {
    const deadline = new Deadline(timeout);
    const w = this.#w;
    for (;;) {
      signal?.throwIfAborted();
      if (this.#closed) throw new Deno.errors.BadResource("Cannot put: the queue was closed while waiting");
      reclaimDeadProducers(w, this.#s);
      if (this.#feeder.tryTake()) break;
      const left = deadline.left();
      if (left <= 0) {
        throw new QueueFullError(`Queue is full: no room for ${timeout} ms (maxsize ${this.#s.maxsize})`);
      }
      Atomics.add(w, W_PUT_WAITERS, 1);
      this.#inflight++;
      try {
        // Looked again after counting itself: a get() that freed a place meanwhile posts.
        if (this.#feeder.tryTake()) break;
        await this.#s.wake.waitAsync(Math.min(left, SLICE_MS));
      } finally {
        this.#inflight--;
        if (!this.#released) Atomics.sub(w, W_PUT_WAITERS, 1);
        // Closed meanwhile: this was the last use of the semaphore, perhaps.
        if (this.#closed) queueMicrotask(() => this.#maybeRelease());
      }
    }
    if (signal?.aborted || this.#closed) {
      this.#feeder.untake();
      signal?.throwIfAborted();
      throw new Deno.errors.BadResource("Cannot put: the queue was closed while waiting");
    }
    this.#feeder.accept(bytes);
  }

  async #get({ block, timeout, signal }: CheckedWait): Promise<T> {
    try {
      this.#check("get");
      signal?.throwIfAborted();
      const noWait = !block || !(timeout > 0);
      const deadline = new Deadline(noWait ? 0 : timeout);
      const { rlock, readFd } = this.#s;
      const closing = this.#closeCtl.signal;
      const locked = rlock.acquireSync({ block: false }) || (!noWait &&
        await rlock.acquire({
          timeout: timeout === Infinity ? undefined : deadline.left(),
          signal: signal ? AbortSignal.any([signal, closing]) : closing,
        }));
      if (!locked) {
        throw new QueueEmptyError(noWait ? "Queue is empty" : `Queue is empty: no item for ${timeout} ms`);
      }
      this.#holdsReadLock = true;
      let got: unknown = NOTHING;
      let stop: { promise: Promise<void>; dispose(): void } | undefined;
      try {
        this.#reader.recover();
        for (;;) {
          signal?.throwIfAborted();
          closing.throwIfAborted();
          got = this.#reader.take();
          if (got !== NOTHING || noWait) break;
          if (deadline.left() <= 0) break;
          stop ??= whenAborted(signal ? [signal, closing] : [closing]);
          heldReadLocks.add(this.#dropReadLock);
          await this.#waiter.ready(readFd, OS.POLLIN, stop.promise, deadline.at);
        }
      } finally {
        stop?.dispose();
        this.#dropReadLock();
      }
      if (got === NOTHING) {
        signal?.throwIfAborted();
        throw new QueueEmptyError(noWait ? "Queue is empty" : `Queue is empty: no item for ${timeout} ms`);
      }
      wakePutters(this.#s, this.#w);
      return got as T;
    } finally {
      this.#getsPending--;
      this.#maybeRelease();
    }
  }

  /** Releases this process's handles once closed and nothing of this process still uses them. */
  #maybeRelease(): void {
    if (this.#closed && this.#feeder.idle && this.#getsPending === 0 && this.#inflight === 0) this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#feeder.released = true;
    this.#feeder.leave();
    finalizer.unregister(this);
    this.#reader.close();
    releaseShared(this.#s);
  }
}

/**
 * A {@linkcode Queue} that also counts unfinished tasks, as Python's
 * `multiprocessing.JoinableQueue`: each accepted item adds one, each `taskDone()` takes one away,
 * and `join()` waits until none is left.
 *
 * @example Wait until every item is processed
 * ```ts
 * import { JoinableQueue, Process } from "@mp/multiprocessing";
 *
 * export async function worker(q: JoinableQueue<number>) {
 *   for (;;) {
 *     const n = await q.get();
 *     console.log(n * n);
 *     q.taskDone();
 *   }
 * }
 *
 * if (import.meta.main) {
 *   const q = new JoinableQueue<number>();
 *   const p = new Process({ target: worker, args: [q], daemon: true });
 *   await p.start();
 *   for (let i = 0; i < 5; i++) await q.put(i);
 *   await q.join(); // every item got its taskDone()
 *   q.close();
 * }
 * ```
 */
export class JoinableQueue<T = unknown> extends Queue<T> {
  /** Makes a joinable queue holding at most `maxsize` items (0 or omitted: unbounded). */
  constructor(maxsize = 0) {
    super(maxsize);
  }

  /**
   * Says that an item taken with `get()` is processed. Throws a `RangeError` when called more
   * times than items were put.
   */
  taskDone(): void {
    if (!taskDoneOf(this)) {
      throw new RangeError("Cannot mark a task done: taskDone() was called more times than items were put");
    }
  }

  /** Resolves once every item put so far (in any process) has been marked done. */
  async join(): Promise<void> {
    await joinOf(this);
  }
}

/**
 * A simpler unbounded queue, as Python's `multiprocessing.SimpleQueue`: `put`, `get`, `empty`,
 * `close`. It shares {@linkcode Queue}'s machinery (and its guarantees).
 *
 * @example
 * ```ts
 * import { SimpleQueue } from "@mp/multiprocessing";
 *
 * const q = new SimpleQueue<string>();
 * await q.put("a");
 * console.log(await q.get(), q.empty()); // "a" true
 * q.close();
 * ```
 */
export class SimpleQueue<T = unknown> {
  #q: Queue<T>;

  /** Makes an unbounded queue. */
  constructor() {
    this.#q = adopted<Queue<T>>(new.target) ?? new Queue<T>();
  }

  /** `SimpleQueue(qsize=3)`; `SimpleQueue(closed)` once closed. */
  [inspect](): string {
    return this.#q[inspect]().replace(/^Queue/, "SimpleQueue");
  }

  /** Puts an item; an item that cannot be serialized throws from this call. */
  put(item: T): Promise<void> {
    return this.#q.put(item);
  }

  /** Takes the next item, waiting for one. */
  get(): Promise<T> {
    return this.#q.get();
  }

  /** True when the queue holds no item. */
  empty(): boolean {
    return this.#q.empty();
  }

  /** Says this process will put and get no more (idempotent). */
  close(): void {
    this.#q.close();
  }

  /** Closes this process's handle. */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    queueOf = (q) => q.#q;
  }
}

interface QueueState {
  readFd: number;
  writeFd: number;
  controlName: string;
  slotsName: string;
  maxsize: number;
  locks: Uint8Array;
}

function reduceQueue(q: Queue, ctx: ReduceContext): QueueState {
  const s = sharedOf(q);
  return {
    readFd: ctx.passFd(s.readFd),
    writeFd: ctx.passFd(s.writeFd),
    controlName: s.controlName,
    slotsName: s.wakeName,
    maxsize: s.maxsize,
    locks: serialize({ rlock: s.rlock, wlock: s.wlock }),
  };
}

function revive(st: QueueState): Shared {
  const fds = { readFd: receivedFd(st.readFd), writeFd: receivedFd(st.writeFd) };
  return reviveShared({ ...st, ...fds, locks: deserialize(st.locks) as { rlock: Lock; wlock: Lock } });
}

registerReducer(Queue, {
  name: "mp.Queue",
  reduce: reduceQueue,
  revive(st: QueueState) {
    return construct(Queue, revive(st));
  },
});
registerReducer(JoinableQueue, {
  name: "mp.JoinableQueue",
  reduce: reduceQueue,
  revive(st: QueueState) {
    return construct(JoinableQueue, revive(st));
  },
});
registerReducer(SimpleQueue, {
  name: "mp.SimpleQueue",
  reduce: (q: SimpleQueue, ctx) => reduceQueue(queueOf(q), ctx),
  revive(st: QueueState) {
    return construct(SimpleQueue, construct(Queue, revive(st)));
  },
});
