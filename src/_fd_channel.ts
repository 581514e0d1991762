/**
 * Frames over one file descriptor, with non-blocking reads and writes through FFI: the layer under
 * {@linkcode Connection} (`connection.ts` adds values, checks and the public API) and under the
 * manager's client and server. The frame format is `_frames.ts`'s. Two read modes:
 *
 * **Exact reads** (a Connection). A read takes a header (4 bytes, or 12 for the long form), then
 * exactly its body: a process never takes bytes beyond the message it returns, so several
 * processes may share one end, as in CPython. The fast path of a receive reads whatever is there
 * without a promise or a worker thread; what it began (part of a header, a header whose body is
 * not taken, part of a body) is state of this object, which the waiting path of the same receive
 * finishes. Receives of one process run one after the other (`#serialRead`).
 *
 * **Buffered reads** (a manager's socket, which one process owns). `fill()` reads whatever has
 * come into a `FrameBuffer` (`_frames.ts`), `takeFrame()` gives its frames: a round trip costs two
 * syscalls, a burst of frames one read. Its `close()` also shuts the socket down, which wakes a
 * poll of it on a worker thread.
 *
 * **End of the stream.** `read()` returning 0 (or ECONNRESET: a peer that closed with unread data
 * resets a Unix socket) at a frame boundary is the end ({@linkcode EOFError}, or null); inside a
 * frame it is `cutMidFrame` (`Deno.errors.UnexpectedEof`): the writer closed or died meanwhile.
 *
 * **Writes** (one path) go out at once as far as the fd takes them; the rest, and frames sent
 * meanwhile, queue behind in order (`#writeChain`). A body up to 64 KiB is copied next to its
 * header and written with one syscall; a larger one is written from the caller's buffer.
 *
 * **Waiting.** When the fd is not ready, `_fd_wait.ts`'s `Waiter` waits (the one wait loop: spin,
 * park, then `poll()` on a worker thread, so the event loop keeps running), or the `Readiness`
 * given (the manager server's poll loop). `close()` aborts every wait. A channel whose owner is
 * garbage collected unclosed closes its fd (`_resource.ts`'s `onCollected`).
 *
 * @module
 */
import {
  close as closeFd,
  OS,
  pollFds,
  read as readFd,
  setNonBlocking,
  shutdownSocket,
  write as writeFd,
} from "../native/mod.ts";
import { Waiter } from "./_fd_wait.ts";
import { cutMidFrame, encodeFrame, encodeHeader, FrameBuffer, HEAD, headAt, sizeAt } from "./_frames.ts";
import { forgetCollected, onCollected } from "./_resource.ts";
import { Deadline } from "./_wait.ts";
import { EOFError } from "./errors.ts";

/** Bodies up to this size are copied next to their header and written with one syscall. */
const COPY_LIMIT = 64 * 1024;
const RESOLVED = Promise.resolve();

/** How a channel waits until its fd has `events` (true), or `stop` aborts (false). */
export type Readiness = (fd: number, events: number, stop: AbortSignal) => boolean | Promise<boolean>;

/**
 * `owner`: the fd closes when it is collected unclosed; `buffered`: buffered reads (else exact);
 * `ready`: who waits (else the channel's `Waiter`s); `name`: in errors ("The connection").
 */
export interface ChannelOptions {
  owner?: object;
  buffered?: boolean;
  ready?: Readiness;
  name?: string;
}

/** The cleanup of a channel whose owner was collected (it must not see the owner). */
const closer = (fd: number) => () => closeFd(fd);

