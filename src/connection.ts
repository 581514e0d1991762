/**
 * Connections and pipes between processes (CPython: `connection.py`).
 *
 * A {@linkcode Connection} owns one file descriptor: an end of a Unix socket pair (a duplex
 * pipe) or an end of an OS pipe (one-way). Messages travel as frames: a 4-byte little-endian
 * length, then the body; a length of `0xFFFFFFFF` announces an 8-byte length after it, for
 * messages of 4 GiB and more. `send()` frames the structured-clone bytes of a value,
 * `sendBytes()` frames raw bytes; an empty message is a message.
 *
 * Who holds which end, and what end-of-stream means: the fds are close-on-exec, so a child gets
 * an end when it is passed as a `Process` argument (it then inherits that fd, under the same
 * number), and any process gets one that arrives inside a message (a queue item, a `send()`, a
 * pool task or result: see `_fd_sharer.ts`; until it is received, the sending process holds it).
 * `recv()` reports the end of the stream ({@linkcode EOFError}) once every copy of the other end
 * is closed, in every process. A stream that ends in the middle of a message is a
 * different error (`Deno.errors.UnexpectedEof`): the writer died while it was sending.
 *
 * Reads and writes are non-blocking `read()`/`write()` calls through FFI, and reads are exact
 * (a header, then its body): a process never takes bytes beyond the message it returns, so
 * several processes may share one end, as in CPython. When the fd is not ready, a wait first
 * spins for a few tens of microseconds (an answer from a busy peer usually comes that fast, and
 * catching it this way costs ~5 µs instead of an event-loop wake-up), then sleeps in `poll()` on
 * a worker thread, so the event loop keeps running. Spinning backs off for a while each time it
 * did not pay.
 *
 * @module
 */
import {
  close as closeFd,
  OS,
  pipe,
  pollFds,
  pollFdsAsync,
  read as readFd,
  setNonBlocking,
  setSendBufferSize,
  socketpair,
  write as writeFd,
} from "../native/mod.ts";
import { SLICE_MS, Waiter } from "./_fd_wait.ts";
import { described, inspect } from "./_inspect.ts";
import { Deadline, sleep, timeoutMs } from "./_wait.ts";
import { deserialize, receivedFd, registerReducer, serialize } from "./_reduction.ts";
import { BufferTooShortError, EOFError } from "./errors.ts";
import type { Process } from "./process.ts";

/** Length values at and above this take the 8-byte form. */
const LONG_LENGTH = 0xffff_ffff;
/** The send buffer a duplex pipe asks for (default 208 KiB; capped by net.core.wmem_max). */
const SEND_BUFFER = 1 << 20;
/** Bodies up to this size are copied next to their header and written with one syscall. */
const COPY_LIMIT = 64 * 1024;
/** Encodes a frame header for a body of `size` bytes. */
function header(size: number): Uint8Array<ArrayBuffer> {
  if (size < LONG_LENGTH) {
    const h = new Uint8Array(4);
    new DataView(h.buffer).setUint32(0, size, true);
    return h;
  }
  const h = new Uint8Array(12);
  const view = new DataView(h.buffer);
  view.setUint32(0, LONG_LENGTH, true);
  view.setBigUint64(4, BigInt(size), true);
  return h;
}

function asBytes(buf: ArrayBufferView | ArrayBuffer, what: string): Uint8Array<ArrayBuffer> {
  if (
    buf instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer !== "undefined" && buf instanceof SharedArrayBuffer)
  ) {
    return new Uint8Array(buf as ArrayBuffer);
  }
  if (ArrayBuffer.isView(buf)) {
    return new Uint8Array(buf.buffer as ArrayBuffer, buf.byteOffset, buf.byteLength);
  }
  throw new TypeError(`Invalid buffer for ${what}: expected an ArrayBuffer or a typed array / DataView`);
}

const finalizer = new FinalizationRegistry<number>((fd) => {
  try {
    closeFd(fd);
  } catch {
    // nothing left to do
  }
});

const INTERNAL = Symbol("Connection.internal");

/** For `wait()`: true when a receive on `c` would not wait (set in Connection's static block). */
let readyNow: (c: Connection) => boolean;

