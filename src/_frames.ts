/**
 * Length-prefixed frames on the control channel between a parent and each child: a 4-byte
 * little-endian length, then the body. The parent reads them from a `node:net` socket; the child
 * uses blocking reads, because loading `node:net` would add ~15 ms to every child's start.
 *
 * @module
 */
import type { Socket } from "node:net";
import { read, writeAll } from "../native/mod.ts";

/** Encodes one frame. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  if (body.length > 0xffff_ffff) {
    throw new RangeError(`Cannot send ${body.length} bytes in one control message: the limit is 4 GiB`);
  }
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

/**
 * Calls `onFrame` with each complete frame that arrives on `socket`. Each byte is copied once
 * into its frame (a 64 MiB frame arriving in 64 KiB pieces is not re-copied at every piece).
 */
export function onFrames(socket: Socket, onFrame: (body: Uint8Array) => void): void {
  const head = new Uint8Array(4);
  let headLength = 0;
  let body: Uint8Array | null = null;
  let bodyLength = 0;
  socket.on("data", (chunk: Uint8Array) => {
    let at = 0;
    while (at < chunk.length) {
      if (body === null) {
        const n = Math.min(4 - headLength, chunk.length - at);
        head.set(chunk.subarray(at, at + n), headLength);
        headLength += n;
        at += n;
        if (headLength < 4) return;
        body = new Uint8Array(new DataView(head.buffer).getUint32(0, true));
        bodyLength = 0;
        headLength = 0;
      }
      const n = Math.min(body.length - bodyLength, chunk.length - at);
      body.set(chunk.subarray(at, at + n), bodyLength);
      bodyLength += n;
      at += n;
      if (bodyLength === body.length) {
        const done = body;
        body = null;
        onFrame(done);
      }
    }
  });
}

/** Reads one frame from a blocking fd, blocking the thread; null at end of file. */
export function readFrameSync(fd: number): Uint8Array | null {
  const head = readExactlySync(fd, 4);
  if (!head) return null;
  const size = new DataView(head.buffer).getUint32(0, true);
  const body = readExactlySync(fd, size);
  if (!body) throw new Error(`Control channel closed in the middle of a ${size}-byte frame`);
  return body;
}

/** Writes one frame to a blocking fd, blocking the thread. */
export function writeFrameSync(fd: number, body: Uint8Array): void {
  writeAll(fd, encodeFrame(body) as Uint8Array<ArrayBuffer>);
}

function readExactlySync(fd: number, size: number): Uint8Array<ArrayBuffer> | null {
  const out = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const n = read(fd, out.subarray(at));
    if (n === 0) {
      if (at === 0) return null;
      throw new Error(`Control channel closed after ${at} of ${size} bytes`);
    }
    if (n > 0) at += n;
  }
  return out;
}
