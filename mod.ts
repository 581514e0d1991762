/**
 * Python's `multiprocessing` for Deno: real OS processes, and the locks, queues, pipes, pools
 * and shared memory that work across them, on libc through Deno's FFI.
 *
 * @example Run a function in another process
 * ```ts
 * import { Process } from "@mp/multiprocessing";
 *
 * export function work(n: number) {
 *   console.log(`${n} squared is ${n * n}`);
 * }
 *
 * if (import.meta.main) {
 *   const p = new Process({ target: work, args: [7] });
 *   await p.start();
 *   await p.join();
 * }
 * ```
 *
 * @module
 */
export { Process, type ProcessOptions } from "./src/process.ts";
export {
  activeChildren,
  cpuCount,
  type CurrentProcess,
  currentProcess,
  type ParentProcess,
  parentProcess,
} from "./src/current_process.ts";
export { Thread } from "./src/thread.ts";
export { activeThreads, type CurrentThread, currentThread } from "./src/current_thread.ts";
export {
  AuthenticationError,
  BrokenBarrierError,
  BufferTooShortError,
  EOFError,
  ProcessError,
  QueueEmptyError,
  QueueFullError,
  RemoteError,
  WorkerDiedError,
} from "./src/errors.ts";
export { Connection } from "./src/connection.ts";
export { Pipe, wait } from "./src/pipe.ts";
export {
  type ApplyOptions,
  AsyncResult,
  type MapAsyncOptions,
  type MapOptions,
  Pool,
  type PoolOptions,
} from "./src/pool.ts";
export { ThreadPool } from "./src/thread_pool.ts";
export { type AcquireOptions, type AcquireSyncOptions, Lock, RLock } from "./src/lock.ts";
export { BoundedSemaphore, Semaphore } from "./src/semaphore.ts";
export { Event } from "./src/event.ts";
export { Condition } from "./src/condition.ts";
export { Barrier, type BarrierOptions } from "./src/barrier.ts";
export { Queue, type QueueWaitOptions } from "./src/queue.ts";
export { JoinableQueue } from "./src/joinable_queue.ts";
export { SimpleQueue } from "./src/simple_queue.ts";
export { SharedMemory, type SharedMemoryOptions } from "./src/shared_memory.ts";
export {
  SharedArray,
  type SharedTypedArray,
  type SharedValueOptions,
  type TypeCode,
  Value,
  type Widen,
} from "./src/shared_value.ts";
export {
  BarrierProxy,
  BaseProxy,
  BoundedSemaphoreProxy,
  ConditionProxy,
  DictProxy,
  EventProxy,
  JoinableQueueProxy,
  ListProxy,
  LockProxy,
  Manager,
  type ManagerAddress,
  type ManagerConnectOptions,
  type ManagerStartOptions,
  NamespaceProxy,
  ObjectProxy,
  QueueProxy,
  type Remote,
  RLockProxy,
  SemaphoreProxy,
  ValueProxy,
} from "./src/manager.ts";
