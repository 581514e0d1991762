// Task functions take any arguments: `(n: number) => R` must be accepted where `unknown[]`
// would reject it under strictFunctionTypes.
// deno-lint-ignore-file no-explicit-any
/**
 * A pool of worker processes (CPython: `pool.py`), built to survive its workers: the public
 * face of the scheduler in `_pool_scheduler.ts` (who runs what, and when) over worker processes
 * (`_pool_slot.ts`); `imap` is in `_pool_stream.ts`, `AsyncResult` in `async_result.ts`.
 *
 * @module
 */
import { callerModule, describeFunction, moduleSpecifier } from "./_caller.ts";
import { described, inspect } from "./_inspect.ts";
import { processWorkers, type WorkerKind } from "./_pool_slot.ts";
import { Scheduler } from "./_pool_scheduler.ts";
import { isSyncIterable, poolStream } from "./_pool_stream.ts";
import { timeoutMs } from "./_wait.ts";
import { AsyncResult, pendingResult, settleResult } from "./async_result.ts";
import { cpuCount } from "./current_process.ts";
import type { ApplyOptions, MapAsyncOptions, MapOptions, PoolOptions } from "./_pool_options.ts";

export { AsyncResult };
export type { ApplyOptions, MapAsyncOptions, MapOptions, PoolOptions } from "./_pool_options.ts";

/** @internal Where a pool class keeps the kind of worker it runs (`ThreadPool`: threads). */
export const WORKER_KIND: unique symbol = Symbol("multiprocessing.workerKind");

type AnyFn = (...args: any[]) => unknown;

/**
 * A pool of worker processes running your exported functions, as Python's `multiprocessing.Pool`.
 * A worker that dies mid-task fails only that task (`WorkerDiedError`) and is replaced.
 *
 * @example Square numbers in four processes
 * ```ts
 * import { Pool } from "@mp/multiprocessing";
 *
 * export function square(x: number): number {
 *   return x * x;
 * }
 *
 * if (import.meta.main) {
 *   await using pool = new Pool(4);
 *   console.log(await pool.map(square, [1, 2, 3])); // [1, 4, 9]
 * }
 * ```
 */
export class Pool<I extends unknown[] = any[]> {
  /** @internal The kind of worker this class runs: processes; `ThreadPool` runs threads. */
  static [WORKER_KIND]: WorkerKind = processWorkers;
  #scheduler: Scheduler;