/**
 * One end of a {@linkcode Pipe}: sends and receives whole messages (structured-clone values or
 * raw bytes) to and from the process holding the other end. Get connections from `Pipe()`;
 * pass them to a child as `Process` arguments.
 *
 * @example Send a value to a child and get an answer
 * ```ts
 * import { type Connection, Pipe, Process } from "@mp/multiprocessing";
 *
 * export async function double(conn: Connection<number>) {
 *   await conn.send((await conn.recv()) * 2);
 *   conn.close();
 * }
 *
 * if (import.meta.main) {
 *   const [mine, theirs] = Pipe<number>();
 *   const p = new Process({ target: double, args: [theirs] });
 *   await p.start();
 *   theirs.close();
 *   await mine.send(21);
 *   console.log(await mine.recv()); // 42
 *   await p.join();
 *   mine.close();
 * }
 * ```
 */
export class Connection<T = unknown> {
  #fd: number;
  #readable: boolean;
  #writable: boolean;
  #closed = false;
  /** Aborted by `close()`: stops every wait (a signal, so that a wait leaves nothing behind). */
  #closer = new AbortController();
  /** The size of a message whose header was read but whose body was not (recvBytes' maxLength). */
  #pendingSize: number | null = null;
  /** A body the fast path began to read; the waiting path of the same receive finishes it. */
  #partial: { body: Uint8Array<ArrayBuffer>; at: number; ended: boolean } | null = null;
  /** Receives of this process under way on the waiting path. */
  #reading = 0;
  #head = new Uint8Array(12);
  /** The fast path just found nothing to read: the waiting path starts by waiting. */
  #nothingYet = false;
  /** Serializes reads, and writes, within this process. */
  #readChain: Promise<unknown> = Promise.resolve();
  #writeChain: Promise<unknown> | null = null;
  #readWaiter = new Waiter();
  #writeWaiter = new Waiter();

  /**
   * Internal: connections come from {@linkcode Pipe}, or from a parent as a `Process` argument.
   * @internal
   */
  constructor(token: typeof INTERNAL, fd: number, readable: boolean, writable: boolean) {
    if (token !== INTERNAL) {
      throw new TypeError("Cannot construct a Connection directly: use Pipe() to make a pair");
    }
    // Reads and writes must never block the thread: waits happen in poll().
    setNonBlocking(fd, true);
    this.#fd = fd;
    this.#readable = readable;
    this.#writable = writable;
    finalizer.register(this, fd, this);
  }

  /** `Connection(fd=7, readable, writable)`; `Connection(closed)` once closed. */
  [inspect](): string {
    return described("Connection", this.#closed, () => [
      `fd=${this.#fd}`,
      ...(this.#readable ? ["readable"] : []),
      ...(this.#writable ? ["writable"] : []),
    ]);
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True when this end can receive (not the write end of a one-way pipe). */
  get readable(): boolean {
    return this.#readable;
  }

  /** True when this end can send (not the read end of a one-way pipe). */
  get writable(): boolean {
    return this.#writable;
  }

  /** The file descriptor of this end. */
  fileno(): number {
    this.#check("fileno");
    return this.#fd;
  }

  /**
   * Sends a value (structured clone; this library's objects travel as handles). A value that
   * cannot travel throws a `DataCloneError` here, before anything is sent.
   */
  send(obj: T): Promise<void> {
    this.#checkWritable("send");
    const body = serialize(obj);
    return this.#writeFrame(body);
  }

  /**
   * Sends raw bytes as one message: `size` bytes of `buf` from byte `offset` (default: all of it).
   * Throws a `RangeError` when `offset`/`size` fall outside the buffer. The bytes are not copied:
   * leave them unchanged until the returned promise settles (a large message may still be going).
   */
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): Promise<void> {
    this.#checkWritable("sendBytes");
    const bytes = asBytes(buf, "sendBytes");
    if (!Number.isInteger(offset) || offset < 0) {
      throw new RangeError(`Invalid offset: ${offset}: it must be a non-negative integer`);
    }
    if (offset > bytes.length) {
      throw new RangeError(`Invalid offset: ${offset}: the buffer has only ${bytes.length} bytes`);
    }
    if (size === undefined) size = bytes.length - offset;
    else if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(`Invalid size: ${size}: it must be a non-negative integer`);
    } else if (offset + size > bytes.length) {
      throw new RangeError(
        `Invalid size: ${size}: offset ${offset} + size exceeds the buffer's ${bytes.length} bytes`,
      );
    }
    return this.#writeFrame(bytes.subarray(offset, offset + size));
  }

