/**
 * Real OS processes (CPython: `process.py`): the `Process` class. Who this process is
 * (`currentProcess()`, `parentProcess()`, `activeChildren()`) is `current_process.ts`'s.
 *
 * Spawning a child, its header and handshake on the control socket are `_popen.ts`'s; the
 * child's side is `_child.ts`, which rebuilds the child's own `Process` object through
 * `_adopt.ts` (only this class's constructor runs there, not a subclass's). On Linux the child also asks the kernel for SIGKILL when its
 * parent dies (PR_SET_PDEATHSIG), so no child outlives a parent killed by SIGKILL.
 *
 * @module
 */
import { kill as sendSignal } from "../native/mod.ts";
import { checkStart, describeFunction, reportUnhandledStart, targetOptions } from "./_caller.ts";
import { serialize } from "./_reduction.ts";
import { adopted, construct } from "./_adopt.ts";
import { type ChildHeader, type ChildInit, type ControlChannel, Popen } from "./_popen.ts";
import { timeoutMs } from "./_wait.ts";
import { joinWithin } from "./_children.ts";
import { state } from "./_state.ts";
import { trackerFd } from "./_tracker.ts";
import { described, inspect } from "./_inspect.ts";

/**
 * Options of {@linkcode Process} and {@linkcode Thread}. `args` is typed by the target's
 * parameters: a missing, extra or mistyped argument is a compile error, and `args` may be left
 * out only when the target needs none.
 *
 * @typeParam A The target's parameter types (`any[]` by default, so that a typed target such as
 * `(n: number) => void` fits where the target is not known).
 *
 * @example Options that type-check against the target
 * ```ts
 * import { Process, type ProcessOptions } from "@mp/multiprocessing";
 *
 * export function add(a: number, b: number) {
 *   console.log(a + b);
 * }
 *
 * if (import.meta.main) {
 *   const options: ProcessOptions<[number, number]> = { target: add, args: [1, 2], name: "adder" };
 *   const p = new Process(options);
 *   await p.start();
 *   await p.join();
 * }
 * ```
 */
// deno-lint-ignore no-explicit-any
export type ProcessOptions<A extends unknown[] = any[]> =
  & {
    /**
     * The function the child runs, sync or async. It must be exported from `module` under a
     * name (not a bound method, a closure or an inline arrow: the child imports it by name).
     */
    target?: (...args: A) => unknown;
    /** Default `"Process-<n>"` (`"Thread-<n>"` for a thread). */
    name?: string;
    /** A daemon child is terminated when its parent exits. Default false. */
    daemon?: boolean;
    /** The module that exports `target` (default: the module that called `new Process`). */
    module?: string | URL;
  }
  // `args` is required when the target has required parameters; it is not used to infer `A`.
  & ([] extends NoInfer<A> ? {
      /** Arguments for `target` (structured-clone data and this library's objects). */
      args?: NoInfer<A>;
    }
    : {
      /** Arguments for `target` (structured-clone data and this library's objects). */
      args: NoInfer<A>;
    });

let popenOf: (p: Process) => Popen | undefined;
let setBuiltin: (p: Process, name: string) => void;
let exitedOf: (p: Process) => Promise<void>;

/** @internal Settles when a started child has ended, without keeping this program alive. */
export function whenExited(p: Process): Promise<void> {
  return exitedOf(p);
}

/**
 * @internal Takes over a started child's control socket once its handshake is done: frames the
 * child sends arrive in `onMessage`.
 */
export function controlChannel(p: Process, onMessage: (frame: Uint8Array) => void): ControlChannel {
  return popenOf(p)!.channel(onMessage);
}

/** @internal Makes the child run one of the library's own entry points instead of `run()`. */
export function runBuiltin(p: Process, name: string): void {
  setBuiltin(p, name);
}

/**
 * A process running a function of yours, as Python's `multiprocessing.Process`.
 *
 * @example Start a child and wait for it
 * ```ts
 * import { Process } from "@mp/multiprocessing";
 *
 * export function greet(who: string) {
 *   console.log(`hello ${who}`);
 * }
 *
 * if (import.meta.main) {
 *   const p = new Process({ target: greet, args: ["bob"] });
 *   await p.start();
 *   await p.join();
 *   console.log(p.exitCode); // 0
 * }
 * ```
 */
