/**
 * Waiting on a primitive's shared block without blocking the event loop: the one wait loop of
 * the synchronization primitives, driven asynchronously (`waitUntil`: each sleep is a
 * `sem_timedwait` on a worker thread) or synchronously (`waitUntilSync`: on the calling thread).
 *
 * A wait first tries the state (no syscall at all), then spins briefly ({@linkcode spin}), then
 * counts itself in the channel's `waiters` word and sleeps on the block's semaphore one slice
 * ({@linkcode SLICE_MS}) at a time. Between slices it re-checks the deadline, the abort signal,
 * a closed handle, and (through `WaitSpec.recover`) holders that died: a waiter wakes at least
 * every slice, and if the recorded holder no longer runs it frees what the dead process held.
 * Each primitive describes itself to the loop with a {@linkcode WaitSpec}.
 *
 * @module
 */
import { type CheckedWait, checkWait, Deadline, timeoutMs } from "./_wait.ts";
import { type SyncBlock, waitersWord } from "./_sync_block.ts";

/** The longest a waiter sleeps before it looks at the state again (abort, dead holders). */
export const SLICE_MS = 50;

/**
 * Options of `acquire()` and `hold()`.
 *
 * @example Wait at most 100 ms, or until aborted
 * ```ts
 * import { Lock } from "@mp/multiprocessing";
 *
 * const lock = new Lock();
 * const controller = new AbortController();
 * if (await lock.acquire({ timeout: 100, signal: controller.signal })) {
 *   lock.release();
 * }
 * lock.close();
 * ```
 */
export interface AcquireOptions {
  /** False: try once and never wait (wins over `timeout`). Default true. */
  block?: boolean;
  /** Milliseconds to wait at most; undefined waits forever, 0 or less does not wait. */
  timeout?: number;
  /** Aborting rejects the wait with `signal.reason`; nothing stays acquired. */
  signal?: AbortSignal;
}

/**
 * Options of `acquireSync()`.
 *
 * @example Try once without blocking
 * ```ts
 * import { Lock } from "@mp/multiprocessing";
 *
 * const lock = new Lock();
 * console.log(lock.acquireSync({ block: false })); // true
 * lock.release();
 * lock.close();
 * ```
 */
export interface AcquireSyncOptions {
  /** False: try once and never wait (wins over `timeout`). Default true. */
  block?: boolean;
  /** Milliseconds to wait at most; undefined waits forever, 0 or less does not wait. */
  timeout?: number;
}

/** A settled `true`, returned by fast paths (no promise made per call). */
export const TRUE: Promise<boolean> = Promise.resolve(true);
/** No options: wait forever, no signal. */
export const FOREVER: CheckedWait = checkWait(undefined, "");

/**
 * The checked form of the `(timeout?, { signal? })` arguments of `Event.wait()`,
 * `Condition.wait()` and `Barrier.wait()`; `call` names the call in errors.
 */
export function timedWait(timeout: unknown, options: unknown, call: string): CheckedWait {
  const { signal } = checkWait(options, call);
  return { block: true, timeout: timeoutMs(timeout, call), signal };
}

/**
 * Acquires with `acquire`, and returns what releases it on dispose (`using _ = await x.hold()`).
 * `release` may be synchronous (a native lock: a failure throws from dispose) or return a promise
 * (a manager's lock: `using` cannot wait, so the release is sent at once and `await using` waits
 * for it). Disposing twice releases once.
 */
export async function holdWith(
  what: string,
  acquire: (o?: AcquireOptions) => Promise<boolean>,
  release: () => void | Promise<void>,
  options: AcquireOptions | undefined,
): Promise<Disposable & AsyncDisposable> {
  if (!(await acquire(options))) {
    throw new Deno.errors.TimedOut(
      options?.block === false
        ? `Cannot hold ${what}: it is taken and block is false`
        : `Cannot hold ${what}: not acquired within ${options?.timeout} ms`,
    );
  }
  let released: Promise<void> | undefined;
  const dispose = (): Promise<void> => {
    if (!released) {
      released = Promise.resolve();
      const pending = release();
      if (pending) released = pending;
    }
    return released;
  };
  return { [Symbol.dispose]: () => void dispose().catch(() => {}), [Symbol.asyncDispose]: dispose };
}

/**
 * How long a waiter spins (re-trying the state) before it sleeps, in ms. A hand-off between two
 * processes on different cores usually completes within it, which saves the two thread hops of
 * a sleep on a worker thread (~100 µs); a lock held longer costs the waiter this much CPU once.
 * No spinning on a single core, where the holder cannot run meanwhile.
 */
const SPIN_MS = (navigator.hardwareConcurrency ?? 1) > 1 ? 0.05 : 0;

/** Re-tries `spec.tryTake()` for up to {@linkcode SPIN_MS}; true when it succeeded. */
export function spin(spec: WaitSpec): boolean {
  if (SPIN_MS === 0) return false;
  const until = performance.now() + SPIN_MS;
  for (;;) {
    for (let i = 0; i < 32; i++) if (spec.tryTake()) return true;
    if (performance.now() > until) return false;
  }
}

