/**
 * The pool's worker kind for threads (CPython: `multiprocessing.pool.ThreadPool`): each worker is
 * a daemon {@linkcode Thread} running the same `serveTasks` loop as a worker process, over the
 * same transport: frames on a socketpair that the thread reads with blocking calls (they block
 * only its Worker), progress words in a `SharedMemory` block mapped by every worker. Killing a
 * worker is the Worker's `terminate()`; a retired idle worker sees EOF on its socket and ends.
 *
 * Why a socketpair and not `postMessage`: the thread already has that channel (its builtin entry
 * point, see `thread.ts`), so one worker loop and one frame format serve both pools, and the
 * progress words and the scheduler are the process pool's unchanged.
 *
 * @module
 */
import { type SlotEvents, type SlotSpec, type WorkerKind, type WorkerSlot } from "./_pool_slot.ts";
import { sharedProgress } from "./_pool_slot.ts";
import { type ControlChannel, controlChannel, runBuiltin, Thread, whenExited } from "./thread.ts";

/** Workers as daemon threads running the `pool-worker` builtin of `_thread_main.ts`. */
export const threadWorkers: WorkerKind = { spawn: spawnThread, progress: sharedProgress };

function spawnThread(spec: SlotSpec, events: SlotEvents): WorkerSlot {
  const thread = new Thread({ daemon: true, module: spec.module, args: [spec.args] });
  thread.name = thread.name.replace(/^Thread/, "ThreadPoolWorker");
  runBuiltin(thread, "pool-worker");
  let channel: ControlChannel | undefined;
  // start() throws when the Worker cannot be made; it rejects when the thread cannot find its
  // module (that is no transient failure: a new thread would fail the same way).
  thread.start().then(
    () => channel = controlChannel(thread, events.frame),
    (error) => events.startFailed(error, false),
  );
  whenExited(thread).then(events.exited);
  return {
    get pid() {
      return thread.ident;
    },
    get exitCode() {
      return thread.exitCode;
    },
    send: (body) => channel!.send(body),
    kill: () => thread.terminate(),
    retire: () => thread.terminate(),
    join: () => thread.join(),
  };
}
