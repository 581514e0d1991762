/**
 * The simple queue (CPython: `queues.py`'s `SimpleQueue`): `put`, `get`, `empty`, `close` over a
 * {@linkcode Queue}, with its guarantees.
 *
 * @module
 */
import { adopted, construct } from "./_adopt.ts";
import { inspect } from "./_inspect.ts";
import { registerReducer } from "./_reduction.ts";
import { Queue, type QueueState, reduceQueue, reviveQueue } from "./queue.ts";

// Friend access, set in SimpleQueue's static block, for its reducer.
let queueOf: (q: SimpleQueue) => Queue;

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

registerReducer(SimpleQueue, {
  name: "mp.SimpleQueue",
  reduce: (q: SimpleQueue, ctx) => reduceQueue(queueOf(q), ctx),
  revive(st: QueueState) {
    return construct(SimpleQueue, construct(Queue, reviveQueue(st)));
  },
});
