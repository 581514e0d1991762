/**
 * Waiting on a primitive's shared block without blocking the event loop: the one wait loop
 * (`waitSteps` in `_wait.ts`, where the policy and its numbers are) on the block's semaphore,
 * driven by the one driver (`drive` in `_wait_drive.ts`) asynchronously (`waitUntil`: a sleep is
 * a `sem_timedwait` on a worker thread) or synchronously (`waitUntilSync`: on the calling
 * thread). A park is a `sem_timedwait` on the calling thread in both.
 *
 * A wait first tries the state (no syscall at all), maybe spins on it (re-tries, still before it
 * is counted, so a spin that pays makes no one post), then counts itself in the channel's
 * `waiters` word (so that whoever changes the state in its favour posts the block's semaphore)
 * and goes on with the loop: maybe one short park, then sleeps of one slice at most. What the
 * loop learns about spins and parks is kept per block (`SyncBlock.eager`). Between steps it
 * re-checks the deadline, the abort signal, a closed handle, and (through `WaitSpec.recover`)
 * holders that died: a waiter wakes at least every slice, and if the recorded holder no longer
 * runs it frees what the dead process held. Each primitive describes itself to the loop with a
 * {@linkcode WaitSpec}.
 *
 * @module
 */
import {
  type Attempt,
  type CheckedWait,
  checkWait,
  Deadline,
  SLICE_MS,
  timeoutMs,
  waitSteps,
} from "./_wait.ts";
import { type Doer, drive, type Steps } from "./_wait_drive.ts";
import { type SyncBlock, waitersWord } from "./_sync_block.ts";

export { SLICE_MS };

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
const FALSE: Promise<boolean> = Promise.resolve(false);
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

/** What a wait needs to know about its primitive (made once per handle). */
export interface WaitSpec extends Attempt {
  /** Names the primitive in errors, e.g. "lock". */
  readonly what: string;
  /** The wake-up channel to sleep on (default 0). */
  readonly channel?: number;
}

/**
 * The one wait loop; before its first park or sleep it counts itself among the channel's waiters
 * (undone when the loop ends, or when the driver calls `return()` as it leaves early).
 */
function blockSteps(core: SyncBlock, spec: WaitSpec, deadline: Deadline): Steps {
  const waiters = waitersWord(spec.channel ?? 0);
  return waitSteps(spec, deadline, core.eager, () => {
    Atomics.add(core.words, waiters, 1);
    return () => {
      if (!core.closed) Atomics.sub(core.words, waiters, 1);
    };
  });
}

/**
 * What every wait does before it waits: true or false when it is already decided (taken at
 * once; not taken and must not wait), undefined when it must wait.
 */
function before(core: SyncBlock, spec: WaitSpec, wait: CheckedWait): boolean | undefined {
  core.check(spec.what);
  if (spec.tryTake()) return true;
  if (!wait.block || wait.timeout <= 0) return false;
  return undefined;
}

/**
 * Waits until `spec.tryTake()` succeeds: at once when it can, else parking briefly on the
 * core's semaphore on this thread, else sleeping on it on a worker thread in slices of at most
 * {@linkcode SLICE_MS}. Resolves false on timeout or `block: false`; rejects with
 * `signal.reason` when aborted. `wait` comes from `checkWait()` (the caller validates its
 * arguments, naming its call).
 */
export function waitUntil(core: SyncBlock, spec: WaitSpec, wait: CheckedWait): Promise<boolean> {
  try {
    wait.signal?.throwIfAborted();
    const now = before(core, spec, wait);
    if (now !== undefined) return now ? TRUE : FALSE;
    const done = drive(
      blockSteps(core, spec, new Deadline(wait.timeout)),
      new BlockDoer(core, spec.channel ?? 0, wait.signal, spec.what),
    );
    return typeof done === "boolean" ? (done ? TRUE : FALSE) : done;
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * How an async wait on a block parks (on this thread) and sleeps (on a worker thread): one object
 * per wait, not four closures (a hand-off between two threads waits ~1.5 µs a round).
 */
class BlockDoer implements Doer {
  constructor(
    readonly core: SyncBlock,
    readonly channel: number,
    readonly signal: AbortSignal | undefined,
    readonly what: string,
  ) {}
  park(ms: number): boolean {
    return this.core.sleepSync(ms, this.channel);
  }
  sleep(ms: number): Promise<boolean> {
    return this.core.sleep(ms, this.signal, this.channel);
  }
  check(): void {
    this.core.check(this.what); // closed meanwhile: its words may be unmapped
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
  const now = before(core, spec, wait);
  if (now !== undefined) return now;
  const channel = spec.channel ?? 0;
  const block = (ms: number) => core.sleepSync(ms, channel);
  return drive(blockSteps(core, spec, new Deadline(wait.timeout)), {
    park: block,
    sleep: block,
    blocking: true,
  });
}