  /** Receives the next value. Rejects with {@linkcode EOFError} at the end of the stream. */
  async recv(): Promise<T> {
    this.#checkReadable("recv");
    const now = this.#reading === 0 ? this.#readNow(Infinity, null) : null;
    if (now) return deserialize(now) as T;
    return deserialize(await this.#serialRead(() => this.#readBody(Infinity, null))) as T;
  }

  /**
   * Receives the next message as bytes. A message longer than `maxLength` rejects with a
   * `RangeError` and stays unread (receive it with a larger limit).
   */
  async recvBytes(maxLength?: number): Promise<Uint8Array> {
    this.#checkReadable("recvBytes");
    if (maxLength !== undefined && !(maxLength >= 0)) {
      throw new RangeError(`Invalid maxLength: ${maxLength}: it must be a non-negative number`);
    }
    const now = this.#reading === 0 ? this.#readNow(maxLength ?? Infinity, null) : null;
    if (now) return now;
    return await this.#serialRead(() => this.#readBody(maxLength ?? Infinity, null));
  }

  /**
   * Receives the next message into `buf` at byte `offset`; resolves to its length in bytes. When
   * the message does not fit, it is consumed and the rejection, a {@linkcode BufferTooShortError},
   * carries it whole in `data`.
   */
  async recvBytesInto(buf: ArrayBufferView, offset = 0): Promise<number> {
    this.#checkReadable("recvBytesInto");
    if (!ArrayBuffer.isView(buf)) {
      throw new TypeError("Invalid buffer for recvBytesInto: expected a typed array or DataView");
    }
    const bytes = asBytes(buf, "recvBytesInto");
    if (!Number.isInteger(offset) || offset < 0 || offset > bytes.length) {
      throw new RangeError(
        `Invalid offset: ${offset}: it must be between 0 and the buffer's ${bytes.length} bytes`,
      );
    }
    const room = bytes.subarray(offset);
    const finish = (body: Uint8Array) => {
      if (body.buffer === room.buffer && body.byteOffset === room.byteOffset) return body.length;
      throw new BufferTooShortError(
        body,
        `Buffer too short: the message has ${body.length} bytes, the buffer has room for ${room.length}`,
      );
    };
    const now = this.#reading === 0 ? this.#readNow(Infinity, room) : null;
    if (now) return finish(now);
    return await this.#serialRead(async () => finish(await this.#readBody(Infinity, room)));
  }

  /**
   * Whether there is something to receive (data, or the end of the stream), waiting up to
   * `timeout` ms (default 0: answer at once; `Infinity`: wait until there is). Never consumes a
   * message.
   */
  async poll(timeout: number = 0): Promise<boolean> {
    const ms = timeoutMs(timeout, "poll()");
    this.#checkReadable("poll");
    if (this.#readyNow()) return true;
    if (!(ms > 0)) return false;
    return await this.#waitReadable(ms);
  }

  /** Closes this end in this process (idempotent). Pending receives reject with `BadResource`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    finalizer.unregister(this);
    this.#closer.abort();
    closeFd(this.#fd);
  }

  /** Closes this end (`using conn = ...`). */
  [Symbol.dispose](): void {
    this.close();
  }

  // -------------------------------------------------------------------------------------------
  // Internals shared with wait()

  static {
    readyNow = (c) => c.#readyNow();
  }

  /** True when a receive would not wait (a message or the end of the stream is there). */
  #readyNow(): boolean {
    return this.#closed || this.#pendingSize !== null || pollFds([this.#fd], OS.POLLIN, 0).length > 0;
  }

  /** Resolves true once something can be received (false after `ms`). */
  async #waitReadable(ms: number): Promise<boolean> {
    if (this.#readyNow()) return true;
    const deadline = new Deadline(ms).at;
    return await this.#readWaiter.ready(this.#fd, OS.POLLIN, [this.#closer.signal], deadline) ||
      this.#closed;
  }

  // -------------------------------------------------------------------------------------------

  #check(what: string): void {
    if (this.#closed) throw new Deno.errors.BadResource(`Cannot ${what}: the connection is closed`);
  }

  #checkReadable(what: string): void {
    this.#check(what);
    if (!this.#readable) {
      throw new Deno.errors.BadResource(
        `Cannot ${what}: this is the write end of a one-way pipe; receive on the other end`,
      );
    }
  }

