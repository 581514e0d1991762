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
 * an end only when it is passed as a `Process` argument (it then inherits that fd, under the same
 * number). `recv()` reports the end of the stream ({@linkcode EOFError}) once every copy of the
 * other end is closed, in every process. A stream that ends in the middle of a message is a
 * different error (`Deno.errors.UnexpectedEof`): the writer died while it was sending.
 *
 * Writes go straight to the fd with a non-blocking `write()`; whatever does not fit at once is
 * handed to a `node:net` socket adopting the fd, which finishes it when the reader has made room.
 * Reads go through that socket too: it waits on the event loop (epoll) for data without blocking
 * the thread or hopping to another one. The socket reads ahead: bytes it has read belong to this
 * process. One process should read a given end at a time (several readers of one stream need a
 * `Queue`, whose reads are exact).
 *
 * @module
 */
import net from "node:net";
import {
  close as closeFd,
  OS,
  pipe,
  pollFds,
  setNonBlocking,
  socketpair,
  write as writeFd,
} from "../native/mod.ts";
import { deserialize, registerReducer, serialize } from "./_reduction.ts";
import { BufferTooShortError, EOFError } from "./errors.ts";
import type { Process } from "./process.ts";

/** Length values at and above this take the 8-byte form. */
const LONG_LENGTH = 0xffff_ffff;
/** Bodies up to this size are copied next to their header and written with one syscall. */
const COPY_LIMIT = 64 * 1024;

/** Bytes read ahead from the socket, as a list of chunks; taken from the front. */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  #head = 0; // offset into #chunks[0]
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Copies `n` bytes at `offset` from the front into `out`, without consuming them. */
  peek(out: Uint8Array, n: number, offset = 0): void {
    let at = 0;
    let skip = this.#head + offset;
    for (const c of this.#chunks) {
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      const take = Math.min(c.length - skip, n - at);
      out.set(c.subarray(skip, skip + take), at);
      at += take;
      skip = 0;
      if (at === n) return;
    }
  }

  /** Removes `n` bytes from the front and returns them (a view when they lie in one chunk). */
  take(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (n === 0) return new Uint8Array(0);
    let out: Uint8Array;
    if (first.length - this.#head >= n) {
      // A plain Uint8Array view (chunks may be node Buffers).
      out = new Uint8Array(first.buffer, first.byteOffset + this.#head, n);
    } else {
      out = new Uint8Array(n);
      this.peek(out, n);
    }
    this.skip(n);
    return out;
  }

  skip(n: number): void {
    this.length -= n;
    while (n > 0) {
      const c = this.#chunks[0];
      const left = c.length - this.#head;
      if (n < left) {
        this.#head += n;
        return;
      }
      n -= left;
      this.#chunks.shift();
      this.#head = 0;
    }
  }
}

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

function asBytes(buf: ArrayBufferView | ArrayBuffer, what: string): Uint8Array {
  if (
    buf instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer !== "undefined" && buf instanceof SharedArrayBuffer)
  ) {
    return new Uint8Array(buf);
  }
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new TypeError(`Invalid buffer for ${what}: expected an ArrayBuffer or a typed array / DataView`);
}

interface FdHolder {
  fd: number;
  socket: net.Socket | undefined;
}

const finalizer = new FinalizationRegistry<FdHolder>((h) => {
  try {
    if (h.socket) h.socket.destroy();
    else closeFd(h.fd);
  } catch {
    // nothing left to do
  }
});

