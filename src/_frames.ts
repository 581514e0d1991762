/**
 * Length-prefixed frames over a `node:net` socket (the control channel between a parent and
 * each child): a 4-byte little-endian length, then the body.
 *
 * @module
 */
import type { Socket } from "node:net";

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