  #checkWritable(what: string): void {
    this.#check(what);
    if (!this.#writable) {
      throw new Deno.errors.BadResource(
        `Cannot ${what}: this is the read end of a one-way pipe; send on the other end`,
      );
    }
  }

  /** Runs reads of this process one after the other. */
  #serialRead<R>(read: () => Promise<R>): Promise<R> {
    this.#reading++;
    const next = this.#readChain.then(read).finally(() => this.#reading--);
    this.#readChain = next.catch(() => {});
    return next;
  }

  /** One non-blocking read: the count, 0 at the end of the stream, -1 when nothing is there yet. */
  #rawRead(buf: Uint8Array<ArrayBuffer>): number {
    try {
      return readFd(this.#fd, buf);
    } catch (e) {
      // A peer that closed with unread data resets a Unix socket: for us it is the end.
      if ((e as { errno?: number }).errno === OS.errno.ECONNRESET) return 0;
      throw e;
    }
  }

  /**
   * The fast path of a receive: the next message if all of it is there, without waiting (no
   * promise, no worker thread). Else null, with what it read kept for the waiting path. Only
   * when no other read of this process is under way.
   */
  #readNow(maxLength: number, into: Uint8Array<ArrayBuffer> | null): Uint8Array<ArrayBuffer> | null {
    if (this.#partial) return null;
    let size = this.#pendingSize;
    if (size === null) {
      const head = this.#head;
      const n = this.#rawRead(head.subarray(0, 4));
      if (n < 0) {
        this.#nothingYet = true; // the waiting path waits before it reads again
        return null;
      }
      if (n === 0) return null; // the end: the waiting path says which kind
      // A header is written whole (one write of at most 12 bytes), so it is read whole.
      if (n !== 4) throw new Error(`Connection out of step: read ${n} bytes of a frame header`);
      const view = new DataView(head.buffer);
      size = view.getUint32(0, true);
      if (size === LONG_LENGTH) {
        if (this.#rawRead(head.subarray(4, 12)) !== 8) {
          throw new Error("Connection out of step: a long frame header arrived in pieces");
        }
        size = Number(view.getBigUint64(4, true));
      }
      this.#pendingSize = size;
    }
    if (size > maxLength) throw tooLong(size, maxLength);
    const body = into && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
    this.#pendingSize = null;
    const m = size === 0 ? 0 : this.#rawRead(body);
    if (m === size) return body;
    this.#partial = { body, at: Math.max(m, 0), ended: m === 0 };
    return null;
  }

  /**
   * Reads into `buf` until it is full; resolves to the count, which is less only at the end of
   * the stream.
   */
  async #readFully(buf: Uint8Array<ArrayBuffer>, at = 0): Promise<number> {
    if (this.#nothingYet) {
      this.#nothingYet = false;
      await this.#readWaiter.ready(this.#fd, OS.POLLIN, [this.#closer.signal]);
    }
    while (at < buf.length) {
      if (this.#closed) {
        throw new Deno.errors.BadResource("Cannot recv: the connection was closed while receiving");
      }
      let n: number;
      try {
        n = readFd(this.#fd, at === 0 ? buf : buf.subarray(at));
      } catch (e) {
        // A peer that closed with unread data resets a Unix socket: for us it is the end.
        if ((e as { errno?: number }).errno === OS.errno.ECONNRESET) return at;
        throw e;
      }
      if (n > 0) at += n;
      else if (n === 0) return at;
      else await this.#readWaiter.ready(this.#fd, OS.POLLIN, [this.#closer.signal]);
    }
    return at;
  }

  /** Reads the next frame's header (or takes the one left by a too-long recvBytes). */
  async #readSize(): Promise<number> {
    if (this.#pendingSize !== null) return this.#pendingSize;
    const head = new Uint8Array(12);
    const got = await this.#readFully(head.subarray(0, 4));
    if (got === 0) throw new EOFError();
    if (got < 4) throw midMessage(got);
    const view = new DataView(head.buffer);
    let size = view.getUint32(0, true);
    if (size === LONG_LENGTH) {
      const more = await this.#readFully(head.subarray(4, 12));
      if (more < 8) throw midMessage(4 + more);
      size = Number(view.getBigUint64(4, true));
    }
    this.#pendingSize = size;
    return size;
  }

  /**
   * Reads the next message's body: into `into` when it fits there, else into a new array. A body
   * longer than `maxLength` is left unread (RangeError).
   */
  async #readBody(maxLength: number, into: Uint8Array<ArrayBuffer> | null): Promise<Uint8Array<ArrayBuffer>> {
    const partial = this.#partial;
    if (partial) {
      // Started by the fast path of this same receive.
      this.#partial = null;
      const got = partial.ended ? partial.at : await this.#readFully(partial.body, partial.at);
      if (got < partial.body.length) throw midMessage(got, partial.body.length);
      return partial.body;
    }
    const size = await this.#readSize();
    if (size > maxLength) throw tooLong(size, maxLength);
    const body = into && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
    this.#pendingSize = null;
    const got = await this.#readFully(body);
    if (got < size) throw midMessage(got, size);
    return body;
  }

  /** Writes one frame; later frames of this process queue behind it. */
  #writeFrame(body: Uint8Array): Promise<void> {
    const head = header(body.length);
    if (this.#writeChain === null) {
      let rest: Uint8Array<ArrayBuffer>[];
      try {
        rest = this.#writeNow(head, body as Uint8Array<ArrayBuffer>);
      } catch (e) {
        return Promise.reject(e);
      }
      if (rest.length === 0) return Promise.resolve();
      return this.#queueWrite(rest);
    }
    const parts = body.length <= COPY_LIMIT ? [concat(head, body)] : [head, body];
    return this.#queueWrite(parts as Uint8Array<ArrayBuffer>[]);
  }

  #queueWrite(parts: Uint8Array<ArrayBuffer>[]): Promise<void> {
    const prev = this.#writeChain ?? Promise.resolve();
    const next = prev.then(() => this.#writeFully(parts));
    const tail = next.catch(() => {});
    this.#writeChain = tail;
    tail.then(() => {
      if (this.#writeChain === tail) this.#writeChain = null;
    });
    return next;
  }

  /** Writes what fits now; returns what did not fit (views: the caller's buffer is not copied). */
  #writeNow(head: Uint8Array<ArrayBuffer>, body: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer>[] {
    const fd = this.#fd;
    if (body.length <= COPY_LIMIT) {
      const frame = concat(head, body);
      const n = writeFd(fd, frame);
      return n === frame.length ? [] : [frame.subarray(Math.max(n, 0))];
    }
    const n = writeFd(fd, head);
    if (n !== head.length) return [head.subarray(Math.max(n, 0)), body];
    const m = writeFd(fd, body);
    return m === body.length ? [] : [body.subarray(Math.max(m, 0))];
  }

  async #writeFully(parts: Uint8Array<ArrayBuffer>[]): Promise<void> {
    for (const part of parts) {
      let at = 0;
      while (at < part.length) {
        if (this.#closed) {
          throw new Deno.errors.BadResource("Cannot send: the connection was closed while sending");
        }
        const n = writeFd(this.#fd, at === 0 ? part : part.subarray(at));
        if (n >= 0) at += n;
        else await this.#writeWaiter.ready(this.#fd, OS.POLLOUT, [this.#closer.signal]);
      }
    }
  }
}

