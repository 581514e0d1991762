/**
 * The thread side of `Thread.start()`: the entry of the Web Worker, as `_child.ts` is a child
 * process's. The Worker's main module is a data: URL that calls {@linkcode main} with a loader
 * for the target's module.
 *
 * The thread ends through `Deno.exit(code)`, which in a Worker ends only the Worker, after its
 * exit hooks (`_exit.ts`): its queues hand over their items, the library objects it was given
 * are closed (its own handles and copies of fds, see `thread.ts`), and last it posts its exit code.
 *
 * A ThreadPool's worker loop (`serveTasks` of `_pool_worker.ts`) runs here as well: after the
 * handshake, instead of `run()`, it reads its frames from the Worker's message channel.
 *
 * @module
 */
// Every class of the library registers how it travels when its module loads: load them all, so
// arguments revive even when the target's module imports the library for its types only.
import "../mod.ts";
import { findClass, findExport } from "./_caller.ts";
import { runWork } from "./_children.ts";
import { importTarget } from "./_import.ts";
import { packError } from "./_error_transport.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { deserialize } from "./_reduction.ts";
import { state } from "./_state.ts";
import type { WorkerArgs } from "./_pool_slot.ts";
import { becomeThread, CANCEL, STAGE, Stage, type ThreadInit, type ThreadReply } from "./_thread_state.ts";
import { Thread, threadForWorker } from "./thread.ts";

type Module = Record<string, unknown>;

declare const self: { postMessage(msg: ThreadReply): void; addEventListener: typeof addEventListener };

/**
 * Runs this thread: receives its init, finds its target, reports back, runs it. Resolves to the
 * exit code, for the entry to pass to `Deno.exit()` at its top level: a Worker that ends itself
 * from inside a function its top-level code awaits leaks its event loop's fds (an epoll and an
 * eventfd, measured with Deno 2.9.6).
 */
export async function main(load: (() => Promise<Module>) | null): Promise<number> {
  const init = await new Promise<ThreadInit>((resolve) =>
    self.addEventListener("message", (e) => resolve((e as MessageEvent<ThreadInit>).data), { once: true })
  );
  becomeThread(init);
  const s = state();
  s.moduleUrl = init.module;
  const reply = (msg: ThreadReply) => self.postMessage(msg);
  let owned: unknown[] = [];
  const words = new Int32Array(init.words);
  // Posted last at exit: the parent's join() returns once everything above has run; a parent
  // that is exiting itself waits for STAGE instead (it reads no messages any more). `needed`:
  // an uncaught error ends the thread through its exit hooks too, so that STAGE is always set.
  atExit(ExitPhase.threadEnd, () => {
    closeOwned(owned);
    reply({ type: "exit", code: Number(Deno.exitCode) });
    Atomics.store(words, STAGE, Stage.ended);
    Atomics.notify(words, STAGE);
  }, { needed: () => true });
  Atomics.store(words, STAGE, Stage.running);

  let thread: Thread;
  let mod: Module = {};
  let args: unknown[] = [];
  let revived = false;
  try {
    mod = await importTarget(load, init.module, "thread");
    const body = deserialize(init.body) as { args: unknown[]; fields?: Record<string, unknown> };
    owned = [body];
    args = body.args;
    revived = true;
    const cls = init.className ? findClass(mod, init, Thread) : Thread;
    const target = init.target
      ? findExport(
        mod,
        init.target,
        init.module,
        `Cannot start thread "${init.name}": its target`,
        "the thread",
      )
      : undefined;
    thread = threadForWorker(cls, { init, target, args: body.args }, body.fields);
  } catch (error) {
    // Not printed here: start() rejects with it (see `reportUnhandledStart`).
    reply({ type: "failed", error: packError(error), revived });
    closeOwned(owned);
    owned = [];
    return 1;
  }
  // terminate() may come before the Worker could be stopped: then nothing of the user's runs.
  if (Atomics.load(words, CANCEL) === 1) {
    closeOwned(owned);
    owned = [];
    return -15;
  }
  reply({ type: "started" });

  return await runWork(`Thread ${init.name}`, async () => {
    if (init.builtin !== "pool-worker") return void await thread.run();
    const { serveTasks } = await import("./_pool_worker.ts");
    const read = frameReader();
    return await serveTasks(
      read,
      (body) => reply({ type: "frame", body }),
      mod,
      args[0] as WorkerArgs,
      init.module,
    );
  });
}

/**
 * The frames the parent sends a builtin (see `runBuiltin` in `thread.ts`): a read returns the next
 * one, waiting for it (the loop has nothing else to do meanwhile), null for the end. Listening from now on: the
 * parent sends nothing before the builtin says it is ready.
 */
function frameReader(): () => Uint8Array | null | Promise<Uint8Array | null> {
  const frames: (Uint8Array | null)[] = [];
  let waiting: ((body: Uint8Array | null) => void) | undefined;
  self.addEventListener("message", (e) => {
    const msg = (e as MessageEvent<ThreadReply>).data;
    if (msg?.type !== "frame") return;
    // An empty frame is the end (no batch serializes to nothing): the loop returns, and the
    // thread ends through its exit hooks, as a retired worker process does on SIGTERM.
    const body = msg.body.length === 0 ? null : msg.body;
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(body);
    } else frames.push(body);
  });
  return () => frames.length ? frames.shift()! : new Promise((resolve) => waiting = resolve);
}

/**
 * Closes this thread's handles on the library objects it was given (its copies of fds, its
 * mappings and semaphore handles), as a process's exit does: nothing else closes them, as a
 * Worker's realm ends without running finalizers. Only handles: a revived object never unlinks
 * names (its creator does), and close() is idempotent. Everything in the args with a class of
 * its own is one of the library's objects (structured clone makes any other instance a plain
 * object), so whatever has a close() method is closed.
 */
function closeOwned(values: unknown[]): void {
  const seen = new Set<unknown>();
  const visit = (v: unknown): void => {
    if (typeof v !== "object" || v === null || seen.has(v)) return;
    seen.add(v);
    if (v instanceof Map) { for (const [k, x] of v) visit(k), visit(x); }
    else if (v instanceof Set || Array.isArray(v)) { for (const x of v) visit(x); }
    else if (isPlain(v)) { for (const x of Object.values(v)) visit(x); }
    else if (typeof (v as { close?: unknown }).close === "function") {
      try {
        (v as { close(): void }).close();
      } catch {
        // ending anyway
      }
    }
  };
  values.forEach(visit);
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