// deno-lint-ignore no-explicit-any
export class Process<A extends unknown[] = any[]> {
  #target: ((...args: unknown[]) => unknown) | undefined;
  #args: unknown[];
  #name: string;
  #daemon: boolean;
  #module: string | undefined;
  #identity: number[];
  /** The pid of the process that made this object: the parent of the child it starts. */
  #parentPid: number;
  /** Whether this is the object of the running process itself (inside its child). */
  #current = false;
  #popen: Popen | undefined;
  #builtin: string | null = null;
  /** Settles once the child has ended (and left `activeChildren()`). */
  #exited: Promise<void> | undefined;
  #closed = false;

  /** Describes the process; nothing runs until {@linkcode Process.start}. */
  constructor(options: ProcessOptions<A> = {} as ProcessOptions<A>) {
    const childInit = adopted<ChildInit>(new.target);
    if (childInit) {
      // Rebuilding this process's own object inside the child (see `_child.ts`).
      const { header, target, args } = childInit;
      this.#target = target;
      this.#args = args;
      this.#name = header.name;
      this.#daemon = header.daemon;
      this.#module = header.module ?? undefined;
      this.#identity = header.identity;
      this.#parentPid = header.parent.pid;
      this.#current = true;
      return;
    }
    const { target, args, name, daemon, module } = targetOptions(options, "Process");
    this.#target = target as ((...args: unknown[]) => unknown) | undefined;
    this.#args = args;
    this.#daemon = daemon;
    this.#module = module;
    const s = state();
    this.#identity = [...s.identity, ++s.childCounter];
    this.#parentPid = Deno.pid;
    this.#name = name ?? `Process-${this.#identity.join(":")}`;
  }

  /** The process's name; only for display and `currentProcess()`. */
  get name(): string {
    return this.#name;
  }
  set name(value: string) {
    if (typeof value !== "string") throw new TypeError("Invalid name: expected a string");
    this.#name = value;
  }

