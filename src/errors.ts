/**
 * The error classes of the public API. Each sets `name`, so it survives `structuredClone` and
 * reads well in a stack trace.
 *
 * @module
 */

/** Raised by a process-level failure, e.g. a child that died before it could run its target. */
export class ProcessError extends Error {
  /** Always `"ProcessError"`. */
  override name = "ProcessError";
}

/** `Queue.get()` found no item (non-blocking, or after the timeout). */
export class QueueEmptyError extends Error {
  /** Always `"QueueEmptyError"`. */
  override name = "QueueEmptyError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "Queue is empty", options?: ErrorOptions) {
    super(message, options);
  }
}

/** `Queue.put()` found no room (non-blocking, or after the timeout). */
export class QueueFullError extends Error {
  /** Always `"QueueFullError"`. */
  override name = "QueueFullError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "Queue is full", options?: ErrorOptions) {
    super(message, options);
  }
}

/** `recv()` reached the end of the stream: every copy of the other end is closed. */
export class EOFError extends Error {
  /** Always `"EOFError"`. */
  override name = "EOFError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "End of stream: every copy of the other end is closed", options?: ErrorOptions) {
    super(message, options);
  }
}

/** `recvBytesInto()` got a message longer than the buffer; `data` holds the whole message. */
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

/** A `Barrier` was aborted or reset, or a wait on it timed out. */
export class BrokenBarrierError extends Error {
  /** Always `"BrokenBarrierError"`. */
  override name = "BrokenBarrierError";
  /** Creates the error; the arguments are as `Error`\'s unless named otherwise. */
  constructor(message = "Barrier is broken", options?: ErrorOptions) {
    super(message, options);
  }
}

/** The other side of a connection did not prove it knows the authkey. */
export class AuthenticationError extends Error {
  /** Always `"AuthenticationError"`. */
  override name = "AuthenticationError";
}

/** An exception raised inside a manager's server process. */
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

/** A pool worker died (killed, exited, out of memory) while running a task. */
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