const INTERNAL = Symbol("Connection.internal");

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
  #holder: FdHolder;
  #readable: boolean;
  #writable: boolean;
  #closed = false;
  #in = new ByteQueue();
  #eof = false;
  #readError: Error | undefined;
  /** Wakes whoever waits for more bytes (or the end). */
  #wake: (() => void) | undefined;
  /** Number of pending operations that need the socket to read (recv, poll, wait). */
  #readers = 0;
  /** Serializes reads within this process. */
  #readChain: Promise<unknown> = Promise.resolve();
  /** Writes handed to the socket and not finished yet; later writes queue behind them. */
  #pendingWrites = 0;
  #writeError: Error | undefined;

  /**
   * Internal: connections come from {@linkcode Pipe}, or from a parent as a `Process` argument.
   * @internal
   */
  constructor(token: typeof INTERNAL, fd: number, readable: boolean, writable: boolean) {
    if (token !== INTERNAL) {
      throw new TypeError("Cannot construct a Connection directly: use Pipe() to make a pair");
    }
    // Writes must never block the thread: what does not fit waits on the event loop.
    setNonBlocking(fd, true);
    this.#holder = { fd, socket: undefined };
    this.#readable = readable;
    this.#writable = writable;
    finalizer.register(this, this.#holder, this.#holder);
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
    return this.#holder.fd;
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
   * Throws a `RangeError` when `offset`/`size` fall outside the buffer.
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
    const body = await this.#readFrame(Infinity);
    return deserialize(body) as T;
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
    const body = await this.#readFrame(maxLength ?? Infinity);
    return body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : body.slice();
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
    const body = await this.#readFrame(Infinity);
    if (body.length > bytes.length - offset) {
      throw new BufferTooShortError(
        body.slice(),
        `Buffer too short: the message has ${body.length} bytes, the buffer has room for ${
          bytes.length - offset
        }`,
      );
    }
    bytes.set(body, offset);
    return body.length;
  }

  /**
   * Whether there is something to receive (data, or the end of the stream), waiting up to
   * `timeout` ms (default 0: answer at once; `Infinity`: wait until there is). Never consumes a
   * message.
   */
  async poll(timeout = 0): Promise<boolean> {
    this.#checkReadable("poll");
    if (this.#hasInput()) return true;
    if (!(timeout > 0)) return false;
    return await this._waitReadable(timeout);
  }

  /** Closes this end in this process (idempotent). Pending receives reject with `BadResource`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    finalizer.unregister(this.#holder);
    const { socket, fd } = this.#holder;
    if (socket) socket.destroy();
    else closeFd(fd);
    this.#wakeReaders();
  }

  /** Closes this end (`using conn = ...`). */
  [Symbol.dispose](): void {
    this.close();
  }

  // -------------------------------------------------------------------------------------------
  // Internals shared with wait()

  /** @internal True when a receive would not wait: bytes are buffered, the kernel has some, or the stream ended. */
  _readyNow(): boolean {
    return this.#closed || this.#hasInput();
  }

  /** @internal Resolves true once something can be received (or false after `timeoutMs`/abort). */
  async _waitReadable(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this._readyNow()) return true;
    if (signal?.aborted) return false;
    this.#startReading();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<false>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve(false), timeoutMs);
      if (signal) {
        onAbort = () => resolve(false);
        signal.addEventListener("abort", onAbort, { once: true });
      }
    });
    try {
      while (!this.#inputOrEnd()) {
        if (!(await Promise.race([this.#more().then(() => true), stop]))) break;
      }
      return this.#inputOrEnd();
    } finally {
      clearTimeout(timer);
      if (onAbort) signal!.removeEventListener("abort", onAbort);
      this.#stopReading();
    }
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

  #inputOrEnd(): boolean {
    return this.#closed || this.#in.length > 0 || this.#eof || this.#readError !== undefined;
  }

  #hasInput(): boolean {
    if (this.#inputOrEnd()) return true;
    // Nothing read ahead: ask the kernel (poll never consumes).
    return pollFds([this.#holder.fd], OS.POLLIN, 0).length > 0;
  }

  #socket(): net.Socket {
    let s = this.#holder.socket;
    if (s) return s;
    s = new net.Socket({
      fd: this.#holder.fd,
      readable: this.#readable,
      writable: this.#writable,
      allowHalfOpen: true,
      // Reading starts only when a receive waits (see #startReading).
      manualStart: true,
    } as net.SocketConstructorOpts);
    s.on("data", (chunk: Uint8Array) => {
      this.#in.push(chunk);
      this.#wakeReaders();
    });
    s.on("end", () => {
      this.#eof = true;
      this.#wakeReaders();
    });
    s.on("error", (e: Error & { code?: string }) => {
      // A peer that closed with unread data resets a Unix socket: for us it is the end.
      if (e.code === "ECONNRESET") this.#eof = true;
      else if (this.#pendingWrites > 0) this.#writeError = e;
      else this.#readError = e;
      this.#wakeReaders();
    });
    s.unref();
    this.#holder.socket = s;
    return s;
  }

  #startReading(): void {
    const s = this.#socket();
    if (this.#readers++ === 0) {
      s.ref();
      s.resume();
    }
  }

  #stopReading(): void {
    const s = this.#holder.socket;
    if (--this.#readers === 0 && s && !this.#closed) {
      s.pause();
      if (this.#pendingWrites === 0) s.unref();
    }
  }

  #more(): Promise<void> {
    return new Promise((resolve) => {
      const prev = this.#wake;
      this.#wake = () => {
        prev?.();
        resolve();
      };
    });
  }

  #wakeReaders(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Reads the next frame, waiting as needed. Reads in this process are served in order. */
  #readFrame(maxLength: number): Promise<Uint8Array> {
    const next = this.#readChain.then(() => this.#readFrameNow(maxLength));
    this.#readChain = next.catch(() => {});
    return next;
  }

  async #readFrameNow(maxLength: number): Promise<Uint8Array> {
    let reading = false;
    try {
      const head = new Uint8Array(12);
      for (;;) {
        this.#check("recv");
        const q = this.#in;
        if (q.length >= 4) {
          q.peek(head, 4);
          const view = new DataView(head.buffer);
          let size = view.getUint32(0, true);
          let headerSize = 4;
          if (size === LONG_LENGTH) {
            if (q.length >= 12) {
              q.peek(head, 12);
              size = Number(view.getBigUint64(4, true));
              headerSize = 12;
            } else size = -1;
          }
          if (size >= 0) {
            if (size > maxLength) {
              throw new RangeError(
                `Message too long: ${size} bytes, more than maxLength ${maxLength}; it stays unread (receive it with a larger maxLength)`,
              );
            }
            if (q.length >= headerSize + size) {
              q.skip(headerSize);
              return q.take(size);
            }
          }
        }
        if (this.#eof || this.#readError) {
          if (this.#readError) throw this.#readError;
          if (q.length === 0) throw new EOFError();
          throw new Deno.errors.UnexpectedEof(
            `The stream ended in the middle of a message (${q.length} bytes of it arrived): the sender closed or died while sending`,
          );
        }
        if (!reading) {
          this.#startReading();
          reading = true;
        }
        await this.#more();
      }
    } finally {
      if (reading) this.#stopReading();
    }
  }

  /** Writes one frame; later frames queue behind it. */
  #writeFrame(body: Uint8Array): Promise<void> {
    const head = header(body.length);
    if (this.#writeError) return Promise.reject(this.#writeError);
    if (this.#pendingWrites === 0) {
      // The fast path: one non-blocking write of header and body.
      let rest: Uint8Array[];
      try {
        rest = this.#writeNow(head, body);
      } catch (e) {
        return Promise.reject(e);
      }
      if (rest.length === 0) return Promise.resolve();
      return this.#writeLater(rest);
    }
    return this.#writeLater(body.length <= COPY_LIMIT ? [concat(head, body)] : [head, body.slice()]);
  }

  /** Writes what fits now; returns what did not fit (copied, so the caller may reuse its buffer). */
  #writeNow(head: Uint8Array<ArrayBuffer>, body: Uint8Array): Uint8Array[] {
    const fd = this.#holder.fd;
    if (body.length <= COPY_LIMIT) {
      const frame = concat(head, body);
      const n = writeFd(fd, frame);
      return n === frame.length ? [] : [frame.subarray(Math.max(n, 0))];
    }
    const n = writeFd(fd, head);
    if (n !== head.length) return [head.subarray(Math.max(n, 0)), body.slice()];
    const m = writeFd(fd, body as Uint8Array<ArrayBuffer>);
    return m === body.length ? [] : [body.slice(Math.max(m, 0))];
  }

  #writeLater(parts: Uint8Array[]): Promise<void> {
    const s = this.#socket();
    this.#pendingWrites++;
    s.ref();
    return new Promise<void>((resolve, reject) => {
      let left = parts.length;
      const done = (e?: Error | null) => {
        if (e) {
          this.#writeError ??= e;
          left = -1;
          finish();
          reject(e);
        } else if (--left === 0) {
          finish();
          resolve();
        }
      };
      const finish = () => {
        if (--this.#pendingWrites === 0 && this.#readers === 0 && !this.#closed) s.unref();
      };
      for (const p of parts) s.write(p, done);
    });
  }
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
    const fd = c.fileno();
    ctx.passFd(fd);
    return { fd, readable: c.readable, writable: c.writable };
  },
  revive(s: { fd: number; readable: boolean; writable: boolean }) {
    return new Connection(INTERNAL, s.fd, s.readable, s.writable);
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
  const ready = () =>
    objects.filter((o) => o instanceof Connection ? o._readyNow() : (o as Process).exitCode !== null);
  for (const o of objects) {
    if (o instanceof Connection) {
      if (o.closed) throw new Deno.errors.BadResource("Cannot wait on a closed connection");
      if (!o.readable) throw new Deno.errors.BadResource("Cannot wait on the write end of a one-way pipe");
    } else if (typeof (o as Process)?.join !== "function") {
      throw new TypeError("Invalid object for wait(): expected Connections and Processes");
    }
  }
  const now = ready();
  if (now.length > 0 || (timeout !== undefined && !(timeout > 0)) || objects.length === 0) return now;
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      ...objects.map((o) =>
        o instanceof Connection
          ? o._waitReadable(Infinity, abort.signal)
          : (o as Process).join().catch(() => {})
      ),
      ...(timeout === undefined ? [] : [new Promise<void>((r) => timer = setTimeout(r, timeout))]),
    ]);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return ready();
}
