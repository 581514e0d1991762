// Task functions take any arguments: `(n: number) => R` must be accepted where `unknown[]`
// would reject it under strictFunctionTypes.
// deno-lint-ignore-file no-explicit-any
/**
 * A pool of worker processes (CPython: `pool.py`), built to survive its workers.
 *
 * CPython's workers share one task queue, so when a worker dies nobody knows which task it held
 * and the pool waits forever. Here the parent hands each chunk of work to one chosen worker over
 * that worker's own control socket (at most {@linkcode PIPELINE} chunks in flight per worker, so
 * the next chunk is already there when one finishes). A worker answers its chunks in order, so
 * when it dies, the oldest chunk in flight is the one it was running: that task fails with
 * `WorkerDiedError`; the chunks queued behind it never started and go back to the queue; a new
 * worker takes the dead one's place.
 *
 * A task with its own `timeout`/`signal` is given only to an idle worker and nothing is queued
 * behind it, so that killing the worker when it runs late harms no other task.
 *
 * @module
 */
import { callerModule, describeFunction, moduleSpecifier } from "./_caller.ts";
import { type PackedError, type WorkerArgs } from "./_pool_worker.ts";
import { deserialize, serialize } from "./_reduction.ts";
import { ProcessError, WorkerDiedError } from "./errors.ts";
import { type ControlChannel, controlChannel, cpuCount, Process, runBuiltin, whenExited } from "./process.ts";

/** Chunks in flight per worker. */
const PIPELINE = 2;
/** Workers dying in a row while starting before the pool gives up. */
const MAX_START_DEATHS = 3;

type AnyFn = (...args: any[]) => unknown;

/** Options of {@linkcode Pool}. */
export interface PoolOptions {
  /** Number of worker processes; default `cpuCount()`. */
  processes?: number;
  /** Called in each worker when it starts, with `initargs`; must be exported like a task. */
  initializer?: (...args: any[]) => unknown;
  /** Arguments of `initializer`. */
  initargs?: unknown[];
  /** A worker is replaced after this many tasks (chunks); default: never. */
  maxTasksPerChild?: number;
  /** The module that exports the task functions; default: the module that called `new Pool`. */
  module?: string | URL;
}

/** Options of {@linkcode Pool.applyAsync}. */
export interface ApplyOptions<R> {
  /** Called in this process with the result. */
  callback?: (result: R) => void;
  /** Called in this process with the error. */
  errorCallback?: (error: unknown) => void;
  /** Fails the task with `Deno.errors.TimedOut` after this many ms, killing (and replacing) its worker. */
  timeout?: number;
  /** Aborting fails the task with the signal's reason, killing (and replacing) its worker. */
  signal?: AbortSignal;
}

/** Options of the map family. */
export interface MapOptions {
  /** Items per task sent to a worker; default for map: `ceil(n / (4 × workers))`, for imap: 1. */
  chunksize?: number;
}

/** Options of {@linkcode Pool.mapAsync} and {@linkcode Pool.starmapAsync}. */
export interface MapAsyncOptions<R> extends MapOptions {
  /** Called in this process with all results. */
  callback?: (results: R[]) => void;
  /** Called in this process with the error. */
  errorCallback?: (error: unknown) => void;
}

interface Chunk {
  id: number;
  fn: { name: string; source: string };
  star: boolean;
  /** The serialized inputs: serialized once, when the task is made, so bad input fails there. */
  items: Uint8Array;
  resolve(results: unknown[]): void;
  reject(error: unknown): void;
  /** Set when the task has its own deadline: it runs alone on a worker. */
  exclusive?: boolean;
  /** Why the worker running it was killed on purpose. */
  killedFor?: unknown;
}

interface Worker {
  process: Process;
  channel?: ControlChannel;
  ready: boolean;
  inflight: Chunk[];
  /** Chunks it may still be given before it retires (maxTasksPerChild). */
  left: number;
  /** Sent SIGTERM by a closed, idle pool: given no more work; its chunks are not its fault. */
  retiring?: boolean;
}

