/**
 * THE frame format, for every byte stream of the library: the control channel between a parent
 * and each child, Connection/Pipe, the queue's pipe and segments, and the manager's wire.
 *
 * **Layout.** A frame is a header, then the body. The header is the body's length as a u32
 * little-endian; a length of 4 GiB − 1 or more takes the long form: `0xFFFFFFFF`, then the length
 * as a u64 little-endian (12 bytes in all). So every channel carries frames of any size a
 * `Uint8Array` can hold. A reader tells the two forms apart by the first word alone
 * ({@linkcode headAt}); the writer picks the form from the size ({@linkcode headerLength}).
 *
 * **A stream cut in the middle of a frame** is one error everywhere: `Deno.errors.UnexpectedEof`
 * ({@linkcode cutMidFrame}), naming the channel and how many bytes arrived: the writer closed or
 * died while sending. A stream that ends between frames is a clean end (each reader says so in
 * its own way: null, or `EOFError`).
 *
 * **Readers.** How a reader gets its bytes differs, so there are three styles, each written once:
 * - in memory (the queue's read-ahead and segments): {@linkcode headAt}/{@linkcode sizeAt}/
 *   {@linkcode frameLength} on a `DataView` at an offset;
 * - pushed chunks from a stream with one owner (the parent's `node:net` control socket):
 *   {@linkcode FrameDecoder}, which copies each byte once into its frame;
 * - pulled: {@linkcode readFrameSync} (blocking fd: the child's side of the control channel, which
 *   avoids `node:net`: loading it adds ~15 ms to every child's start) and {@linkcode FrameBuffer}
 *   (buffered, over non-blocking reads, for a socket one process owns: the manager's). A
 *   Connection pulls exactly one header and one body with non-blocking reads
 *   (`_fd_channel.ts`'s exact mode), because several processes may share one of its ends.
 *
 * @module
 */
import type { Socket } from "node:net";
import { read, writeAll } from "../native/mod.ts";

/** The short header's length: a u32 body length. */
export const HEAD = 4;
/** The long header's length: the mark, then a u64 body length. */
export const LONG_HEAD = 12;
/** The first word of a long header. */
const LONG_MARK = 0xffff_ffff;
/** Bodies of this size and more take the long header (lowered by tests only). */
let longFrom = LONG_MARK;

/**
 * For tests: bodies of `size` bytes and more take the long header from now on, in this process
 * (so the long form can be tested without 4 GiB frames). Returns the previous threshold.
 */
export function setLongFrom(size: number): number {
  const before = longFrom;
  longFrom = Math.min(size, LONG_MARK);
  return before;
}

/** The header's length for a body of `size` bytes: {@linkcode HEAD} or {@linkcode LONG_HEAD}. */
export function headerLength(size: number): number {
  return size < longFrom ? HEAD : LONG_HEAD;
}

/** Writes the header for a body of `size` bytes at `at`; returns where the body starts. */
export function writeHeader(view: DataView, at: number, size: number): number {
  if (size < longFrom) {
    view.setUint32(at, size, true);
    return at + HEAD;
  }
  view.setUint32(at, LONG_MARK, true);
  view.setBigUint64(at + 4, BigInt(size), true);
  return at + LONG_HEAD;
}

/** A header for a body of `size` bytes. */
export function encodeHeader(size: number): Uint8Array<ArrayBuffer> {
  const head = new Uint8Array(headerLength(size));
  writeHeader(new DataView(head.buffer), 0, size);
  return head;
}

/** One frame: the header, then a copy of `body`. */
export function encodeFrame(body: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(headerLength(body.length) + body.length);
  out.set(body, writeHeader(new DataView(out.buffer), 0, body.length));
  return out;
}

/** The length of the header at `at`, told by its first word (4 bytes must be there). */
export function headAt(view: DataView, at: number): number {
  return view.getUint32(at, true) === LONG_MARK ? LONG_HEAD : HEAD;
}

/** The body length in the header at `at` (the whole header, {@linkcode headAt}, must be there). */
export function sizeAt(view: DataView, at: number): number {
  const short = view.getUint32(at, true);
  if (short !== LONG_MARK) return short;
  const size = view.getBigUint64(at + 4, true);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`Invalid frame header: a ${size}-byte body; the stream is out of step`);
  }
  return Number(size);
}