function tooLong(size: number, maxLength: number): RangeError {
  return new RangeError(
    `Message too long: ${size} bytes, more than maxLength ${maxLength}; it stays unread (receive it with a larger maxLength)`,
  );
}

function midMessage(got: number, size?: number): Error {
  return new Deno.errors.UnexpectedEof(
    `The stream ended in the middle of a message (${got} bytes of ${
      size === undefined ? "its header" : `its ${size}`
    } arrived): the sender closed or died while sending`,
  );
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

registerReducer(Connection, {
  name: "mp.Connection",
  reduce(c: Connection, ctx) {
    if (c.closed) throw new Deno.errors.BadResource("Cannot pass a closed connection to another process");
    const fd = ctx.passFd(c.fileno());
    return { fd, readable: c.readable, writable: c.writable };
  },
  revive(s: { fd: number; readable: boolean; writable: boolean }) {
    return new Connection(INTERNAL, receivedFd(s.fd), s.readable, s.writable);
  },
});

/**
 * Makes a pair of connected {@linkcode Connection}s. Duplex (the default): both ends send and
 * receive. `duplex: false`: `[reader, writer]`, where the reader only receives and the writer
 * only sends.
 *
 * @example A one-way pipe
 * ```ts
 * import { Pipe } from "@mp/multiprocessing";
 *
 * const [reader, writer] = Pipe<string>({ duplex: false });
 * await writer.send("hello");
 * console.log(await reader.recv()); // "hello"
 * reader.close();
 * writer.close();
 * ```
 */
export function Pipe<T = unknown>(options: { duplex?: boolean } = {}): [Connection<T>, Connection<T>] {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("Invalid Pipe options: expected an object like { duplex: false }");
  }
  if (options.duplex === false) {
    const [r, w] = pipe();
    return [new Connection<T>(INTERNAL, r, true, false), new Connection<T>(INTERNAL, w, false, true)];
  }
  const [a, b] = socketpair();
  // Larger messages in fewer wake-ups, where the system allows (net.core.wmem_max).
  setSendBufferSize(a, SEND_BUFFER);
  setSendBufferSize(b, SEND_BUFFER);
  return [new Connection<T>(INTERNAL, a, true, true), new Connection<T>(INTERNAL, b, true, true)];
}

