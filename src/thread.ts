/**
 * Threads with the same API as processes (CPython: `threading.Thread`), on Deno Web Workers.
 *
 * `start()` creates a module Worker whose main module is a two-line data: URL, as a child
 * process's is: it imports `_thread_main.ts`, then the target's module. The parent posts one
 * message with who the thread is and what to run (target name and source, subclass name, args);
 * the thread answers once it has found its target (`start()` settles then), and once more when it
 * has ended (`join()` returns then). Nothing else runs on the message channel. That parent side
 * of one Worker (creating it, its messages, its end) is `_thread_worker.ts`; the thread's side is
 * `_thread_main.ts`.
 *
 * What travels: the args (and a subclass's own enumerable fields) go through the library's
 * `serialize()`, as for a child process, so its locks, queues, pipes and shared memory revive in
 * the thread. A Worker shares this process's fds, but a thread gets its own copy (a `dup`) of
 * every fd passed to it: the thread and this program close their copies independently, and a
 * reader sees EOF once every copy of the write end is closed — this program's, each process's
 * and each thread's (a thread's copies close when it ends), exactly as with child processes.
 *
 * A Worker has a realm of its own: the thread is told that it is a thread of this process (its
 * `currentProcess()` is this process's, it writes to the same resource tracker) and shares three
 * counters with every other thread of the program (thread names, idents, child numbers). It holds
 * locks under an id of its own (`holderId` in `_state.ts`), so locks exclude threads of one
 * process from each other. It ends through its own exit hooks (`_exit.ts`): what it created
 * (named semaphores, queues, child processes, threads) ends or is unlinked when it ends, as a
 * process's would; the processes and threads it started are joined first (non-daemon) or end
 * (daemon: SIGTERM for a process).
 *
 * Permissions: a Worker has this program's permissions, but Deno checks every module it loads
 * against `--allow-read` (a main module's static imports are not): a thread needs read access to
 * this library's files and to its target's module, besides the `--allow-ffi` the library needs.
 *
 * @module
 */
import { close, dupFd } from "../native/mod.ts";
import { checkStart, describeFunction, reportUnhandledStart, targetOptions } from "./_caller.ts";
import { adopted, construct } from "./_adopt.ts";
import { serialize } from "./_reduction.ts";
import { state } from "./_state.ts";
import { IDENTS, NAMES, registry, type ThreadInit } from "./_thread_state.ts";
import { trackerFd } from "./_tracker.ts";
import { canRunDeno } from "./_spawn.ts";
import { timeoutMs } from "./_wait.ts";
import { joinWithin } from "./_children.ts";
import { described, inspect } from "./_inspect.ts";
import type { ProcessOptions } from "./process.ts";
import type { ControlChannel } from "./_popen.ts";
import { ThreadWorker } from "./_thread_worker.ts";

/** How a thread is built inside its Worker (see `_thread_main.ts`). */
export interface ThreadBuild {
  init: ThreadInit;
  target: ((...args: unknown[]) => unknown) | undefined;
  args: unknown[];
}

/** The control channel of a started thread, for the library's own protocols (the Pool's). */
export type { ControlChannel } from "./_popen.ts";
let channelOf: (t: Thread, onMessage: (frame: Uint8Array) => void) => ControlChannel;
let setBuiltin: (t: Thread, name: string) => void;
let exitedOf: (t: Thread) => Promise<void>;

/**
 * @internal Makes the thread run one of the library's own entry points instead of `run()`, with
 * a control channel as a child process has: frames travel as `{ type: "frame", body }` messages
 * on the Worker's own message channel. As fast as a socketpair read with blocking calls in the
 * thread (a ThreadPool apply round trip: 100-140 µs either way, on 2 busy cores), but an idle
 * thread only waits for a message, so `terminate()` stops it at once, and it needs no fds. The
 * same three functions as `process.ts`'s, so a pool can start either kind of worker.
 */
export function runBuiltin(t: Thread, name: string): void {
  setBuiltin(t, name);
}

/** @internal Takes over a started thread's control channel: frames it sends arrive in `onMessage`. */
export function controlChannel(t: Thread, onMessage: (frame: Uint8Array) => void): ControlChannel {
  return channelOf(t, onMessage);
}

/** @internal Settles when a started thread has ended, without keeping this program alive. */
export function whenExited(t: Thread): Promise<void> {
  return exitedOf(t);
}

