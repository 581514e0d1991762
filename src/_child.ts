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
import { findClass, findExport } from "./_caller.ts";
import { importTarget } from "./_import.ts";
import { packError } from "./_error_transport.ts";
import type { ChildHeader } from "./_popen.ts";
import { runWork } from "./_children.ts";
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
    mod = await importTarget(load, header.module, "child process");
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

function findTarget(mod: Module, header: ChildHeader): (...args: unknown[]) => unknown {
  return findExport(mod, header.target!, header.module, `Cannot start process "${header.name}": its target`);
}