/**
 * Waits until at least one of `objects` is ready, for at most `timeout` ms (default: forever),
 * and resolves to the ready ones (an empty array after the timeout). A connection is ready when
 * `recv()` would not wait (a message, or the end of the stream); a process when it has ended.
 *
 * @example Serve whichever child answers first
 * ```ts
 * import { Pipe, wait } from "@mp/multiprocessing";
 *
 * const [a1, a2] = Pipe();
 * const [b1, b2] = Pipe();
 * await b2.send("from b");
 * const ready = await wait([a1, b1], 1000);
 * console.log(ready.length, ready[0] === b1); // 1 true
 * for (const c of [a1, a2, b1, b2]) c.close();
 * ```
 */
export async function wait(
  objects: Array<Connection | Process>,
  timeout?: number,
): Promise<Array<Connection | Process>> {
  if (!Array.isArray(objects)) throw new TypeError("Invalid objects for wait(): expected an array");
  const ms = timeoutMs(timeout, "wait()");
  const ready = () =>
    objects.filter((o) => o instanceof Connection ? readyNow(o) : (o as Process).exitCode !== null);
  for (const o of objects) {
    if (o instanceof Connection) {
      if (o.closed) throw new Deno.errors.BadResource("Cannot wait on a closed connection");
      if (!o.readable) throw new Deno.errors.BadResource("Cannot wait on the write end of a one-way pipe");
    } else if (typeof (o as Process)?.join !== "function") {
      throw new TypeError("Invalid object for wait(): expected Connections and Processes");
    }
  }
  const now = ready();
  if (now.length > 0 || !(ms > 0) || objects.length === 0) return now;
  // One poll on a worker thread watches every connection; processes report their exit.
  const fds = objects.filter((o) => o instanceof Connection).map((c) => (c as Connection).fileno());
  const joins = objects.filter((o) => !(o instanceof Connection)).map((p) =>
    (p as Process).join().catch(() => {})
  );
  let exited: Promise<unknown> | null = joins.length > 0 ? Promise.race(joins) : null;
  const deadline = new Deadline(ms);
  for (;;) {
    const left = deadline.left();
    if (left <= 0) return ready();
    const slice = Math.max(1, Math.min(left, SLICE_MS)) | 0;
    const stop = new AbortController();
    const waited = fds.length > 0
      ? pollFdsAsync(fds, OS.POLLIN, slice)
      : sleep(slice, { signal: stop.signal }).catch(() => {});
    const which = await Promise.race([
      waited.then(() => "io"),
      ...(exited ? [exited.then(() => "exit")] : []),
    ]);
    stop.abort();
    if (which === "exit") exited = null; // at most once: a process that never started stays unready
    const r = ready();
    if (r.length > 0) return r;
  }
}
