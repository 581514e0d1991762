/**
 * The one rule for timeouts, and the small pieces every wait is built from.
 *
 * The contract: every timeout is in milliseconds; `undefined` (and `Infinity`) waits forever;
 * `0` or a negative number does not wait. A timeout that is not a number (a string, `NaN`, an
 * object) is a `TypeError` at the call, never "wait forever" and never "do not wait". Options of a
 * wait must be an object: `queue.get(5)` is a `TypeError`, not `{}`.
 *
 * `setTimeout` fires at once for delays of 2^31 ms or more: {@linkcode sleep} and
 * {@linkcode raceTimeout} never give it one. One clock: `performance.now()` ({@linkcode Deadline}).
 *
 * ## The one wait loop and its policy
 *
 * Every wait on another process (an fd to become readable or writable: `_fd_wait.ts`; a
 * primitive's shared word: `_sync_wait.ts`) is {@linkcode waitSteps}, a generator that decides
 * what to do next and leaves the doing to the one driver (`drive` in `_wait_drive.ts`):
 *
 * 1. **try** (`tryTake`: an atomic compare-and-swap, or `poll` with a zero timeout);
 * 2. **spin**: re-try for up to {@linkcode SPIN_MS} (0.1 ms) while a core is free, or
 *    {@linkcode SPIN_LOADED_MS} (0.03 ms) while every core is taken ({@linkcode coreIsFree}),
 *    then only while this waiter's recent spins paid ({@linkcode Eagerness}); a `polite` wait
 *    lets the threads that wait for its CPU run between its tries. A spin catches the
 *    answer without a wake-up (waking a sleeping process costs the waker ~30 µs of kernel time
 *    on this VM); but a spin that waits for a peer that has no core takes the CPU that peer
 *    needs, which is what made the old loops lose under load;
 * 3. **park**: block the calling thread in the kernel (`ppoll`, `sem_timedwait`) for up to
 *    {@linkcode PARK_MS} (0.3 ms: the event loop is blocked no longer than by the old spins),
 *    or {@linkcode ANSWER_PARK_MS} for answers that come at once: the manager's by contract, a
 *    peer's once {@linkcode PAID_PARKS} parks in a row ended their waits ({@linkcode Eagerness}).
 *    The answer wakes the thread directly (one wake-up, as CPython's blocking `read`), and it
 *    costs no CPU meanwhile (a slow peer soon costs neither spins nor parks);
 * 4. **sleep** off the thread (a worker thread's `poll`/`sem_timedwait`; the event loop runs) in
 *    slices of at most {@linkcode SLICE_MS} (50 ms), re-checking deadline, abort, close and dead
 *    holders between slices. Its wake-up costs two thread hops (~100 µs on a quiet machine,
 *    milliseconds on a full one).
 *
 * Why, measured beside CPython (`bench:compare`, shared 2-core VM, load 5–7): the old loops spun
 * 50–300 µs (fd) or 50 µs (sync), then slept off the thread, so under load every wait paid the
 * worker-thread hop while the spins starved the peer. Before → after: Pipe round trip 236 → 148
 * µs (CPython 35–55), both cores busy 554 → 292 µs (CPython 89–109); Semaphore hand-off, cores
 * busy, 202 → 16 µs (quiet ~6 µs both); Barrier of 5 processes × 1000 passes 581 → 242 ms.
 *
 * @module
 */
import { yieldCpu } from "../native/mod.ts";
import { coreIsFree } from "./_core_free.ts";

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
  /** The deadline at `at`, a `performance.now()` time. */
  static until(at: number): Deadline {
    return new Deadline(at === Infinity ? Infinity : at - performance.now());
  }
  /** Milliseconds left (≤ 0 once passed; `Infinity` for a deadline that never comes). */
  left(): number {
    return this.at === Infinity ? Infinity : this.at - performance.now();
  }
}

/**
 * Resolves after `ms` (never, for `Infinity`), or rejects with `signal.reason` when it aborts;
 * delays past {@linkcode MAX_TIMER_MS} are slept in pieces; with `unref`, it keeps nothing alive.
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
 * ms ≤ 0 unless `promise` settled in this tick; never for `Infinity`); rejects when it does.
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

// ---------------------------------------------------------------------------------------------
// The one wait loop

/**
 * The longest one sleep lasts before the waiter looks again at what a sleep cannot see: a
 * deadline, an abort, a closed handle, a holder that died. Both kinds of wait (an fd, a
 * primitive's shared word) use it.
 */
export const SLICE_MS = 50;