/**
 * The eventual result of an asynchronous pool call, as Python's `AsyncResult`.
 *
 * @example Wait for a result with a deadline
 * ```ts ignore
 * const r = pool.applyAsync(square, [4]);
 * console.log(await r.get(1000)); // 16
 * ```
 */
export class AsyncResult<R> {
  #promise: Promise<R>;
  #state: "pending" | "ok" | "error" = "pending";

  /** Wraps a promise; used by the pool. */
  constructor(promise: Promise<R>) {
    this.#promise = promise;
    promise.then(() => this.#state = "ok", () => this.#state = "error");
  }

  /** The result; rejects with the task's error, or `Deno.errors.TimedOut` after `timeout` ms. */
  async get(timeout?: number): Promise<R> {
    if (timeout !== undefined && !(await this.#within(timeout))) {
      throw new Deno.errors.TimedOut(`Result not ready within ${timeout} ms`);
    }
    return await this.#promise;
  }

  /** Waits until the result is ready, or until `timeout` ms passed. */
  async wait(timeout?: number): Promise<void> {
    if (timeout === undefined) await this.#promise.catch(() => {});
    else await this.#within(timeout);
  }

  /** True once the call has completed. */
  ready(): boolean {
    return this.#state !== "pending";
  }

  /** Whether the call completed without error; an `Error` while it is not ready. */
  successful(): boolean {
    if (this.#state === "pending") {
      throw new Error("Cannot tell whether the call succeeded: it is not ready yet");
    }
    return this.#state === "ok";
  }

  async #within(timeout: number): Promise<boolean> {
    if (this.#state !== "pending") return true;
    if (!(timeout > 0)) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settled = await Promise.race([
      this.#promise.then(() => true, () => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), timeout)),
    ]);
    clearTimeout(timer);
    return settled;
  }
}

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
export class Pool {
  #size: number;
  #module: string;
  #workerArgs: WorkerArgs;
  #workers = new Set<Worker>();
  #queue: Chunk[] = [];
  #nextId = 1;
  #state: "running" | "closed" | "terminated" = "running";
  /** map and imap calls reading their input right now (they may go on after close()). */
  #feeding = 0;
  #alive: ReturnType<typeof setInterval> | undefined;
  /** Workers that died while starting, since one last started. */
  #startDeaths = 0;
  /** Why workers cannot start (initializer or module failure): later tasks fail with it. */
  #broken: Error | undefined;

  /** Starts the worker processes at once. */
  constructor(options: number | PoolOptions = {}) {
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
    this.#size = processes;
    this.#module = where;
    this.#workerArgs = {
      initializer: initializer ? describeFunction(initializer) : null,
      initargs,
      maxTasks: maxTasksPerChild ?? null,
    };
    this.#topUp();
  }

  /** Calls `fn(...args)` in a worker and resolves to its result. */
  async apply<R>(
    fn: (...a: any[]) => R,
    args: unknown[] = [],
    options: Omit<ApplyOptions<Awaited<R>>, "callback" | "errorCallback"> = {},
  ): Promise<Awaited<R>> {
    this.#checkRunning("apply");
    return await this.applyAsync(fn, args, options).get();
  }

  /** Calls `fn(...args)` in a worker; the result arrives in the returned {@linkcode AsyncResult}. */
  applyAsync<R>(
    fn: (...a: any[]) => R,
    args: unknown[] = [],
    options: ApplyOptions<Awaited<R>> = {},
  ): AsyncResult<Awaited<R>> {
    this.#checkRunning("applyAsync");
    if (!Array.isArray(args)) throw new TypeError("Invalid args: expected an array");
    const { timeout, signal } = options;
    const exclusive = timeout !== undefined || signal !== undefined;
    const { chunk, promise } = this.#task(fn, [args], true, exclusive);
    if (exclusive) this.#watch(chunk, promise, timeout, signal);
    this.#enqueue(chunk);
    return this.#result(promise.then((r) => r[0] as Awaited<R>), options.callback, options.errorCallback);
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
    const promise = this.#mapAll(fn, items, false, options.chunksize) as Promise<Awaited<R>[]>;
    return this.#result(promise, options.callback, options.errorCallback);
  }

  /** As {@linkcode Pool.map}, with each item spread as the arguments: `fn(...item)`. */
  async starmap<R>(
    fn: (...a: any[]) => R,
    items: Iterable<unknown[]> | AsyncIterable<unknown[]>,
    options: MapOptions = {},
  ): Promise<Awaited<R>[]> {
    this.#checkRunning("starmap");
    return await this.starmapAsync(fn, items, options).get();
  }

  /** As {@linkcode Pool.starmap}, without waiting. */
  starmapAsync<R>(
    fn: (...a: any[]) => R,
    items: Iterable<unknown[]> | AsyncIterable<unknown[]>,
    options: MapAsyncOptions<Awaited<R>> = {},
  ): AsyncResult<Awaited<R>[]> {
    this.#checkRunning("starmapAsync");
    checkChunksize(options.chunksize);
    const promise = this.#mapAll(fn, items, true, options.chunksize) as Promise<Awaited<R>[]>;
    return this.#result(promise, options.callback, options.errorCallback);
  }

  /**
   * Lazily applies `fn` to the items, yielding results in input order while input is still being
   * read; only a bounded window of chunks is in flight.
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

  /** As {@linkcode Pool.imap}, yielding each result as soon as it is ready. */
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
    if (this.#state === "running") this.#state = "closed";
    this.#maybeRetire();
  }

  /** Stops the workers now; every pending result rejects. */
  async terminate(): Promise<void> {
    if (this.#state !== "terminated") {
      this.#state = "terminated";
      const error = terminatedError();
      for (const c of this.#queue.splice(0)) c.reject(error);
      for (const w of this.#workers) {
        for (const c of w.inflight.splice(0)) c.reject(error);
        if (w.process.isAlive()) w.process.kill();
      }
      this.#keepAlive();
    }
    await this.join();
  }

  /** Waits for the workers to exit; call `close()` or `terminate()` first. */
  async join(): Promise<void> {
    if (this.#state === "running") throw new Error("Cannot join the pool: close() or terminate() it first");
    // Process.join() keeps this program alive while it waits; a worker that dies while the pool
    // still has work is replaced, so wait again for the replacements.
    while (this.#workers.size > 0) await Promise.all([...this.#workers].map((w) => w.process.join()));
  }

  /** `close()`, then `join()`: for `await using pool = new Pool()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.join();
  }

  // ---------------------------------------------------------------------------------------------

  #checkRunning(what: string): void {
    if (this.#state !== "running") throw new Error(`Cannot call ${what}(): the pool is ${this.#state}`);
  }

  #result<R>(
    promise: Promise<R>,
    callback?: (r: R) => void,
    errorCallback?: (e: unknown) => void,
  ): AsyncResult<R> {
    if (callback !== undefined && typeof callback !== "function") {
      throw new TypeError("Invalid callback: expected a function");
    }
    if (errorCallback !== undefined && typeof errorCallback !== "function") {
      throw new TypeError("Invalid errorCallback: expected a function");
    }
    // A callback that throws is a bug of the caller's: it surfaces as an unhandled rejection.
    promise.then((r) => callback?.(r), (e) => errorCallback?.(e));
    return new AsyncResult(promise);
  }

  /** Makes a chunk of work; a value that cannot travel throws here, at the call that sent it. */
  #task(
    fn: AnyFn,
    items: unknown[],
    star: boolean,
    exclusive = false,
  ): { chunk: Chunk; promise: Promise<unknown[]> } {
    if (typeof fn !== "function") throw new TypeError(`Invalid task: expected a function, got ${typeof fn}`);
    const bytes = serialize(items);
    let chunk!: Chunk;
    const promise = new Promise<unknown[]>((resolve, reject) => {
      chunk = {
        id: this.#nextId++,
        fn: describeFunction(fn),
        star,
        items: bytes,
        resolve,
        reject,
        exclusive,
      };
    });
    return { chunk, promise };
  }

  #enqueue(chunk: Chunk): void {
    // A map or imap still reading its input may submit after terminate(): it must not wait forever.
    if (this.#state === "terminated") return chunk.reject(terminatedError());
    if (this.#broken) return chunk.reject(this.#broken);
    this.#queue.push(chunk);
    this.#topUp();
    this.#pump();
  }

  /** Starts workers until there are `processes` of them (retired or dead ones are replaced). */
  #topUp(): void {
    if (this.#state === "terminated" || this.#broken) return;
    let live = 0;
    for (const w of this.#workers) if (!w.retiring) live++;
    for (; live < this.#size; live++) this.#spawn();
  }

  #submit(fn: AnyFn, items: unknown[], star: boolean): Promise<unknown[]> {
    const { chunk, promise } = this.#task(fn, items, star);
    this.#enqueue(chunk);
    return promise;
  }

  async #mapAll(
    fn: AnyFn,
    items: Iterable<unknown> | AsyncIterable<unknown>,
    star: boolean,
    chunksize?: number,
  ): Promise<unknown[]> {
    let all: unknown[] = [];
    this.#feeding++;
    this.#keepAlive();
    try {
      // An await per item costs ~0.1 µs x 200k: iterate synchronously when the input allows.
      if (isSyncIterable(items)) all = Array.from(items);
      else for await (const x of items) all.push(x);
    } finally {
      this.#feeding--;
      this.#keepAlive();
    }
    const size = chunksize ?? Math.max(1, Math.ceil(all.length / (4 * this.#size)));
    const chunks: Promise<unknown[]>[] = [];
    for (let i = 0; i < all.length; i += size) chunks.push(this.#submit(fn, all.slice(i, i + size), star));
    return (await Promise.all(chunks)).flat();
  }

  /**
   * The iterator behind imap/imapUnordered. Hand-written rather than an async generator: a
   * generator's `yield` costs ~5x more per item (250 ms vs 50 ms per million results here).
   */
  #stream(
    fn: AnyFn,
    items: Iterable<unknown> | AsyncIterable<unknown>,
    chunksize: number,
    ordered: boolean,
  ): AsyncIterableIterator<unknown> {
    const input = isSyncIterable(items)
      ? items[Symbol.iterator]()
      : (items as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    const window = PIPELINE * this.#size + 1;
    type Entry = { done: Promise<unknown>; result?: { ok: boolean; value: unknown } };
    const inflight: Entry[] = [];
    let inputDone = false;
    let inputError: { error: unknown } | undefined;
    let results: unknown[] = [];
    let at = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      inputDone = true;
      this.#maybeRetire();
    };
    // While the input is being read the pool must neither retire its workers nor let the program
    // end; an iterator nobody pulls from any more holds nothing.
    const readChunk = async (): Promise<unknown[]> => {
      const chunk: unknown[] = [];
      this.#feeding++;
      this.#keepAlive();
      try {
        while (chunk.length < chunksize) {
          const step = input.next();
          const next = step instanceof Promise ? await step : step;
          if (next.done) {
            inputDone = true;
            break;
          }
          chunk.push(next.value);
        }
      } catch (error) {
        inputDone = true;
        inputError = { error };
      } finally {
        this.#feeding--;
        this.#keepAlive();
      }
      return chunk;
    };
    // Tops up the chunks in flight from the input, then waits for the next finished chunk.
    const refill = async (): Promise<void> => {
      while (!inputDone && inflight.length < window) {
        const chunk = await readChunk();
        if (chunk.length === 0) break;
        const entry: Entry = { done: Promise.resolve() };
        entry.done = this.#submit(fn, chunk, false).then(
          (value) => entry.result = { ok: true, value },
          (value) => entry.result = { ok: false, value },
        );
        inflight.push(entry);
      }
      if (inflight.length === 0) {
        finish();
        if (inputError) throw inputError.error;
        return;
      }
      const next = ordered ? inflight[0] : await Promise.race(inflight.map((e) => e.done.then(() => e)));
      await next.done;
      inflight.splice(inflight.indexOf(next), 1);
      if (!next.result!.ok) throw next.result!.value;
      results = next.result!.value as unknown[];
      at = 0;
    };
    const step = async (): Promise<IteratorResult<unknown>> => {
      try {
        while (at >= results.length) {
          if (finished) return { done: true, value: undefined };
          await refill();
        }
      } catch (error) {
        // A failed task, an input that threw, or an input item that cannot travel: the iteration
        // ends with that error (for-await does not call return() when next() rejects).
        finish();
        throw error;
      }
      return { done: false, value: results[at++] };
    };
    // Calls of next() are answered one after the other, as an async generator does.
    let last: Promise<unknown> = Promise.resolve();
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      next(): Promise<IteratorResult<unknown>> {
        const result = last.then(step);
        last = result.catch(() => {});
        return result;
      },
      // Called when a for-await loop ends early (break, throw): stop reading the input.
      async return(): Promise<IteratorResult<unknown>> {
        if (!finished) {
          finish();
          await (input as Iterator<unknown>).return?.();
        }
        return { done: true, value: undefined };
      },
    };
  }

  #watch(chunk: Chunk, promise: Promise<unknown>, timeout?: number, signal?: AbortSignal): void {
    const fail = (reason: unknown) => {
      const owner = [...this.#workers].find((w) => w.inflight.includes(chunk));
      if (owner) {
        chunk.killedFor = reason;
        owner.process.kill();
      } else {
        const i = this.#queue.indexOf(chunk);
        if (i >= 0) {
          this.#queue.splice(i, 1);
          chunk.reject(reason);
        }
      }
    };
    const timer = timeout !== undefined
      ? setTimeout(
        () => fail(new Deno.errors.TimedOut(`Task ${chunk.fn.name} did not finish within ${timeout} ms`)),
        Math.max(0, timeout),
      )
      : undefined;
    const onAbort = () => fail(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
    promise.finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }).catch(() => {});
  }

  #spawn(): void {
    const process = new Process({ daemon: true, module: this.#module, args: [this.#workerArgs] });
    process.name = process.name.replace(/^Process/, "PoolWorker");
    runBuiltin(process, "pool-worker");
    const worker: Worker = {
      process,
      ready: false,
      inflight: [],
      left: this.#workerArgs.maxTasks ?? Infinity,
    };
    this.#workers.add(worker);
    // A worker that could not find its module, initializer or entry point fails the same way
    // every time: the pool is broken and says why, instead of starting workers forever.
    const startFailed = (error: unknown) => {
      this.#broken ??= new Error(`Cannot run tasks: a pool worker could not start: ${errorText(error)}`, {
        cause: error,
      });
      for (const c of this.#queue.splice(0)) c.reject(this.#broken);
    };
    process.start().then(() => {
      worker.channel = controlChannel(process, (frame) => this.#onMessage(worker, frame, startFailed));
    }, (error) => {
      // One that died while starting (killed, out of memory) is replaced like any dead worker,
      // unless starting keeps failing (e.g. a module that does not parse).
      if (!(error instanceof ProcessError) || ++this.#startDeaths >= MAX_START_DEATHS) startFailed(error);
    });
    whenExited(process).then(() => this.#onExit(worker));
  }

  #onMessage(worker: Worker, frame: Uint8Array, startFailed: (e: unknown) => void): void {
    const msg = deserialize(frame) as
      | { ready: true }
      | { ready: false; error: PackedError }
      | { id: number; ok: true; results: Uint8Array }
      | { id: number; ok: false; error: PackedError };
    if ("ready" in msg) {
      if (!msg.ready) return startFailed(unpackError(msg.error));
      worker.ready = true;
      this.#startDeaths = 0;
      this.#pump();
      return;
    }
    const chunk = worker.inflight[0];
    if (chunk?.id !== msg.id) {
      // Cannot happen unless the worker is broken: replace it (its chunks go back to the queue).
      worker.process.kill();
      return;
    }
    worker.inflight.shift();
    if (msg.ok) chunk.resolve(deserialize(msg.results) as unknown[]);
    else chunk.reject(unpackError(msg.error));
    this.#pump();
  }

  #onExit(worker: Worker): void {
    this.#workers.delete(worker);
    const inflight = worker.inflight.splice(0);
    // The oldest chunk is the one it was running (it answers in order); the others never started.
    const running = worker.retiring ? undefined : inflight.shift();
    if (running) {
      const { pid, exitCode } = worker.process;
      running.reject(running.killedFor ?? new WorkerDiedError(pid!, exitCode));
    }
    this.#queue.unshift(...inflight);
    if (this.#queue.length > 0 || this.#state === "running") this.#topUp();
    this.#pump();
  }

  /** Hands queued chunks to ready workers, least loaded first. */
  #pump(): void {
    while (this.#queue.length > 0) {
      const next = this.#queue[0];
      let best: Worker | undefined;
      for (const w of this.#workers) {
        if (!w.ready || w.retiring || w.left <= 0 || !w.process.isAlive()) continue;
        const busy = w.inflight.length;
        if (busy >= PIPELINE || (busy > 0 && (next.exclusive || w.inflight[0].exclusive))) continue;
        if (!best || busy < best.inflight.length) best = w;
      }
      if (!best) break;
      this.#queue.shift();
      best.inflight.push(next);
      best.left--;
      best.channel!.send(serialize({ id: next.id, fn: next.fn, star: next.star, items: next.items }));
    }
    this.#keepAlive();
    this.#maybeRetire();
  }

  /**
   * While someone awaits the pool's work (queued, in flight, or input still being read), the
   * program must not end: the workers are daemons and their sockets are unref'd, so the pool
   * holds one ref'd timer of its own for exactly that long.
   */
  #keepAlive(): void {
    const busy = this.#queue.length > 0 || this.#feeding > 0 ||
      [...this.#workers].some((w) => w.inflight.length > 0);
    if (busy && this.#alive === undefined) this.#alive = setInterval(() => {}, 1 << 30);
    if (!busy && this.#alive !== undefined) {
      clearInterval(this.#alive);
      this.#alive = undefined;
    }
  }

  /** Once closed and idle, lets the workers go (SIGTERM: an idle worker holds nothing). */
  #maybeRetire(): void {
    if (this.#state !== "closed" || this.#queue.length > 0 || this.#feeding > 0) return;
    for (const w of this.#workers) {
      if (w.inflight.length > 0) return;
    }
    // A worker still starting is let go once it says it is ready.
    for (const w of this.#workers) {
      if (w.ready && !w.retiring && w.process.isAlive()) {
        w.retiring = true;
        w.process.terminate();
      }
    }
  }
}

function terminatedError(): Error {
  return new Error("Cannot complete task: the pool was terminated");
}

function isSyncIterable(items: unknown): items is Iterable<unknown> {
  return items !== null && items !== undefined && typeof (items as any)[Symbol.iterator] === "function";
}

function checkChunksize(chunksize: number | undefined): void {
  if (chunksize !== undefined && (!Number.isInteger(chunksize) || chunksize < 1)) {
    throw new RangeError(`Invalid chunksize: ${chunksize}; it must be an integer of at least 1`);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Rebuilds a task's error: same name and message, the remote stack, its own fields. */
function unpackError(p: PackedError): unknown {
  const e = p.error;
  if (!(e instanceof Error)) return e;
  if (p.name !== undefined && e.name !== p.name) {
    Object.defineProperty(e, "name", {
      value: p.name,
      configurable: true,
      writable: true,
      enumerable: false,
    });
  }
  if (p.stack !== undefined) e.stack = p.stack;
  if (p.props) Object.assign(e, p.props);
  return e;
}
