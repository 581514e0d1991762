/**
 * A queue whose items are marked done (CPython: `queues.py`'s `JoinableQueue`): a {@linkcode Queue}
 * with a shared count of unfinished tasks, which `_queue_handle.ts` keeps.
 *
 * @module
 */
import { construct } from "./_adopt.ts";
import { registerReducer } from "./_reduction.ts";
import { markJoinable, Queue, queueHandle, type QueueState, reduceQueue, reviveQueue } from "./queue.ts";

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
    if (!queueHandle(this).taskDone()) {
      throw new RangeError("Cannot mark a task done: taskDone() was called more times than items were put");
    }
  }

  /** Resolves once every item put so far (in any process) has been marked done. */
  async join(): Promise<void> {
    await queueHandle(this).join();
  }
}

markJoinable(JoinableQueue);
registerReducer(JoinableQueue, {
  name: "mp.JoinableQueue",
  reduce: reduceQueue,
  revive(st: QueueState) {
    return construct(JoinableQueue, reviveQueue(st));
  },
});
