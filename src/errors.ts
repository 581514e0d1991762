/**
 * The error classes of the public API. Each sets `name`, so it survives `structuredClone` and
 * reads well in a stack trace.
 *
 * @module
 */

/**
 * Raised by a process-level failure, e.g. a child that died before it could run its target.
 *
 * @example A child that exits before it runs its target
 * ```ts
 * import { Process, ProcessError } from "@mp/multiprocessing";
 *
 * export function work() {}
 *
 * if (import.meta.main) {
 *   const p = new Process({ target: work });
 *   try {
 *     await p.start();
 *   } catch (e) {
 *     if (e instanceof ProcessError) console.error(`could not start: ${e.message}`);
 *     else throw e;
 *   }
 *   await p.join();
 * }
 * ```
 */
export class ProcessError extends Error {
  /** Always `"ProcessError"`. */
  override name = "ProcessError";
}

/**
 * `Queue.get()` found no item (non-blocking, or after the timeout).
 *
 * @example Take an item if there is one
 * ```ts
 * import { Queue, QueueEmptyError } from "@mp/multiprocessing";
 *
 * const q = new Queue<number>();
 * try {
 *   await q.get({ timeout: 10 });
 * } catch (e) {
 *   if (!(e instanceof QueueEmptyError)) throw e;
 *   console.log("nothing yet");
 * }
 * q.close();
 * ```
 */
export class QueueEmptyError extends Error {
  /** Always `"QueueEmptyError"`. */
  override name = "QueueEmptyError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "Queue is empty", options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * `Queue.put()` found no room (non-blocking, or after the timeout).
 *
 * @example A full bounded queue
 * ```ts
 * import { Queue, QueueFullError } from "@mp/multiprocessing";
 *
 * const q = new Queue<number>(1);
 * await q.put(1);
 * try {
 *   await q.put(2, { block: false });
 * } catch (e) {
 *   if (!(e instanceof QueueFullError)) throw e;
 *   console.log("full");
 * }
 * q.close();
 * ```
 */
export class QueueFullError extends Error {
  /** Always `"QueueFullError"`. */
  override name = "QueueFullError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "Queue is full", options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * `recv()` reached the end of the stream: every copy of the other end is closed.
 *
 * @example Read until the writer is gone
 * ```ts
 * import { EOFError, Pipe } from "@mp/multiprocessing";
 *
 * const [reader, writer] = Pipe<string>({ duplex: false });
 * await writer.send("last");
 * writer.close();
 * try {
 *   for (;;) console.log(await reader.recv());
 * } catch (e) {
 *   if (!(e instanceof EOFError)) throw e;
 * }
 * reader.close();
 * ```
 */
export class EOFError extends Error {
  /** Always `"EOFError"`. */
  override name = "EOFError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "End of stream: every copy of the other end is closed", options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * `recvBytesInto()` got a message longer than the buffer; `data` holds the whole message.
 *
 * @example A message that does not fit
 * ```ts
 * import { BufferTooShortError, Pipe } from "@mp/multiprocessing";
 *
 * const [a, b] = Pipe();
 * await a.sendBytes(new Uint8Array(16));
 * try {
 *   await b.recvBytesInto(new Uint8Array(4));
 * } catch (e) {
 *   if (!(e instanceof BufferTooShortError)) throw e;
 *   console.log(e.data.length); // 16
 * }
 * a.close();
 * b.close();
 * ```
 */
export class BufferTooShortError extends Error {
  /** Always `"BufferTooShortError"`. */
  override name = "BufferTooShortError";
  /** The whole message that did not fit. */
  readonly data: Uint8Array;
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(data: Uint8Array, message = `Buffer too short for a message of ${data.length} bytes`) {
    super(message);
    this.data = data;
  }
}

/**
 * A `Barrier` was aborted or reset, or a wait on it timed out.
 *
 * @example A party that waits alone
 * ```ts
 * import { Barrier, BrokenBarrierError } from "@mp/multiprocessing";
 *
 * const barrier = new Barrier(2);
 * try {
 *   await barrier.wait(10);
 * } catch (e) {
 *   if (!(e instanceof BrokenBarrierError)) throw e;
 *   console.log(barrier.broken); // true
 * }
 * barrier.close();
 * ```
 */
export class BrokenBarrierError extends Error {
  /** Always `"BrokenBarrierError"`. */
  override name = "BrokenBarrierError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "Barrier is broken", options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * The other side of a connection did not prove it knows the authkey.
 *
 * @example Connecting to a manager with the wrong key
 * ```ts
 * import { AuthenticationError, Manager } from "@mp/multiprocessing";
 *
 * const manager = await Manager.start({ authkey: new TextEncoder().encode("right") });
 * try {
 *   await Manager.connect({ address: manager.address, authkey: new TextEncoder().encode("wrong") });
 * } catch (e) {
 *   if (!(e instanceof AuthenticationError)) throw e;
 *   console.log(e.message);
 * } finally {
 *   await manager.shutdown();
 * }
 * ```
 */
export class AuthenticationError extends Error {
  /** Always `"AuthenticationError"`. */
  override name = "AuthenticationError";
}

/**
 * An exception raised inside a manager's server process; `remoteName` is its name there.
 *
 * @example A method the server refuses
 * ```ts
 * import { Manager, RemoteError } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const list = await manager.list<number>([1, 2]);
 * try {
 *   await list.remove(3);
 * } catch (e) {
 *   if (!(e instanceof RemoteError)) throw e;
 *   console.log(e.remoteName, e.message);
 * }
 * ```
 */
export class RemoteError extends Error {
  /** Always `"RemoteError"`. */
  override name = "RemoteError";
  /** The name of the error in the server, e.g. `"KeyError"`. */
  readonly remoteName: string;
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(remoteName: string, message: string, options?: ErrorOptions) {
    super(`${remoteName}: ${message}`, options);
    this.remoteName = remoteName;
  }
}

/**
 * A pool worker died (killed, exited, out of memory) while running a task; the pool replaces it.
 *
 * @example A task that ends its worker
 * ```ts
 * import { Pool, WorkerDiedError } from "@mp/multiprocessing";
 *
 * export function quits() {
 *   Deno.exit(3);
 * }
 *
 * if (import.meta.main) {
 *   await using pool = new Pool({ processes: 1 });
 *   try {
 *     await pool.apply(quits);
 *   } catch (e) {
 *     if (!(e instanceof WorkerDiedError)) throw e;
 *     console.log(e.pid, e.exitCode); // ... 3
 *   }
 * }
 * ```
 */
export class WorkerDiedError extends Error {
  /** Always `"WorkerDiedError"`. */
  override name = "WorkerDiedError";
  /** The pid of the worker process that died; in a `ThreadPool`, the `ident` of its thread. */
  readonly pid: number;
  /** Its exit code, or -N when signal N killed it. */
  readonly exitCode: number | null;
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(pid: number, exitCode: number | null, message?: string) {
    super(message ?? `Pool worker ${pid} died while running this task (exit code ${exitCode})`);
    this.pid = pid;
    this.exitCode = exitCode;
  }
}