/** One fd carrying frames both ways (or one way: the caller checks which). */
export class FdChannel {
  readonly fd: number;
  #closed = false;
  /** Aborted by `close()`: stops every wait (a signal, so that a wait leaves nothing behind). */
  #closer = new AbortController();
  #name: string;
  #ready: Readiness | undefined;
  #readWaiter = new Waiter();
  #writeWaiter = new Waiter();
  /** Waits that stay on this thread learn apart: they wait for answers that come at once. */
  #hereWaiter: Waiter | null = null;
  /** Buffered mode: the frames read ahead. */
  #frames: FrameBuffer | null;
  /** Exact mode: the header being read, and how much of it is there. */
  #head = new Uint8Array(12);
  #headView = new DataView(this.#head.buffer);
  #headGot = 0;
  /** The size of a message whose header was read but whose body was not (recvBytes' maxLength). */
  #pendingSize: number | null = null;
  /** A body the fast path began to read; the waiting path of the same receive finishes it. */
  #partial: { body: Uint8Array<ArrayBuffer>; at: number; ended: boolean } | null = null;
  /** The fast path just found nothing to read: the waiting path starts by waiting. */
  #nothingYet = false;
  /** Receives of this process under way on the waiting path. */
  #reading = 0;
  /** Serializes reads, and writes, within this process. */
  #readChain: Promise<unknown> = RESOLVED;
  #writeChain: Promise<unknown> | null = null;

