/**
 * The children this process (or this thread) started and that have not ended yet, processes and
 * threads alike, and what becomes of them when the program ends (CPython: `multiprocessing`'s
 * `_exit_function` and `threading._shutdown`). `_popen.ts` adds each child process, and
 * `_thread_worker.ts` each thread, when it starts, and takes it out once it has ended;
 * `activeChildren()` and `activeThreads()` list them.
 *
 * At exit (`_exit.ts`), in its `joinChildren` phase, this thread waits for each non-daemon child,
 * as Python waits for non-daemon processes and threads, at `sys.exit()` and after an uncaught
 * exception alike (so an uncaught error with such a child running becomes an orderly exit, see
 * `needed` in `_exit.ts`). The wait is synchronous (an `unload` listener cannot await), so it
 * blocks this thread: it is safe only because no child needs this thread's event loop to end. A
 * child process is its own program. A thread is a Worker with an event loop of its own: what it
 * does on its way out needs nothing from this thread: its queues' hand-over moves what nobody
 * reads into a segment (and this thread released its queue locks in the `queueHandover` phase,
 * before), it posts its last message without waiting for an answer, and the fd sharer answers
 * from a thread of its own (`_fd_sharer.ts`). It says it has ended through shared memory, as
 * this thread reads no message any more (see `_thread_worker.ts`); one that has not begun (it
 * may have failed to load its module) is waited for at most 10 s. A child that waits for
 * something only this thread would do (a lock this thread holds, an item it would put) waits
 * forever, as in Python.
 *
 * `join()` of `Process` and `Thread` is {@linkcode joinWithin}.
 *
 * In the `daemons` phase, each daemon child still running is terminated (SIGTERM for a process;
 * a thread's Worker ends at once).
 *
 * A signal that ends this process without running code (SIGKILL, an unhandled SIGTERM/SIGINT)
 * runs neither phase: child processes end too (each asked for SIGKILL at its parent thread's
 * death, see `_child.ts`), threads with the process.
 *
 * @module
 */
import { atExit, ExitPhase } from "./_exit.ts";
import { raceTimeout } from "./_wait.ts";

/** A started child (a `Popen` or a `ThreadWorker`), as this registry sees it. */
export interface Child {
  /** Its `Process` or `Thread` object, for `activeChildren()` and `activeThreads()`. */
  readonly owner: unknown;
  readonly name: string;
  /** A daemon is terminated at exit; any other child is waited for. */
  readonly daemon: boolean;
  /** Settles once the child has ended. */
  readonly exited: Promise<void>;
  /** Blocks this thread until the child has ended (at exit, for a non-daemon child). */
  joinAtExit(): void;
  /** Ends the child now, without waiting (at exit, for a daemon child). */
  terminate(): void;
}

const running = new Set<Child>();
let hooked = false;

/** Counts `child` as running, until {@linkcode childEnded}. */
export function childStarted(child: Child): void {
  running.add(child);
  if (hooked) return;
  hooked = true;
  atExit(ExitPhase.joinChildren, () => {
    for (const child of [...running]) if (!child.daemon && running.has(child)) child.joinAtExit();
  }, { needed: () => [...running].some((child) => !child.daemon) });
  atExit(ExitPhase.daemons, () => {
    for (const child of [...running]) if (child.daemon && running.has(child)) child.terminate();
  });
}

/** Takes `child` out of the running ones (it has ended, or was terminated). */
export function childEnded(child: Child): void {
  running.delete(child);
}

/**
 * Settles once the non-daemon children running now have ended: a child process or thread whose
 * work is done awaits it before it exits, so that its event loop still runs meanwhile (the exit
 * hook would block it).
 */
export function nonDaemonsEnded(): Promise<unknown> {
  return Promise.all([...running].filter((child) => !child.daemon).map((child) => child.exited));
}

/** A started child someone may wait for (`Popen`, `ThreadWorker`). */
export interface Joinable {
  /** null while it runs. */
  readonly exitCode: number | null;
  readonly exited: Promise<void>;
  /** Keeps this program alive while the child runs (a daemon child does not, by itself). */
  ref(): void;
  /** Undoes one `ref()`. */
  unref(): void;
}

/**
 * `join(timeout)` of `Process` and `Thread`: waits until `child` has ended or `ms` have passed.
 * A daemon child does not keep the program alive, but someone waiting for it must.
 */
export async function joinWithin(child: Joinable, ms: number): Promise<void> {
  if (child.exitCode !== null || ms <= 0) return;
  child.ref();
  try {
    await raceTimeout(child.exited, ms);
  } finally {
    child.unref();
  }
}

/** The owners of the running children of one kind (`Popen` or `ThreadWorker`), oldest first. */
export function runningOwners<T>(kind: abstract new (...args: never[]) => Child): T[] {
  return [...running].filter((child) => child instanceof kind).map((child) => child.owner as T);
}

/**
 * Runs the work of a child process or thread (its `run()`, or a builtin that resolves to its exit
 * code) and resolves to its exit code: 0, or 1 when it threw, after printing the error's stack
 * under `title` (`Process <name>` or `Thread <name>`). Then, as Python, it waits for its own
 * non-daemon children and threads.
 */
export async function runWork(title: string, work: () => Promise<number | void>): Promise<number> {
  let code = 0;
  try {
    code = await work() ?? 0;
  } catch (error) {
    console.error(`${title}:`);
    console.error(error instanceof Error ? error.stack ?? String(error) : Deno.inspect(error));
    code = 1;
  }
  await nonDaemonsEnded();
  return code;
}
