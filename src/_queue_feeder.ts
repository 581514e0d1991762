/**
 * The writing side of a queue: this process's buffer of accepted items, its drain into the pipe,
 * and the hand-over at exit.
 *
 * **Buffering.** `put()` resolves once the item is accepted (serialized, its place taken and
 * recorded in this process's producer record). Items are packed into chunks (see
 * `_queue_shared.ts`); a chunk goes into the pipe as soon as it is full, the last one on the next
 * turn of the event loop, under the writer lock, whenever the pipe has room. An item is one frame
 * (header by `_frames.ts`, then its tag and payload); an item whose frame does not fit in one
 * `PIPE_BUF` chunk goes into a segment of its own (`_queue_segment.ts`), and a small frame naming
 * that segment goes into the chunk instead.
 *
 * **No deadlock and nothing lost at exit** (CPython's bpo-29797). At exit, a process writes what
 * is left while readers make room; when the pipe stays full (nobody reads), it takes both locks
 * and moves everything unread (the rest of the current segment, the shared read-ahead, the pipe's
 * content, its own buffer) into one shared memory segment, in order, and makes that the readers'
 * current segment. It waits for the locks as long as live processes hold them (a dead holder's
 * lock is recovered); a process that still cannot hand its items over says so on stderr.
 *
 * @module
 */
import { OS, pollFds, write as writeFd } from "../native/mod.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { Waiter } from "./_fd_wait.ts";
import {
  claimProducer,
  crashPoint,
  givePlaces,
  leaveProducer,
  notePending,
  PIPE_BUF,
  type Shared,
  TAG_ITEM,
  TAG_RAW,
  TAG_SEGMENT,
  tryTakePlace,
  W_UNFINISHED,
  wakePutters,
} from "./_queue_shared.ts";
import type { Reader } from "./_queue_reader.ts";
import { makeSegment, segmentRef } from "./_queue_segment.ts";
import { serialize } from "./_reduction.ts";
import { headerLength, writeHeader } from "./_frames.ts";

/** At exit: how long the pipe may stay full before the items are handed over in a segment. */
const STALL_MS = 50;
/** At exit: after this long waiting for the locks, say so on stderr (once). */
const TELL_AFTER_MS = 10_000;

/** An item's bytes and how to read them back (TAG_ITEM or TAG_RAW). */
export interface Encoded {
  tag: number;
  payload: Uint8Array;
}

/**
 * Encodes an item. A plain `Uint8Array` that spans its whole buffer (the usual way to stream
 * bytes) goes as it is: same result as structured clone, without the serializer's two copies.
 */
export function encodeItem(item: unknown): Encoded {
  if (
    item instanceof Uint8Array && Object.getPrototypeOf(item) === Uint8Array.prototype &&
    item.byteOffset === 0 && item.byteLength > 0 && item.buffer instanceof ArrayBuffer &&
    item.byteLength === item.buffer.byteLength && !item.buffer.resizable
  ) {
    return { tag: TAG_RAW, payload: item };
  }
  return { tag: TAG_ITEM, payload: serialize(item) };
}

/** The length of an item's frame: the header, the tag, the payload. */
function itemFrameLength(payloadLength: number): number {
  return headerLength(1 + payloadLength) + 1 + payloadLength;
}

/** Frames waiting in this process to be written, packed in chunks. */
class Chunks {
  #bufs: Uint8Array<ArrayBuffer>[] = [];
  #views: DataView[] = [];
  #lens: number[] = [];
  #counts: number[] = [];
  #frames = 0;

  get empty(): boolean {
    return this.#bufs.length === 0;
  }

  /** How many chunks are waiting (all but the last are full). */
  get length(): number {
    return this.#bufs.length;
  }

  /** How many frames are waiting. */
  count(): number {
    return this.#frames;
  }

