/**
 * A pool of worker threads with {@linkcode Pool}'s whole API (CPython:
 * `multiprocessing.pool.ThreadPool`, `multiprocessing.dummy.Pool`): the same scheduler, worker
 * loop and errors, over the thread worker kind of `_pool_thread.ts`.
 *
 * @module
 */
import { Pool, type PoolOptions, WORKER_KIND } from "./pool.ts";
import type { WorkerKind } from "./_pool_slot.ts";
import { threadWorkers } from "./_pool_thread.ts";

/**
 * A pool of worker threads (Deno Web Workers) running your exported functions, as Python's
 * `multiprocessing.pool.ThreadPool`: exactly {@linkcode Pool}'s options, methods and errors
 * (it is a `Pool`), with threads in place of processes. `processes` is the number of threads.
 *
 * Threads start in milliseconds and pass tasks without a process boundary, but share this
 * process: a task that crashes the process (a segfault, running out of memory) ends the whole
 * program. A thread that ends while running a task (`Deno.exit(n)` in the task, or an error
 * nobody caught in a callback it scheduled) fails that task with a `WorkerDiedError` whose `pid`
 * is the thread's `ident` (as `currentThread().ident` says inside it) and whose `exitCode` is the
 * thread's (n, or 1), and is replaced. A task's `timeout` or `signal` terminates its thread
 * (`Worker.terminate()`) and starts another; a task blocked in a synchronous call (`acquireSync()`,
 * a blocking read) is only stopped when that call returns.
 *
 * Each thread imports the tasks' module, as a worker process does, and runs the `initializer`.
 * Library objects in `initargs` or task arguments (locks, queues, shared memory...) revive in the
 * thread and work across threads and processes at once.
 *
 * @example Square numbers in two threads
 * ```ts
 * import { ThreadPool } from "@mp/multiprocessing";
 *
 * export function square(x: number): number {
 *   return x * x;
 * }
 *
 * if (import.meta.main) {
 *   await using pool = new ThreadPool(2);
 *   console.log(await pool.map(square, [1, 2, 3])); // [1, 4, 9]
 * }
 * ```
 */
// deno-lint-ignore no-explicit-any
export class ThreadPool<I extends unknown[] = any[]> extends Pool<I> {
  /** @internal Workers are threads. */
  static override [WORKER_KIND]: WorkerKind = threadWorkers;

  /** Starts the worker threads at once; `processes` (default `cpuCount()`) is their number. */
  constructor(options: number | PoolOptions<I> = {} as PoolOptions<I>) {
    super(options);
  }
}
