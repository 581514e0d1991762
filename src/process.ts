/**
 * Real OS processes (CPython: `process.py` and `popen_spawn_posix.py`).
 *
 * `start()` spawns a fresh `deno run` whose main module is a two-line data: URL: it imports
 * `_child.ts`, then the target's module through a literal `import()` (statically analyzable, so
 * the child needs no read permission for it). Parent and child share a Unix socket pair:
 *
 * - parent → child: one frame with who the child is and what to run (target name, args);
 * - child → parent: one frame saying whether the target was found;
 * - and, for as long as both live, the child's end reads EOF if the parent dies.
 *
 * On Linux the child also asks the kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG), so
 * no child outlives a parent killed by SIGKILL.
 *
 * @module
 */
import type { Socket } from "node:net";
import {
  close,
  kill as sendSignal,
  setNonBlocking,
  signalNumber,
  socketpair,
  waitForChildExit,
  write,
} from "../native/mod.ts";
import { describeFunction, reportUnhandledStart, targetOptions } from "./_caller.ts";
import { encodeFrame, onFrames } from "./_frames.ts";
import { deserialize, serialize } from "./_reduction.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { adopted, construct } from "./_adopt.ts";
import { raceTimeout, timeoutMs } from "./_wait.ts";
import { spawnDeno } from "./_spawn.ts";
import { state } from "./_state.ts";
import { trackerFd } from "./_tracker.ts";
import { ProcessError } from "./errors.ts";
import { described, inspect, withInspect } from "./_inspect.ts";

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

/** What the parent sends the child first (plain data). */
export interface ChildHeader {
  identity: number[];
  name: string;
  daemon: boolean;
  parent: { pid: number; name: string };
  trackerFd: number;
  /** Export name and source text of the target, when there is one. */
  target: { name: string; source: string } | null;
  /** Export name of the Process subclass, when it is one. */
  className: string | null;
  /** One of the library's own child entry points (see `_child.ts`), instead of `run()`. */
  builtin: string | null;
  module: string | null;
  /** `serialize()`d `{ args, fields }`, revived only once the child knows who it is. */
  body: Uint8Array;
}

/** What a child process is built from on its side (see `_child.ts`). */
export interface ChildInit {
  header: ChildHeader;
  target: ((...args: unknown[]) => unknown) | undefined;
  args: unknown[];
}

// node:net costs ~15 ms to load: only a parent loads it, once it starts a child.
let net: Promise<typeof import("node:net")> | undefined;
function loadNet(): Promise<typeof import("node:net")> {
  return net ??= import("node:net");
}

/** The control socket of a started child, for the library's own protocols (the Pool's). */
export interface ControlChannel {
  send(body: Uint8Array): void;
}
let channelOf: (p: Process, onMessage: (frame: Uint8Array) => void) => ControlChannel;
let setBuiltin: (p: Process, name: string) => void;
let exitedOf: (p: Process) => Promise<void>;
let toldOf: (p: Process) => boolean;

/** @internal Settles when a started child has ended, without keeping this program alive. */
export function whenExited(p: Process): Promise<void> {
  return exitedOf(p);
}

/**
 * @internal Takes over a started child's control socket once its handshake is done: frames the
 * child sends arrive in `onMessage`.
 */
export function controlChannel(p: Process, onMessage: (frame: Uint8Array) => void): ControlChannel {
  return channelOf(p, onMessage);
}

