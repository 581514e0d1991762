/**
 * The one exit hook. Everything this module must do when the program ends runs from a single
 * `unload` listener, in a fixed order (not in module-evaluation order):
 *
 * 1. `queueHandover`: queues move the items this process accepted but has not yet written into
 *    the shared queue (children and other processes still read them).
 * 2. `joinChildren`: wait for non-daemon children, as Python does.
 * 3. `holders`: semaphore units this process holds at a normal exit count as consumed.
 * 4. `names`: named semaphores and shared memory this process owns are unlinked (and untracked).
 * 5. `daemons`: daemon children get SIGTERM.
 * 6. `managerDirs`: a manager's temporary socket directory is removed.
 * 7. `threadEnd`: a thread (a Web Worker, see `thread.ts`) tells its parent it has ended; last, so
 *    that `join()` returns only once the thread's queues have handed their items over.
 *
 * A thread runs these hooks too when it ends (its exit ends only its Worker), for what it made
 * or holds itself.
 *
 * A hook that throws is reported on stderr and the others still run. `unload` handlers are
 * synchronous: a hook that must wait blocks the thread (through `native/`), never the event loop.
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
  threadEnd: 6,
} as const;
/** One of {@linkcode ExitPhase}'s values. */
export type ExitPhase = typeof ExitPhase[keyof typeof ExitPhase];

const PHASE_NAMES = Object.keys(ExitPhase);
const hooks: Set<() => void>[] = PHASE_NAMES.map(() => new Set());
let installed = false;

/** Runs `fn` at exit in `phase`; the returned function removes it again. */
export function atExit(phase: ExitPhase, fn: () => void): () => void {
  if (!installed) {
    installed = true;
    globalThis.addEventListener("unload", runExitHooks);
  }
  hooks[phase].add(fn);
  return () => void hooks[phase].delete(fn);
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