  /** Appends a frame of `tag` with `payload` (its {@linkcode itemFrameLength} ≤ PIPE_BUF). */
  push(tag: number, payload: Uint8Array): void {
    const size = itemFrameLength(payload.length);
    const i = this.#bufs.length - 1;
    let buf = this.#bufs[i];
    let at = this.#lens[i];
    if (buf === undefined || PIPE_BUF - at < size) {
      buf = new Uint8Array(PIPE_BUF);
      this.#bufs.push(buf);
      this.#views.push(new DataView(buf.buffer));
      this.#lens.push(0);
      this.#counts.push(0);
      at = 0;
    }
    const body = writeHeader(this.#views[this.#views.length - 1], at, 1 + payload.length);
    buf[body] = tag;
    buf.set(payload, body + 1);
    this.#lens[this.#lens.length - 1] = at + size;
    this.#counts[this.#counts.length - 1]++;
    this.#frames++;
  }

  /** The first chunk (written whole, or not at all). */
  first(): Uint8Array<ArrayBuffer> {
    return this.#bufs[0].subarray(0, this.#lens[0]);
  }

  /** How many frames the first chunk holds. */
  firstCount(): number {
    return this.#counts[0];
  }

  /** Drops the first chunk, once written. */
  shift(): void {
    this.#bufs.shift();
    this.#views.shift();
    this.#lens.shift();
    this.#frames -= this.#counts.shift()!;
  }

  /** All chunks' bytes, in order. */
  all(): Uint8Array[] {
    return this.#bufs.map((b, i) => b.subarray(0, this.#lens[i]));
  }
}

/** Feeders of this process with items not yet in the pipe: handed over at exit. */
const exiting = new Set<Feeder>();
/**
 * Releases of reader locks that gets of this process hold across an await. At exit those gets
 * are abandoned: their locks go first, so that no hand-over (of any queue) waits for them.
 */
export const heldReadLocks: Set<() => void> = new Set();
atExit(ExitPhase.queueHandover, () => {
  for (const release of [...heldReadLocks]) release();
  for (const f of [...exiting]) f.handOverAtExit();
});

/** This process's writing side of one queue. */
export class Feeder {
  #s: Shared;
  #w: Int32Array;
  #reader: Reader;
  #joinable: boolean;
  #out = new Chunks();
  #flushing: Promise<void> | null = null;
  /** This process's producer record (-2: not claimed yet; -1: the table was full). */
  #producer = -2;
  /** Called when the buffer is empty and nothing is in flight (the queue may release). */
  #onIdle: () => void;
  /** Waits for room in the pipe, without keeping the program alive (see `#drain`). */
  #room = new Waiter({ unref: true });
  /** Aborted once the queue released its handles: a drain waiting for room ends. */
  #releasing = new AbortController();
  /** cancelJoinThread(): drop the buffer at exit instead of handing it over. */
  cancelled = false;

  constructor(
    s: Shared,
    w: Int32Array,
    reader: Reader,
    joinable: boolean,
    onIdle: () => void,
  ) {
    this.#s = s;
    this.#w = w;
    this.#reader = reader;
    this.#joinable = joinable;
    this.#onIdle = onIdle;
  }

  /** True once the queue released its handles: nothing more is written. */
  get released(): boolean {
    return this.#releasing.signal.aborted;
  }

  /** Called by the queue when it releases its handles; ends a drain that waits for room. */
  release(): void {
    this.#releasing.abort();
  }

  /** True when nothing of this process waits to be written. */
  get idle(): boolean {
    return this.#out.empty && this.#flushing === null;
  }

