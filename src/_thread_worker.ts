/**
 * The parent side of one thread (its Web Worker), as `_popen.ts` is a child process's: creating
 * the Worker, telling it who it is, hearing whether it found its target, its end.
 *
 * The Worker's main module is a two-line data: URL: it imports `_thread_main.ts`, then the
 * target's module. Messages on the Worker's own channel:
 *
 * - parent → thread: one `ThreadInit` (who the thread is, what to run); later, for a builtin
 *   (the ThreadPool's worker loop), `{ type: "frame", body }` messages;
 * - thread → parent: `started` or `failed` (the handshake), `frame` messages for a builtin, and
 *   last `exit` with its exit code, once its exit hooks have run.
 *
 * The fds passed to the thread are copies made for it; they are closed here if the thread never
 * took them over (it failed before reviving its args, or was terminated).
 *
 * Two words are shared with the thread (`words` of its init):
 * - `CANCEL` is set when it is terminated: a Worker terminated before it ran its first line may
 *   still run (Deno 2.9.6), and the thread checks the word before its target;
 * - `STAGE` says how far the thread is: `loading` (its modules), `running` (from its first line:
 *   any ending from then on runs its exit hooks, an uncaught error too), `ended` (its exit hooks
 *   have run, set by the last). The program's exit waits on it (`joinAtExit`): the `exit`
 *   message would need this thread's event loop, which does not run inside an exit hook.
 *
 * A Worker keeps this program alive while it is ref'd: until its answer, so that awaiting
 * start() keeps the program running even for a daemon thread; after that only a non-daemon
 * thread does (or someone joining it).
 *
 * @module
 */
import { close } from "../native/mod.ts";
import { type Child, childEnded, childStarted, type Joinable } from "./_children.ts";
import { type ControlChannel, Inbox } from "./_popen.ts";
import { unpackError } from "./_error_transport.ts";
import { importSource } from "./_import.ts";
import { handOver } from "./_resource.ts";
import { CANCEL, STAGE, Stage, type ThreadInit, type ThreadReply } from "./_thread_state.ts";
import { workerRef } from "./_worker_ref.ts";
import { ProcessError } from "./errors.ts";

/**
 * How long a thread that has not begun yet (it still loads its modules, or failed to) is waited
 * for at exit, in ms: a Worker that fails to load says so only through this thread's event loop,
 * which no longer runs then.
 */
const BEGIN_WAIT_MS = 10_000;

/** One started thread, seen from the program that started it; running until it has ended (`_children.ts`). */
export class ThreadWorker implements Child, Joinable {
  /** The object this thread belongs to (its `Thread`), for `activeThreads()`. */
  readonly owner: unknown;
  readonly name: string;
  readonly daemon: boolean;
  readonly worker: Worker;
  /** null until the thread ended; then its exit code (-15 after terminate()). */
  exitCode: number | null = null;
  /** Settles when the thread has ended. */
  readonly exited: Promise<void>;
  /** Settles once the thread has found its target (or rejects with why it could not). */
  readonly started: Promise<void>;
  #ended!: () => void;
  /** The fds duplicated for this thread, until it has taken them over. */
  #fds: number[];
  #refs = 0;
  /** The frames a builtin sends. */
  #inbox = new Inbox();
  /** Words shared with the thread: `CANCEL` and `STAGE` (see the module comment). */
  #words = new Int32Array(new SharedArrayBuffer(8));
  /** The pending start(), settled by the thread's first answer or by terminate(). */
  #handshake: { resolve(): void; reject(e: unknown): void } | undefined;