/** The longest a wait spins (re-tries without sleeping), in ms, while a core is free. */
export const SPIN_MS = 0.1;

/** The longest a wait spins while every core is taken: long enough for a peer that is running. */
export const SPIN_LOADED_MS = 0.03;

/** The longest a wait parks (blocks its own thread in the kernel) before it sleeps off it, in ms. */
export const PARK_MS = 0.3;

/**
 * The park of a wait for an answer that comes at once, in ms: by contract (the manager's, bounded
 * by `TURN_BUDGET_MS` in `_wait_drive.ts`: a reply, the word that the call waits, a busy client's next call)
 * or as learnt ({@linkcode PAID_PARKS}). Not below the kernel's tick (4 ms here): a shorter timed
 * park costs ~15 µs more CPU (busy-core round trip: 85 → 50 µs on each main thread).
 */
export const ANSWER_PARK_MS = 5;

/**
 * Parks in a row that ended their waits, after which a waiter parks up to {@linkcode ANSWER_PARK_MS}
 * (its peer answers as a server does). With both cores busy, 2% of 0.3 ms parks missed, each such
 * wait 2–11 ms through the worker thread. Medians of 6–8, before → after (load 10–30): Connection
 * round trip, cores busy 373 → 175 µs (CPython 90), quiet 186 → 131 µs (CPython 69); Barrier
 * 425 → 251 ms. The price: a park blocks the event loop, and a peer answering in 1–5 ms never
 * ends the run: `drive()` lets the event loop turn every `TURN_BUDGET_MS`. (Within 1 ms: 282 µs.)
 */
export const PAID_PARKS = 8;

/** The most waits that skip their park after parks that kept failing. */
const MAX_SKIP = 63;

const CORES = navigator.hardwareConcurrency ?? 1;

/**
 * How eagerly one waiter (a connection's end in one direction, a primitive's handle in one
 * process) waits on its own thread before it sleeps off it, learnt from how its spins and parks
 * went.
 *
 * - Spins: a score of recent outcomes (each success adds 1/8 of the way to 1, each miss takes
 *   1/8 away). While a core is free, a missed spin costs only that core's time: the waiter spins
 *   unless its spins nearly stopped paying (score under 1/8: ~16 misses in a row, e.g. five
 *   processes at a Barrier on two cores, where spinning took the CPU the others needed: 350–405
 *   ms for 1000 passes against 188–245). Known weakness: once both peers of a quiet hand-off
 *   park, probing spins tend to miss too (a parked peer is woken on the spinner's core), so the
 *   pair can stay parked (seen under both 1/2 and 1/8). While every core is taken, a spin may
 *   take the CPU the peer needs: it spins only while most recent spins paid (1/2). Otherwise it
 *   spins every 16th wait, to notice when it pays again.
 * - Parks: a park that ends the wait makes the next wait park too, up to
 *   {@linkcode ANSWER_PARK_MS} after {@linkcode PAID_PARKS} such parks in a row. Parks that do not
 *   (a slow peer: a worker computing, a lock held for long) block the event loop for nothing, so
 *   after the n-th of them in a row the next 2^(n-1)-1 waits (at most {@linkcode MAX_SKIP}) do not
 *   park; then one tries again. A single miss costs nothing: a busy machine delays some answers.
 */
export class Eagerness {
  #spinScore = 1;
  #spinProbe = 0;
  #misses = 0;
  #skip = 0;
  #paid = 0;

