/**
 * The pool's worker kind for threads (CPython: `multiprocessing.pool.ThreadPool`): each worker is
 * a daemon {@linkcode Thread} running the same `serveTasks` loop as a worker process, with its
 * frames on the Worker's message channel (the thread's builtin control channel, see `thread.ts`)
 * and its progress words in a `SharedMemory` block mapped by every worker, as a process pool's.
 * Killing a worker is the Worker's `terminate()` (an idle worker only waits for a message, so it
 * stops at once; a task's synchronous blocking call still runs to its end). Retiring one sends it
 * an empty frame: it ends as a thread does, through its exit hooks (its queues hand over).
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
  // start() throws when the Worker cannot be made; it rejects when the thread cannot load its
  // module (not transient: a new thread would fail the same way), or when it was terminated
  // while starting (transient, as a worker process killed while starting: replace it).
  thread.start().then(
    () => channel = controlChannel(thread, events.frame),
    (error) => events.startFailed(error, thread.exitCode === -15),
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
    // An empty frame ends the loop: the thread exits (code 0) through its exit hooks.
    retire: () => channel ? channel.send(new Uint8Array(0)) : thread.terminate(),
    join: () => thread.join(),
  };
}
