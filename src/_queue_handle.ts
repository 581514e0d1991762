/**
 * This process's handle on one queue: what a `Queue` object does (CPython: the methods of
 * `queues.Queue`), behind the public classes (`queue.ts`, `joinable_queue.ts`, `simple_queue.ts`), which only describe and forward.
 *
 * It holds this process's parts of the queue (the shared state of `_queue_shared.ts`, the
 * feeder of `_queue_feeder.ts`, the reader of `_queue_reader.ts`) and does the waiting:
 *
 * - a put() waits for room on the wake-up semaphore, counted in `W_PUT_WAITERS` (a get() that
 *   frees a place posts it), through the one wait loop (`waitSteps`, driven by `drive` of
 *   `_wait_drive.ts`, as a lock's waits are), looking for dead producers' places between sleeps;
 * - a get() holds the reader lock (this process's gets go one at a time, in order, through
 *   `getChain`), then waits for the pipe to be readable;
 * - JoinableQueue's join() waits on the same semaphore, counted in `W_JOIN_WAITERS`, until
 *   `W_UNFINISHED` is 0 (the last taskDone() posts it).
 *
 * close() stops this process's waits; the handles are released once nothing of this process
 * uses them any more (the feeder has drained, no get or wait is in flight), or when the handle
 * is garbage collected.
 *
 * @module
 */
import { OS } from "../native/mod.ts";
import { Waiter } from "./_fd_wait.ts";
import { described } from "./_inspect.ts";
import { type Encoded, encodeItem, Feeder, heldReadLocks } from "./_queue_feeder.ts";
import { NOTHING, Reader } from "./_queue_reader.ts";
import {
  createShared,
  itemCount,
  MAX_ITEMS,
  reclaimDeadProducers,
  releaseShared,
  type Shared,
  W_JOIN_WAITERS,
  W_JOINABLE,
  W_PUT_WAITERS,
  W_UNFINISHED,
  wakePutters,
} from "./_queue_shared.ts";
import { FOREVER } from "./_sync_wait.ts";
import { type CheckedWait, checkWait, Deadline, Eagerness, waitSteps, whenAborted } from "./_wait.ts";
import { drive } from "./_wait_drive.ts";
import { QueueEmptyError, QueueFullError } from "./errors.ts";
import { forgetCollected, onCollected } from "./_resource.ts";

/** qsize() looks for dead producers at most this often. */
const RECLAIM_EVERY_MS = 20;

const RESOLVED = Promise.resolve();

/** This process's handle on one queue (see the module comment). */
export class QueueHandle {
  #s: Shared;
  #w: Int32Array;
  #reader: Reader;
  #feeder: Feeder;
  #closed = false;
  #released = false;
  /** Serializes this process's gets, so only one at a time waits for the reader lock. */
  #getChain: Promise<unknown> = Promise.resolve();
  #waiter = new Waiter();
  /** What the wait loop learnt about this queue's put() and join() waits. */
  #eager = new Eagerness();
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