/** @internal Makes the child run one of the library's own entry points instead of `run()`. */
export function runBuiltin(p: Process, name: string): void {
  setBuiltin(p, name);
}
const running = new Set<Process>();
let exitHookInstalled = false;

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
  #child: Deno.ChildProcess | undefined;
  #socket: Socket | undefined;
  #builtin: string | null = null;
  #exitCode: number | null = null;
  #exited: Promise<void> | undefined;
  #joiners = 0;
  /** Whether the child has received its whole header (until then it cannot run anything). */
  #told = false;
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
    if (this.#child) throw new Error(`Cannot set daemon of ${this.#name}: it has already started`);
    this.#daemon = Boolean(value);
  }

  /** The OS process id; undefined before `start()` (inside the child: its own pid). */
  get pid(): number | undefined {
    return this.#current ? Deno.pid : this.#child?.pid;
  }

  /** null until the process ended; then its exit code, or -N when signal N ended it. */
  get exitCode(): number | null {
    return this.#exitCode;
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
    if (this.#child) throw new Error(`Cannot start ${this.#name}: a process can be started only once`);
    if (state().bootstrapping) {
      // Python's "attempt to start a new process before the current process has finished its
      // bootstrapping phase": every child would start children of its own, without end.
      throw new Error(
        `Cannot start ${this.#name}: this child process is still importing ${
          state().moduleUrl ?? "its module"
        }, ` +
          "whose top-level code starts processes. Put that code under `if (import.meta.main) { ... }` " +
          "so that it runs only in the main program.",
      );
    }
    const fds: number[] = [];
    const target = this.#target;
    const className = this.constructor === Process ? null : this.constructor.name;
    if ((target || className) && !this.#module) {
      throw new TypeError(
        `Cannot start ${this.#name}: cannot tell which module exports its ${
          className ? "class" : "target"
        }; pass { module: import.meta.url } from that module`,
      );
    }
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
    const [mine, theirs] = socketpair();
    let child: Deno.ChildProcess;
    try {
      child = spawnDeno({
        // The name last, for `ps` and /proc/<pid>/cmdline to say which process this is.
        args: [
          childEntry(target || className || this.#builtin ? this.#module : undefined),
          String(theirs),
          this.#name,
        ],
        fds: [theirs, tracker, ...fds],
      });
    } catch (e) {
      close(mine);
      throw e;
    } finally {
      close(theirs);
    }
    this.#child = child;
    running.add(this);
    installExitHook();
    if (this.#daemon) child.unref();
    // The control socket is not destroyed here: the child's last frames (its "found the target"
    // reply above all) may still be unread in it. It closes by itself at EOF, which comes once
    // the child has ended (no other process holds the child's end: see `_child.ts`).
    this.#exited = child.status.then((status) => {
      this.#exitCode = status.signal ? -(signalNumber(status.signal) ?? 0) : status.code;
      running.delete(this);
    });
    // The header goes out now, as far as the socket's buffer takes it (all of it, unless the args
    // are large): a program that calls Deno.exit() right after start() still runs the child, as
    // Python's does. The rest, if any, follows through the event loop.
    const frame = encodeFrame(serialize(header)) as Uint8Array<ArrayBuffer>;
    setNonBlocking(mine, true);
    const sent = Math.max(0, write(mine, frame));
    this.#told = sent === frame.length;
    const started = this.#handshake(mine, frame.subarray(sent));
    // Awaiting start() is optional: an unawaited failure is printed, and does not end the program.
    reportUnhandledStart(started);
    return started;
  }

  /** `rest`: what the child has still to receive of its header. */
  async #handshake(fd: number, rest: Uint8Array): Promise<void> {
    const { Socket } = await loadNet();
    const socket = new Socket({ fd, readable: true, writable: true });
    this.#socket = socket;
    socket.on("error", () => {}); // a child that dies resets the socket; its exit code tells why
    let handshake: { resolve(): void; reject(e: unknown): void } | undefined;
    const done = new Promise<void>((resolve, reject) => handshake = { resolve, reject });
    onFrames(socket, (frame) => {
      if (!handshake) {
        if (this.#onMessage) this.#onMessage(frame);
        else this.#early.push(frame);
        return;
      }
      const reply = deserialize(frame) as { ok: true } | { ok: false; error: unknown; name?: string };
      if (reply.ok) handshake.resolve();
      else handshake.reject(withName(reply.error, reply.name));
      handshake = undefined;
    });
    // A child that ended without answering: decide only once its socket is read to the end (the
    // answer may be there, behind the exit status, which often arrives first) and its exit code
    // is known.
    const drained = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    Promise.all([drained, this.#exited!]).then(() =>
      handshake?.reject(
        new ProcessError(
          `${this.#name} exited with code ${this.#exitCode} before it could run its target (its stderr says why)`,
        ),
      )
    );
    if (rest.length > 0) socket.write(rest, () => void (this.#told = true));
    // Ref'd until the child answers, so that awaiting start() keeps this program running even
    // for a daemon child; after that only a non-daemon child does.
    try {
      await done;
    } finally {
      socket.unref();
    }
  }

  #onMessage: ((frame: Uint8Array) => void) | undefined;
  /** Frames that arrived after the handshake, before anyone took the channel. */
  #early: Uint8Array[] = [];

  static {
    channelOf = (p, onMessage) => {
      p.#onMessage = onMessage;
      const early = p.#early.splice(0);
      if (early.length) queueMicrotask(() => early.forEach(onMessage));
      const socket = p.#socket!;
      return { send: (body) => void socket.write(encodeFrame(body)) };
    };
    setBuiltin = (p, name) => void (p.#builtin = name);
    exitedOf = (p) => p.#exited!;
    toldOf = (p) => p.#told;
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
    if (this.#exitCode !== null || ms <= 0) return;
    // A daemon child does not keep the program alive, but someone waiting for it must.
    this.#joiners++;
    this.#child!.ref();
    try {
      await raceTimeout(this.#exited, ms);
    } finally {
      if (--this.#joiners === 0 && this.#daemon) this.#child!.unref();
    }
  }

  /** True from `start()` until the process has ended. */
  isAlive(): boolean {
    this.#checkOpen("isAlive");
    return this.#child !== undefined && this.#exitCode === null;
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
    if (!this.#child) throw new Error(`Cannot signal ${this.#name}: it was not started`);
    if (this.#exitCode !== null) return;
    sendSignal(this.#child.pid, signal);
  }

  /**
   * Releases the process's resources. Idempotent.
   *
   * @throws {Error} While the process still runs.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#child && this.#exitCode === null) {
      throw new Error(`Cannot close ${this.#name}: it is still running; join() or terminate() it first`);
    }
    this.#closed = true;
    // Not destroyed: the child has ended, so its socket reads EOF and closes by itself. Destroying
    // it before that EOF is read kept it (with this Process and its args) reachable for good.
  }

  /** Kills the process if it still runs, then releases it. */
  [Symbol.dispose](): void {
    if (this.#child && this.#exitCode === null) {
      sendSignal(this.#child.pid, "SIGKILL");
      this.#child.unref();
      return;
    }
    this.close();
  }

  /** Terminates the process if it still runs, waits for it, then releases it. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#child && this.#exitCode === null) {
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
      const stopped = this.#exitCode !== null;
      const pid = this.pid;
      return [
        `name=${JSON.stringify(this.#name)}`,
        ...(pid === undefined ? [] : [`pid=${pid}`]),
        `parent=${this.#parentPid}`,
        ...(stopped
          ? [`exitCode=${this.#exitCode}`, "stopped"]
          : [this.#child || this.#current ? "started" : "initial"]),
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

/**
 * `error` with the class name it had in the child (structured clone keeps only the standard ones:
 * a `ConfigError` or Deno's `AddrInUse` would arrive as `Error`).
 */
export function withName(error: unknown, name: string | undefined): unknown {
  if (error instanceof Error && name && error.name !== name) {
    Object.defineProperty(error, "name", { value: name, writable: true, configurable: true });
  }
  return error;
}

function childEntry(module: string | undefined): string {
  const child = new URL("./_child.ts", import.meta.url).href;
  const load = module ? `()=>import(${JSON.stringify(module)})` : "null";
  // Escaped only where a URL needs it (not every "/"), so that `ps` shows a readable line.
  const source = `import{main}from${JSON.stringify(child)};await main(${load});`;
  return `data:application/javascript,${source.replace(/[^\x21-\x7e]|[%#?]/g, encodeURIComponent)}`;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // As Python at sys.exit() or after an uncaught exception: the program ends only once its
  // non-daemon children have. At a normal end there are none left (each kept the event loop
  // alive); after Deno.exit() or an uncaught error they may still run. The hook is synchronous,
  // so it blocks the thread, leaving each exit status for Deno to collect. (Signals that end this
  // process without running code, SIGKILL or an unhandled SIGTERM/SIGINT, end the children too:
  // each asked for SIGKILL at its parent's death.)
  atExit(ExitPhase.joinChildren, () => {
    for (const p of running) {
      if (p.daemon || p.pid === undefined) continue;
      if (!toldOf(p)) {
        // It still waits for the rest of its header, which nothing will send now: it has run
        // nothing, and would wait forever.
        console.error(`${p.name} did not run: the program ended before its arguments were sent to it`);
        sendSignal(p.pid, "SIGKILL");
      }
      waitForChildExit(p.pid);
    }
  }, { needed: () => [...running].some((p) => !p.daemon) });
  // Daemon children end with their parent (non-daemon ones kept the parent alive until now).
  atExit(ExitPhase.daemons, () => {
    for (const p of running) {
      if (p.daemon && p.pid !== undefined) {
        try {
          sendSignal(p.pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
    }
  });
}

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
  return [...running];
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
