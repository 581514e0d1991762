/**
 * The one rule for timeouts, and the small pieces every wait is built from.
 *
 * The contract: every timeout is in milliseconds; `undefined` (and `Infinity`) waits forever;
 * `0` or a negative number does not wait. A timeout that is not a number (a string, `NaN`, an
 * object) is a `TypeError` at the call, never "wait forever" and never "do not wait". Options of a
 * wait must be an object: `queue.get(5)` is a `TypeError`, not `{}`.
 *
 * `setTimeout` fires at once for delays of 2^31 ms or more; {@linkcode sleep} and
 * {@linkcode raceTimeout} never hand such a delay to a timer, so `Infinity` and very long
 * timeouts mean what they say.
 *
 * One clock: `performance.now()` (monotonic), through {@linkcode Deadline}.
 *
 * @module
 */

/** The longest delay `setTimeout` honours (2^31 - 1 ms); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Checks a timeout argument and returns it in ms: `Infinity` for "forever" (undefined or
 * `Infinity`), a number ≤ 0 for "do not wait". Throws a `TypeError` naming `what` for anything
 * that is not a number, and for `NaN`.
 */
export function timeoutMs(timeout: unknown, what: string): number {
  if (timeout === undefined) return Infinity;
  if (typeof timeout !== "number" || Number.isNaN(timeout)) {
    throw new TypeError(
      `Invalid timeout for ${what}: expected a number of milliseconds or undefined, got ${describe(timeout)}`,
    );
  }
  return timeout;
}

/** The validated form of `{ block, timeout, signal }`. */
export interface CheckedWait {
  /** False: try once, never wait. */
  block: boolean;
  /** Milliseconds: `Infinity` waits forever, ≤ 0 does not wait. */
  timeout: number;
  signal: AbortSignal | undefined;
}

const FOREVER: CheckedWait = Object.freeze({ block: true, timeout: Infinity, signal: undefined });

/**
 * Checks the options of a wait (`{ block?, timeout?, signal? }`); `what` names the call in errors.
 * A non-object (`queue.get(5)`), a timeout that is not a number, a `block` that is not a boolean
 * or a `signal` that is not an `AbortSignal` is a `TypeError`.
 */
export function checkWait(options: unknown, what: string): CheckedWait {
  if (options === undefined) return FOREVER;
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Invalid options for ${what}: expected an object like { timeout: 1000 }, got ${describe(options)}`,
    );
  }
  const { block, timeout, signal } = options as { block?: unknown; timeout?: unknown; signal?: unknown };
  if (block !== undefined && typeof block !== "boolean") {
    throw new TypeError(`Invalid block option for ${what}: expected true or false, got ${describe(block)}`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `Invalid signal option for ${what}: expected an AbortSignal, got ${describe(signal)}`,
    );
  }
  return { block: block ?? true, timeout: timeoutMs(timeout, what), signal };
}

/** A point in time on the one clock (`performance.now()`); `Infinity` never comes. */
export class Deadline {
  readonly at: number;
  constructor(timeout: number) {
    this.at = timeout === Infinity ? Infinity : performance.now() + timeout;
  }
  /** Milliseconds left (≤ 0 once passed; `Infinity` for a deadline that never comes). */
  left(): number {
    return this.at === Infinity ? Infinity : this.at - performance.now();
  }
}

/**
 * Resolves after `ms` (never, for `Infinity`), or rejects with `signal.reason` when it aborts.
 * Delays past {@linkcode MAX_TIMER_MS} are slept in pieces. The timer does not keep the program
 * alive when `unref` is true.
 */
export function sleep(ms: number, options?: { signal?: AbortSignal; unref?: boolean }): Promise<void> {
  const signal = options?.signal;
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Deadline(ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const arm = () => {
      const left = deadline.left();
      if (left <= 0) {
        signal?.removeEventListener("abort", onAbort);
        return resolve();
      }
      if (left === Infinity) return; // only the signal can end it
      const t = setTimeout(arm, Math.min(Math.ceil(left), MAX_TIMER_MS));
      if (options?.unref) Deno.unrefTimer(t);
      timer = t;
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    arm();
  });
}

/** What {@linkcode raceTimeout} resolves to when the time ran out first. */
export const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * Resolves to `promise`'s value, or to {@linkcode TIMED_OUT} when `ms` pass first (at once for
 * ms ≤ 0 unless `promise` has already settled in this tick; never for `Infinity`). Rejects when
 * `promise` rejects first. The timer is always cleared.
 */
export async function raceTimeout<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  if (ms === Infinity) return await promise;
  const stop = new AbortController();
  try {
    const timedOut = sleep(Math.max(0, ms), { signal: stop.signal })
      .then((): typeof TIMED_OUT => TIMED_OUT, (): typeof TIMED_OUT => TIMED_OUT);
    return await Promise.race([promise, timedOut]);
  } finally {
    stop.abort();
  }
}

/** A promise that resolves when any of `signals` aborts; `dispose()` removes the listeners. */
export function whenAborted(signals: AbortSignal[]): { promise: Promise<void>; dispose(): void } {
  let onAbort!: () => void;
  const promise = new Promise<void>((resolve) => onAbort = resolve);
  for (const s of signals) {
    if (s.aborted) onAbort();
    else s.addEventListener("abort", onAbort, { once: true });
  }
  return { promise, dispose: () => signals.forEach((s) => s.removeEventListener("abort", onAbort)) };
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "object" && value !== null) return Array.isArray(value) ? "an array" : "an object";
  return String(value);
}
