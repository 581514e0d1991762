/**
 * The queue between processes (CPython: `queues.py`'s `Queue`); `joinable_queue.ts` and
 * `simple_queue.ts` build on it.
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

// Friend access, set in Queue's static block: the reducers and JoinableQueue reach its private
// state through it (no `_` members in the public API).
let handleOf: (q: Queue) => QueueHandle;

const joinable = new WeakSet<object>();

/** Marks `cls` (JoinableQueue): its queues, and its subclasses', count unfinished tasks. */
export function markJoinable(cls: object): void {
  joinable.add(cls);
}

function isJoinable(cls: object | null): boolean {
  for (; cls !== null; cls = Object.getPrototypeOf(cls)) if (joinable.has(cls)) return true;
  return false;
}

/** This process's handle behind `q` (for `joinable_queue.ts` and the reducers). */
export function queueHandle(q: Queue): QueueHandle {
  return handleOf(q);
}

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
    this.#h = new QueueHandle(adopted<Shared>(new.target), maxsize, isJoinable(new.target));
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

/** How a queue travels (all three classes alike). */
export interface QueueState {
  readFd: number;
  writeFd: number;
  controlName: string;
  slotsName: string;
  maxsize: number;
  locks: Uint8Array;
}

/** The state of `q` for another process. */
export function reduceQueue(q: Queue, ctx: ReduceContext): QueueState {
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

/** The shared state a travelled queue stands for, opened in this process. */
export function reviveQueue(st: QueueState): Shared {
  const fds = { readFd: receivedFd(st.readFd), writeFd: receivedFd(st.writeFd) };
  return reviveShared({ ...st, ...fds, locks: deserialize(st.locks) as { rlock: Lock; wlock: Lock } });
}

registerReducer(Queue, {
  name: "mp.Queue",
  reduce: reduceQueue,
  revive(st: QueueState) {
    return construct(Queue, reviveQueue(st));
  },
});
