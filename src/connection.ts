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
 * `recv()` reports the end of the stream (`EOFError`) once every copy of the other end
 * is closed, in every process. A stream that ends in the middle of a message is a
 * different error (`Deno.errors.UnexpectedEof`): the writer died while it was sending.
 *
 * The frames travel through `_fd_channel.ts` (exact, non-blocking reads and writes on the fd;
 * the frame format is `_frames.ts`'s). This file adds what a user sees: values (structured
 * clone) and argument checks; `pipe.ts` makes pairs (`Pipe()`) and waits on several (`wait()`).
 *
 * @module
 */
import { FdChannel } from "./_fd_channel.ts";
import { described, inspect } from "./_inspect.ts";
import { deserialize, receivedFd, registerReducer, serialize } from "./_reduction.ts";
import { timeoutMs } from "./_wait.ts";
import { BufferTooShortError } from "./errors.ts";

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

const INTERNAL = Symbol("Connection.internal");

/** For `wait()`: true when a receive on `c` would not wait (set in Connection's static block). */
let readyNow: (c: Connection) => boolean;

/** True when a receive on `c` would not wait (for `wait()` in `pipe.ts`). */
export function receiveReady(c: Connection): boolean {
  return readyNow(c);
}

/** A connection on `fd`, which it owns from now on (for `Pipe()` in `pipe.ts`). */
export function openConnection<T>(fd: number, readable: boolean, writable: boolean): Connection<T> {
  return new Connection<T>(INTERNAL, fd, readable, writable);
}

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
  #ch: FdChannel;
  #readable: boolean;
  #writable: boolean;

  /**
   * Internal: connections come from {@linkcode Pipe}, or from a parent as a `Process` argument.
   * @internal
   */
  constructor(token: typeof INTERNAL, fd: number, readable: boolean, writable: boolean) {
    if (token !== INTERNAL) {
      throw new TypeError("Cannot construct a Connection directly: use Pipe() to make a pair");
    }
    this.#ch = new FdChannel(fd, { owner: this });
    this.#readable = readable;
    this.#writable = writable;
  }

  /** `Connection(fd=7, readable, writable)`; `Connection(closed)` once closed. */
  [inspect](): string {
    return described("Connection", this.#ch.closed, () => [
      `fd=${this.#ch.fd}`,
      ...(this.#readable ? ["readable"] : []),
      ...(this.#writable ? ["writable"] : []),
    ]);
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#ch.closed;
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
    return this.#ch.fd;
  }

  /**
   * Sends a value (structured clone; this library's objects travel as handles). A value that
   * cannot travel throws a `DataCloneError` here, before anything is sent.
   */
  send(obj: T): Promise<void> {
    this.#checkWritable("send");
    return this.#ch.write(serialize(obj) as Uint8Array<ArrayBuffer>);
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
    return this.#ch.write(bytes.subarray(offset, offset + size));
  }

  /** Receives the next value. Rejects with `EOFError` at the end of the stream. */
  async recv(): Promise<T> {
    this.#checkReadable("recv");
    const body = this.#ch.read(Infinity, null);
    return deserialize(body instanceof Uint8Array ? body : await body) as T;
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
    return await this.#ch.read(maxLength ?? Infinity, null);
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
    const body = this.#ch.read(Infinity, room);
    return finish(body instanceof Uint8Array ? body : await body);
  }

  /**
   * Whether there is something to receive (data, or the end of the stream), waiting up to
   * `timeout` ms (default 0: answer at once; `Infinity`: wait until there is). Never consumes a
   * message.
   */
  async poll(timeout: number = 0): Promise<boolean> {
    const ms = timeoutMs(timeout, "poll()");
    this.#checkReadable("poll");
    if (this.#ch.readyNow()) return true;
    if (!(ms > 0)) return false;
    return await this.#ch.waitReadable(ms);
  }

  /** Closes this end in this process (idempotent). Pending receives reject with `BadResource`. */
  close(): void {
    this.#ch.close();
  }

  /** Closes this end (`using conn = ...`). */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    readyNow = (c) => c.#ch.readyNow();
  }

  #check(what: string): void {
    if (this.#ch.closed) throw new Deno.errors.BadResource(`Cannot ${what}: the connection is closed`);
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
