/**
 * The one exit hook. Everything this module must do when the program ends runs from a single
 * `unload` listener, in a fixed order (not in module-evaluation order):
 *
 * 1. `queueHandover`: queues move the items this process accepted but has not yet written into
 *    the shared queue (children and other processes still read them).
 * 2. `joinChildren`: wait for non-daemon child processes and threads, as Python does
 *    (`_children.ts`); before anything they may still use is released below.
 * 3. `holders`: semaphore units this process holds at a normal exit count as consumed.
 * 4. `names`: named semaphores and shared memory this process owns are unlinked (and untracked).
 * 5. `daemons`: daemon child processes get SIGTERM, daemon threads end (`_children.ts`).
 * 6. `managerDirs`: a manager's temporary socket directory is removed.
 * 7. `fdSharer`: the fd sharer (`_fd_sharer.ts`) stops answering and closes the fds it held for
 *    messages not yet received (in a thread: the process goes on, so nothing else would).
 * 8. `threadEnd`: a thread (a Web Worker, see `thread.ts`) tells its parent it has ended (a
 *    message, and a word in shared memory for a parent that is itself in `joinChildren`); last,
 *    so that `join()` returns only once the thread's queues have handed their items over.
 *
 * A thread runs these hooks too when it ends (its exit ends only its Worker), for what it made
 * or holds itself; its `threadEnd` hook is always `needed`, so an uncaught error in a thread
 * ends it through them too.
 *
 * A hook that throws is reported on stderr and the others still run. `unload` handlers are
 * synchronous: a hook that must wait blocks the thread (through `native/`), never the event loop.
 *
 * Which endings run the hooks (Deno 2.9.6): `unload` fires when the event loop runs out, at
 * `Deno.exit()`, and at a signal whose listener calls `Deno.exit()`. It does NOT fire after an
 * uncaught error or an unhandled rejection (Deno prints it and ends at once), nor at a signal
 * with no listener (SIGINT, SIGTERM, SIGKILL, ...). For an uncaught error, a hook registered with
 * `needed` that says it has work left (children still running) turns that ending into an orderly
 * one: the error is printed (`error: Uncaught ...` and its stack, without Deno's source excerpt),
 * then `Deno.exit(1)` runs every hook. A listener of the program's own that calls
 * `preventDefault()` still keeps the program running.
 *
 * @module
 */

/** The phases of the exit, in the order they run. */
export const ExitPhase = {
  queueHandover: 0,
  joinChildren: 1,
  holders: 2,
  names: 3,
  daemons: 4,
  managerDirs: 5,
  fdSharer: 6,
  threadEnd: 7,
} as const;
/** One of {@linkcode ExitPhase}'s values. */
export type ExitPhase = typeof ExitPhase[keyof typeof ExitPhase];

const PHASE_NAMES = Object.keys(ExitPhase);
const hooks: Set<() => void>[] = PHASE_NAMES.map(() => new Set());
let installed = false;

const needs = new Set<() => boolean>();

/**
 * Runs `fn` at exit in `phase`; the returned function removes it again. `needed`, when given,
 * says whether `fn` has work that must not be skipped when the program dies of an uncaught error.
 */
export function atExit(phase: ExitPhase, fn: () => void, options?: { needed?: () => boolean }): () => void {
  if (!installed) {
    installed = true;
    globalThis.addEventListener("unload", runExitHooks);
    globalThis.addEventListener("error", onUncaught);
    globalThis.addEventListener("unhandledrejection", onUncaught);
  }
  hooks[phase].add(fn);
  const needed = options?.needed;
  if (needed) needs.add(needed);
  return () => {
    hooks[phase].delete(fn);
    if (needed) needs.delete(needed);
  };
}

/**
 * An uncaught error or unhandled rejection: Deno would end the program without `unload`. When a
 * hook has work left, take the ending over: keep the default from happening now, and unless a
 * listener of the program's own also asked for that, report the error as Deno does and exit(1),
 * which runs the hooks.
 */
function onUncaught(event: ErrorEvent | PromiseRejectionEvent): void {
  if (event.defaultPrevented || ![...needs].some((needed) => needed())) return;
  let preventedByProgram = false;
  const preventDefault = event.preventDefault.bind(event);
  Object.defineProperty(event, "preventDefault", {
    value: () => {
      preventedByProgram = true;
      preventDefault();
    },
  });
  preventDefault();
  // The other listeners run before this microtask.
  queueMicrotask(() => {
    if (preventedByProgram) return;
    const error = event instanceof ErrorEvent ? event.error ?? event.message : event.reason;
    // In a Worker (a thread), named as Deno names it: `Uncaught (in worker "Thread-1 [mp-thread 2]")`.
    const where = "WorkerGlobalScope" in globalThis ? ` (in worker ${JSON.stringify(globalThis.name)})` : "";
    const what = `Uncaught${where}${event instanceof ErrorEvent ? "" : " (in promise)"}`;
    console.error(`error: ${what} ${error instanceof Error ? error.stack ?? error : Deno.inspect(error)}`);
    Deno.exit(1);
  });
}

function runExitHooks(): void {
  for (let phase = 0; phase < hooks.length; phase++) {
    for (const fn of [...hooks[phase]]) {
      try {
        fn();
      } catch (e) {
        console.error(
          `multiprocessing: exit step "${PHASE_NAMES[phase]}" failed: ${e instanceof Error ? e.message : e}`,
        );
      }
    }
  }
}
