/**
 * The eventual result of an asynchronous pool call (CPython: `pool.ApplyResult`).
 *
 * The pool settles it directly when the worker's reply arrives: no promise exists until someone
 * calls `get()` or `wait()`, so 20 000 `applyAsync` calls cost 20 000 small objects, not chains of
 * promises. Callbacks run when the result arrives; one that throws surfaces as an unhandled
 * rejection (it is a bug of the caller's), and the pool goes on.
 *
 * @module
 */
import { raceTimeout, TIMED_OUT, timeoutMs } from "./_wait.ts";

const PENDING = 0;
const OK = 1;
const FAILED = 2;

/** @internal Settles a result made by the pool; the callbacks run at once. */
export let settleResult: <R>(r: AsyncResult<R>, ok: boolean, value: unknown) => void;
/** @internal A pending result with callbacks, settled later through {@linkcode settleResult}. */
export let pendingResult: <R>(
  callback: ((r: R) => void) | undefined,
  errorCallback: ((e: unknown) => void) | undefined,
) => AsyncResult<R>;

/**
 * The eventual result of an asynchronous pool call, as Python's `AsyncResult`.
 *
 * @example Wait for a result with a deadline
 * ```ts
 * import { Pool } from "@mp/multiprocessing";
 *
 * export function square(x: number): number {
 *   return x * x;
 * }
 *
 * if (import.meta.main) {
 *   await using pool = new Pool(1);
 *   const r = pool.applyAsync(square, [4]);
 *   console.log(await r.get(10_000)); // 16
 * }
 * ```
 */
export class AsyncResult<R> {
  #state = PENDING;
  #value: unknown;
  #promise: Promise<R> | undefined;
  #resolve: ((v: R) => void) | undefined;
  #reject: ((e: unknown) => void) | undefined;
  #callback: ((r: R) => void) | undefined;
  #errorCallback: ((e: unknown) => void) | undefined;

  /** Wraps a promise; the pool makes its results without one. */
  constructor(promise?: Promise<R>) {
    promise?.then((v) => this.#settle(true, v), (e) => this.#settle(false, e));
  }

  /**
   * The result; rejects with the task's error, or with `Deno.errors.TimedOut` when it is not
   * ready within `timeout` ms (default: wait as long as it takes; `0`: do not wait). A timeout
   * that is not a number is a `TypeError`.
   */
  async get(timeout?: number): Promise<R> {
    const ms = timeoutMs(timeout, "AsyncResult.get()");
    if (this.#state === PENDING) {
      if (ms <= 0 || (await raceTimeout(this.#settled(), ms)) === TIMED_OUT) {
        throw new Deno.errors.TimedOut(`Result not ready within ${ms} ms`);
      }
    }
    if (this.#state === FAILED) throw this.#value;
    return this.#value as R;
  }

  /** Waits until the result is ready, or until `timeout` ms passed (default: as long as it takes). */
  async wait(timeout?: number): Promise<void> {
    const ms = timeoutMs(timeout, "AsyncResult.wait()");
    if (this.#state === PENDING && ms > 0) await raceTimeout(this.#settled(), ms);
  }

  /** True once the call has completed. */
  ready(): boolean {
    return this.#state !== PENDING;
  }

  /** Whether the call completed without error; an `Error` while it is not ready. */
  successful(): boolean {
    if (this.#state === PENDING) {
      throw new Error("Cannot tell whether the call succeeded: it is not ready yet");
    }
    return this.#state === OK;
  }

  /** Resolves (never rejects) once settled. */
  #settled(): Promise<unknown> {
    this.#promise ??= new Promise<R>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    return this.#promise.catch(() => {});
  }

  #settle(ok: boolean, value: unknown): void {
    if (this.#state !== PENDING) return;
    this.#state = ok ? OK : FAILED;
    this.#value = value;
    if (ok) this.#resolve?.(value as R);
    else this.#reject?.(value);
    const callback = ok ? this.#callback : this.#errorCallback;
    this.#callback = this.#errorCallback = undefined;
    if (callback) {
      try {
        (callback as (v: unknown) => void)(value);
      } catch (error) {
        // The caller's bug: reported as an unhandled rejection, as a throwing .then() would be.
        Promise.reject(error);
      }
    }
  }

  static {
    settleResult = (r, ok, value) => r.#settle(ok, value);
    pendingResult = <T>(callback?: (r: T) => void, errorCallback?: (e: unknown) => void) => {
      const r = new AsyncResult<T>();
      r.#callback = callback;
      r.#errorCallback = errorCallback;
      return r;
    };
  }
}
