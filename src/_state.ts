/**
 * Who this process is: its name and identity in the process tree, its parent, and the fd of the
 * shared resource tracker. Kept on `globalThis` so that two copies of this module (imported under
 * two URLs) still agree.
 *
 * @module
 */

export interface ProcessState {
  /** Path in the tree: [] for the main process, [2] for its second child, [2, 1] below that. */
  identity: number[];
  name: string;
  daemon: boolean;
  parent: { pid: number; name: string } | null;
  /** Children started so far by this process (numbers the next one). */
  childCounter: number;
  /** The write end of the resource tracker's pipe, once there is a tracker. */
  trackerFd: number | null;
  /** True in a child while it imports its target's module (starting processes then is a bug). */
  bootstrapping: boolean;
  /** The module a child imported to find its target. */
  moduleUrl: string | null;
  /** The program's main module (a thread's realm has no `Deno.mainModule`: `thread.ts` sets it). */
  mainModule: string | null;
}

const KEY = Symbol.for("multiprocessing.state");

/** This process's state (created on first use). */
export function state(): ProcessState {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return g[KEY] ??= {
    identity: [],
    name: "MainProcess",
    daemon: false,
    parent: null,
    childCounter: 0,
    trackerFd: null,
    bootstrapping: false,
    moduleUrl: null,
    mainModule: Deno.mainModule ?? null,
  } satisfies ProcessState;
}

/** Linux pids are below 2^22 (`pid_max` at most 4194304); the bits above mark a thread. */
export const PID_MASK = (1 << 22) - 1;

/**
 * Who holds what this realm holds in shared lock words and holder slots: the pid in the main
 * thread; in a thread (a Web Worker that `thread.ts` names "<name> [mp-thread <ident>]", known
 * before any module runs there) the pid plus a number from the thread's ident above
 * {@linkcode PID_MASK}, so that an RLock re-enters only in the thread that holds it and a Lock
 * held by one thread is not "owned" by the others. `& PID_MASK` gives back the process.
 */
export function holderId(): number {
  const m = /\[mp-thread (\d+)\]$/.exec((globalThis as { name?: unknown }).name as string ?? "");
  return m ? Deno.pid | ((Number(m[1]) % 255 + 1) << 22) : Deno.pid;
}
