// The `any[]` defaults: a typed initializer such as `(n: number) => void` must be accepted where
// `unknown[]` would reject it under strictFunctionTypes.
// deno-lint-ignore-file no-explicit-any
/**
 * The options of `Pool` and of its methods (re-exported by `pool.ts`).
 *
 * @module
 */

/**
 * Options of `Pool`. `initargs` is typed by the initializer's parameters.
 *
 * @typeParam I The initializer's parameter types.
 *
 * @example Workers that set themselves up once
 * ```ts
 * import { Pool, type PoolOptions } from "@mp/multiprocessing";
 *
 * let prefix = "";
 * export function setup(p: string) {
 *   prefix = p; // runs once in each worker
 * }
 * export function label(n: number): string {
 *   return `${prefix}${n}`;
 * }
 *
 * if (import.meta.main) {
 *   const options: PoolOptions<[string]> = { processes: 2, initializer: setup, initargs: ["item-"] };
 *   await using pool = new Pool(options);
 *   console.log(await pool.map(label, [1, 2])); // ["item-1", "item-2"]
 * }
 * ```
 */
export type PoolOptions<I extends unknown[] = any[]> =
  & {
    /** Number of worker processes; default `cpuCount()`. */
    processes?: number;
    /** Called in each worker when it starts, with `initargs`; must be exported like a task. */
    initializer?: (...args: I) => unknown;
    /** A worker is replaced after this many tasks (chunks); default: never. */
    maxTasksPerChild?: number;
    /** The module that exports the task functions; default: the module that called `new Pool`. */
    module?: string | URL;
  }
  // `initargs` is typed by the initializer's parameters, and required when it has required ones.
  & ([] extends NoInfer<I> ? {
      /** Arguments of `initializer`. */
      initargs?: NoInfer<I>;
    }
    : {
      /** Arguments of `initializer`. */
      initargs: NoInfer<I>;
    });

/**
 * Options of `Pool.applyAsync` (and, without the callbacks, of `Pool.apply`).
 *
 * @example A task with a deadline and a callback
 * ```ts
 * import { Pool } from "@mp/multiprocessing";
 *
 * export function square(x: number): number {
 *   return x * x;
 * }
 *
 * if (import.meta.main) {
 *   await using pool = new Pool(1);
 *   const r = pool.applyAsync(square, [4], { timeout: 5_000, callback: (n) => console.log(n) });
 *   await r.wait();
 * }
 * ```
 */
export interface ApplyOptions<R> {
  /** Called in this process with the result. */
  callback?: (result: R) => void;
  /** Called in this process with the error. */
  errorCallback?: (error: unknown) => void;
  /**
   * Fails the task with `Deno.errors.TimedOut` when it has run this many ms, killing (and
   * replacing) its worker. The clock starts when the task starts running in a worker, not while
   * it waits in the queue. `Infinity` (or no timeout): no limit.
   */
  timeout?: number;
  /** Aborting fails the task with the signal's reason, killing (and replacing) its worker. */
  signal?: AbortSignal;
}

/**
 * Options of the map family.
 *
 * @example Bigger chunks for many small items
 * ```ts
 * import { Pool } from "@mp/multiprocessing";
 *
 * export function double(x: number): number {
 *   return 2 * x;
 * }
 *
 * if (import.meta.main) {
 *   await using pool = new Pool(2);
 *   const items = Array.from({ length: 10_000 }, (_, i) => i);
 *   console.log((await pool.map(double, items, { chunksize: 500 })).length); // 10000
 * }
 * ```
 */
export interface MapOptions {
  /** Items per task sent to a worker; default for map: `ceil(n / (4 × workers))`, for imap: 1. */
  chunksize?: number;
}

/**
 * Options of `Pool.mapAsync` and `Pool.starmapAsync`.
 *
 * @example Results handed to a callback
 * ```ts
 * import { Pool } from "@mp/multiprocessing";
 *
 * export function double(x: number): number {
 *   return 2 * x;
 * }
 *
 * if (import.meta.main) {
 *   await using pool = new Pool(2);
 *   const r = pool.mapAsync(double, [1, 2, 3], { callback: (all) => console.log(all) }); // [2, 4, 6]
 *   await r.wait();
 * }
 * ```
 */
export interface MapAsyncOptions<R> extends MapOptions {
  /** Called in this process with all results. */
  callback?: (results: R[]) => void;
  /** Called in this process with the error. */
  errorCallback?: (error: unknown) => void;
}
