/**
 * The child side of `Process.start()` (CPython: `spawn.py`). The child's main module is a data:
 * URL that calls {@linkcode main} with a loader for the target's module.
 *
 * @module
 */
import { closeOnExecFrom, getppid, setParentDeathSignal } from "../native/mod.ts";
// Every class of the library registers how it travels when its module loads: load them all, so
// arguments revive even when the target's module imports the library for its types only.
import "../mod.ts";
import { readFrameSync, writeFrameSync } from "./_frames.ts";
import { deserialize, serialize } from "./_reduction.ts";
import { state } from "./_state.ts";
import { findExport } from "./_caller.ts";
import { packError } from "./_error_transport.ts";
import type { ChildHeader } from "./_popen.ts";
import { nonDaemonsEnded } from "./_children.ts";
import { Process, processForChild } from "./process.ts";

type Module = Record<string, unknown>;

/** Runs this child: receives its header, finds its target, reports back, runs it, exits. */
export async function main(load: (() => Promise<Module>) | null): Promise<never> {
  // What this process inherited (its control socket, the tracker's pipe, the fds of its args)
  // arrived without close-on-exec, since the parent cleared the flag for its spawn. Set it again
  // before anything else runs: otherwise every process this one starts (a grandchild, a plain
  // `Deno.Command`) holds copies, and a reader whose writer is gone never sees EOF. A spawn that
  // passes an fd on purpose clears the flag around that spawn only (`_spawn.ts`).
  closeOnExecFrom(3);
  // No child outlives its parent: the kernel kills us when the parent dies (checked below for
  // a parent that died before this line ran).
  setParentDeathSignal("SIGKILL");
  // The control channel: blocking reads and writes, as this process has nothing else to do yet.
  const control = Number(Deno.args[0]);
  const frame = readFrameSync(control);
  if (!frame) Deno.exit(1);
  const header = deserialize(frame) as ChildHeader;
  if (getppid() !== header.parent.pid) Deno.exit(1);

  const s = state();
  s.identity = header.identity;
  s.name = header.name;
  s.daemon = header.daemon;
  s.parent = header.parent;
  s.trackerFd = header.trackerFd;
  s.moduleUrl = header.module;

  const reply = (msg: unknown) => writeFrameSync(control, serialize(msg));
  let process: Process;
  let mod: Module = {};
  let args: unknown[] = [];
  try {
    // The module first: importing it registers how this library's objects in the args revive.
    mod = await importModule(load, header.module, "child process");
    const body = deserialize(header.body) as { args: unknown[]; fields?: Record<string, unknown> };
    args = body.args;
    const fields = body.fields;
    const cls = header.className ? findClass(mod, header, Process) : Process;
    const target = header.target ? findTarget(mod, header) : undefined;
    process = processForChild(cls, { header, target, args }, fields);
  } catch (error) {
    // Not printed here: start() rejects with it, and the parent prints it when nobody handles
    // that rejection (`reportUnhandledStart`).
    reply({ ok: false, error: packError(error) });
    Deno.exit(1);
  }
  reply({ ok: true });

  Deno.exit(
    await runWork(`Process ${s.name}`, async () => {
      if (header.builtin !== "pool-worker") return void await process.run();
      const { poolWorker } = await import("./_pool_worker.ts");
      return await poolWorker(control, mod, args, header.module);
    }),
  );
}

/**
 * Runs the work of a child process or thread (its `run()`, or a builtin that resolves to its exit
 * code) and resolves to its exit code: 0, or 1 when it threw, after printing the error's stack
 * under `title` (`Process <name>` or `Thread <name>`). Then, as Python, it waits for its own
 * non-daemon children and threads.
 */
export async function runWork(title: string, work: () => Promise<number | void>): Promise<number> {
  let code = 0;
  try {
    code = await work() ?? 0;
  } catch (error) {
    console.error(`${title}:`);
    console.error(error instanceof Error ? error.stack ?? String(error) : Deno.inspect(error));
    code = 1;
  }
  await nonDaemonsEnded();
  return code;
}

/**
 * Imports the target's module (`load`) in a child process or thread (`kind`), flagged as
 * bootstrapping meanwhile (starting a process or thread then is an error, see `checkStart`).
 */
export async function importModule(
  load: (() => Promise<Module>) | null,
  module: string | null,
  kind: "child process" | "thread",
): Promise<Module> {
  const s = state();
  s.bootstrapping = true;
  try {
    return load ? await load() : {};
  } catch (error) {
    throw whileImporting(error, module, kind);
  } finally {
    s.bootstrapping = false;
  }
}

/**
 * The error of a child (`kind`: "child process" or "thread") whose module threw while it was
 * imported, with a message that says so: the module's top-level code runs again in every child
 * that imports it (a `Deno.serve()` there fails with "Address already in use"). The error keeps
 * its class and name.
 */
export function whileImporting(error: unknown, module: string | null, kind: string): unknown {
  if (!(error instanceof Error) || /import\.meta\.main/.test(error.message)) return error;
  const notLoaded = error instanceof SyntaxError ||
    /^(Module not found|Relative import path|Import )/.test(error.message);
  const old = error.message;
  error.message = `the ${kind} was importing ${module} (to find its target) when it failed: ${old}` +
    (notLoaded ? "" : `. Importing a module runs its top-level code again in every ${kind}: ` +
      "put top-level side effects (Deno.serve(), writing files, starting processes) under " +
      "`if (import.meta.main) { ... }` so that they run only in the main program.");
  const stack = error.stack ?? "";
  const at = stack.indexOf("\n    at ");
  error.stack = `${error.name}: ${error.message}${at >= 0 ? stack.slice(at) : ""}`;
  return error;
}

function findTarget(mod: Module, header: ChildHeader): (...args: unknown[]) => unknown {
  return findExport(mod, header.target!, header.module, `Cannot start process "${header.name}": its target`);
}

/**
 * Finds an exported subclass of `base` (`Process`, or `Thread` for a thread) by its name; a
 * TypeError that says what to export otherwise.
 */
export function findClass<C extends abstract new (...args: never[]) => object>(
  mod: Module,
  { name, className, module }: { name: string; className: string | null; module: string | null },
  base: C = Process as unknown as C,
): C {
  const cls = mod[className!];
  if (typeof cls === "function" && cls.prototype instanceof base) return cls as C;
  const kind = base.name.toLowerCase();
  throw new TypeError(
    `Cannot start ${kind} "${name}": its class ${className} is not exported from ${module}. ` +
      `Export the class (export class ${className} extends ${base.name} { ... }) so the ${
        kind === "process" ? "child process" : kind
      } can import it, ` +
      `or pass { module } naming the module that exports it.`,
  );
}
