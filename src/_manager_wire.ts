/**
 * What a manager and its clients say to each other over a socket (CPython: `connection.py`'s
 * `deliver_challenge`/`answer_challenge` and `managers.py`'s request/reply tuples).
 *
 * Every message is a frame: a 4-byte little-endian length, then the body. The first frames of a
 * connection are raw bytes that prove each side knows the authkey (nothing is deserialized before
 * that: reviving a value may open named resources); after that every body is a `serialize()`d
 * value:
 *
 * - client → server: request id (u32), object id (u32, 0 is the manager itself), the method's
 *   name (u8 length, then ASCII), then the `serialize()`d array of arguments;
 * - server → client: request id (u32), a kind (u8: OK, ERROR, ...), then the `serialize()`d
 *   result, or `[name, message, stack]` of the error; a call that has to wait is first
 *   acknowledged with kind PENDING and no payload.
 *
 * The envelope is a few fixed bytes rather than a serialized tuple: a round trip is then one
 * serialization each way (and the arguments are revived apart from the envelope, so an argument
 * that cannot be revived fails its own request, not the connection).
 *
 * Requests are answered in any order (a queue `get()` may wait while a dict `set()` goes on), so
 * one connection per process serves every proxy of that process.
 *
 * @module
 */
import { AuthenticationError, EOFError } from "./errors.ts";

/**
 * Where a manager listens: a Unix socket path, or a TCP host and port.
 *
 * @example A manager on a TCP port of this machine
 * ```ts
 * import { Manager, type ManagerAddress } from "@mp/multiprocessing";
 *
 * const address: ManagerAddress = { hostname: "127.0.0.1", port: 0 }; // port 0: any free port
 * await using manager = await Manager.start({ address });
 * console.log(manager.address); // { hostname: "127.0.0.1", port: ... }
 * ```
 */
export type ManagerAddress = { hostname: string; port: number } | { path: string };

/** Reply kinds. */
export const OK = 0;
/** The method threw: the client raises a `RemoteError`. */
export const ERROR = 1;
/** The method threw an error of the native class's API (QueueEmptyError, ...): raised as is. */
export const NATIVE_ERROR = 2;
/** The request was cancelled (its signal aborted) before it completed. */
export const CANCELLED = 3;
/**
 * Not a reply yet: the call waits (a queue `get()`, a taken lock...), its reply comes later.
 * Sent at once, so that the client knows not to wait for it on its own thread.
 */
export const PENDING = 4;

/** Frames larger than this are refused before authentication. */
const AUTH_FRAME_MAX = 256;
const CHALLENGE = new TextEncoder().encode("#CHALLENGE#");
const WELCOME = new TextEncoder().encode("#WELCOME#");
const FAILURE = new TextEncoder().encode("#FAILURE#");

/** A string naming an address, for messages and as a map key. */
export function addressKey(address: ManagerAddress): string {
  return "path" in address ? address.path : `${address.hostname}:${address.port}`;
}

/** The bytes of a frame's header. */
export const FRAME_HEADER = 4;

/** Writes a frame's header (its body's length) at `at`. */
export function putFrameHeader(frame: Uint8Array, at: number, bodySize: number): void {
  frame[at] = bodySize & 0xff;
  frame[at + 1] = (bodySize >>> 8) & 0xff;
  frame[at + 2] = (bodySize >>> 16) & 0xff;
  frame[at + 3] = bodySize >>> 24;
}

/** Reads the body length from a frame's header at `at`. */
export function frameBodySize(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16)) + bytes[at + 3] * 0x100_0000;
}

/** A whole frame around `body`. */
export function frameOf(body: Uint8Array): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(FRAME_HEADER + checkSize(body.length));
  putFrameHeader(frame, 0, body.length);
  frame.set(body, FRAME_HEADER);
  return frame;
}

/** Refuses a frame of `size` bytes before authentication. */
export function checkFrameSize(size: number, max: number): void {
  if (size > max) throw new AuthenticationError(`Refused a ${size}-byte frame before authentication`);
}

