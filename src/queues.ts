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
 * - `_queue_handle.ts`: this process's handle on a queue, holding the parts above: put, get,
 *   their waits, JoinableQueue's task count, release. The classes here describe and forward.
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
import { adopted, construct } from "./_adopt.ts";
import { inspect } from "./_inspect.ts";
import { QueueHandle } from "./_queue_handle.ts";
import { reviveShared, type Shared } from "./_queue_shared.ts";
import { deserialize, receivedFd, type ReduceContext, registerReducer, serialize } from "./_reduction.ts";
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

// Friend access, set in the classes' static blocks: the reducers and JoinableQueue reach
// private state through these (no `_` members in the public API).
let handleOf: (q: Queue) => QueueHandle;
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
  #h: QueueHandle;

  /** Makes a queue holding at most `maxsize` items (0 or omitted: unbounded). */
  constructor(maxsize = 0) {
    this.#h = new QueueHandle(adopted<Shared>(new.target), maxsize, new.target === JoinableQueue);
  }

  /** `Queue(qsize=3, maxsize=10)` (no maxsize when unbounded), `JoinableQueue(...)`; `Queue(closed)` once closed. */
  [inspect](): string {
    return this.#h.describe(this.constructor.name);
  }

  /**
   * The number of items in the queue: exact once a `put()` has resolved. Places of items lost
   * with a killed producer are given back first.
   */
  qsize(): number {
    return this.#h.count("qsize");
  }

  /** True when the queue holds no item. */
  empty(): boolean {
    return this.#h.count("tell whether it is empty") === 0;
  }

  /** True when the queue holds `maxsize` items (never for an unbounded queue). */
  full(): boolean {
    return this.#h.count("tell whether it is full") >= this.#h.maxsize;
  }

  /**
   * Puts an item, waiting for room in a bounded queue; rejects with {@linkcode QueueFullError}
   * when there is none (with `block: false`, or after `timeout` ms). An item that cannot be
   * serialized throws a `DataCloneError` from this call, synchronously, and so do options that are
   * not `{ block?: boolean, timeout?: number, signal?: AbortSignal }` (a `TypeError`).
   */
  put(item: T, options?: QueueWaitOptions): Promise<void> {
    return this.#h.put(item, options);
  }

  /** Puts an item if there is room at once, else throws {@linkcode QueueFullError}. */
  putNowait(item: T): void {
    this.#h.putNowait(item);
  }

  /**
   * Takes the next item, waiting for one; rejects with {@linkcode QueueEmptyError} when there is
   * none (with `block: false`, or after `timeout` ms). Options that are not
   * `{ block?: boolean, timeout?: number, signal?: AbortSignal }` throw a `TypeError`.
   */
  get(options?: QueueWaitOptions): Promise<T> {
    return this.#h.get(options) as Promise<T>;
  }

  /** Takes the next item if there is one at once, else throws {@linkcode QueueEmptyError}. */
  getNowait(): T {
    return this.#h.getNowait() as T;
  }

  /**
   * Says this process will put and get no more. Items it put keep draining into the pipe in the
   * background (see {@linkcode Queue.joinThread}). Idempotent.
   */
  close(): void {
    this.#h.close();
  }

  /** Resolves once every item this process put has left its buffer (is in the pipe). */
  joinThread(): Promise<void> {
    return this.#h.joinThread();
  }

  /**
   * At this process's exit, drop the items it put that are still in its buffer instead of handing
   * them over (Python's `cancel_join_thread`); their places are given back. Rarely wanted: by
   * default nothing is lost.
   */
  cancelJoinThread(): void {
    this.#h.cancelJoinThread();
  }

  /** Closes this process's handle (`using q = new Queue()`). */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    handleOf = (q) => q.#h;
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
    if (!handleOf(this).taskDone()) {
      throw new RangeError("Cannot mark a task done: taskDone() was called more times than items were put");
    }
  }

  /** Resolves once every item put so far (in any process) has been marked done. */
  async join(): Promise<void> {
    await handleOf(this).join();
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
  const s = handleOf(q).shared();
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