  /** Takes `fd` (made non-blocking); it closes with {@linkcode close}. */
  constructor(fd: number, options: ChannelOptions = {}) {
    // Reads and writes must never block the thread: waits happen in poll().
    setNonBlocking(fd, true);
    this.fd = fd;
    this.#name = options.name ?? "The connection";
    this.#ready = options.ready;
    this.#frames = options.buffered ? new FrameBuffer() : null;
    if (options.owner) onCollected(options.owner, closer(fd), this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the fd (idempotent); pending reads and writes reject with `BadResource`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    forgetCollected(this);
    this.#closer.abort();
    if (this.#frames) shutdownSocket(this.fd); // wakes a worker thread polling it
    closeFd(this.fd);
  }

  /** Waits until the fd has `events` (true), or the channel closes (false); `parkMs`: `waitSteps`'. */
  #wait(events: number, deadline = Infinity, parkMs?: number): boolean | Promise<boolean> {
    if (this.#ready && deadline === Infinity) return this.#ready(this.fd, events, this.#closer.signal);
    const waiter = events === OS.POLLOUT ? this.#writeWaiter : this.#readWaiter;
    return waiter.ready(this.fd, events, [this.#closer.signal], deadline, parkMs);
  }

  /** One non-blocking read: the count, 0 at the end of the stream, -1 when nothing is there yet. */
  #rawRead = (buf: Uint8Array<ArrayBuffer>): number => {
    try {
      return readFd(this.fd, buf);
    } catch (e) {
      // A peer that closed with unread data resets a Unix socket: for us it is the end.
      if ((e as { errno?: number }).errno === OS.errno.ECONNRESET) return 0;
      throw e;
    }
  };

  // -------------------------------------------------------------------------------------------
  // Buffered reads

  /** Reads what has come, without waiting: `FrameBuffer.fill` (null once closed). */
  fill(): boolean | null {
    return this.#closed ? null : this.#frames!.fill(this.#rawRead);
  }

  /** A whole frame's body that {@linkcode fill} read, or null: `FrameBuffer.take`. */
  takeFrame(max?: number, refuse?: (size: number) => Error): Uint8Array | null {
    return this.#frames!.take(max, refuse);
  }

  /** The last {@linkcode fill} took all there was (no need to read again before a wait). */
  get drained(): boolean {
    return this.#frames!.drained;
  }

  /** True once the fd has `events`, false once closed; a promise when it waits through the event loop. */
  ready(events: number = OS.POLLIN, parkMs?: number): boolean | Promise<boolean> {
    return this.#closed ? false : this.#wait(events, Infinity, parkMs);
  }

  /**
   * Waits on this thread only (the one wait loop's try, spin and a park of up to `parkMs`): true
   * when something can be read, false when nothing came by then or the channel is closed.
   */
  readableHere(parkMs: number): boolean {
    if (this.#closed) return false;
    return (this.#hereWaiter ??= new Waiter()).readyHere(this.fd, OS.POLLIN, parkMs);
  }

  /**
   * The next frame's body, waiting for it (the manager's handshake), or null at the end of the
   * stream between frames; a stream that ends inside a frame throws `UnexpectedEof`. A body over
   * `max` bytes throws `refuse(size)`.
   */
  async readFrame(max?: number, refuse?: (size: number) => Error): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.takeFrame(max, refuse);
      if (frame) return frame;
      const got = this.fill();
      if (got === null || (!got && !(await this.ready()))) {
        const cut = this.#closed ? null : this.#frames!.cut(this.#name);
        if (cut) throw cut;
        return null;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Exact reads

  /**
   * The next message's body: into `into` when it fits there, else into a new array; a body
   * longer than `maxLength` stays unread (RangeError). Synchronous when all of it was there.
   */
  read(
    maxLength: number,
    into: Uint8Array<ArrayBuffer> | null,
  ): Uint8Array<ArrayBuffer> | Promise<Uint8Array<ArrayBuffer>> {
    const now = this.#reading === 0 ? this.#readNow(maxLength, into) : null;
    return now ?? this.#serialRead(() => this.#readBody(maxLength, into));
  }

  /** True when a receive would not wait (a message or the end of the stream is there). */
  readyNow(): boolean {
    return this.#closed || this.#pendingSize !== null || pollFds([this.fd], OS.POLLIN, 0).length > 0;
  }

  /** Resolves true once something can be received (false after `ms`). */
  async waitReadable(ms: number): Promise<boolean> {
    if (this.readyNow()) return true;
    return await this.#wait(OS.POLLIN, new Deadline(ms).at) || this.#closed;
  }

  /** Runs reads of this process one after the other. */
  #serialRead<R>(read: () => Promise<R>): Promise<R> {
    this.#reading++;
    const next = this.#readChain.then(read).finally(() => this.#reading--);
    this.#readChain = next.catch(() => {});
    return next;
  }

  /**
   * The fast path of a receive: the next message if all of it is there, without waiting (no
   * promise, no worker thread). Else null, with what it read kept for the waiting path.
   */
  #readNow(maxLength: number, into: Uint8Array<ArrayBuffer> | null): Uint8Array<ArrayBuffer> | null {
    if (this.#partial) return null;
    let size = this.#pendingSize;
    if (size === null) {
      // The header: 4 bytes, then 8 more for the long form.
      for (;;) {
        const need = this.#headGot < HEAD ? HEAD : headAt(this.#headView, 0);
        if (this.#headGot === need) break;
        const n = this.#rawRead(this.#head.subarray(this.#headGot, need));
        if (n < 0) this.#nothingYet = true; // the waiting path waits before it reads again
        if (n <= 0) return null; // 0: the end; the waiting path says which kind
        this.#headGot += n;
      }
      this.#headGot = 0;
      size = this.#pendingSize = sizeAt(this.#headView, 0);
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
   * Reads into `buf` from `at` until it is full; resolves to the count, which is less only at the
   * end of the stream.
   */
  async #readFully(buf: Uint8Array<ArrayBuffer>, at = 0): Promise<number> {
    if (this.#nothingYet) {
      this.#nothingYet = false;
      await this.#wait(OS.POLLIN);
    }
    while (at < buf.length) {
      if (this.#closed) {
        throw new Deno.errors.BadResource("Cannot recv: the connection was closed while receiving");
      }
      const n = this.#rawRead(at === 0 ? buf : buf.subarray(at));
      if (n > 0) at += n;
      else if (n === 0) return at;
      else await this.#wait(OS.POLLIN);
    }
    return at;
  }

  /** Reads the next frame's header (or takes the one left by a too-long recvBytes). */
  async #readSize(): Promise<number> {
    if (this.#pendingSize !== null) return this.#pendingSize;
    for (;;) {
      const need = this.#headGot < HEAD ? HEAD : headAt(this.#headView, 0);
      if (this.#headGot === need) break;
      const got = await this.#readFully(this.#head.subarray(0, need), this.#headGot);
      if (got < need) {
        this.#headGot = 0;
        throw got === 0 ? new EOFError() : cutMidFrame(this.#name, got);
      }
      this.#headGot = got;
    }
    this.#headGot = 0;
    return this.#pendingSize = sizeAt(this.#headView, 0);
  }

  async #readBody(maxLength: number, into: Uint8Array<ArrayBuffer> | null): Promise<Uint8Array<ArrayBuffer>> {
    const partial = this.#partial;
    if (partial) {
      // Started by the fast path of this same receive.
      this.#partial = null;
      const got = partial.ended ? partial.at : await this.#readFully(partial.body, partial.at);
      if (got < partial.body.length) throw cutMidFrame(this.#name, got, partial.body.length);
      return partial.body;
    }
    const size = await this.#readSize();
    if (size > maxLength) throw tooLong(size, maxLength);
    const body = into && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
    this.#pendingSize = null;
    const got = await this.#readFully(body);
    if (got < size) throw cutMidFrame(this.#name, got, size);
    return body;
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  /** Writes one frame; later frames of this process queue behind it. */
  write(body: Uint8Array<ArrayBuffer>): Promise<void> {
    if (this.#writeChain !== null) {
      return this.#queueWrite(
        body.length <= COPY_LIMIT ? [encodeFrame(body)] : [encodeHeader(body.length), body],
      );
    }
    let rest: Uint8Array<ArrayBuffer>[];
    try {
      this.#checkOpen();
      rest = this.#writeNow(body);
    } catch (e) {
      return Promise.reject(e);
    }
    return rest.length === 0 ? RESOLVED : this.#queueWrite(rest);
  }

  /**
   * Writes `frames` (whole frames, headers included: the manager encodes its own) at once, or as
   * much as the fd takes; the rest follows without blocking. Throws when the channel is closed or
   * the connection broken; a later failure of the rest shows on the read side (the end).
   */
  send(frames: Uint8Array<ArrayBuffer>): void {
    this.#checkOpen();
    if (this.#writeChain === null) {
      const n = writeFd(this.fd, frames);
      if (n === frames.length) return;
      frames = frames.subarray(Math.max(n, 0));
    }
    this.#queueWrite([frames]).catch(() => {});
  }

  #checkOpen(): void {
    if (this.#closed) throw new Deno.errors.BadResource(`${this.#name} is closed`);
  }

  #queueWrite(parts: Uint8Array<ArrayBuffer>[]): Promise<void> {
    const prev = this.#writeChain ?? RESOLVED;
    const next = prev.then(() => this.#writeFully(parts));
    const tail = next.catch(() => {});
    this.#writeChain = tail;
    tail.then(() => {
      if (this.#writeChain === tail) this.#writeChain = null;
    });
    return next;
  }

  /** Writes what fits now; returns what did not fit (views: the caller's buffer is not copied). */
  #writeNow(body: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer>[] {
    const fd = this.fd;
    if (body.length <= COPY_LIMIT) {
      const frame = encodeFrame(body);
      const n = writeFd(fd, frame);
      return n === frame.length ? [] : [frame.subarray(Math.max(n, 0))];
    }
    const head = encodeHeader(body.length);
    const n = writeFd(fd, head);
    if (n !== head.length) return [head.subarray(Math.max(n, 0)), body];
    const m = writeFd(fd, body);
    return m === body.length ? [] : [body.subarray(Math.max(m, 0))];
  }

  async #writeFully(parts: Uint8Array<ArrayBuffer>[]): Promise<void> {
    for (const part of parts) {
      let at = 0;
      while (at < part.length) {
        const n = this.#closed ? -1 : writeFd(this.fd, at === 0 ? part : part.subarray(at));
        if (n >= 0) at += n;
        else if (this.#closed || !(await this.#wait(OS.POLLOUT))) {
          throw new Deno.errors.BadResource(`Cannot send: ${lower(this.#name)} was closed while sending`);
        }
      }
    }
  }
}

/** "The connection" → "the connection", for the middle of a sentence. */
const lower = (name: string) => name[0].toLowerCase() + name.slice(1);

function tooLong(size: number, maxLength: number): RangeError {
  return new RangeError(
    `Message too long: ${size} bytes, more than maxLength ${maxLength}; it stays unread (receive it with a larger maxLength)`,
  );
}