/**
 * A thread running a function of yours in a Web Worker, as Python's `threading.Thread`, with the
 * same options and members as {@linkcode Process}. The target must be exported from its module
 * (the thread imports that module, as a child process does).
 *
 * @example Run a function in a thread
 * ```ts
 * import { Thread } from "@mp/multiprocessing";
 *
 * export function greet(who: string) {
 *   console.log(`hello ${who}`);
 * }
 *
 * if (import.meta.main) {
 *   const t = new Thread({ target: greet, args: ["bob"] });
 *   await t.start();
 *   await t.join();
 *   console.log(t.exitCode); // 0
 * }
 * ```
 */
// deno-lint-ignore no-explicit-any
export class Thread<A extends unknown[] = any[]> {
  #target: ((...args: unknown[]) => unknown) | undefined;
  #args: unknown[];
  #name: string;
  #daemon: boolean;
  #module: string | undefined;
  #ident: number | undefined;
  #worker: ThreadWorker | undefined;
  #builtin: string | null = null;

  /** Describes the thread; nothing runs until {@linkcode Thread.start}. */
  constructor(options: ProcessOptions<A> = {} as ProcessOptions<A>) {
    const building = adopted<ThreadBuild>(new.target);
    if (building) {
      // Rebuilding this thread's own object inside its Worker (see `_thread_main.ts`).
      const { init, target, args } = building;
      this.#target = target;
      this.#args = args;
      this.#name = init.name;
      this.#daemon = init.daemon;
      this.#module = init.module ?? undefined;
      this.#ident = init.ident;
      return;
    }
    const { target, args, name, daemon, module } = targetOptions(options, "Thread");
    this.#target = target as ((...args: unknown[]) => unknown) | undefined;
    this.#args = args;
    this.#daemon = daemon;
    this.#module = module;
    this.#name = name ?? `Thread-${Atomics.add(registry().counters, NAMES, 1) + 1}`;
  }

  /** The thread's name; only for display and `currentThread()`. */
  get name(): string {
    return this.#name;
  }
  set name(value: string) {
    if (typeof value !== "string") throw new TypeError("Invalid name: expected a string");
    this.#name = value;
  }