/** Either end of a connection, as the handshake sees it. */
export interface Frames {
  /** The next frame's body (valid until the next read), or null at end of stream. */
  readFrame(max?: number): Promise<Uint8Array | null>;
  /** Writes one frame. */
  writeFrame(body: Uint8Array): Promise<void>;
}

/**
 * A `Deno.Conn` carrying frames: the wire as any client could speak it (the tests' raw clients;
 * the library's own ends use native sockets, `_manager_socket.ts`). Reads are one at a time;
 * writes may overlap (they are queued).
 */
export class FrameChannel implements Frames {
  #conn: Deno.Conn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #writing: Promise<void> | null = null;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  }

  /** The connection underneath (for ref/unref). */
  get conn(): Deno.Conn {
    return this.#conn;
  }

  /**
   * The next frame's body, or null at end of stream. The bytes are valid until the next call:
   * deserialize them at once.
   */
  async readFrame(max = Infinity): Promise<Uint8Array | null> {
    const got = this.takeFrame(max);
    if (got) return got;
    if (!(await this.#fill(FRAME_HEADER))) return null;
    const size = frameBodySize(this.#buf, this.#start);
    checkFrameSize(size, max);
    this.#start += FRAME_HEADER;
    if (!(await this.#fill(size))) throw new Error(`Connection closed in the middle of a ${size}-byte frame`);
    const body = this.#buf.subarray(this.#start, this.#start + size);
    this.#start += size;
    return body;
  }

  /** A whole frame's body that is buffered already (valid until the next read), else null. */
  takeFrame(max = Infinity): Uint8Array | null {
    const have = this.#end - this.#start;
    if (have < FRAME_HEADER) return null;
    const size = frameBodySize(this.#buf, this.#start);
    checkFrameSize(size, max);
    if (have < FRAME_HEADER + size) return null;
    const at = this.#start + FRAME_HEADER;
    this.#start = at + size;
    return this.#buf.subarray(at, at + size);
  }

  /** Ensures `n` unread bytes are buffered; false at end of stream before any of them. */
  async #fill(n: number): Promise<boolean> {
    if (this.#end - this.#start >= n) return true;
    if (this.#buf.length - this.#start < n) {
      const bigger = new Uint8Array(Math.max(n, this.#buf.length));
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#buf = bigger;
    } else if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    while (this.#end - this.#start < n) {
      if (this.#buf.length === this.#end) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const got = await this.#conn.read(this.#buf.subarray(this.#end));
      if (got === null) return false;
      this.#end += got;
    }
    return true;
  }

  /** Writes one frame; frames written concurrently go out whole, one after the other. */
  writeFrame(body: Uint8Array): Promise<void> {
    return this.writeFramed(frameOf(body));
  }

  /**
   * Writes bytes that already are a whole frame (see {@linkcode encodeRequest}). The returned
   * promise rejects when the write fails (the peer is gone); nothing else does: the chain that
   * orders the writes never rejects, so a failed write to a client that went away cannot become
   * an unhandled rejection (which would end the server).
   */
  writeFramed(frame: Uint8Array): Promise<void> {
    const write = async (n = 0) => {
      for (let at = n; at < frame.length;) at += await this.#conn.write(frame.subarray(at));
    };
    // Nothing queued: write at once, and chain only if the write was short.
    const next = this.#writing
      ? this.#writing.then(() => write())
      : this.#conn.write(frame).then((n) => n < frame.length ? write(n) : undefined);
    const settled: Promise<void> = next.then(done, done).then(() => {
      if (this.#writing === settled) this.#writing = null;
    });
    this.#writing = settled;
    return next;
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

function done(): void {}

function checkSize(n: number): number {
  if (n > 0xffff_ffff) {
    throw new RangeError(`Cannot send ${n} bytes in one manager message: the limit is 4 GiB`);
  }
  return n;
}

const asciiDecoder = new TextDecoder();

/** A whole request frame. */
export function encodeRequest(
  id: number,
  objectId: number,
  method: string,
  args: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const name = methodBytes(method);
  const n = name.length;
  const size = checkSize(9 + n + args.length);
  const frame = new Uint8Array(FRAME_HEADER + size);
  const view = new DataView(frame.buffer);
  putFrameHeader(frame, 0, size);
  view.setUint32(4, id, true);
  view.setUint32(8, objectId, true);
  frame[12] = n;
  frame.set(name, 13);
  frame.set(args, 13 + n);
  return frame;
}

const utf8 = new TextEncoder();
const names = new Map<string, Uint8Array>();

/** A method's name as UTF-8 (remembered: proxies call few distinct methods). */
function methodBytes(method: string): Uint8Array {
  let bytes = names.get(method);
  if (bytes) return bytes;
  bytes = utf8.encode(method);
  if (bytes.length > 255) {
    throw new RangeError(`Cannot call a method named ${JSON.stringify(method)}: names are at most 255 bytes`);
  }
  if (names.size < 1024) names.set(method, bytes);
  return bytes;
}

/** A method's name from its UTF-8 bytes (ASCII without a call into the decoder). */
function methodName(bytes: Uint8Array): string {
  let ascii = "";
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] > 0x7f) return asciiDecoder.decode(bytes);
    ascii += String.fromCharCode(bytes[i]);
  }
  return ascii;
}

/** Reads a request's body (the bytes of `args` are valid until the next read). */
export function decodeRequest(
  body: Uint8Array,
): { id: number; objectId: number; method: string; args: Uint8Array } {
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const n = body[8];
  return {
    id: view.getUint32(0, true),
    objectId: view.getUint32(4, true),
    method: methodName(body.subarray(9, 9 + n)),
    args: body.subarray(9 + n),
  };
}

/** A whole reply frame. */
export function encodeReply(id: number, kind: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const size = checkSize(5 + payload.length);
  const frame = new Uint8Array(FRAME_HEADER + size);
  const view = new DataView(frame.buffer);
  putFrameHeader(frame, 0, size);
  view.setUint32(4, id, true);
  frame[8] = kind;
  frame.set(payload, 9);
  return frame;
}

/** Reads a reply's body (the payload's bytes are valid until the next read). */
export function decodeReply(body: Uint8Array): { id: number; kind: number; payload: Uint8Array } {
  return {
    id: new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true),
    kind: body[4],
    payload: body.subarray(5),
  };
}

async function hmac(authkey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    authkey as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, message as Uint8Array<ArrayBuffer>));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function startsWith(a: Uint8Array, prefix: Uint8Array): boolean {
  return a.length >= prefix.length && equalBytes(a.subarray(0, prefix.length), prefix);
}

/** Sends a random challenge and checks that the peer answers it with the authkey's HMAC. */
export async function deliverChallenge(ch: Frames, authkey: Uint8Array, peer: string): Promise<void> {
  const message = new Uint8Array(CHALLENGE.length + 32);
  message.set(CHALLENGE);
  crypto.getRandomValues(message.subarray(CHALLENGE.length));
  await ch.writeFrame(message);
  const answer = await ch.readFrame(AUTH_FRAME_MAX);
  const expected = await hmac(authkey, message);
  if (answer === null || !equalBytes(answer, expected)) {
    await ch.writeFrame(FAILURE).catch(() => {});
    throw new AuthenticationError(`Authentication failed: ${peer} did not prove it knows the authkey`);
  }
  await ch.writeFrame(WELCOME);
}

/** Answers the peer's challenge with the authkey's HMAC, and checks that it was accepted. */
export async function answerChallenge(ch: Frames, authkey: Uint8Array, peer: string): Promise<void> {
  const got = await ch.readFrame(AUTH_FRAME_MAX);
  if (got === null) throw new EOFError(`${peer} closed the connection before it sent a challenge`);
  if (!startsWith(got, CHALLENGE)) {
    throw new AuthenticationError(`Authentication failed: ${peer} did not send a challenge`);
  }
  await ch.writeFrame(await hmac(authkey, got.slice()));
  const verdict = await ch.readFrame(AUTH_FRAME_MAX);
  if (verdict === null || !equalBytes(verdict, WELCOME)) {
    throw new AuthenticationError(
      `Authentication failed: ${peer} rejected the authkey; pass the authkey the manager was started with`,
    );
  }
}