  /**
   * Creates the Worker at once and posts it `init`; it counts as running until it has ended.
   * `fds` (copies made for the thread) are this object's from now on, closed here when creating
   * the Worker fails.
   *
   * @param entryModule The module the thread imports to find its target or class, if any.
   */
  constructor(
    owner: unknown,
    init: Omit<ThreadInit, "words">,
    entryModule: string | undefined,
    fds: number[],
  ) {
    this.owner = owner;
    this.name = init.name;
    this.daemon = init.daemon;
    this.#fds = fds;
    // The names in the args (a lock, a queue) stay until the thread has opened them (`_resource.ts`).
    const handedOver = handOver();
    let worker: Worker;
    try {
      worker = new Worker(threadEntry(entryModule), {
        type: "module",
        // The ident in the Worker's name is known there before any module runs (see holderId).
        name: `${init.name} [mp-thread ${init.ident}]`,
      });
    } catch (e) {
      this.#closeFds();
      handedOver();
      throw e;
    }
    this.worker = worker;
    childStarted(this);
    this.exited = new Promise<void>((resolve) => this.#ended = resolve);
    // (`finally`: a new promise, so a failure nobody handles is still reported by the caller.)
    this.started = new Promise<void>((resolve, reject) => this.#handshake = { resolve, reject }).finally(
      handedOver,
    );
    // A Worker starts ref'd: until the thread answers, so that awaiting start() keeps this
    // program running even for a daemon thread; after that only a non-daemon thread does.
    this.#refs = 1;
    worker.onmessage = (e: MessageEvent<ThreadReply>) => {
      const msg = e.data;
      if (msg.type === "frame") {
        this.#inbox.push(msg.body);
        return;
      }
      if (msg.type === "started") {
        this.#fds = []; // the thread owns them now
        this.#handshake?.resolve();
      } else if (msg.type === "failed") {
        if (msg.revived) this.#fds = [];
        this.#handshake?.reject(unpackError(msg.error));
      } else if (msg.type === "exit") {
        this.#end(msg.code);
        return;
      }
      this.#handshake = undefined;
      this.unref();
    };
    worker.onerror = (e: ErrorEvent) => {
      // An error the thread did not catch (in a callback, a promise nobody awaited, or while
      // loading): the Worker is done for, and Deno has printed the error with the thread's name.
      e.preventDefault();
      const hint = /Requires read access/.test(e.message)
        ? " (a thread loads this library and its target's module in a Worker, and Deno checks what a Worker loads against --allow-read: grant read access to both)"
        : "";
      this.#handshake?.reject(
        new ProcessError(`${this.name} failed before it could run its target: ${e.message}${hint}`),
      );
      this.#handshake = undefined;
      this.#end(1);
    };
    const message: ThreadInit = { ...init, words: this.#words.buffer as SharedArrayBuffer };
    worker.postMessage(message);
  }

  #end(code: number): void {
    if (this.exitCode !== null) return;
    this.exitCode = code;
    // A Worker terminated before it ran its first line may still run (Deno 2.9.6): the thread
    // checks this word before it runs its target.
    Atomics.store(this.#words, CANCEL, 1);
    this.#handshake?.reject(new Error(`${this.name} was terminated before it could run its target`));
    this.#handshake = undefined;
    childEnded(this);
    this.worker.terminate();
    this.#closeFds();
    this.#refs = 0;
    this.#inbox.clear();
    this.#ended();
  }

  #closeFds(): void {
    for (const fd of this.#fds.splice(0)) close(fd);
  }

  /** Keeps this program alive while the thread runs (for someone joining a daemon thread). */
  ref(): void {
    if (this.#refs++ === 0 && this.daemon) workerRef?.call(this.worker, true);
  }

  /** Undoes one {@linkcode ThreadWorker.ref}. */
  unref(): void {
    if (this.exitCode !== null) return; // ended: nothing is ref'd any more
    if (--this.#refs === 0 && this.daemon) workerRef?.call(this.worker, false);
  }

  /** Ends the Worker at once, with exit code -15; the fds passed to it stay open. */
  terminate(): void {
    if (this.exitCode !== null) return;
    this.#fds = []; // it may have closed some: never close an fd number twice
    this.#end(-15);
  }

  /**
   * Blocks this thread until the thread has ended: it has run its exit hooks, the last of which
   * sets `STAGE` to `ended` (at exit, as Python's `threading._shutdown`). A thread that has not
   * begun yet is waited for at most {@linkcode BEGIN_WAIT_MS}: it may have failed to load.
   */
  joinAtExit(): void {
    const words = this.#words;
    const begin = performance.now() + BEGIN_WAIT_MS;
    for (let stage; (stage = Atomics.load(words, STAGE)) !== Stage.ended;) {
      const left = begin - performance.now();
      if (stage === Stage.loading && left <= 0) {
        console.error(
          `${this.name} was not waited for: it had not begun ${BEGIN_WAIT_MS} ms after the program ended (did it fail to load its module?)`,
        );
        return;
      }
      Atomics.wait(words, STAGE, stage, stage === Stage.loading ? left : undefined);
    }
  }

  /** Takes over the thread's control channel: frames it sends arrive in `onMessage`. */
  channel(onMessage: (frame: Uint8Array) => void): ControlChannel {
    this.#inbox.take(onMessage);
    const worker = this.worker;
    return {
      send: (body) => {
        if (this.exitCode === null) worker.postMessage({ type: "frame", body });
      },
    };
  }
}

function threadEntry(module: string | undefined): string {
  const entry = new URL("./_thread_main.ts", import.meta.url).href;
  const load = module ? importSource(module) : "null";
  return `data:application/javascript,${
    encodeURIComponent(`import { main } from ${JSON.stringify(entry)};\nDeno.exit(await main(${load}));\n`)
  }`;
}
