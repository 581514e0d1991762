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
 *   result, or `[name, message, stack]` of the error.
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

/** Frames larger than this are refused before authentication. */
const AUTH_FRAME_MAX = 256;
const CHALLENGE = new TextEncoder().encode("#CHALLENGE#");
const WELCOME = new TextEncoder().encode("#WELCOME#");
const FAILURE = new TextEncoder().encode("#FAILURE#");

/** A string naming an address, for messages and as a map key. */
export function addressKey(address: ManagerAddress): string {
  return "path" in address ? address.path : `${address.hostname}:${address.port}`;
}

/** A connection carrying frames. Reads are one at a time; writes may overlap (they are queued). */
export class FrameChannel {
  #conn: Deno.Conn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #writing: Promise<void> | null = null;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
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
    if (!(await this.#fill(4))) return null;
    const size = new DataView(this.#buf.buffer, this.#start, 4).getUint32(0, true);
    if (size > max) throw new AuthenticationError(`Refused a ${size}-byte frame before authentication`);
    this.#start += 4;
    if (!(await this.#fill(size))) throw new Error(`Connection closed in the middle of a ${size}-byte frame`);
    const body = this.#buf.subarray(this.#start, this.#start + size);
    this.#start += size;
    return body;
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
    const frame = new Uint8Array(4 + checkSize(body.length));
    new DataView(frame.buffer).setUint32(0, body.length, true);
    frame.set(body, 4);
    return this.writeFramed(frame);
  }

  /**
   * Writes bytes that already are a whole frame (see {@linkcode encodeRequest}). The returned
   * promise rejects when the write fails (the peer is gone); nothing else does: the chain that
   * orders the writes never rejects, so a failed write to a client that went away cannot become
   * an unhandled rejection (which would end the server).
   */
  writeFramed(frame: Uint8Array): Promise<void> {
    const write = async () => {
      let at = 0;
      while (at < frame.length) at += await this.#conn.write(frame.subarray(at));
    };
    const next = this.#writing ? this.#writing.then(write) : write();
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

const ascii = new TextEncoder();
const asciiDecoder = new TextDecoder();

/** A whole request frame. */
export function encodeRequest(id: number, objectId: number, method: string, args: Uint8Array): Uint8Array {
  const name = ascii.encode(method);
  const size = checkSize(9 + name.length + args.length);
  const frame = new Uint8Array(4 + size);
  const view = new DataView(frame.buffer);
  view.setUint32(0, size, true);
  view.setUint32(4, id, true);
  view.setUint32(8, objectId, true);
  frame[12] = name.length;
  frame.set(name, 13);
  frame.set(args, 13 + name.length);
  return frame;
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
    method: asciiDecoder.decode(body.subarray(9, 9 + n)),
    args: body.subarray(9 + n),
  };
}

/** A whole reply frame. */
export function encodeReply(id: number, kind: number, payload: Uint8Array): Uint8Array {
  const size = checkSize(5 + payload.length);
  const frame = new Uint8Array(4 + size);
  const view = new DataView(frame.buffer);
  view.setUint32(0, size, true);
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
export async function deliverChallenge(ch: FrameChannel, authkey: Uint8Array, peer: string): Promise<void> {
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
export async function answerChallenge(ch: FrameChannel, authkey: Uint8Array, peer: string): Promise<void> {
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
