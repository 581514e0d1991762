/**
 * The seam between the pool's scheduler and the kind of worker it drives.
 *
 * The scheduler (`_pool_scheduler.ts`) knows nothing about processes: a {@linkcode WorkerKind}
 * makes its {@linkcode WorkerSlot}s and one block of progress words. The scheduler sends a slot
 * frames (batches of tasks, see `_pool_worker.ts`) and hears back through
 * {@linkcode SlotEvents}: each frame the worker sends, a failure to start, and the end of the
 * worker. A worker answers its tasks in the order it got them, and stores each task's id in its
 * progress word before it runs it: so when a worker ends, the scheduler knows which task it was
 * running, even if the worker was still holding some answers.
 *
 * {@linkcode processWorkers} is the kind for processes: a `Process` running the `pool-worker`
 * entry point, frames on its control socket, progress words in a `SharedMemory` block. A thread
 * pool supplies another kind (a Web Worker running the same `serveTasks` loop, frames through
 * `postMessage`, `terminate()` as kill, progress words on a `SharedArrayBuffer`) and reuses the
 * scheduler as it is.
 *
 * @module
 */
import { SharedMemory } from "./shared_memory.ts";
import { ProcessError } from "./errors.ts";
import type { ControlChannel } from "./_popen.ts";
import { controlChannel, Process, runBuiltin, whenExited } from "./process.ts";

/** What the pool gives each worker as its Process args. */
export interface WorkerArgs {
  initializer: { name: string; source: string } | null;
  initargs: unknown[];
  maxTasks: number | null;
  /**
   * Words shared with the parent (a process pool's SharedMemory; a thread pool can pass an
   * Int32Array on a SharedArrayBuffer): the worker stores each task's id before running it.
   */
  progress: SharedMemory | Int32Array | null;
  /** This worker's word in `progress`. */
  lane: number;
}

/** Task ids as stored in a progress word. */
export const ID_MASK = 0x7fff_ffff;
/** A worker holds answers at most this long (ms) before it writes them. */
export const FLUSH_MS = 1;

/** The Int32 words over a progress block. */
export function progressWords(p: SharedMemory | Int32Array | null): Int32Array | null {
  if (!(p instanceof SharedMemory)) return p;
  return new Int32Array(p.buf.buffer, p.buf.byteOffset, p.size >> 2);
}

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

/** What a worker is started with. */
export interface SlotSpec {
  /** The module that exports the task functions. */
  module: string;
  args: WorkerArgs;
}

/** Words shared by the parent and its workers, one per worker (see `WorkerArgs.progress`). */
export interface ProgressBlock {
  words: Int32Array;
  /** What travels to a worker in its args. */
  handle: SharedMemory | Int32Array;
  /** Frees the block (idempotent). */
  dispose(): void;
}

/** A kind of worker: how to start one, and where progress words live. */
export interface WorkerKind {
  /** Starts one worker. Throws when it cannot be started at all (the OS refused a process). */
  spawn(spec: SlotSpec, events: SlotEvents): WorkerSlot;
  /** A block of `lanes` progress words. */
  progress(lanes: number): ProgressBlock;
}

/**
 * @internal For tests: called before each worker process is spawned; a throw there is a failed
 * spawn (as when the OS refuses a process).
 */
export const poolTestHooks: { beforeSpawn?: () => void } = {};

/** Workers as daemon processes running the `pool-worker` entry point of `_child.ts`. */
export const processWorkers: WorkerKind = { spawn: spawnProcess, progress: sharedProgress };

/** Progress words in a `SharedMemory` block (it travels to processes and threads alike). */
export function sharedProgress(lanes: number): ProgressBlock {
  const shm = new SharedMemory({ create: true, size: lanes * 4 });
  let open = true;
  return {
    words: progressWords(shm)!,
    handle: shm,
    dispose() {
      if (!open) return;
      open = false;
      shm.unlink();
      shm.close();
    },
  };
}

function spawnProcess(spec: SlotSpec, events: SlotEvents): WorkerSlot {
  poolTestHooks.beforeSpawn?.();
  const process = new Process({ daemon: true, module: spec.module, args: [spec.args] });
  process.name = process.name.replace(/^Process/, "PoolWorker");
  runBuiltin(process, "pool-worker");
  let channel: ControlChannel | undefined;
  // start() throws when the spawn itself fails.
  process.start().then(
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
