/**
 * What a manager and its clients say to each other over a socket (CPython: `connection.py`'s
 * `deliver_challenge`/`answer_challenge` and `managers.py`'s request/reply tuples).
 *
 * Every message is a frame (`_frames.ts`: the one header, then the body). The first frames of a
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
import { headerLength, writeHeader } from "./_frames.ts";

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

/** The error for a frame of `size` bytes, over the limit before authentication. */
function refuseUnauthenticated(size: number): Error {
  return new AuthenticationError(`Refused a ${size}-byte frame before authentication`);
}

/** Either end of a connection, as the handshake sees it (`_fd_channel.ts`'s buffered mode). */
export interface Frames {
  /**
   * The next frame's body (valid until the next read), or null at end of stream; a body over
   * `max` bytes throws `refuse(size)`.
   */
  readFrame(max?: number, refuse?: (size: number) => Error): Promise<Uint8Array | null>;
  /** Writes one frame. */
  write(body: Uint8Array<ArrayBuffer>): Promise<void>;
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
  const size = 9 + n + args.length;
  const frame = new Uint8Array(headerLength(size) + size);
  const view = new DataView(frame.buffer);
  const at = writeHeader(view, 0, size);
  view.setUint32(at, id, true);
  view.setUint32(at + 4, objectId, true);
  frame[at + 8] = n;
  frame.set(name, at + 9);
  frame.set(args, at + 9 + n);
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
  const size = 5 + payload.length;
  const frame = new Uint8Array(headerLength(size) + size);
  const view = new DataView(frame.buffer);
  const at = writeHeader(view, 0, size);
  view.setUint32(at, id, true);
  frame[at + 4] = kind;
  frame.set(payload, at + 5);
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

async function hmac(authkey: Uint8Array, message: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
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
  await ch.write(message);
  const answer = await ch.readFrame(AUTH_FRAME_MAX, refuseUnauthenticated);
  const expected = await hmac(authkey, message);
  if (answer === null || !equalBytes(answer, expected)) {
    await ch.write(FAILURE).catch(() => {});
    throw new AuthenticationError(`Authentication failed: ${peer} did not prove it knows the authkey`);
  }
  await ch.write(WELCOME);
}

/** Answers the peer's challenge with the authkey's HMAC, and checks that it was accepted. */
export async function answerChallenge(ch: Frames, authkey: Uint8Array, peer: string): Promise<void> {
  const got = await ch.readFrame(AUTH_FRAME_MAX, refuseUnauthenticated);
  if (got === null) throw new EOFError(`${peer} closed the connection before it sent a challenge`);
  if (!startsWith(got, CHALLENGE)) {
    throw new AuthenticationError(`Authentication failed: ${peer} did not send a challenge`);
  }
  await ch.write(await hmac(authkey, got.slice()));
  const verdict = await ch.readFrame(AUTH_FRAME_MAX, refuseUnauthenticated);
  if (verdict === null || !equalBytes(verdict, WELCOME)) {
    throw new AuthenticationError(
      `Authentication failed: ${peer} rejected the authkey; pass the authkey the manager was started with`,
    );
  }
}
