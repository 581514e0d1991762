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
  } satisfies ProcessState;
}
