/**
 * The reading side of a queue: the shared read-ahead, item segments, and crash-safe updates of
 * the readers' shared state. Every method here runs with the queue's reader lock held.
 *
 * **Shared read-ahead.** A reader reads up to 16 chunks from the pipe at once into a buffer in
 * shared memory that every reading process sees, and takes one frame from it; the next `get()`,
 * in any process, takes the next frame from there before reading the pipe again.
 *
 * **Crash-safe.** Where the readers are (read-ahead length and offset, the current segment and
 * how far it is read) is a *record*, and there are two of them. A reader never changes the
 * current record: it copies it to the other one, changes that, and publishes it with one
 * compare-and-swap of the `STATE` word (which flips the record index and, for a take, gives the
 * item's place back in the same step). A reader SIGKILLed anywhere leaves either the old state or
 * the new one, never a mix. Reading the pipe is the one step whose result cannot be published
 * with the data, so it is made recoverable instead: the read-ahead is as large as the pipe (64
 * KiB: 16 pages of 4 KiB), so one `read()` takes everything in it, and the pipe holds whole
 * frames only (every write is whole frames of at most `PIPE_BUF` bytes, which the kernel makes
 * atomic); before reading, the reader zeroes the read-ahead and publishes `READING`. A reader that
 * finds `READING` set knows its predecessor may have died after `read()`: the frames it read are
 * the ones that parse from the start up to the first zero length (a frame's length is never 0).
 *
 * **Segments.** An item too big for one pipe write travels in a shared memory segment of its own, and
 * the exit hand-over moves a backlog into one; the pipe (or the record) names it. Readers take
 * items from the current segment before anything else (`_queue_segment.ts`).
 *
 * Frames in the read-ahead and in segments are parsed in place with `_frames.ts`'s helpers (in a
 * segment, a big item's header may be the long one).
 *
 * @module
 */
import { mapSharedMemory, read as readFd, type SharedMapping } from "../native/mod.ts";
import { deserialize } from "./_reduction.ts";
import { frameLength, HEAD, headAt, sizeAt } from "./_frames.ts";
import { makeSegment, removeSegment } from "./_queue_segment.ts";
import {
  B_FRONT,
  B_RECORDS,
  crashPoint,
  FRONT_CAP,
  R_SIZE,
  type Shared,
  TAG_RAW,
  TAG_SEGMENT,
  W_STATE,
} from "./_queue_shared.ts";

/** What {@linkcode Reader.take} returns when there is no item (any value is an item). */
export const NOTHING: unique symbol = Symbol("nothing");

// A record's fields (byte offsets in it).
const R_FLAGS = 0;
const R_FRONT_LEN = 4;
const R_FRONT_OFF = 8;
/** How far the read-ahead may hold stale bytes (zeroed before the next read). */
const R_DIRTY = 12;
const R_SEG_LEN = 16;
const R_SEG_OFF = 24;
const R_SEG_NAME = 32;
const NAME_MAX = 32;
/** Flag: the read-ahead is zeroed and a reader may be inside read(). */
const READING = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function decodeItem(tag: number, payload: Uint8Array): unknown {
  return tag === TAG_RAW ? payload.slice() : deserialize(payload);
}

/** Where the whole frames at the start of `view` end (at the first zero length, or a cut frame). */
function framesEnd(view: DataView, limit: number): number {
  let at = 0;
  for (;;) {
    const n = frameLength(view, at, limit);
    if (n === HEAD || limit - at < n) return at; // an empty body: zeroed bytes (an item has its tag)
    at += n;
  }
}

/**
 * The read-ahead ends inside a frame: a read did not empty the pipe, which happens only where a
 * pipe holds more than 64 KiB (pages larger than 4 KiB).
 */
function cutFrame(off: number, size: number, len: number): Error {
  return new Error(
    `Queue read-ahead holds a cut frame (a ${size}-byte frame at ${off} of ${len}): this system's pipes ` +
      `hold more than the 64 KiB read-ahead (a page size above 4 KiB), which queues do not support`,
  );
}

/** The readers' shared state of one queue, as this process sees it. */
export class Reader {
  #s: Shared;
  #w: Int32Array;
  #view: DataView;
  #bytes: Uint8Array;
  #front: Uint8Array<ArrayBuffer>;
  #frontView: DataView;
  /** This process's mapping of the current segment, if it has one. */
  #segment: { name: string; map: SharedMapping; bytes: Uint8Array; view: DataView } | null = null;

  constructor(s: Shared, w: Int32Array) {
    this.#s = s;
    this.#w = w;
    const buf = s.control.buffer;
    this.#view = new DataView(buf);
    this.#bytes = new Uint8Array(buf);
    this.#front = new Uint8Array(buf, B_FRONT, FRONT_CAP);
    this.#frontView = new DataView(buf, B_FRONT, FRONT_CAP);
  }

