/**
 * Who this thread is, and the threads it started (CPython: `threading.current_thread()` and
 * `threading.enumerate()`): the name, ident and daemon flag this thread was started with (kept
 * in `_thread_state.ts`'s registry, set by `_thread_main.ts` from the thread's init), and the
 * threads started here that still run (tracked by `_children.ts`).
 *
 * @module
 */
import { described, withInspect } from "./_inspect.ts";
import { registry } from "./_thread_state.ts";
import { runningOwners } from "./_children.ts";
import { ThreadWorker } from "./_thread_worker.ts";
import type { Thread } from "./thread.ts";

/**
 * The threads started by this program (or by this thread) that are still running.
 *
 * @returns The started, not yet ended {@linkcode Thread} objects.
 *
 * @example Wait for every thread
 * ```ts
 * import { activeThreads, Thread } from "@mp/multiprocessing";
 *
 * export function work(n: number) {
 *   console.log(n);
 * }
 *
 * if (import.meta.main) {
 *   for (const n of [1, 2, 3]) await new Thread({ target: work, args: [n] }).start();
 *   await Promise.all(activeThreads().map((t) => t.join()));
 * }
 * ```
 */
export function activeThreads(): Thread[] {
  return runningOwners<Thread>(ThreadWorker);
}

/**
 * Who this thread is: what {@linkcode currentThread} returns.
 *
 * @example
 * ```ts
 * import { type CurrentThread, currentThread } from "@mp/multiprocessing";
 *
 * const me: CurrentThread = currentThread();
 * console.log(me.name, me.ident); // MainThread 1
 * ```
 */
export interface CurrentThread {
  /** `"MainThread"` in the main program, the {@linkcode Thread}'s name in a thread. */
  readonly name: string;
  /** A number unique among the threads of this program; 1 for the main thread. */
  readonly ident: number;
  /** Whether this is a daemon thread. */
  readonly daemon: boolean;
}

/**
 * Who this thread is, as Python's `threading.current_thread()`: `"MainThread"` (ident 1) in the
 * main program. It prints as `Thread(name="MainThread", ident=1, current)`.
 *
 * @returns This thread's name, ident and daemon flag.
 *
 * @example Name the thread a function runs in
 * ```ts
 * import { currentThread } from "@mp/multiprocessing";
 *
 * export function work() {
 *   console.log(`${currentThread().name} at work`);
 * }
 *
 * if (import.meta.main) work(); // MainThread at work
 * ```
 */
export function currentThread(): CurrentThread {
  const { name, ident, daemon } = registry().current;
  return withInspect(
    { name, ident, daemon },
    () =>
      described("Thread", false, () => [
        `name=${JSON.stringify(name)}`,
        `ident=${ident}`,
        "current",
        ...(daemon ? ["daemon"] : []),
      ]),
  );
}
