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
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

/** Calls `onFrame` with each complete frame that arrives on `socket`. */
export function onFrames(socket: Socket, onFrame: (body: Uint8Array) => void): void {
  let buffered = new Uint8Array(0);
  socket.on("data", (chunk: Uint8Array) => {
    const joined = new Uint8Array(buffered.length + chunk.length);
    joined.set(buffered);
    joined.set(chunk, buffered.length);
    let at = 0;
    while (joined.length - at >= 4) {
      const size = new DataView(joined.buffer, joined.byteOffset + at).getUint32(0, true);
      if (joined.length - at - 4 < size) break;
      onFrame(joined.slice(at + 4, at + 4 + size));
      at += 4 + size;
    }
    buffered = joined.slice(at);
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