  /** Whether this is a daemon; settable only before `start()`. */
  get daemon(): boolean {
    return this.#daemon;
  }
  set daemon(value: boolean) {
    if (this.#popen) throw new Error(`Cannot set daemon of ${this.#name}: it has already started`);
    this.#daemon = Boolean(value);
  }

  /** The OS process id; undefined before `start()` (inside the child: its own pid). */
  get pid(): number | undefined {
    return this.#current ? Deno.pid : this.#popen?.child.pid;
  }

  /** null until the process ended; then its exit code, or -N when signal N ended it. */
  get exitCode(): number | null {
    return this.#popen?.exitCode ?? null;
  }

  /** The work of the process: calls `target(...args)`. Subclasses may override it. */
  run(): unknown {
    const target = this.#target;
    return target?.(...this.#args);
  }

  /**
   * Spawns the child at once. The returned promise resolves when the child has found its target
   * (or rejects with a `TypeError` saying what to export); awaiting it is optional: a failure
   * nobody handles is printed once, and the program goes on.
   *
   * @returns A promise that settles once the child has found its target.
   * @throws {Error} When the process was already started, or is closed, or when this child is
   * still importing its module (top-level code that starts processes).
   * @throws {TypeError} When the module of the target or subclass cannot be told.
   * @throws {DOMException} (`DataCloneError`) When an argument cannot travel to another process.
   * @throws {Deno.errors.NotCapable} Without `--allow-run`.
   */
  start(): Promise<void> {
    this.#checkOpen("start");
    if (this.#popen) throw new Error(`Cannot start ${this.#name}: a process can be started only once`);
    const fds: number[] = [];
    const target = this.#target;
    const className = this.constructor === Process ? null : this.constructor.name;
    const s = state();
    const importing = s.bootstrapping && s.moduleUrl;
    checkStart("process", { name: this.#name, target, className, module: this.#module, importing });
    // Serializing first: a value that cannot travel throws here, before anything is spawned.
    const fields = className ? { ...this } : undefined;
    const body = serialize({ args: this.#args, fields }, { passFd: (fd) => (fds.push(fd), fd) });
    const tracker = trackerFd();
    const header: ChildHeader = {
      identity: this.#identity,
      name: this.#name,
      daemon: this.#daemon,
      parent: { pid: Deno.pid, name: state().name },
      trackerFd: tracker,
      target: target ? describeFunction(target) : null,
      className,
      builtin: this.#builtin,
      module: this.#module ?? null,
      body,
    };
    const popen = new Popen(
      this,
      header,
      target || className || this.#builtin ? this.#module : undefined,
      fds,
    );
    this.#popen = popen;
    this.#exited = popen.exited;
    // Awaiting start() is optional: an unawaited failure is printed, and does not end the program.
    reportUnhandledStart(popen.started);
    return popen.started;
  }

  static {
    popenOf = (p) => p.#popen;
    setBuiltin = (p, name) => void (p.#builtin = name);
    exitedOf = (p) => p.#exited!;
  }

  /**
   * Waits until the process ends, or until `timeout` ms have passed (then check
   * {@linkcode Process.exitCode}: null while it runs).
   *
   * @param timeout Milliseconds; undefined or `Infinity` waits for as long as it takes.
   * @throws {Error} When the process was not started, or is closed.
   * @throws {TypeError} When `timeout` is not a number.
   */
  async join(timeout?: number): Promise<void> {
    this.#checkOpen("join");
    const ms = timeoutMs(timeout, `${this.#name}.join()`);
    if (!this.#exited) throw new Error(`Cannot join ${this.#name}: it was not started`);
    await joinWithin(this.#popen!, ms);
  }

  /** True from `start()` until the process has ended. */
  isAlive(): boolean {
    this.#checkOpen("isAlive");
    return this.#popen !== undefined && this.exitCode === null;
  }

  /**
   * Sends SIGTERM (nothing when it has ended already).
   *
   * @throws {Error} When the process was not started, or is closed.
   */
  terminate(): void {
    this.#signal("SIGTERM");
  }

  /**
   * Sends SIGKILL (nothing when it has ended already).
   *
   * @throws {Error} When the process was not started, or is closed.
   */
  kill(): void {
    this.#signal("SIGKILL");
  }

  #signal(signal: "SIGTERM" | "SIGKILL"): void {
    this.#checkOpen(signal === "SIGTERM" ? "terminate" : "kill");
    if (!this.#popen) throw new Error(`Cannot signal ${this.#name}: it was not started`);
    if (this.exitCode !== null) return;
    sendSignal(this.#popen.child.pid, signal);
  }

  /**
   * Releases the process's resources. Idempotent.
   *
   * @throws {Error} While the process still runs.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#popen && this.exitCode === null) {
      throw new Error(`Cannot close ${this.#name}: it is still running; join() or terminate() it first`);
    }
    this.#closed = true;
    // Not destroyed: the child has ended, so its socket reads EOF and closes by itself. Destroying
    // it before that EOF is read kept it (with this Process and its args) reachable for good.
  }

  /** Kills the process if it still runs, then releases it. */
  [Symbol.dispose](): void {
    if (this.#popen && this.exitCode === null) {
      sendSignal(this.#popen.child.pid, "SIGKILL");
      this.#popen.child.unref();
      return;
    }
    this.close();
  }

  /** Terminates the process if it still runs, waits for it, then releases it. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#popen && this.exitCode === null) {
      this.terminate();
      await this.#exited;
    }
    this.close();
  }

  /**
   * How the process prints (`console.log`, `Deno.inspect`), in Python's terms: its name, pid, its
   * parent's pid, and one of `initial` (not started), `started`, `stopped` with its exit code;
   * then `daemon` when it is one; `Process(closed)` once closed. A subclass prints its own class
   * name.
   *
   * @example
   * ```ts ignore
   * console.log(p); // Process(name="Process-2", pid=4312, parent=4300, started, daemon)
   * ```
   */
  [inspect](): string {
    return described(this.constructor.name, this.#closed, () => {
      const stopped = this.exitCode !== null;
      const pid = this.pid;
      return [
        `name=${JSON.stringify(this.#name)}`,
        ...(pid === undefined ? [] : [`pid=${pid}`]),
        `parent=${this.#parentPid}`,
        ...(stopped
          ? [`exitCode=${this.exitCode}`, "stopped"]
          : [this.#popen || this.#current ? "started" : "initial"]),
        ...(this.#daemon ? ["daemon"] : []),
      ];
    });
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new Error(`Cannot ${what} ${this.#name}: the process object is closed`);
  }
}

/** @internal Builds a process object inside its own child (see `_child.ts`). */
export function processForChild(
  cls: abstract new (...args: never[]) => Process,
  init: ChildInit,
  fields: Record<string, unknown> | undefined,
): Process {
  // Only Process's constructor runs: the subclass's ran in the parent, its fields come along.
  const p = construct(cls, init, { only: Process });
  if (fields) Object.assign(p, fields);
  return p;
}