/**
 * How many bytes from `at` the frame there takes, as far as the bytes before `end` tell: header
 * and body when the header is all there, else the length of the header so far known (4, then
 * 12). So the frame is all there exactly when `end - at >= frameLength(view, at, end)`; a buffered
 * reader fills to the length this returns and asks again.
 */
export function frameLength(view: DataView, at: number, end: number): number {
  if (end - at < HEAD) return HEAD;
  const head = headAt(view, at);
  return end - at < head ? head : head + sizeAt(view, at);
}

/**
 * The error for a stream that ended inside a frame. `channel` names the stream ("The control
 * channel"); `size` is the body's length once its header arrived (then `got` counts body bytes).
 */
export function cutMidFrame(channel: string, got: number, size?: number): Deno.errors.UnexpectedEof {
  const what = size === undefined ? `${got} bytes of its header` : `${got} of its ${size} bytes`;
  return new Deno.errors.UnexpectedEof(
    `${channel} ended in the middle of a message (${what} arrived): the sender closed or died while sending`,
  );
}

/**
 * Turns chunks of a stream into frames: `push()` each chunk as it comes, and `onFrame` is called
 * with each complete body, in order; `end()` at the end of the stream throws
 * {@linkcode cutMidFrame} when it ended inside a frame. Each byte is copied once, into its frame
 * (a 64 MiB frame arriving in 64 KiB pieces is not re-copied at each piece).
 */
export class FrameDecoder {
  #channel: string;
  #onFrame: (body: Uint8Array) => void;
  #head = new Uint8Array(LONG_HEAD);
  #headView = new DataView(this.#head.buffer);
  #headGot = 0;
  #body: Uint8Array | null = null;
  #bodyGot = 0;

  constructor(channel: string, onFrame: (body: Uint8Array) => void) {
    this.#channel = channel;
    this.#onFrame = onFrame;
  }

