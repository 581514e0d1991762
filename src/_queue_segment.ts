/**
 * Queue segments: a shared memory segment holding a run of item frames (`_queue_shared.ts`),
 * for an item too big for one atomic pipe write, or for the backlog an exiting process hands
 * over. The pipe names a segment with a frame of tag `TAG_SEGMENT` whose payload is the
 * segment's length (f64) and then its name (UTF-8). Readers take the items in order, and the one
 * that takes the last removes the segment (`_queue_reader.ts`). Segments are tracked
 * (`_tracker.ts`): one left behind by processes that died goes once the whole tree has ended.
 *
 * @module
 */
import { mapSharedMemory } from "../native/mod.ts";
import { createNamed, makeTracked, unlinkNamed } from "./_resource.ts";

const encoder = new TextEncoder();

/**
 * Writes `parts` (each a run of whole frames) into a new shared memory segment; returns its name
 * and size.
 */
export function makeSegment(parts: Uint8Array[]): { name: string; size: number } {
  let size = 0;
  for (const p of parts) size += p.length;
  const { name, map } = createNamed("b", (name) => ({
    name,
    map: makeTracked({ kind: "shm", name }, () => mapSharedMemory(name, true, size)),
  }));
  try {
    const bytes = new Uint8Array(map.buffer);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
  } finally {
    map.unmap();
  }
  return { name, size };
}

/** The payload of a frame naming segment `name` of `size` bytes. */
export function segmentRef(name: string, size: number): Uint8Array {
  const nameBytes = encoder.encode(name);
  const payload = new Uint8Array(8 + nameBytes.length);
  new DataView(payload.buffer).setFloat64(0, size, true);
  payload.set(nameBytes, 8);
  return payload;
}

/** Removes a segment whose items are all taken (or moved elsewhere). */
export function removeSegment(name: string): void {
  unlinkNamed({ kind: "shm", name });
}