  /**
   * How the thread prints (`console.log`, `Deno.inspect`): its name, ident, and one of `initial`
   * (not started), `started`, `stopped` with its exit code; then `daemon` when it is one. A
   * subclass prints its own class name.
   *
   * @example
   * ```ts ignore
   * console.log(t); // Thread(name="Thread-1", ident=2, started, daemon)
   * ```
   */
  [inspect](): string {
    return described(this.constructor.name, false, () => {
      const stopped = this.exitCode !== null;
      return [
        `name=${JSON.stringify(this.#name)}`,
        ...(this.#ident === undefined ? ["initial"] : [`ident=${this.#ident}`]),
        ...(stopped
          ? [`exitCode=${this.exitCode}`, "stopped"]
          : this.#ident === undefined
          ? []
          : ["started"]),
        ...(this.#daemon ? ["daemon"] : []),
      ];
    });
  }

  /** Whether this is a daemon (it does not keep the program alive); settable only before `start()`. */
  get daemon(): boolean {
    return this.#daemon;
  }
  set daemon(value: boolean) {
    if (this.#worker) throw new Error(`Cannot set daemon of ${this.#name}: it has already started`);
    this.#daemon = Boolean(value);
  }

  /** A number unique among the threads of this program; undefined before `start()`. */
  get ident(): number | undefined {
    return this.#ident;
  }

  /**
   * null until the thread ended; then 0 (run() returned), 1 (it threw, or an error nobody caught
   * ended it), n after `Deno.exit(n)` in the thread (which ends only the thread), -15 after
   * `terminate()`.
   */
  get exitCode(): number | null {
    return this.#worker?.exitCode ?? null;
  }

  /** The work of the thread: calls `target(...args)`. Subclasses may override it. */
  run(): unknown {
    return this.#target?.(...this.#args);
  }

  /**
   * Starts the Worker at once. The returned promise resolves when the thread has found its
   * target (or rejects with a `TypeError` saying what to export); awaiting it is optional: a
   * failure nobody handles is printed once, and the program goes on.
   *
   * @returns A promise that settles once the thread has found its target.
   * @throws {Error} When the thread was already started, or when this program is still importing
   * its module (top-level code that starts threads).
   * @throws {TypeError} When the module of the target or subclass cannot be told.
   * @throws {DOMException} (`DataCloneError`) When an argument cannot travel to a thread.
   */
  start(): Promise<void> {
    if (this.#worker) throw new Error(`Cannot start ${this.#name}: a thread can be started only once`);
    const target = this.#target;
    const className = this.constructor === Thread ? null : this.constructor.name;
    const importing = state().bootstrapping && state().moduleUrl;
    checkStart("thread", { name: this.#name, target, className, module: this.#module, importing });
    const reg = registry();
    // Serializing first: a value that cannot travel throws here, before anything starts. Each fd
    // travels as a copy of its own (see the module comment).
    const fields = className ? { ...this } : undefined;
    const fds: number[] = [];
    let body: Uint8Array;
    try {
      body = serialize({ args: this.#args, fields }, { passFd: (fd) => (fds.push(dupFd(fd)), fds.at(-1)!) });
    } catch (e) {
      for (const fd of fds) close(fd);
      throw e;
    }
    const s = state();
    const init: Omit<ThreadInit, "words"> = {
      ident: Atomics.add(reg.counters, IDENTS, 1) + 1,
      name: this.#name,
      daemon: this.#daemon,
      process: {
        identity: s.identity,
        name: s.name,
        daemon: s.daemon,
        parent: s.parent,
        // The tracker must be this program's (a process started from a Worker dies with it).
        trackerFd: canRunDeno() ? trackerFd() : s.trackerFd,
        mainModule: s.mainModule,
      },
      counters: reg.counters.buffer as SharedArrayBuffer,
      target: target ? describeFunction(target) : null,
      className,
      builtin: this.#builtin,
      module: this.#module ?? null,
      body,
    };
    const entryModule = target || className || this.#builtin ? this.#module : undefined;
    this.#worker = new ThreadWorker(this, init, entryModule, fds);
    this.#ident = init.ident;
    // Awaiting start() is optional: an unawaited failure is printed, and does not end the program.
    reportUnhandledStart(this.#worker.started);
    return this.#worker.started;
  }

  /**
   * Waits until the thread ends, or until `timeout` ms have passed (then check
   * {@linkcode Thread.exitCode}: null while it runs).
   *
   * @param timeout Milliseconds; undefined or `Infinity` waits for as long as it takes.
   * @throws {Error} When the thread was not started.
   * @throws {TypeError} When `timeout` is not a number.
   */
  async join(timeout?: number): Promise<void> {
    const ms = timeoutMs(timeout, "join");
    if (!this.#worker) throw new Error(`Cannot join ${this.#name}: it was not started`);
    await joinWithin(this.#worker, ms);
  }

  /** True from `start()` until the thread has ended. */
  isAlive(): boolean {
    return this.#worker !== undefined && this.#worker.exitCode === null;
  }

  /**
   * Ends the Worker at once (Python's threads cannot be ended from outside; this is the Worker's
   * `terminate()`). Nothing of the thread runs any more: its queues do not hand over items they
   * had not written yet, and the fds passed to it stay open until the program ends (a reader
   * waiting for EOF from a terminated thread's writer waits forever), and a lock it holds stays
   * held. A blocking call (`acquireSync()`, a sync read) is not interrupted: the Worker stops when
   * that call returns. Its exit code becomes -15.
   *
   * @throws {Error} When the thread was not started.
   */
  terminate(): void {
    if (!this.#worker) throw new Error(`Cannot terminate ${this.#name}: it was not started`);
    this.#worker.terminate();
  }

  static {
    channelOf = (t, onMessage) => {
      if (!t.#builtin || !t.#worker || t.#worker.exitCode !== null) {
        throw new Error(`Cannot talk to ${t.#name}: it runs no builtin, or has not started, or has ended`);
      }
      return t.#worker.channel(onMessage);
    };
    setBuiltin = (t, name) => void (t.#builtin = name);
    exitedOf = (t) => t.#worker!.exited;
  }

  /** Terminates the thread if it still runs, and waits until it has ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#worker) return;
    if (this.#worker.exitCode === null) this.terminate();
    await this.#worker.exited;
  }
}

/** @internal Builds a thread object inside its own Worker (see `_thread_main.ts`). */
export function threadForWorker(
  cls: abstract new (...args: never[]) => Thread,
  build: ThreadBuild,
  fields: Record<string, unknown> | undefined,
): Thread {
  // Only Thread's constructor runs: the subclass's ran in the parent, its fields come along.
  const t = construct(cls, build, { only: Thread });
  if (fields) Object.assign(t, fields);
  return t;
}
