/**
 * The thread side of `Thread.start()`: the entry of the Web Worker, as `_child.ts` is a child
 * process's. The Worker's main module is a data: URL that calls {@linkcode main} with a loader
 * for the target's module.
 *
 * The thread ends through `Deno.exit(code)`, which in a Worker ends only the Worker, after its
 * exit hooks (`_exit.ts`): its queues hand over their items, the fd-holding objects it was given
 * are closed (its copies of the fds, see `thread.ts`), and last it posts its exit code.
 *
 * A later pool worker loop runs here as well: after the handshake, instead of `run()`, a builtin
 * loop reads tasks from the Worker's message channel (see the report of issue 13).
 *
 * @module
 */
// Every class of the library registers how it travels when its module loads: load them all, so
// arguments revive even when the target's module imports the library for its types only.
import { Connection, Queue, SimpleQueue } from "../mod.ts";
import { findClass, findExport } from "./_child.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { deserialize } from "./_reduction.ts";
import { state } from "./_state.ts";
import { activeChildren } from "./process.ts";
import { becomeThread, type ThreadInit, type ThreadReply } from "./_thread_state.ts";
import { activeThreads, Thread } from "./thread.ts";

type Module = Record<string, unknown>;

declare const self: { postMessage(msg: ThreadReply): void; addEventListener: typeof addEventListener };

/** Runs this thread: receives its init, finds its target, reports back, runs it, ends. */
export async function main(load: (() => Promise<Module>) | null): Promise<void> {
  const init = await new Promise<ThreadInit>((resolve) =>
    self.addEventListener("message", (e) => resolve((e as MessageEvent<ThreadInit>).data), { once: true })
  );
  becomeThread(init);
  const s = state();
  s.moduleUrl = init.module;
  const reply = (msg: ThreadReply) => self.postMessage(msg);
  let owned: unknown[] = [];
  // Posted last at exit: the parent's join() returns once everything above has run.
  atExit(ExitPhase.threadEnd, () => {
    closeOwned(owned);
    reply({ type: "exit", code: Number(Deno.exitCode) });
  });

  let thread: Thread;
  let mod: Module = {};
  let args: unknown[] = [];
  let revived = false;
  try {
    s.bootstrapping = true;
    try {
      mod = load ? await load() : {};
    } finally {
      s.bootstrapping = false;
    }
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
    thread = Thread._forThread(cls, { init, target, args: body.args }, body.fields);
  } catch (error) {
    console.error(`Thread ${init.name}: cannot start: ${error instanceof Error ? error.message : error}`);
    reply({ type: "failed", error, revived });
    closeOwned(owned);
    owned = [];
    Deno.exit(1);
  }
  reply({ type: "started" });

  let code = 0;
  try {
    if (init.builtin === "pool-worker") {
      const { poolWorker } = await import("./_pool_worker.ts");
      code = await poolWorker(init.controlFd!, mod, args, init.module);
    } else {
      await thread.run();
    }
  } catch (error) {
    console.error(`Thread ${init.name}:`);
    console.error(error instanceof Error ? error.stack ?? String(error) : Deno.inspect(error));
    code = 1;
  }
  // As Python: the program (here: the thread) waits for its non-daemon threads and children.
  await Promise.all([...activeChildren(), ...activeThreads()].filter((p) => !p.daemon).map((p) => p.join()));
  Deno.exit(code);
}

/**
 * Closes the connections and queues found in what this thread was given: they hold its own
 * copies of fds, which close when it ends as a process's do (close() is idempotent).
 */
function closeOwned(values: unknown[]): void {
  const seen = new Set<unknown>();
  const visit = (v: unknown): void => {
    if (typeof v !== "object" || v === null || seen.has(v)) return;
    seen.add(v);
    if (v instanceof Connection || v instanceof Queue || v instanceof SimpleQueue) {
      try {
        v.close();
      } catch {
        // ending anyway
      }
      return;
    }
    if (v instanceof Map) { for (const [k, x] of v) visit(k), visit(x); }
    else if (v instanceof Set || Array.isArray(v)) { for (const x of v) visit(x); }
    else if (Object.getPrototypeOf(v) === Object.prototype) { for (const x of Object.values(v)) visit(x); }
  };
  values.forEach(visit);
}