  /** Whether this wait spins, with a core free or not. */
  spins(coreFree: boolean): boolean {
    if (this.#spinScore >= (coreFree ? 1 / 8 : 1 / 2)) return true;
    this.#spinProbe = (this.#spinProbe + 1) & 15;
    return this.#spinProbe === 0;
  }

  /** Records whether a spin ended its wait. */
  spun(ended: boolean): void {
    this.#spinScore += ((ended ? 1 : 0) - this.#spinScore) / 8;
  }

  /** Whether this wait parks (counts the wait as skipped when not). */
  parks(): boolean {
    if (this.#skip === 0) return true;
    this.#skip--;
    return false;
  }

  /** How long this wait parks, given its own park length. */
  parkMs(parkMs: number): number {
    return this.#paid >= PAID_PARKS ? Math.max(parkMs, ANSWER_PARK_MS) : parkMs;
  }

  /** Records whether a park ended its wait. */
  parked(ended: boolean): void {
    this.#paid = ended ? Math.min(this.#paid + 1, PAID_PARKS) : 0;
    if (ended) this.#misses = 0;
    else this.#skip = Math.min(2 ** this.#misses++ - 1, MAX_SKIP);
  }
}

/** One step of a wait: block this thread up to `ms` ms (`park`), or sleep up to `ms` ms. */
export interface Step {
  /** True: block the calling thread (a short park); false: sleep off it where the driver can. */
  readonly park: boolean;
  readonly ms: number;
}

/** What one wait is for, as the loop sees it. */
export interface Attempt {
  /** Tries to take what the waiter wants (a unit, readiness); true on success. Never waits. */
  tryTake(): boolean;
  /**
   * Its answer needs several others to run first (a Barrier's last arrivals): between its tries,
   * its spin lets the threads that wait for this CPU run (`sched_yield`). Five processes at a
   * Barrier on 2 cores, 1000 passes, alternating runs (`bench/ab.ts barrier`): 245 → 89 ms and
   * 261 → 93 ms (0752135: 212). Not every wait: a Semaphore hand-off whose spins give way (after
   * 10 µs) took 5.0 µs against 3.8, likely as this CPU's other threads (GC helpers) run first.
   */
  readonly polite?: boolean;
  /** A wake-up is the take itself (an fd's readiness, as `poll` reports it): no try follows. */
  readonly wakeTakes?: boolean;
  /** Runs before each sleep (e.g. so that the holder's release posts); false: try again first. */
  beforeSleep?(): boolean;
  /** After a sleep that ended without a wake-up: recover from dead holders. */
  recover?(): void;
  /** After a wake-up that did not let `tryTake()` succeed: maybe pass it on. */
  stray?(): void;
  /** When the waiter gives up (deadline) after its last sleep took a wake-up: maybe pass it on. */
  passOn?(): void;
}

/**
 * The one wait loop, driven by `drive` (`_wait_drive.ts`). It tries to take; then, when `eager` says so, spins for up
 * to {@linkcode SPIN_MS} ({@linkcode SPIN_LOADED_MS} while every core is taken); then registers
 * (`register()`, e.g. counts itself among the sleepers; the returned function undoes it) and
 * alternates: yield a {@linkcode Step}, receive whether the wait was woken (a post taken, the fd
 * ready), try to take; give up at the deadline. The first step parks when `eager` says so (up to
 * `parkMs`, or longer as `eager` learnt), the others sleep up to {@linkcode SLICE_MS}. A wake-up
 * is a hint, never a grant: `tryTake()` decides. `drive()` (`_wait_drive.ts`) does each step, as
 * each waiter asks, and calls `return()` when it leaves early (an abort, a closed handle).
 *
 * `parkMs`: {@linkcode PARK_MS} (longer once learnt) for any peer, {@linkcode ANSWER_PARK_MS} for
 * an answer that comes at once by contract (the manager's), 0 for a wait that must not block the
 * thread at all (no spin, no park: the manager's server while a handshake needs the event loop).
 */
export function* waitSteps(
  attempt: Attempt,
  deadline: Deadline,
  eager: Eagerness,
  register?: () => () => void,
  parkMs = PARK_MS,
): Generator<Step, boolean, boolean> {
  if (attempt.tryTake()) return true;
  const free = parkMs > 0 && CORES > 1 ? coreIsFree() : null; // null: this wait never spins
  if (free !== null && eager.spins(free)) {
    const until = performance.now() + Math.min(free ? SPIN_MS : SPIN_LOADED_MS, deadline.left());
    let ended = false;
    do {
      ended = attempt.tryTake();
      if (!ended && attempt.polite) yieldCpu();
    } while (!ended && performance.now() < until);
    eager.spun(ended);
    if (ended) return true;
  }
  let early = parkMs > 0 && eager.parks();
  const park = eager.parkMs(parkMs);
  const unregister = register?.();
  try {
    let took = false;
    let tried = !register; // unregistered, nothing changed since the last try
    for (;;) {
      if (!tried && attempt.tryTake()) return true;
      tried = false;
      const left = deadline.left();
      if (left <= 0) {
        if (took) attempt.passOn?.();
        return false;
      }
      if (attempt.beforeSleep && !attempt.beforeSleep()) continue;
      took = yield { park: early, ms: early ? Math.min(park, left) : Math.min(SLICE_MS, Math.ceil(left)) };
      const ended = took && (attempt.wakeTakes || attempt.tryTake());
      if (early) {
        early = false;
        eager.parked(ended);
      }
      if (ended) return true;
      if (took) attempt.stray?.();
      else attempt.recover?.();
    }
  } finally {
    unregister?.();
  }
}