  /**
   * Opens `shared` (a revived queue's), or makes a queue holding at most `maxsize` items.
   * `joinable`: a JoinableQueue's (its items count as unfinished tasks).
   */
  constructor(shared: Shared | undefined, maxsize: number, joinable: boolean) {
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
    // A queue dropped without close() releases its handles when it is garbage collected.
    onCollected(this, releaser(this.#s));
    this.#w = new Int32Array(this.#s.control.buffer, 0, 64 + 2 * 64);
    if (!shared && joinable) Atomics.store(this.#w, W_JOINABLE, 1);
    this.#reader = new Reader(this.#s, this.#w);
    this.#feeder = new Feeder(
      this.#s,
      this.#w,
      this.#reader,
      joinable,
      () => this.#maybeRelease(),
    );
  }

  /** The most items the queue holds (`MAX_ITEMS` when unbounded). */
  get maxsize(): number {
    return this.#s.maxsize;
  }

  /** How the queue prints, under its class name. */
  describe(className: string): string {
    return described(className, this.#closed, () => [
      `qsize=${itemCount(this.#w)}`,
      ...(this.#s.maxsize < MAX_ITEMS ? [`maxsize=${this.#s.maxsize}`] : []),
    ]);
  }

  count(what: string): number {
    this.#check(what);
    this.#reclaimNow();
    return itemCount(this.#w);
  }

  put(item: unknown, options: unknown): Promise<void> {
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

  putNowait(item: unknown): void {
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

  get(options: unknown): Promise<unknown> {
    this.#check("get");
    const wait = checkWait(options, "Queue.get()");
    // Gets of this process go one at a time, in order; the first needs no queueing.
    const run = () => this.#get(wait);
    const next = this.#getsPending++ === 0 ? run() : this.#getChain.then(run, run);
    this.#getChain = next;
    return next;
  }

  getNowait(): unknown {
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
    return got;
  }

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

  /** At this process's exit, drop the items still in its buffer instead of handing them over. */
  cancelJoinThread(): void {
    this.#feeder.cancelled = true;
  }

  /** The shared state, for the reducer: a closed queue cannot travel. */
  shared(): Shared {
    if (this.#closed) throw new Deno.errors.BadResource("Cannot send a closed queue to another process");
    return this.#s;
  }

  /** JoinableQueue.taskDone(): false when no task is unfinished. */
  taskDone(): boolean {
    this.#check("taskDone");
    return this.#taskDone();
  }

  /** JoinableQueue.join(). */
  join(): Promise<void> {
    this.#check("join");
    return this.#join();
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
   * JoinableQueue.join(): waits (the one wait loop, on the wake-up semaphore) until no task is
   * unfinished; the last taskDone() posts it.
   */
  async #join(): Promise<void> {
    const w = this.#w;
    this.#check("join");
    await this.#wait(() => Atomics.load(w, W_UNFINISHED) <= 0, W_JOIN_WAITERS, FOREVER, "join");
  }

  /**
   * Waits (the one wait loop: `waitSteps`, driven on the wake-up semaphore by `drive`, as a
   * lock's waits are: between sleeps it looks at abort and close) until `tryTake()` succeeds,
   * counted in the `waiters` word meanwhile so that whoever changes the state posts; looks for
   * dead producers' places between sleeps. False at the deadline; a boolean when the wait ended
   * without going through the event loop (the callers await it).
   */
  #wait(
    tryTake: () => boolean,
    waiters: number,
    { timeout, signal }: CheckedWait,
    what: string,
  ): boolean | Promise<boolean> {
    const w = this.#w;
    const steps = waitSteps(
      {
        tryTake,
        recover: () => reclaimDeadProducers(w, this.#s),
        stray: () => reclaimDeadProducers(w, this.#s),
      },
      new Deadline(timeout),
      this.#eager,
      () => {
        Atomics.add(w, waiters, 1);
        this.#inflight++;
        return () => {
          this.#inflight--;
          if (!this.#released) Atomics.sub(w, waiters, 1);
          // Closed meanwhile: this was the last use of the semaphore, perhaps.
          if (this.#closed) queueMicrotask(() => this.#maybeRelease());
        };
      },
    );
    const wake = this.#s.wake;
    return drive(steps, {
      park: (ms) => wake.waitSync(ms),
      sleep: (ms) => wake.waitAsync(ms, signal),
      signal,
      check: () => {
        if (this.#closed) {
          throw new Deno.errors.BadResource(`Cannot ${what}: the queue was closed while waiting`);
        }
      },
    });
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

  async #putLater(bytes: Encoded, wait: CheckedWait): Promise<void> {
    reclaimDeadProducers(this.#w, this.#s);
    if (!await this.#wait(() => this.#feeder.tryTake(), W_PUT_WAITERS, wait, "put")) {
      throw new QueueFullError(`Queue is full: no room for ${wait.timeout} ms (maxsize ${this.#s.maxsize})`);
    }
    const { signal } = wait;
    if (signal?.aborted || this.#closed) {
      this.#feeder.untake();
      signal?.throwIfAborted();
      throw new Deno.errors.BadResource("Cannot put: the queue was closed while waiting");
    }
    this.#feeder.accept(bytes);
  }

  async #get({ block, timeout, signal }: CheckedWait): Promise<unknown> {
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
      return got;
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
    this.#feeder.release();
    this.#feeder.leave();
    forgetCollected(this);
    this.#reader.close();
    releaseShared(this.#s);
  }
}

/** The cleanup of a collected handle: built here, where the handle is out of sight. */
function releaser(s: Shared): () => void {
  return () => releaseShared(s);
}