  /** Takes the next chunk of the stream. */
  push(chunk: Uint8Array): void {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let at = 0;
    while (at < chunk.length) {
      let body = this.#body;
      if (body === null) {
        if (this.#headGot === 0 && chunk.length - at >= HEAD) {
          // The whole frame may be in this chunk: take it in one copy.
          const n = frameLength(view, at, chunk.length);
          if (chunk.length - at >= n) {
            const start = at + headAt(view, at);
            at += n;
            // A copy (a Buffer's slice() would be a view): the chunk's memory may be reused.
            const body = new Uint8Array(at - start);
            body.set(chunk.subarray(start, at));
            this.#onFrame(body);
            continue;
          }
        }
        const need = this.#headGot < HEAD ? HEAD : headAt(this.#headView, 0);
        const n = Math.min(need - this.#headGot, chunk.length - at);
        this.#head.set(chunk.subarray(at, at + n), this.#headGot);
        this.#headGot += n;
        at += n;
        if (this.#headGot < need || headAt(this.#headView, 0) > need) continue;
        body = this.#body = new Uint8Array(sizeAt(this.#headView, 0));
        this.#headGot = 0;
        this.#bodyGot = 0;
      }
      const n = Math.min(body.length - this.#bodyGot, chunk.length - at);
      body.set(chunk.subarray(at, at + n), this.#bodyGot);
      this.#bodyGot += n;
      at += n;
      if (this.#bodyGot === body.length) {
        this.#body = null;
        this.#onFrame(body);
      }
    }
  }

  /** The stream ended: throws {@linkcode cutMidFrame} when it ended inside a frame. */
  end(): void {
    if (this.#body !== null) throw cutMidFrame(this.#channel, this.#bodyGot, this.#body.length);
    if (this.#headGot > 0) throw cutMidFrame(this.#channel, this.#headGot);
  }
}

/**
 * Calls `onFrame` with each complete frame that arrives on `socket` (the parent's end of a
 * control channel). A socket that ends inside a frame is destroyed with {@linkcode cutMidFrame}
 * as its error (the child died while it wrote; its exit status says why).
 */
export function onFrames(socket: Socket, onFrame: (body: Uint8Array) => void): void {
  const decoder = new FrameDecoder("The control channel", onFrame);
  socket.on("data", (chunk: Uint8Array) => decoder.push(chunk));
  socket.on("end", () => {
    try {
      decoder.end();
    } catch (e) {
      socket.destroy(e as Error);
    }
  });
}

/**
 * Reads one frame from a blocking fd, blocking the thread; null at the end of the stream
 * (between frames). Throws {@linkcode cutMidFrame} when it ends inside one.
 */
export function readFrameSync(fd: number, channel = "The control channel"): Uint8Array | null {
  const head = new Uint8Array(LONG_HEAD);
  const view = new DataView(head.buffer);
  let got = readIntoSync(fd, head, 0, HEAD);
  if (got === 0) return null;
  if (got === HEAD && headAt(view, 0) === LONG_HEAD) got = readIntoSync(fd, head, HEAD, LONG_HEAD);
  if (got < headAt(view, 0)) throw cutMidFrame(channel, got);
  const size = sizeAt(view, 0);
  const body = new Uint8Array(size);
  got = readIntoSync(fd, body, 0, size);
  if (got < size) throw cutMidFrame(channel, got, size);
  return body;
}

/** Writes one frame to a blocking fd, blocking the thread. */
export function writeFrameSync(fd: number, body: Uint8Array): void {
  writeAll(fd, encodeFrame(body));
}

/** Reads into `buf` from `at` until `end` or the end of the stream; returns where it got. */
function readIntoSync(fd: number, buf: Uint8Array<ArrayBuffer>, at: number, end: number): number {
  while (at < end) {
    const n = read(fd, buf.subarray(at, end));
    if (n === 0) break;
    if (n > 0) at += n;
  }
  return at;
}

/**
 * Pulls frames through a buffer, from a stream this process alone reads (the manager's sockets:
 * `_fd_channel.ts`'s buffered mode). {@linkcode FrameBuffer.fill} reads what has come with one
 * non-blocking `read`; {@linkcode FrameBuffer.take} gives the next whole frame's body, a view into
 * the buffer valid until the next fill, so small frames cost no allocation. The buffer grows to
 * hold the frame that is coming, whole.
 */
export class FrameBuffer {
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #start = 0;
  #end = 0;
  /** The last {@linkcode fill} filled less than its room: it took all there was. */
  drained = false;

  /**
   * The next whole frame's body (valid until the next {@linkcode fill}), else null. A body longer
   * than `max` is refused before it is read: `refuse(size)` is thrown.
   */
  take(max = Infinity, refuse: (size: number) => Error = tooLongFrame): Uint8Array | null {
    const have = this.#end - this.#start;
    if (have < HEAD) return null;
    const head = headAt(this.#view, this.#start);
    if (have < head) return null;
    const size = sizeAt(this.#view, this.#start);
    if (size > max) throw refuse(size);
    if (have < head + size) return null;
    const at = this.#start + head;
    this.#start = at + size;
    return this.#buf.subarray(at, at + size);
  }

  /**
   * Reads once with `read` (a non-blocking read: the count, 0 at the end of the stream, -1 when
   * nothing has come). True when something was read, false when nothing had come, null at the end.
   * The bodies {@linkcode take} gave are invalid after.
   */
  fill(read: (buf: Uint8Array<ArrayBuffer>) => number): boolean | null {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    const have = this.#end - this.#start;
    // Room for the frame that is coming, whole: grow, or move the unread bytes to the front.
    const need = have >= HEAD ? frameLength(this.#view, this.#start, this.#end) : 4096;
    if (this.#buf.length - this.#start < need || this.#end === this.#buf.length) {
      const buf = need > this.#buf.length ? new Uint8Array(need) : this.#buf;
      buf.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = buf;
      this.#view = new DataView(buf.buffer);
      this.#start = 0;
      this.#end = have;
    }
    const room = this.#buf.length - this.#end;
    const n = read(this.#buf.subarray(this.#end));
    if (n === 0) return null;
    if (n < 0) return false;
    this.#end += n;
    this.drained = n < room;
    return true;
  }

  /**
   * For the end of the stream: {@linkcode cutMidFrame} naming `channel` when it ended inside a
   * frame, null when it ended between frames.
   */
  cut(channel: string): Deno.errors.UnexpectedEof | null {
    const have = this.#end - this.#start;
    if (have === 0) return null;
    const head = have >= HEAD ? headAt(this.#view, this.#start) : HEAD;
    return have < head
      ? cutMidFrame(channel, have)
      : cutMidFrame(channel, have - head, sizeAt(this.#view, this.#start));
  }
}

function tooLongFrame(size: number): RangeError {
  return new RangeError(`Refused a ${size}-byte frame: longer than the limit`);
}
