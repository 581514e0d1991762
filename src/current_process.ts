/**
 * Who this process is, and its children (CPython: `current_process()`, `parent_process()`,
 * `active_children()` and `cpu_count()`): the name, pid and daemon flag this process was started
 * with (kept in `_state.ts`, set by `_child.ts` from the child's header), and the children it
 * started that still run (tracked by `_children.ts`).
 *
 * @module
 */
import { runningOwners } from "./_children.ts";
import { Popen } from "./_popen.ts";
import { state } from "./_state.ts";
import { described, withInspect } from "./_inspect.ts";
import type { Process } from "./process.ts";

/**
 * The children of this process that are still running (Python's `active_children()`, which also
 * reaps the ended ones; here each reaps itself).
 *
 * @returns The started, not yet ended {@linkcode Process} objects of this process.
 *
 * @example Wait for every child
 * ```ts
 * import { activeChildren, Process } from "@mp/multiprocessing";
 *
 * export function work(n: number) {
 *   console.log(n);
 * }
 *
 * if (import.meta.main) {
 *   for (const n of [1, 2, 3]) await new Process({ target: work, args: [n] }).start();
 *   await Promise.all(activeChildren().map((p) => p.join()));
 * }
 * ```
 */
export function activeChildren(): Process[] {
  return runningOwners<Process>(Popen);
}

/**
 * Who this process is: what {@linkcode currentProcess} returns.
 *
 * @example
 * ```ts
 * import { type CurrentProcess, currentProcess } from "@mp/multiprocessing";
 *
 * const me: CurrentProcess = currentProcess();
 * console.log(me.name, me.pid, me.daemon); // MainProcess ... false
 * ```
 */
export interface CurrentProcess {
  /** `"MainProcess"` in the main program, the {@linkcode Process}'s name in a child; settable. */
  name: string;
  /** This process's OS pid. */
  readonly pid: number;
  /** Whether this process is a daemon child. */
  readonly daemon: boolean;
}

/**
 * The process that started this one: what {@linkcode parentProcess} returns.
 *
 * @example
 * ```ts
 * import { type ParentProcess, parentProcess } from "@mp/multiprocessing";
 *
 * const parent: ParentProcess | null = parentProcess();
 * if (parent && !parent.isAlive()) console.log(`${parent.name} has ended`);
 * ```
 */
export interface ParentProcess {
  /** The parent's name (`"MainProcess"` for the main program). */
  readonly name: string;
  /** The parent's OS pid. */
  readonly pid: number;
  /** Whether the parent still runs. */
  isAlive(): boolean;
}

/**
 * Who this process is, as Python's `multiprocessing.current_process()`: its name, pid and whether
 * it is a daemon. It prints as `Process(name="MainProcess", pid=4300, current)`.
 *
 * @returns This process's name (settable), pid and daemon flag.
 *
 * @example Name the process a function runs in
 * ```ts
 * import { currentProcess } from "@mp/multiprocessing";
 *
 * export function work() {
 *   console.log(`${currentProcess().name} (pid ${currentProcess().pid}) at work`);
 * }
 *
 * if (import.meta.main) work(); // MainProcess (pid ...) at work
 * ```
 */
export function currentProcess(): CurrentProcess {
  const s = state();
  const me: CurrentProcess = {
    get name() {
      return s.name;
    },
    set name(value: string) {
      s.name = value;
    },
    pid: Deno.pid,
    get daemon() {
      return s.daemon;
    },
  };
  return withInspect(me, () =>
    described("Process", false, () => [
      `name=${JSON.stringify(s.name)}`,
      `pid=${Deno.pid}`,
      ...(s.parent ? [`parent=${s.parent.pid}`] : []),
      "current",
      ...(s.daemon ? ["daemon"] : []),
    ]));
}

/**
 * The process that started this one, or null in the main program (Python's
 * `multiprocessing.parent_process()`). It prints as `Process(name="MainProcess", pid=4300, parent)`.
 *
 * @returns The parent's name and pid, and whether it still runs; null in the main program.
 *
 * @example Tell whether this runs in a child
 * ```ts
 * import { parentProcess } from "@mp/multiprocessing";
 *
 * const parent = parentProcess();
 * console.log(parent ? `started by ${parent.name} (pid ${parent.pid})` : "the main program");
 * ```
 */
export function parentProcess(): ParentProcess | null {
  const parent = state().parent;
  if (!parent) return null;
  return withInspect(
    { name: parent.name, pid: parent.pid, isAlive: () => Deno.ppid === parent.pid },
    () =>
      described(
        "Process",
        false,
        () => [`name=${JSON.stringify(parent.name)}`, `pid=${parent.pid}`, "parent"],
      ),
  );
}

/**
 * The number of CPUs of this machine (Python's `cpu_count()`): the default size of a
 * {@linkcode Pool}.
 *
 * @returns `navigator.hardwareConcurrency`.
 *
 * @example Size a pool by hand
 * ```ts
 * import { cpuCount } from "@mp/multiprocessing";
 *
 * const workers = Math.max(1, cpuCount() - 1);
 * console.log(`${workers} workers`);
 * ```
 */
export function cpuCount(): number {
  return navigator.hardwareConcurrency;
}
