/**
 * A client's end of its connection to a manager: a socket fd of its own (made in `native/`), read
 * and written with synchronous calls, so that a call's round trip costs two syscalls and no trip
 * through the event loop's I/O (`Deno.Conn` costs an async op each way: a round trip was twice
 * as slow). The server's connections are such channels too, waited on by its one poll loop
 * (`_manager_listen.ts`). Frames are `_frames.ts`'s.
 *
 * Waiting for a reply: {@linkcode SocketChannel.poll} sleeps on this thread for a bounded moment
 * (most replies come within it), {@linkcode SocketChannel.readable} sleeps without blocking the
 * event loop (`_fd_wait.ts`'s `Waiter`) for replies that take longer.
 *
 * @module
 */
import {
  close as closeFd,
  connectResult,
  connectSocket,
  OS,
  osError,
  pollFds,
  read,
  send,
  shutdownSocket,
  type SocketAddress,
} from "../native/mod.ts";
import { Waiter } from "./_fd_wait.ts";
import { type Eagerness, spinWhilePays } from "./_wait.ts";
import { checkFrameSize, type Frames, type ManagerAddress } from "./_manager_wire.ts";
import { cutMidFrame, encodeFrame, frameLength, HEAD, headAt, sizeAt } from "./_frames.ts";

/** The socket address of a manager's address; a host name is looked up (`/etc/hosts`, DNS). */
export async function socketAddress(address: ManagerAddress): Promise<SocketAddress> {
  if ("path" in address) return { path: address.path };
  const { hostname, port } = address;
  const literal = parseIp(hostname);
  if (literal) return { ip: literal, port };
  // Loaded only here: a node: module costs every process that imports it milliseconds of start-up.
  const { lookup } = await import("node:dns/promises");
  const found = await lookup(hostname);
  const ip = parseIp(found.address);
  if (!ip) throw new Deno.errors.NotFound(`Cannot resolve ${JSON.stringify(hostname)}: got ${found.address}`);
  return { ip, port };
}