/** What a wait needs to know about its primitive (made once per handle). */
export interface WaitSpec {
  /** Names the primitive in errors, e.g. "lock". */
  readonly what: string;
  /** The wake-up channel to sleep on (default 0). */
  readonly channel?: number;
  /** Tries to take what the waiter wants; true on success. Never waits. */
  tryTake(): boolean;
  /**
   * Runs right before each sleep, e.g. to make sure the holder's release will post. False means
   * the state just changed: try again instead of sleeping.
   */
  beforeSleep?(): boolean;
  /** After a slice that ended without a post: recover from dead holders. */
  recover?(): void;
  /** After a post that did not let `tryTake()` succeed: maybe pass it on. */
  stray?(): void;
  /** When the waiter gives up (timeout) after its last sleep took a post: maybe pass it on. */
  passOn?(): void;
}

/**
 * The one wait loop, shared by the async and the sync driver. It counts itself among the
 * channel's waiters, then alternates: try to take; give up at the deadline; otherwise yield how
 * long to sleep (at most {@linkcode SLICE_MS}) and receive whether the sleep took a post. The
 * driver does the sleeping (on a worker thread, or on the calling thread) and must call
 * `return()` when it leaves early (an abort, a closed handle), so that the count is undone.
 */
function* waitSteps(
  core: SyncBlock,
  spec: WaitSpec,
  deadline: Deadline,
): Generator<number, boolean, boolean> {
  const waiters = waitersWord(spec.channel ?? 0);
  Atomics.add(core.words, waiters, 1);
  let took = false;
  try {
    for (;;) {
      if (spec.tryTake()) return true;
      const left = deadline.left();
      if (left <= 0) {
        if (took) spec.passOn?.();
        return false;
      }
      if (spec.beforeSleep && !spec.beforeSleep()) continue;
      took = yield Math.min(SLICE_MS, Math.ceil(left));
      if (took) {
        if (spec.tryTake()) return true;
        spec.stray?.();
      } else spec.recover?.();
    }
  } finally {
    if (!core.closed) Atomics.sub(core.words, waiters, 1);
  }
}

/**
 * What every wait does before it sleeps: true or false when it is already decided (taken at
 * once or in a short spin; not taken and must not wait), undefined when it must sleep.
 */
function before(core: SyncBlock, spec: WaitSpec, wait: CheckedWait, spun: boolean): boolean | undefined {
  core.check(spec.what);
  if (spec.tryTake()) return true;
  if (!wait.block || wait.timeout <= 0) return false;
  if (!spun && spin(spec)) return true;
  return undefined;
}

/**
 * Waits until `spec.tryTake()` succeeds: at once when it can, else spinning briefly, else
 * sleeping on the core's semaphore in slices of at most {@linkcode SLICE_MS}. Resolves false
 * on timeout or `block: false`; rejects with `signal.reason` when aborted. `wait` comes from
 * `checkWait()` (the caller validates its arguments, naming its call); `spun`: the caller has
 * already spun.
 */
export async function waitUntil(
  core: SyncBlock,
  spec: WaitSpec,
  wait: CheckedWait,
  spun = false,
): Promise<boolean> {
  const signal = wait.signal;
  signal?.throwIfAborted();
  const now = before(core, spec, wait, spun);
  if (now !== undefined) return now;
  const channel = spec.channel ?? 0;
  const steps = waitSteps(core, spec, new Deadline(wait.timeout));
  try {
    let step = steps.next();
    while (!step.done) {
      const took = await core.sleep(step.value, signal, channel);
      core.check(spec.what); // closed meanwhile: its words may be unmapped, look no further
      step = steps.next(took);
    }
    return step.value;
  } finally {
    steps.return(false);
  }
}

/**
 * {@linkcode waitUntil} with the caller's raw options, checked here (`call` names the call in
 * errors): an invalid one rejects with a `TypeError`.
 */
export function waitWith(core: SyncBlock, spec: WaitSpec, options: unknown, call: string): Promise<boolean> {
  let wait: CheckedWait;
  try {
    wait = checkWait(options, call);
  } catch (e) {
    return Promise.reject(e);
  }
  return waitUntil(core, spec, wait);
}

/** As {@linkcode waitUntil}, blocking the calling thread (no signal: nothing could abort it). */
export function waitUntilSync(core: SyncBlock, spec: WaitSpec, wait: CheckedWait): boolean {
  const now = before(core, spec, wait, false);
  if (now !== undefined) return now;
  const channel = spec.channel ?? 0;
  const steps = waitSteps(core, spec, new Deadline(wait.timeout));
  try {
    let step = steps.next();
    while (!step.done) step = steps.next(core.sleepSync(step.value, channel));
    return step.value;
  } finally {
    steps.return(false);
  }
}