  /** Byte offset of the current record. */
  #cur(): number {
    return B_RECORDS + (Atomics.load(this.#w, W_STATE) & 1) * R_SIZE;
  }

  /**
   * Copies the current record to the other one and returns the other's offset, to change. The
   * segment's name is copied only when asked: it means something only while a segment is current.
   */
  #draft(withName = false): number {
    const cur = this.#cur();
    const next = cur === B_RECORDS ? B_RECORDS + R_SIZE : B_RECORDS;
    const w = this.#w;
    const words = (withName ? R_SIZE : R_SEG_NAME) >> 2;
    for (let i = 0, from = cur >> 2, to = next >> 2; i < words; i++) w[to + i] = w[from + i];
    return next;
  }

  /** Publishes the draft: flips the record index and gives `taken` places back, in one CAS. */
  #publish(taken: number): void {
    const w = this.#w;
    for (;;) {
      const s = Atomics.load(w, W_STATE);
      const used = Math.max(0, (s >>> 1) - taken);
      if (Atomics.compareExchange(w, W_STATE, s, used * 2 + ((s & 1) ^ 1)) === s) return;
    }
  }

  /**
   * Finishes what a reader that died holding the lock left: if it died after `read()`, the frames
   * it read become the read-ahead. Call after taking the reader lock.
   */
  recover(): void {
    const v = this.#view;
    const cur = this.#cur();
    if ((v.getUint32(cur + R_FLAGS, true) & READING) === 0) return;
    const k = framesEnd(this.#frontView, FRONT_CAP);
    if (k === 0) return; // nothing read: "reading" and "empty" are the same state
    const d = this.#draft();
    v.setUint32(d + R_FLAGS, 0, true);
    v.setUint32(d + R_FRONT_LEN, k, true);
    v.setUint32(d + R_FRONT_OFF, 0, true);
    v.setUint32(d + R_DIRTY, k, true);
    this.#publish(0);
  }

  /**
   * Takes the next item if one can be had without waiting, and gives its place back in the same
   * step. Order: the current segment, then the shared read-ahead, then the pipe.
   */
  take(): unknown {
    const v = this.#view;
    const front = this.#front;
    const fv = this.#frontView;
    for (;;) {
      const cur = this.#cur();
      const segLen = v.getFloat64(cur + R_SEG_LEN, true);
      if (segLen > 0) return this.#takeFromSegment(cur, segLen);
      const len = v.getUint32(cur + R_FRONT_LEN, true);
      const off = v.getUint32(cur + R_FRONT_OFF, true);
      if (off < len) {
        const n = frameLength(fv, off, len);
        if (n === HEAD || off + n > len) throw cutFrame(off, n, len);
        const body = off + headAt(fv, off);
        const tag = front[body];
        const next = off + n;
        const payload = front.subarray(body + 1, next);
        if (tag === TAG_SEGMENT) {
          const d = this.#draft();
          v.setUint32(d + R_FRONT_OFF, next, true);
          this.#setSegment(d, payload);
          this.#publish(0);
          crashPoint("segment-begun");
          continue;
        }
        let value: unknown;
        try {
          value = decodeItem(tag, payload);
        } finally {
          // Taken even if it cannot be decoded: one bad item must not block the queue.
          const d = this.#draft();
          v.setUint32(d + R_FRONT_OFF, next, true);
          this.#publish(1);
          crashPoint("take");
        }
        return value;
      }
      // The read-ahead is empty: read everything the pipe holds into it (one read does: the
      // read-ahead is as large as the pipe, which holds whole frames only).
      if ((v.getUint32(cur + R_FLAGS, true) & READING) === 0) {
        front.fill(0, 0, v.getUint32(cur + R_DIRTY, true));
        const d = this.#draft();
        v.setUint32(d + R_FLAGS, READING, true);
        v.setUint32(d + R_FRONT_LEN, 0, true);
        v.setUint32(d + R_FRONT_OFF, 0, true);
        v.setUint32(d + R_DIRTY, 0, true);
        this.#publish(0);
        crashPoint("read-begun");
      }
      const n = readFd(this.#s.readFd, front);
      if (n <= 0) return NOTHING;
      crashPoint("read-done");
      const d = this.#draft();
      v.setUint32(d + R_FLAGS, 0, true);
      v.setUint32(d + R_FRONT_LEN, n, true);
      v.setUint32(d + R_FRONT_OFF, 0, true);
      v.setUint32(d + R_DIRTY, n, true);
      this.#publish(0);
    }
  }

  /** Makes the segment named by a frame's payload the current one, in draft `d`. */
  #setSegment(d: number, payload: Uint8Array): void {
    const v = this.#view;
    const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    this.#setSegmentName(d, payload.subarray(8));
    v.setFloat64(d + R_SEG_OFF, 0, true);
    v.setFloat64(d + R_SEG_LEN, pv.getFloat64(0, true), true);
  }

  #setSegmentName(d: number, nameBytes: Uint8Array): void {
    if (nameBytes.length > NAME_MAX) {
      throw new Error(`Queue segment name too long: ${nameBytes.length} bytes`);
    }
    this.#bytes.fill(0, d + R_SEG_NAME, d + R_SEG_NAME + NAME_MAX);
    this.#bytes.set(nameBytes, d + R_SEG_NAME);
  }

  #segmentName(rec: number): string {
    const slot = this.#bytes.subarray(rec + R_SEG_NAME, rec + R_SEG_NAME + NAME_MAX);
    const end = slot.indexOf(0);
    return decoder.decode(slot.subarray(0, end < 0 ? NAME_MAX : end));
  }

  #mapSegment(name: string): { bytes: Uint8Array; view: DataView } {
    if (this.#segment?.name !== name) {
      this.#segment?.map.unmap();
      this.#segment = null;
      const map = mapSharedMemory(name, false);
      this.#segment = { name, map, bytes: new Uint8Array(map.buffer), view: new DataView(map.buffer) };
    }
    return this.#segment;
  }

  #takeFromSegment(cur: number, segLen: number): unknown {
    const v = this.#view;
    const name = this.#segmentName(cur);
    const { bytes, view } = this.#mapSegment(name);
    const off = v.getFloat64(cur + R_SEG_OFF, true);
    const body = off + headAt(view, off);
    const next = body + sizeAt(view, off);
    let value: unknown;
    try {
      value = decodeItem(bytes[body], bytes.subarray(body + 1, next));
    } finally {
      const d = this.#draft(true);
      if (next >= segLen) {
        v.setFloat64(d + R_SEG_LEN, 0, true);
        v.setFloat64(d + R_SEG_OFF, 0, true);
      } else v.setFloat64(d + R_SEG_OFF, next, true);
      this.#publish(1);
      crashPoint("segment-take");
      if (next >= segLen) {
        this.#segment?.map.unmap();
        this.#segment = null;
        removeSegment(name);
      }
    }
    return value;
  }

  /**
   * The exit hand-over (both locks held): moves everything unread — the rest of the current
   * segment, the read-ahead, the pipe's content and `more` (this process's unwritten chunks) —
   * into one new segment, in order, and makes it the current one. The pipe is left empty.
   * Returns false when there was nothing to move.
   */
  spill(more: Uint8Array[]): boolean {
    this.recover();
    const v = this.#view;
    const cur = this.#cur();
    const parts: Uint8Array[] = [];
    const drop: string[] = [];
    const maps: SharedMapping[] = [];
    let published = false;
    try {
      const segLen = v.getFloat64(cur + R_SEG_LEN, true);
      if (segLen > 0) {
        const name = this.#segmentName(cur);
        const { bytes } = this.#mapSegment(name);
        parts.push(bytes.subarray(v.getFloat64(cur + R_SEG_OFF, true), segLen));
        drop.push(name);
      }
      const runs: Uint8Array[] = [];
      const len = v.getUint32(cur + R_FRONT_LEN, true);
      const off = v.getUint32(cur + R_FRONT_OFF, true);
      if (off < len) runs.push(this.#front.slice(off, len));
      for (;;) {
        const buf = new Uint8Array(FRONT_CAP);
        const n = readFd(this.#s.readFd, buf);
        if (n <= 0) break;
        runs.push(buf.subarray(0, n));
      }
      for (const c of more) runs.push(c);
      for (const c of runs) {
        const cv = new DataView(c.buffer, c.byteOffset, c.byteLength);
        let run = 0;
        for (let at = 0; at < c.length;) {
          const payload = at + headAt(cv, at) + 1;
          const next = payload - 1 + sizeAt(cv, at);
          if (c[payload - 1] === TAG_SEGMENT) {
            if (at > run) parts.push(c.subarray(run, at));
            const name = decoder.decode(c.subarray(payload + 8, next));
            const map = mapSharedMemory(name, false);
            maps.push(map);
            parts.push(new Uint8Array(map.buffer, 0, cv.getFloat64(payload, true)));
            drop.push(name);
            run = next;
          }
          at = next;
        }
        if (c.length > run) parts.push(c.subarray(run));
      }
      let total = 0;
      for (const p of parts) total += p.length;
      if (total === 0) return false;
      const seg = makeSegment(parts);
      const d = this.#draft();
      // The read-ahead is empty now; its stale bytes are zeroed before the next read.
      v.setUint32(d + R_FLAGS, 0, true);
      v.setUint32(d + R_FRONT_LEN, 0, true);
      v.setUint32(d + R_FRONT_OFF, 0, true);
      v.setUint32(d + R_DIRTY, Math.max(len, v.getUint32(cur + R_DIRTY, true)), true);
      this.#setSegmentName(d, encoder.encode(seg.name));
      v.setFloat64(d + R_SEG_OFF, 0, true);
      v.setFloat64(d + R_SEG_LEN, seg.size, true);
      this.#publish(0);
      published = true;
      return true;
    } finally {
      for (const m of maps) m.unmap();
      this.#segment?.map.unmap();
      this.#segment = null;
      // Their items are in the new segment now (and only then).
      for (const name of published ? drop : []) {
        try {
          removeSegment(name);
        } catch {
          // already gone
        }
      }
    }
  }

  /** Unmaps this process's mapping of the current segment. */
  close(): void {
    this.#segment?.map.unmap();
    this.#segment = null;
  }
}