/** The bytes of an IPv4 or IPv6 literal (brackets allowed around IPv6), or null. */
export function parseIp(text: string): Uint8Array | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    return bytes.every((b) => b <= 255) ? new Uint8Array(bytes) : null;
  }
  const host = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (!host.includes(":") || !/^[0-9a-fA-F:.]+$/.test(host)) return null;
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  let groups = host;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (tail) {
    const b = parseIp(tail[1]);
    if (!b) return null;
    groups = host.slice(0, -tail[1].length) +
      `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const halves = groups.split("::");
  if (halves.length > 2) return null;
  const part = (s: string) => s === "" ? [] : s.split(":");
  const head = part(halves[0]);
  const rest = halves.length === 2 ? part(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return null;
    const g = parseInt(all[i], 16);
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}

/**
 * How a channel waits until its fd has `events` (true), or `stop` aborts (false). By default on
 * its own (`Waiter`: a worker thread's poll); the server's channels ask its one poll loop.
 */
export type Readiness = (fd: number, events: number, stop: AbortSignal) => Promise<boolean>;

/** A connected, non-blocking socket carrying frames. */
export class SocketChannel implements Frames {
  readonly fd: number;
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #start = 0;
  #end = 0;
  /** Bytes of frames not written yet (the socket's buffer was full), in order. */
  #out: Uint8Array<ArrayBuffer>[] = [];
  #flushing: Promise<void> | null = null;
  #drained = false;
  #closed = new AbortController();
  #ready: Readiness;

  /** A channel over the connected socket `fd` (it closes it). */
  constructor(fd: number, ready?: Readiness) {
    this.fd = fd;
    if (ready) this.#ready = ready;
    else {
      const reader = new Waiter();
      const writer = new Waiter();
      this.#ready = (fd, events, stop) => (events === OS.POLLOUT ? writer : reader).ready(fd, events, [stop]);
    }
  }

  /** Connects to `address` (without blocking the event loop while a TCP connect is in progress). */
  static async connect(address: ManagerAddress): Promise<SocketChannel> {
    const { fd, connected } = connectSocket(await socketAddress(address));
    const ch = new SocketChannel(fd);
    if (!connected) {
      try {
        await ch.#ready(fd, OS.POLLOUT, ch.#closed.signal);
        const code = connectResult(fd);
        if (code !== 0) throw osError("connect", code, `${addressText(address)}`);
      } catch (e) {
        ch.close();
        throw e;
      }
    }
    return ch;
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed.signal.aborted;
  }

  /**
   * A whole frame's body that is buffered already (valid until the next {@linkcode fill}: read
   * it at once), else null. A frame over `max` bytes throws (before authentication).
   */
  takeFrame(max = Infinity): Uint8Array | null {
    const have = this.#end - this.#start;
    if (have < HEAD) return null;
    const head = headAt(this.#view, this.#start);
    if (have < head) return null;
    const size = sizeAt(this.#view, this.#start);
    checkFrameSize(size, max);
    if (have < head + size) return null;
    const at = this.#start + head;
    this.#start = at + size;
    return this.#buf.subarray(at, at + size);
  }

  /**
   * Reads what has come (without waiting). True when something was read, false when nothing
   * had come, null at end of stream. The bodies {@linkcode takeFrame} gave are invalid after.
   */
  fill(): boolean | null {
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
    if (this.closed) return null;
    const room = this.#buf.length - this.#end;
    const n = read(this.fd, this.#buf.subarray(this.#end) as Uint8Array<ArrayBuffer>);
    if (n === 0) return null;
    if (n < 0) return false;
    this.#end += n;
    this.#drained = n < room;
    return true;
  }

  /** The last {@linkcode fill} took all there was (no need to read again before a wait). */
  get drained(): boolean {
    return this.#drained;
  }

  /**
   * Waits on this thread for at most `ms` until something can be read (true): first spinning
   * while it pays (`spinWhilePays`, the one wait loop's spin), then asleep in the kernel.
   */
  poll(ms: number, eager: Eagerness): boolean {
    if (this.closed) return false;
    const fds = [this.fd];
    if (spinWhilePays(eager, () => pollFds(fds, OS.POLLIN, 0).length > 0)) return true;
    return pollFds(fds, OS.POLLIN, ms).length > 0;
  }

  /** Resolves when something can be read (true), or false once the channel is closed. */
  readable(): Promise<boolean> {
    return this.#ready(this.fd, OS.POLLIN, this.#closed.signal);
  }

  /**
   * The next frame's body (for the handshake), or null at end of stream between frames; a stream
   * that ends inside a frame throws `_frames.ts`'s `UnexpectedEof`.
   */
  async readFrame(max = Infinity): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.takeFrame(max);
      if (frame) return frame;
      const got = this.fill();
      if (got === null || (!got && !(await this.readable()))) {
        const have = this.#end - this.#start;
        if (have === 0 || this.closed) return null;
        const head = have >= HEAD ? headAt(this.#view, this.#start) : HEAD;
        throw have < head
          ? cutMidFrame("The manager connection", have)
          : cutMidFrame("The manager connection", have - head, sizeAt(this.#view, this.#start));
      }
    }
  }

  /** Writes one frame. */
  writeFrame(body: Uint8Array): Promise<void> {
    try {
      this.send(encodeFrame(body));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.flushed;
  }

  /**
   * Writes a whole frame now, or as much of it as the socket takes; the rest follows without
   * blocking (frames sent meanwhile queue behind it). Throws when the connection is broken; a
   * later failure of the queued rest rejects {@linkcode flushed}.
   */
  send(frame: Uint8Array<ArrayBuffer>): void {
    if (this.closed) throw new Deno.errors.BadResource("The connection to the manager is closed");
    if (this.#out.length > 0) {
      this.#out.push(frame);
      return;
    }
    const n = send(this.fd, frame);
    if (n === frame.length) return;
    this.#out.push(frame.subarray(Math.max(n, 0)));
    this.#flushing = this.#flush();
    // A failure shows on the read side too (the connection is gone); the handshake awaits it.
    this.#flushing.catch(() => {});
  }

  /** Settles when what {@linkcode send} queued is written; rejects if that failed. */
  get flushed(): Promise<void> {
    return this.#flushing ?? Promise.resolve();
  }

  async #flush(): Promise<void> {
    try {
      while (this.#out.length > 0) {
        if (!(await this.#ready(this.fd, OS.POLLOUT, this.#closed.signal))) {
          throw new Deno.errors.BadResource("The connection to the manager was closed while writing");
        }
        const head = this.#out[0];
        const n = send(this.fd, head);
        if (n === head.length) this.#out.shift();
        else if (n > 0) this.#out[0] = head.subarray(n);
      }
    } finally {
      this.#flushing = null;
    }
  }

  /** Closes the socket (idempotent); a wait in progress ends. */
  close(): void {
    if (this.closed) return;
    this.#closed.abort();
    this.#out.length = 0;
    shutdownSocket(this.fd); // wakes a worker thread polling it
    closeFd(this.fd);
  }
}

function addressText(address: ManagerAddress): string {
  return "path" in address ? address.path : `${address.hostname}:${address.port}`;
}
