/**
 * What a thread's realm knows about itself and shares with the program's other threads: who it
 * is, the process state it takes over from its parent, and three counters in shared memory
 * (thread names, idents, and the process's child numbers). Kept on `globalThis`, as `_state.ts`
 * keeps the process's, so that two copies of this module agree.
 *
 * @module
 */
import { type ProcessState, state } from "./_state.ts";
import type { PackedError } from "./_error_transport.ts";
import type { RunSpec } from "./_popen.ts";

/** Word of `ThreadInit.words`: set to 1 when the parent terminated the thread (it must not run its target). */
export const CANCEL = 0;
/** Word of `ThreadInit.words`: the thread's {@linkcode Stage}. */
export const STAGE = 1;
/** How far a thread is, in its `STAGE` word. */
export const Stage = { loading: 0, running: 1, ended: 2 } as const;

/** What the parent posts to a new thread (see `_thread_main.ts`). */
export interface ThreadInit extends RunSpec {
  ident: number;
  name: string;
  daemon: boolean;
  /** This process's state, which the thread's realm takes over. */
  process: Pick<ProcessState, "identity" | "name" | "daemon" | "parent" | "trackerFd" | "mainModule">;
  counters: SharedArrayBuffer;
  /** The words `CANCEL` and `STAGE`, shared with the parent (see `_thread_worker.ts`). */
  words: SharedArrayBuffer;
}

/** What a thread posts to its parent. */
export type ThreadReply =
  | { type: "started" }
  | { type: "failed"; error: PackedError; revived: boolean }
  | { type: "exit"; code: number }
  /** A builtin's control frame (see `runBuiltin` in `thread.ts`), in either direction. */
  | { type: "frame"; body: Uint8Array };

/** What a thread's own realm knows about the thread it runs. */
export interface Registry {
  /** [0]: threads named so far, [1]: last ident given, [2]: the process's child counter. */
  counters: Int32Array;
  current: { name: string; ident: number; daemon: boolean };
}

/** Index of the count of threads named so far. */
export const NAMES = 0;
/** Index of the last ident given. */
export const IDENTS = 1;
const CHILDREN = 2;
const KEY = Symbol.for("multiprocessing.thread");

/** This realm's registry (the main thread's, made on first use, unless this is a thread). */
export function registry(): Registry {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return g[KEY] ??= makeRegistry(new SharedArrayBuffer(3 * 4), {
    name: "MainThread",
    ident: 1,
    daemon: false,
  });
}

function makeRegistry(buffer: SharedArrayBuffer, current: Registry["current"]): Registry {
  const counters = new Int32Array(buffer);
  Atomics.compareExchange(counters, IDENTS, 0, 1); // the main thread is 1
  // The process's child counter lives in the shared block, so that children started by any
  // thread get distinct numbers (and names).
  const s = state();
  Atomics.compareExchange(counters, CHILDREN, 0, s.childCounter);
  Object.defineProperty(s, "childCounter", {
    get: () => Atomics.load(counters, CHILDREN),
    set: (v: number) => void Atomics.store(counters, CHILDREN, v),
    enumerable: true,
    configurable: true,
  });
  return { counters, current };
}

/** @internal Makes this realm the thread described by `init` (called first in a new thread). */
export function becomeThread(init: ThreadInit): void {
  const s = state();
  Object.assign(s, init.process);
  // deno-lint-ignore no-explicit-any
  (globalThis as any)[KEY] = makeRegistry(init.counters, {
    name: init.name,
    ident: init.ident,
    daemon: init.daemon,
  });
}