  /** Starts the worker processes at once; if one cannot be started, stops the others and throws. */
  constructor(options: number | PoolOptions<I> = {} as PoolOptions<I>) {
    const opts: PoolOptions = typeof options === "number" ? { processes: options } : options;
    if (typeof opts !== "object" || opts === null) {
      throw new TypeError("Invalid Pool options: expected a number of processes or an options object");
    }
    const { processes = cpuCount(), initializer, initargs = [], maxTasksPerChild, module } = opts;
    if (!Number.isInteger(processes) || processes < 1) {
      throw new RangeError(`Invalid number of processes: ${processes}; it must be an integer of at least 1`);
    }
    if (initializer !== undefined && typeof initializer !== "function") {
      throw new TypeError(`Invalid initializer: expected a function, got ${typeof initializer}`);
    }
    if (!Array.isArray(initargs)) throw new TypeError("Invalid initargs: expected an array");
    if (maxTasksPerChild !== undefined && (!Number.isInteger(maxTasksPerChild) || maxTasksPerChild < 1)) {
      throw new RangeError(
        `Invalid maxTasksPerChild: ${maxTasksPerChild}; it must be an integer of at least 1`,
      );
    }
    const where = module !== undefined ? moduleSpecifier(module) : callerModule();
    if (!where) {
      throw new TypeError("Cannot tell which module exports the tasks: pass { module: import.meta.url }");
    }
    const args = {
      initializer: initializer ? describeFunction(initializer) : null,
      initargs,
      maxTasks: maxTasksPerChild ?? null,
    };
    this.#scheduler = new Scheduler({
      size: processes,
      module: where,
      args,
      kind: (new.target as typeof Pool)[WORKER_KIND],
    });
    this.#scheduler.start();
  }

  /** `Pool(processes=2, running)`; `closed` or `terminated` after `close()`/`terminate()`. */
  [inspect](): string {
    return described("Pool", false, () => [`processes=${this.#scheduler.size}`, this.#scheduler.state]);
  }

  /**
   * Calls `fn(...args)` in a worker and resolves to its result. `args` is typed by `fn`'s
   * parameters, and may be left out only when `fn` takes none.
   *
   * @param fn A function exported from the pool's module.
   * @param args Its arguments.
   * @param options A timeout (ms) or an abort signal for this task.
   * @returns What `fn` returned (awaited), once it has run.
   * @throws {WorkerDiedError} When the worker died while running it.
   * @throws {Deno.errors.TimedOut} When it ran past `options.timeout`.
   */
  apply<A extends unknown[], R>(
    fn: (...a: A) => R,
    args: NoInfer<A>,
    options?: Omit<ApplyOptions<Awaited<R>>, "callback" | "errorCallback">,
  ): Promise<Awaited<R>>;
  /**
   * Calls `fn()` in a worker and resolves to its result.
   *
   * @param fn A function exported from the pool's module, that needs no argument.
   * @param args None.
   * @param options A timeout (ms) or an abort signal for this task.
   * @returns What `fn` returned (awaited), once it has run.
   */
  apply<R>(
    fn: () => R,
    args?: [],
    options?: Omit<ApplyOptions<Awaited<R>>, "callback" | "errorCallback">,
  ): Promise<Awaited<R>>;
  async apply<R>(
    fn: (...a: any[]) => R,
    args: unknown[] = [],
    options: Omit<ApplyOptions<Awaited<R>>, "callback" | "errorCallback"> = {},
  ): Promise<Awaited<R>> {
    this.#checkRunning("apply");
    return await this.applyAsync(fn, args, options).get();
  }

  /**
   * Calls `fn(...args)` in a worker; the result arrives in the returned {@linkcode AsyncResult}.
   * `args` is typed by `fn`'s parameters, and may be left out only when `fn` takes none.
   *
   * @param fn A function exported from the pool's module.
   * @param args Its arguments.
   * @param options Callbacks, and a timeout (ms) or an abort signal for this task.
   * @returns The task's result, to `get()` or `wait()` for.
   */
  applyAsync<A extends unknown[], R>(
    fn: (...a: A) => R,
    args: NoInfer<A>,
    options?: ApplyOptions<Awaited<R>>,
  ): AsyncResult<Awaited<R>>;
  /**
   * Calls `fn()` in a worker; the result arrives in the returned {@linkcode AsyncResult}.
   *
   * @param fn A function exported from the pool's module, that needs no argument.
   * @param args None.
   * @param options Callbacks, and a timeout (ms) or an abort signal for this task.
   * @returns The task's result, to `get()` or `wait()` for.
   */
  applyAsync<R>(fn: () => R, args?: [], options?: ApplyOptions<Awaited<R>>): AsyncResult<Awaited<R>>;
  applyAsync<R>(
    fn: (...a: any[]) => R,
    args: unknown[] = [],
    options: ApplyOptions<Awaited<R>> = {},
  ): AsyncResult<Awaited<R>> {
    this.#checkRunning("applyAsync");
    if (!Array.isArray(args)) throw new TypeError("Invalid args: expected an array");
    const { timeout, signal, callback, errorCallback } = options;
    const ms = timeoutMs(timeout, "applyAsync()");
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError("Invalid signal option for applyAsync(): expected an AbortSignal");
    }
    checkCallbacks(callback, errorCallback);
    const result = pendingResult<Awaited<R>>(callback, errorCallback);
    const chunk = this.#scheduler.chunk(
      fn,
      [args],
      true,
      (ok, value) => settleResult(result, ok, ok ? (value as unknown[])[0] : value),
    );
    if (ms !== Infinity || signal !== undefined) chunk.deadline = { timeout: ms, signal };
    this.#scheduler.submit(chunk);
    return result;
  }

  /** Applies `fn` to every item, in chunks spread over the workers; results in input order. */
  async map<T, R>(
    fn: (x: T) => R,
    items: Iterable<T> | AsyncIterable<T>,
    options: MapOptions = {},
  ): Promise<Awaited<R>[]> {
    this.#checkRunning("map");
    return await this.mapAsync(fn, items, options).get();
  }

  /** As {@linkcode Pool.map}, without waiting: the results arrive in an {@linkcode AsyncResult}. */
  mapAsync<T, R>(
    fn: (x: T) => R,
    items: Iterable<T> | AsyncIterable<T>,
    options: MapAsyncOptions<Awaited<R>> = {},
  ): AsyncResult<Awaited<R>[]> {
    this.#checkRunning("mapAsync");
    checkChunksize(options.chunksize);
    return this.#mapAll(fn, items, false, options);
  }

  /** As {@linkcode Pool.map}, with each item spread as the arguments: `fn(...item)`. */
  async starmap<A extends unknown[], R>(
    fn: (...a: A) => R,
    items: Iterable<NoInfer<A>> | AsyncIterable<NoInfer<A>>,
    options: MapOptions = {},
  ): Promise<Awaited<R>[]> {
    this.#checkRunning("starmap");
    return await this.starmapAsync(fn, items, options).get();
  }

  /** As {@linkcode Pool.starmap}, without waiting. */
  starmapAsync<A extends unknown[], R>(
    fn: (...a: A) => R,
    items: Iterable<NoInfer<A>> | AsyncIterable<NoInfer<A>>,
    options: MapAsyncOptions<Awaited<R>> = {},
  ): AsyncResult<Awaited<R>[]> {
    this.#checkRunning("starmapAsync");
    checkChunksize(options.chunksize);
    return this.#mapAll(fn, items, true, options);
  }

  /**
   * Lazily applies `fn` to the items, yielding results in input order while input is still being
   * read; a bounded window of chunks (2 × processes + 1) is in flight, and at most four windows
   * are read ahead of the result yielded next, however long that one runs. A failed task throws
   * its error from `next()`; the next call goes on with the other tasks.
   */
  imap<T, R>(
    fn: (x: T) => R,
    items: Iterable<T> | AsyncIterable<T>,
    options: MapOptions = {},
  ): AsyncIterableIterator<Awaited<R>> {
    this.#checkRunning("imap");
    checkChunksize(options.chunksize);
    return this.#stream(fn, items, options.chunksize ?? 1, true) as AsyncIterableIterator<Awaited<R>>;
  }

  /** As {@linkcode Pool.imap}, yielding each result (or error) as soon as it is ready. */
  imapUnordered<T, R>(
    fn: (x: T) => R,
    items: Iterable<T> | AsyncIterable<T>,
    options: MapOptions = {},
  ): AsyncIterableIterator<Awaited<R>> {
    this.#checkRunning("imapUnordered");
    checkChunksize(options.chunksize);
    return this.#stream(fn, items, options.chunksize ?? 1, false) as AsyncIterableIterator<Awaited<R>>;
  }

  /** Accepts no more tasks; the workers exit once the submitted ones are done. */
  close(): void {
    if (this.#scheduler.state === "running") this.#scheduler.state = "closed";
    this.#scheduler.closeIfIdle();
  }

  /** Stops the workers now; every pending result rejects. */
  async terminate(): Promise<void> {
    this.#scheduler.terminate();
    await this.join();
  }

  /** Waits for the workers to exit; call `close()` or `terminate()` first. */
  async join(): Promise<void> {
    if (this.#scheduler.state === "running") {
      throw new Error("Cannot join the pool: close() or terminate() it first");
    }
    // Process.join() keeps this program alive while it waits; a worker that dies while the pool
    // still has work is replaced, so wait again for the replacements.
    await this.#scheduler.join();
  }

  /** `close()`, then `join()`: for `await using pool = new Pool()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.join();
  }

  // ---------------------------------------------------------------------------------------------

  #checkRunning(what: string): void {
    const state = this.#scheduler.state;
    if (state !== "running") throw new Error(`Cannot call ${what}(): the pool is ${state}`);
  }

  /** map/starmap: reads the whole input, then submits its chunks; one result for all. */
  #mapAll<R>(
    fn: AnyFn,
    items: Iterable<unknown> | AsyncIterable<unknown>,
    star: boolean,
    options: MapAsyncOptions<R>,
  ): AsyncResult<R[]> {
    const { chunksize, callback, errorCallback } = options;
    checkCallbacks(callback, errorCallback);
    if (typeof fn !== "function") throw new TypeError(`Invalid task: expected a function, got ${typeof fn}`);
    const result = pendingResult<R[]>(callback, errorCallback);
    const scheduler = this.#scheduler;
    const submitAll = (all: unknown[]) => {
      const size = chunksize ?? Math.max(1, Math.ceil(all.length / (4 * scheduler.size)));
      const out = new Array(all.length);
      let left = Math.ceil(all.length / size);
      if (left === 0) return settleResult(result, true, out);
      let failed = false;
      for (let i = 0; i < all.length; i += size) {
        const at = i;
        const chunk = scheduler.chunk(fn, all.slice(i, i + size), star, (ok, value) => {
          if (failed) return;
          if (!ok) {
            failed = true;
            return settleResult(result, false, value);
          }
          const rs = value as unknown[];
          for (let j = 0; j < rs.length; j++) out[at + j] = rs[j];
          if (--left === 0) settleResult(result, true, out);
        });
        scheduler.submit(chunk);
      }
    };
    const fail = (error: unknown) => settleResult(result, false, error);
    // An await per item costs ~0.1 µs x 200k: iterate synchronously when the input allows.
    if (isSyncIterable(items)) {
      let all: unknown[];
      try {
        all = Array.isArray(items) ? items : Array.from(items);
      } catch (error) {
        fail(error);
        return result;
      }
      try {
        submitAll(all);
      } catch (error) {
        fail(error); // an item that cannot travel
      }
      return result;
    }
    scheduler.feeding(1);
    (async () => {
      const all: unknown[] = [];
      try {
        for await (const x of items) all.push(x);
        submitAll(all); // before the pool may think it is idle
      } finally {
        scheduler.feeding(-1);
      }
    })().catch(fail);
    return result;
  }

  #stream(
    fn: AnyFn,
    items: Iterable<unknown> | AsyncIterable<unknown>,
    chunksize: number,
    ordered: boolean,
  ): AsyncIterableIterator<unknown> {
    return poolStream(this.#scheduler, fn, items, chunksize, ordered, 2 * this.#scheduler.size + 1);
  }
}

function checkCallbacks(callback: unknown, errorCallback: unknown): void {
  if (callback !== undefined && typeof callback !== "function") {
    throw new TypeError("Invalid callback: expected a function");
  }
  if (errorCallback !== undefined && typeof errorCallback !== "function") {
    throw new TypeError("Invalid errorCallback: expected a function");
  }
}

function checkChunksize(chunksize: number | undefined): void {
  if (chunksize !== undefined && (!Number.isInteger(chunksize) || chunksize < 1)) {
    throw new RangeError(`Invalid chunksize: ${chunksize}; it must be an integer of at least 1`);
  }
}