  /** Resolves once every item this process put has left its buffer. */
  async joinThread(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  /**
   * Takes a place for an item if the queue has one, recording it in this process's producer
   * record first: a process killed between the two has a place given back that it never took
   * (the count is one too low until the queue next runs empty), never one taken for good.
   */
  tryTake(): boolean {
    const w = this.#w;
    if (this.#producer === -2) this.#producer = claimProducer(w, this.#s);
    notePending(w, this.#producer, 1);
    if (tryTakePlace(w, this.#s.maxsize)) return true;
    notePending(w, this.#producer, -1);
    return false;
  }

  /** Gives back a place taken with {@linkcode tryTake} for an item that is not added after all. */
  untake(): void {
    givePlaces(this.#w, 1);
    notePending(this.#w, this.#producer, -1);
    wakePutters(this.#s, this.#w);
  }

  /** The item's place is taken ({@linkcode tryTake}): put it in the buffer and start draining. */
  accept(item: Encoded): void {
    if (this.#joinable) Atomics.add(this.#w, W_UNFINISHED, 1);
    crashPoint("put");
    const chunks = this.#out.length;
    if (itemFrameLength(item.payload.length) <= PIPE_BUF) {
      this.#out.push(item.tag, item.payload);
    } else {
      // The item's frame (its header may be the long one) goes into a segment of its own.
      const n = 1 + item.payload.length;
      const head = new Uint8Array(headerLength(n) + 1);
      head[writeHeader(new DataView(head.buffer), 0, n)] = item.tag;
      const seg = makeSegment([head, item.payload]);
      this.#out.push(TAG_SEGMENT, segmentRef(seg.name, seg.size));
    }
    // A chunk that just filled up goes at once; the last, partial one on the next turn of the
    // event loop, so that the puts of a burst share their writes.
    if (this.#out.length > chunks && chunks > 0) this.#writeSync(true);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#flushing || this.#out.empty) return;
    exiting.add(this);
    // The global setImmediate, not node:timers': importing that costs every child ~3 ms at
    // start-up; the global loads its machinery only when a queue first flushes.
    this.#flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#drain())
      .finally(() => {
        this.#flushing = null;
        if (!this.#out.empty) this.#schedule();
        else {
          exiting.delete(this);
          this.#onIdle();
        }
      });
  }

  /**
   * Writes the buffer into the pipe, chunk by chunk, under the writer lock (held only while
   * writing). When the pipe is full it waits for room (POLLOUT on the write end, through the one
   * fd waiter: a reader's read wakes it), then writes again: other processes write the same pipe,
   * and one of them may have taken the room first, so the loop waits again until the buffer is
   * empty or the queue released. The wait does not keep the program alive: a program that ends
   * meanwhile hands its items over at exit (`handOverAtExit`).
   */
  async #drain(): Promise<void> {
    const { wlock, writeFd } = this.#s;
    while (!this.#out.empty && !this.released) {
      if (!wlock.acquireSync({ block: false })) await wlock.acquire();
      let progress: boolean;
      try {
        progress = this.#writeNow(false);
      } finally {
        wlock.release();
      }
      if (!this.#out.empty && !progress) {
        // Background work: no spin or park (parkMs 0), so the event loop gets a turn at each wait.
        await this.#room.ready(writeFd, OS.POLLOUT, [this.#releasing.signal], Infinity, 0);
      }
    }
  }

  /** Writes what it can now if the writer lock is free. */
  #writeSync(completeOnly: boolean): boolean {
    const { wlock } = this.#s;
    if (!wlock.acquireSync({ block: false })) return false;
    try {
      return this.#writeNow(completeOnly);
    } finally {
      wlock.release();
    }
  }

  /** Writes whole chunks while the pipe takes them (each write ≤ PIPE_BUF is atomic). */
  #writeNow(completeOnly: boolean): boolean {
    let progress = false;
    while (this.#out.length > (completeOnly ? 1 : 0)) {
      const chunk = this.#out.first();
      const n = writeFd(this.#s.writeFd, chunk);
      if (n < 0) break;
      if (n !== chunk.length) throw new Error(`Queue write was not atomic: ${n} of ${chunk.length} bytes`);
      const count = this.#out.firstCount();
      this.#out.shift();
      crashPoint("write");
      notePending(this.#w, this.#producer, -count);
      progress = true;
    }
    return progress;
  }

  /** At exit: hands everything in the buffer over (see the module notes). Synchronous. */
  handOverAtExit(): void {
    exiting.delete(this);
    if (this.#out.empty || this.released) return;
    const count = this.#out.count();
    try {
      if (this.cancelled) return this.#dropAll();
      this.#handOver();
      leaveProducer(this.#w, this.#producer);
    } catch (e) {
      console.error(
        `Queue: ${count} item(s) put by this process could not be handed over at exit and are lost: ${
          e instanceof Error ? e.message : e
        }`,
      );
    }
  }

  #handOver(): void {
    const { wlock, rlock, writeFd } = this.#s;
    const started = performance.now();
    let told = false;
    let stalled = false;
    for (;;) {
      // No timeout: live processes let go of the locks; a dead holder's lock is recovered.
      wlock.acquireSync();
      let progress: boolean;
      try {
        progress = this.#writeNow(false);
        if (this.#out.empty) return;
        // Never wait for the reader lock without a limit while holding the writer lock: a reader
        // that holds it waits for data that only a writer can bring. A reader holds it long only
        // when the pipe is empty, and then the next round writes.
        if (!progress && stalled && rlock.acquireSync({ timeout: STALL_MS })) {
          try {
            const n = this.#out.count();
            this.#reader.spill(this.#out.all());
            this.#out = new Chunks();
            notePending(this.#w, this.#producer, -n);
          } finally {
            rlock.release();
          }
          return;
        }
      } finally {
        wlock.release();
      }
      stalled = !progress;
      pollFds([writeFd], OS.POLLOUT, STALL_MS);
      if (!told && performance.now() - started > TELL_AFTER_MS) {
        told = true;
        console.error(
          `Queue: this process is still handing over ${this.#out.count()} item(s) at exit: ` +
            `the queue's locks stay busy (it waits for them)`,
        );
      }
    }
  }

  /** Drops the buffer (cancelJoinThread at exit) and gives the items' places back. */
  #dropAll(): void {
    const n = this.#out.count();
    this.#out = new Chunks();
    notePending(this.#w, this.#producer, -n);
    givePlaces(this.#w, n);
    if (this.#joinable) Atomics.sub(this.#w, W_UNFINISHED, n);
    wakePutters(this.#s, this.#w);
    leaveProducer(this.#w, this.#producer);
  }

  /** Forgets this process's producer record (the queue is released). */
  leave(): void {
    exiting.delete(this);
    leaveProducer(this.#w, this.#producer);
  }
}
