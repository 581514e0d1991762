/**
 * The seam between the pool's scheduler and the kind of worker it drives.
 *
 * The scheduler (`_pool_scheduler.ts`) knows nothing about processes: it asks a
 * {@linkcode SlotFactory} for a {@linkcode WorkerSlot}, sends it frames (batches of tasks, see
 * `_pool_worker.ts`) and hears back through {@linkcode SlotEvents}: each frame the worker sends,
 * a failure to start, and the end of the worker. A worker answers its tasks one by one, in the
 * order it got them, and each answer is written before the next task starts: so when a worker
 * ends, the oldest unanswered task is the one it was running.
 *
 * {@linkcode processSlots} is the implementation for processes (a `Process` running the
 * `pool-worker` entry point, frames on its control socket). A thread pool supplies another
 * factory (a Web Worker running the same worker loop, frames through `postMessage`, `terminate()`
 * as kill) and reuses the scheduler as it is.
 *
 * @module
 */
import type { WorkerArgs } from "./_pool_worker.ts";
import { ProcessError } from "./errors.ts";
import { type ControlChannel, controlChannel, Process, runBuiltin, whenExited } from "./process.ts";

/** What a worker reports to the scheduler. */
export interface SlotEvents {
  /** A frame the worker sent (its "ready" message first, then one answer per task). */
  frame(body: Uint8Array): void;
  /** It could not start; `transient` when it was killed while starting (worth a retry). */
  startFailed(error: unknown, transient: boolean): void;
  /** It has ended (after `startFailed`, if it never started). */
  exited(): void;
}

/** One worker, as the scheduler sees it. */
export interface WorkerSlot {
  /** For errors (`WorkerDiedError`): the OS pid, or a thread's id. */
  readonly pid: number | undefined;
  /** How it ended: an exit code, or -N for signal N; null while it runs. */
  readonly exitCode: number | null;
  /** Sends one frame; only after its ready message. */
  send(body: Uint8Array): void;
  /** Stops it now, whatever it is doing. */
  kill(): void;
  /** Asks an idle worker to end. */
  retire(): void;
  /** Resolves once it has ended, keeping the program alive meanwhile. */
  join(): Promise<void>;
}

/** What every worker of one pool is started with. */
export interface SlotSpec {
  /** The module that exports the task functions. */
  module: string;
  args: WorkerArgs;
}

/** Starts one worker. Throws when it cannot be started at all (e.g. the OS refused a process). */
export type SlotFactory = (spec: SlotSpec, events: SlotEvents) => WorkerSlot;

/**
 * @internal For tests: called before each worker process is spawned, with how many were spawned
 * before; a throw there is a failed spawn.
 */
export const poolTestHooks: { beforeSpawn?: (spawned: number) => void } = {};
let spawned = 0;

/** Workers as daemon processes running the `pool-worker` entry point of `_child.ts`. */
export function processSlots(spec: SlotSpec, events: SlotEvents): WorkerSlot {
  poolTestHooks.beforeSpawn?.(spawned);
  const process = new Process({ daemon: true, module: spec.module, args: [spec.args] });
  process.name = process.name.replace(/^Process/, "PoolWorker");
  runBuiltin(process, "pool-worker");
  let channel: ControlChannel | undefined;
  const started = process.start(); // throws when the spawn itself fails
  spawned++;
  started.then(
    () => channel = controlChannel(process, events.frame),
    (error) => events.startFailed(error, error instanceof ProcessError),
  );
  whenExited(process).then(events.exited);
  return {
    get pid() {
      return process.pid;
    },
    get exitCode() {
      return process.exitCode;
    },
    send: (body) => channel!.send(body),
    kill: () => process.kill(),
    retire: () => process.terminate(),
    join: () => process.join(),
  };
}
