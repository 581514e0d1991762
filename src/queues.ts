/**
 * Queues between processes (CPython: `queues.py`).
 *
 * A queue is an OS pipe plus a little shared state, and every process holding the queue holds
 * both ends of the pipe (they travel to children as `Process` arguments):
 *
 * - **Frames.** Each item is a frame `[u32 size][u8 tag][payload]` whose payload is the item's
 *   structured-clone bytes. Writers write whole frames in writes of at most `PIPE_BUF` (4096)
 *   bytes, which the kernel makes atomic: frames from different processes never interleave, and
 *   a writer killed mid-way cannot leave half a frame behind. An item too big for one such write
 *   travels in a shared memory segment of its own, and the pipe carries a small frame naming it.
 * - **Read-ahead shared by the readers.** A reader reads up to 64 KiB from the pipe at once, into
 *   a buffer in shared memory that every reading process sees, and takes one frame from it; the
 *   next `get()`, in any process, takes the next frame from there before reading the pipe again.
 *   A reader lock (a {@linkcode Lock}) is held around each take, so no frame is lost or taken twice.
 * - **Counting.** A named semaphore holds the free places (`maxsize`, or the largest semaphore
 *   value for an unbounded queue): `put()` takes one before the item exists anywhere, `get()` gives
 *   it back after. `qsize()` is `maxsize` minus its value: exact as soon as a `put()` resolved.
 * - **Buffering.** `put()` resolves once the item is accepted (serialized and counted, in this
 *   process's buffer); the buffer drains into the pipe in the background, under a writer lock,
 *   whenever the pipe has room. `joinThread()` waits until it has drained.
 * - **No deadlock at exit** (CPython's bpo-29797). A process that ends while its buffer cannot
 *   drain (a full pipe nobody reads) does not wait for a reader: it takes both locks, moves
 *   everything unread (the shared read-ahead, the pipe's content, its own buffer) into one shared
 *   memory segment in order, and leaves a single frame naming it in the now empty pipe. Readers
 *   then take items from that segment before anything written later. Nothing is lost, nothing
 *   reorders, and a parent that joins such a child before reading does not hang.
 *
 * @module
 */
import {
  close as closeFd,
  mapSharedMemory,
  NamedSemaphore,
  OS,
  pipe,
  read as readFd,
  setNonBlocking,
  type SharedMapping,
  unlinkSharedMemory,
  write as writeFd,
} from "../native/mod.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { Waiter } from "./_fd_wait.ts";
import { deserialize, type ReduceContext, registerReducer, serialize } from "./_reduction.ts";
import { track, uniqueName, untrack } from "./_tracker.ts";
import { QueueEmptyError, QueueFullError } from "./errors.ts";
import { Lock } from "./synchronize.ts";

/** Options of `put()` and `get()`. */
export interface QueueWaitOptions {
  /** False: try once and never wait (wins over `timeout`). Default true. */
  block?: boolean;
  /** Milliseconds to wait at most; undefined waits forever, 0 or less does not wait. */
  timeout?: number;
  /** Aborting rejects the wait with `signal.reason`; no item is lost or added. */
  signal?: AbortSignal;
}

const SEM_VALUE_MAX = 2147483647;
/** Writes up to this size are atomic on a pipe (POSIX PIPE_BUF; 4096 on Linux). */
const PIPE_BUF = 4096;
/** Frame header: u32 size (of tag + payload), u8 tag. */
const HEAD = 5;
const MAX_INLINE = PIPE_BUF - HEAD;
const TAG_ITEM = 0;
/** Payload: f64 length of the segment, then its name (UTF-8). The segment holds item frames. */
const TAG_SEGMENT = 1;
/** Payload: the bytes of a plain `Uint8Array` item, sent as they are (no serialization). */
const TAG_RAW = 2;
/** Readers read at most this much ahead (and it is the size of the shared read-ahead buffer). */
const FRONT_CAP = 64 * 1024;
/** How long a waiting reader sleeps in one poll before it looks at timeout and abort again. */
const SLICE_MS = 50;

// The shared control block.
const C_FRONT_LEN = 0; // u32 index: bytes in the read-ahead buffer
const C_FRONT_OFF = 1; // u32 index: bytes of it already taken
const C_UNFINISHED = 2; // i32 index: JoinableQueue's unfinished tasks
const B_SEG_LEN = 16; // f64 byte offset: length of the current segment (0: none)
const B_SEG_OFF = 24; // f64 byte offset: bytes of it already taken
const B_SEG_NAME = 32; // 32 bytes: name of the current segment, NUL-padded
const B_FRONT = 64;
const CONTROL_SIZE = B_FRONT + FRONT_CAP;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The shared part of one queue, as this process sees it. */
interface Shared {
  readFd: number;
  writeFd: number;
  control: SharedMapping;
  controlName: string;
  slots: NamedSemaphore;
  slotsName: string;
  maxsize: number;
  rlock: Lock;
  wlock: Lock;
  /** True in the process that created the queue: it removes the names at close. */
  creator: boolean;
}

/** Frames waiting in this process to be written, packed in chunks of at most PIPE_BUF bytes. */
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

  /** Appends a frame of `tag` with `payload` (at most MAX_INLINE bytes). */
  push(tag: number, payload: Uint8Array): void {
    const size = HEAD + payload.length;
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
    this.#views[this.#views.length - 1].setUint32(at, size - 4, true);
    buf[at + 4] = tag;
    buf.set(payload, at + HEAD);
    this.#lens[this.#lens.length - 1] = at + size;
    this.#counts[this.#counts.length - 1]++;
    this.#frames++;
  }

  /** The first chunk (written whole, or not at all). */
  first(): Uint8Array<ArrayBuffer> {
    return this.#bufs[0].subarray(0, this.#lens[0]);
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

/** The frames in `bytes` (whole frames only). */
function* frames(bytes: Uint8Array): Generator<{ tag: number; payload: Uint8Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (bytes.length - at >= HEAD) {
    const size = view.getUint32(at, true);
    if (bytes.length - at < 4 + size) break;
    yield { tag: bytes[at + 4], payload: bytes.subarray(at + HEAD, at + 4 + size) };
    at += 4 + size;
  }
}

function concatAll(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An item's bytes and how to read them back (TAG_ITEM or TAG_RAW). */
interface Encoded {
  tag: number;
  payload: Uint8Array;
}

/**
 * Encodes an item. A plain `Uint8Array` that spans its whole buffer (the usual way to stream
 * bytes) goes as it is: same result as structured clone, without the serializer's two copies.
 */
function encodeItem(item: unknown): Encoded {
  if (
    item instanceof Uint8Array && Object.getPrototypeOf(item) === Uint8Array.prototype &&
    item.byteOffset === 0 && item.byteLength > 0 && item.buffer instanceof ArrayBuffer &&
    item.byteLength === item.buffer.byteLength && !item.buffer.resizable
  ) {
    return { tag: TAG_RAW, payload: item };
  }
  return { tag: TAG_ITEM, payload: serialize(item) };
}

function decodeItem(tag: number, payload: Uint8Array): unknown {
  return tag === TAG_RAW ? payload.slice() : deserialize(payload);
}

/** Writes item frames into a new shared memory segment; returns the payload of a frame naming it. */
function makeSegment(items: Encoded[]): Uint8Array {
  const size = items.reduce((n, x) => n + HEAD + x.payload.length, 0);
  const name = uniqueName("b");
  const map = mapSharedMemory(name, true, size);
  try {
    track("shm", name);
    const bytes = new Uint8Array(map.buffer);
    const view = new DataView(map.buffer);
    let at = 0;
    for (const { tag, payload } of items) {
      view.setUint32(at, payload.length + 1, true);
      bytes[at + 4] = tag;
      bytes.set(payload, at + HEAD);
      at += HEAD + payload.length;
    }
  } finally {
    map.unmap();
  }
  const nameBytes = encoder.encode(name);
  const payload = new Uint8Array(8 + nameBytes.length);
  new DataView(payload.buffer).setFloat64(0, size, true);
  payload.set(nameBytes, 8);
  return payload;
}

/** The items of a segment named by a frame's payload (copied); removes the segment. */
function segmentItems(payload: Uint8Array): Encoded[] {
  const name = decoder.decode(payload.subarray(8));
  const map = mapSharedMemory(name, false);
  try {
    return [...frames(new Uint8Array(map.buffer))].map((f) => ({ tag: f.tag, payload: f.payload.slice() }));
  } finally {
    map.unmap();
    unlinkSharedMemory(name);
    untrack("shm", name);
  }
}

function createShared(maxsize: number): Shared {
  const controlName = uniqueName("q");
  const slotsName = controlName + "s";
  const [readFd, writeFd] = pipe();
  let control: SharedMapping | undefined;
  let slots: NamedSemaphore | undefined;
  try {
    setNonBlocking(readFd, true);
    setNonBlocking(writeFd, true);
    control = mapSharedMemory(controlName, true, CONTROL_SIZE);
    track("shm", controlName, { ownedByProcess: true });
    slots = NamedSemaphore.create(slotsName, maxsize === 0 ? SEM_VALUE_MAX : maxsize);
    track("sem", slotsName, { ownedByProcess: true });
    return {
      readFd,
      writeFd,
      control,
      controlName,
      slots,
      slotsName,
      maxsize: maxsize === 0 ? SEM_VALUE_MAX : maxsize,
      rlock: new Lock(),
      wlock: new Lock(),
      creator: true,
    };
  } catch (e) {
    closeFd(readFd);
    closeFd(writeFd);
    control?.unmap();
    slots?.close();
    for (const [kind, name] of [["shm", controlName], ["sem", slotsName]] as const) {
      try {
        if (kind === "shm") unlinkSharedMemory(name);
        else NamedSemaphore.unlink(name);
        untrack(kind, name);
      } catch {
        // never made
      }
    }
    throw e;
  }
}

/** Closes this process's handles on a queue's shared part; its creator also removes the names. */
function releaseShared(s: Shared): void {
  closeFd(s.readFd);
  closeFd(s.writeFd);
  s.control.unmap();
  s.slots.close();
  s.rlock.close();
  s.wlock.close();
  if (s.creator) {
    for (const [kind, name] of [["shm", s.controlName], ["sem", s.slotsName]] as const) {
      try {
        if (kind === "shm") unlinkSharedMemory(name);
        else NamedSemaphore.unlink(name);
      } finally {
        untrack(kind, name);
      }
    }
  }
}

/** A queue dropped without close() releases its handles when it is garbage collected. */
const finalizer = new FinalizationRegistry<Shared>((s) => {
  try {
    releaseShared(s);
  } catch {
    // nothing left to do
  }
});

/** Set by the reducer just before it calls a queue constructor: the state to adopt. */
let reviving: Shared | null = null;

/** Queues of this process with items not yet in the pipe: handled at exit. */
const exiting = new Set<() => void>();
atExit(ExitPhase.queueHandover, () => {
  for (const f of [...exiting]) {
    try {
      f();
    } catch (e) {
      console.error(`Queue: could not hand over its items at exit: ${e instanceof Error ? e.message : e}`);
    }
  }
});

function warnLost(n: number): void {
  console.error(
    `Queue: ${n} item(s) put by this process were dropped at exit: the queue's locks stayed busy for 2 s`,
  );
}

const RESOLVED = Promise.resolve();
/** What #takeNow() returns when there is no item (any value, undefined included, is an item). */
const NOTHING = Symbol("nothing");
const NO_OPTIONS: QueueWaitOptions = Object.freeze({});

/** A promise that resolves when any of `signals` aborts; dispose() removes the listeners. */
function whenAborted(signals: AbortSignal[]): { promise: Promise<void>; dispose(): void } {
  let onAbort!: () => void;
  const promise = new Promise<void>((resolve) => onAbort = resolve);
  for (const s of signals) {
    if (s.aborted) onAbort();
    else s.addEventListener("abort", onAbort, { once: true });
  }
  return { promise, dispose: () => signals.forEach((s) => s.removeEventListener("abort", onAbort)) };
}

/** Queues whose accepted items count as unfinished tasks (JoinableQueue). */
const joinable = new WeakSet<object>();

/**
 * A FIFO queue shared between processes, as Python's `multiprocessing.Queue`: any number of
 * processes may put and get; every item is delivered exactly once. Pass it to children as a
 * `Process` argument.
 *
 * @example Producer and consumer
 * ```ts
 * import { Process, Queue } from "@mp/multiprocessing";
 *
 * export async function produce(q: Queue<number | null>) {
 *   for (let i = 0; i < 3; i++) await q.put(i);
 *   await q.put(null);
 * }
 *
 * if (import.meta.main) {
 *   const q = new Queue<number | null>();
 *   const p = new Process({ target: produce, args: [q] });
 *   await p.start();
 *   for (let x = await q.get(); x !== null; x = await q.get()) console.log(x);
 *   await p.join();
 *   q.close();
 * }
 * ```
 */
export class Queue<T = unknown> {
  #s: Shared;
  #u32: Uint32Array;
  #i32: Int32Array;
  #view: DataView;
  #front: Uint8Array<ArrayBuffer>;
  #closed = false;
  #released = false;
  #out = new Chunks();
  #flushing: Promise<void> | null = null;
  #cancelJoin = false;
  /** Serializes this process's gets, so only one at a time waits for the reader lock. */
  #getChain: Promise<unknown> = Promise.resolve();
  #waiter = new Waiter();
  #getsPending = 0;
  /** This process's waits on the slots semaphore still running on a worker thread. */
  #inflight = 0;
  /** Aborted by close(): stops this process's waits. */
  #closeCtl = new AbortController();
  /** This process's mapping of the current segment, if it has one. */
  #segment: { name: string; map: SharedMapping } | null = null;
  #onExit = () => this.#atExit();

  /** Makes a queue holding at most `maxsize` items (0 or omitted: unbounded). */
  constructor(maxsize = 0) {
    const shared = reviving;
    reviving = null;
    if (shared) {
      this.#s = shared;
    } else {
      if (
        typeof maxsize !== "number" || !Number.isInteger(maxsize) || maxsize < 0 || maxsize > SEM_VALUE_MAX
      ) {
        throw new RangeError(
          `Invalid maxsize: ${maxsize}: expected an integer from 0 (unbounded) to ${SEM_VALUE_MAX}`,
        );
      }
      this.#s = createShared(maxsize);
    }
    finalizer.register(this, this.#s, this);
    const buf = this.#s.control.buffer;
    this.#u32 = new Uint32Array(buf, 0, 4);
    this.#i32 = new Int32Array(buf, 0, 4);
    this.#view = new DataView(buf, 0, B_FRONT);
    this.#front = new Uint8Array(buf, B_FRONT, FRONT_CAP);
  }

  /** The number of items in the queue: exact once a `put()` has resolved. */
  qsize(): number {
    this.#check("qsize");
    return this.#s.maxsize - this.#s.slots.value();
  }

  /** True when the queue holds no item. */
  empty(): boolean {
    return this.qsize() === 0;
  }

  /** True when the queue holds `maxsize` items (never for an unbounded queue). */
  full(): boolean {
    return this.qsize() >= this.#s.maxsize;
  }

  /**
   * Puts an item, waiting for room in a bounded queue; rejects with {@linkcode QueueFullError}
   * when there is none (with `block: false`, or after `timeout` ms). An item that cannot be
   * serialized throws a `DataCloneError` from this call, synchronously.
   */
  put(item: T, options?: QueueWaitOptions): Promise<void> {
    this.#check("put");
    const bytes = encodeItem(item);
    const { block = true, timeout, signal } = options ?? NO_OPTIONS;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#s.slots.tryWait()) {
      this.#accept(bytes);
      return RESOLVED;
    }
    if (!block || (timeout !== undefined && !(timeout > 0))) {
      return Promise.reject(
        new QueueFullError(`Queue is full: it holds its maxsize of ${this.#s.maxsize} items`),
      );
    }
    return this.#putLater(bytes, timeout, signal);
  }

  /** Puts an item if there is room at once, else throws {@linkcode QueueFullError}. */
  putNowait(item: T): void {
    this.#check("putNowait");
    const bytes = encodeItem(item);
    if (!this.#s.slots.tryWait()) {
      throw new QueueFullError(`Queue is full: it holds its maxsize of ${this.#s.maxsize} items`);
    }
    this.#accept(bytes);
  }

  /**
   * Takes the next item, waiting for one; rejects with {@linkcode QueueEmptyError} when there is
   * none (with `block: false`, or after `timeout` ms).
   */
  get(options?: QueueWaitOptions): Promise<T> {
    this.#check("get");
    const opts = options ?? NO_OPTIONS;
    // Gets of this process go one at a time, in order; the first needs no queueing.
    const run = () => this.#get(opts);
    const next = this.#getsPending++ === 0 ? run() : this.#getChain.then(run, run);
    this.#getChain = next;
    return next;
  }

  /** Takes the next item if there is one at once, else throws {@linkcode QueueEmptyError}. */
  getNowait(): T {
    this.#check("getNowait");
    const { rlock } = this.#s;
    // Another get() of this process may hold the reader lock: then there is no item "at once".
    if (!rlock.acquireSync({ block: false })) throw new QueueEmptyError();
    let got: unknown;
    try {
      got = this.#takeNow();
    } finally {
      rlock.release();
    }
    if (got === NOTHING) throw new QueueEmptyError();
    this.#s.slots.post();
    return got as T;
  }

  /**
   * Says this process will put and get no more. Items it put keep draining into the pipe in the
   * background (see {@linkcode Queue.joinThread}). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeCtl.abort(
      new Deno.errors.BadResource("Cannot get or put: the queue was closed while waiting"),
    );
    this.#maybeRelease();
  }

  /** Resolves once every item this process put has left its buffer (is in the pipe). */
  async joinThread(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  /**
   * At this process's exit, drop the items it put that are still in its buffer instead of handing
   * them over (Python's `cancel_join_thread`). Rarely wanted: by default nothing is lost.
   */
  cancelJoinThread(): void {
    this.#cancelJoin = true;
  }

  /** Closes this process's handle (`using q = new Queue()`). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal The shared state, for the reducer. */
  static _shared(q: Queue): Shared {
    if (q.#closed) throw new Deno.errors.BadResource("Cannot send a closed queue to another process");
    return q.#s;
  }

  /** @internal Marks one task done; false when none is unfinished. */
  _taskDone(): boolean {
    for (;;) {
      const v = Atomics.load(this.#i32, C_UNFINISHED);
      if (v <= 0) return false;
      if (Atomics.compareExchange(this.#i32, C_UNFINISHED, v, v - 1) === v) return true;
    }
  }

  /** @internal JoinableQueue's unfinished count. */
  _unfinished(): number {
    return Atomics.load(this.#i32, C_UNFINISHED);
  }

  /** @internal Throws BadResource after close(). */
  _check(what: string): void {
    this.#check(what);
  }

  // -------------------------------------------------------------------------------------------

  #check(what: string): void {
    if (this.#closed) throw new Deno.errors.BadResource(`Cannot ${what}: the queue is closed`);
  }

  async #putLater(
    bytes: Encoded,
    timeout: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
    for (;;) {
      signal?.throwIfAborted();
      if (this.#closed) throw new Deno.errors.BadResource("Cannot put: the queue was closed while waiting");
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new QueueFullError(`Queue is full: no room for ${timeout} ms (maxsize ${this.#s.maxsize})`);
      }
      this.#inflight++;
      let took: boolean;
      try {
        took = await this.#s.slots.waitAsync(Math.min(left, SLICE_MS));
      } finally {
        this.#inflight--;
        // Closed meanwhile: this was the last use of the semaphore, perhaps.
        if (this.#closed) queueMicrotask(() => this.#maybeRelease());
      }
      if (took) {
        if (signal?.aborted || this.#closed) {
          this.#s.slots.post(); // give the place back: nothing was added
          this.#maybeRelease();
          continue;
        }
        this.#accept(bytes);
        return;
      }
    }
  }

  /** The item is counted: put it in this process's buffer and start draining it. */
  #accept(item: Encoded): void {
    if (joinable.has(this)) Atomics.add(this.#i32, C_UNFINISHED, 1);
    const chunks = this.#out.length;
    if (item.payload.length <= MAX_INLINE) {
      this.#out.push(item.tag, item.payload);
    } else {
      this.#out.push(TAG_SEGMENT, makeSegment([item]));
    }
    // A chunk that just filled up goes at once; the last, partial one on the next turn of the
    // event loop, so that the puts of a burst share their writes.
    if (this.#out.length > chunks && chunks > 0) this.#writeSync(true);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#flushing || this.#out.empty) return;
    exiting.add(this.#onExit);
    // The global setImmediate, not node:timers': importing that costs every child ~3 ms at
    // start-up; the global loads its machinery only when a queue first flushes.
    this.#flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#drain())
      .finally(() => {
        this.#flushing = null;
        if (!this.#out.empty) this.#schedule();
        else {
          exiting.delete(this.#onExit);
          this.#maybeRelease();
        }
      });
  }

  async #drain(): Promise<void> {
    const { wlock } = this.#s;
    while (!this.#out.empty && !this.#released) {
      if (!wlock.acquireSync({ block: false })) await wlock.acquire();
      let progress: boolean;
      try {
        progress = this.#writeNow(false);
      } finally {
        wlock.release();
      }
      if (!this.#out.empty && !progress) {
        // The pipe is full. Look again soon, without keeping the program alive for it: a
        // program that ends meanwhile hands its items over at exit (see #atExit).
        await new Promise<void>((r) => Deno.unrefTimer(setTimeout(r, 1)));
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
      this.#out.shift();
      progress = true;
    }
    return progress;
  }

  async #get({ block = true, timeout, signal }: QueueWaitOptions): Promise<T> {
    try {
      this.#check("get");
      signal?.throwIfAborted();
      const noWait = !block || (timeout !== undefined && !(timeout > 0));
      const deadline = noWait || timeout === undefined ? Infinity : Date.now() + timeout;
      const { rlock, readFd } = this.#s;
      const closing = this.#closeCtl.signal;
      const locked = rlock.acquireSync({ block: false }) || (!noWait &&
        await rlock.acquire({
          timeout: timeout === undefined ? undefined : deadline - Date.now(),
          signal: signal ? AbortSignal.any([signal, closing]) : closing,
        }));
      if (!locked) {
        throw new QueueEmptyError(noWait ? "Queue is empty" : `Queue is empty: no item for ${timeout} ms`);
      }
      let got: unknown;
      let stop: { promise: Promise<void>; dispose(): void } | undefined;
      try {
        for (;;) {
          signal?.throwIfAborted();
          closing.throwIfAborted();
          got = this.#takeNow();
          if (got !== NOTHING || noWait) break;
          const left = deadline - Date.now();
          if (left <= 0) break;
          stop ??= whenAborted(signal ? [signal, closing] : [closing]);
          await this.#waiter.ready(
            readFd,
            OS.POLLIN,
            stop.promise,
            performance.now() + Math.min(left, SLICE_MS),
          );
        }
      } finally {
        stop?.dispose();
        rlock.release();
      }
      signal?.throwIfAborted();
      if (got === NOTHING) {
        throw new QueueEmptyError(noWait ? "Queue is empty" : `Queue is empty: no item for ${timeout} ms`);
      }
      this.#s.slots.post();
      return got as T;
    } finally {
      this.#getsPending--;
      this.#maybeRelease();
    }
  }

  /**
   * Takes the next item if one can be had without waiting. The caller holds the reader lock.
   * Order: the current segment, then the shared read-ahead, then the pipe.
   */
  #takeNow(): unknown {
    const u32 = this.#u32;
    const front = this.#front;
    for (;;) {
      const segLen = this.#view.getFloat64(B_SEG_LEN, true);
      if (segLen > 0) return this.#takeFromSegment(segLen);
      const len = u32[C_FRONT_LEN];
      let off = u32[C_FRONT_OFF];
      if (len - off >= HEAD) {
        const size = new DataView(front.buffer, front.byteOffset + off).getUint32(0, true);
        if (len - off >= 4 + size) {
          const tag = front[off + 4];
          const payload = front.subarray(off + HEAD, off + 4 + size);
          off += 4 + size;
          if (tag !== TAG_SEGMENT) {
            const value = decodeItem(tag, payload);
            u32[C_FRONT_OFF] = off;
            return value;
          }
          this.#startSegment(payload);
          u32[C_FRONT_OFF] = off;
          continue;
        }
      }
      // Read more: move what is left to the start, then read as much as fits.
      if (off > 0) {
        front.copyWithin(0, off, len);
        u32[C_FRONT_LEN] = len - off;
        u32[C_FRONT_OFF] = 0;
      }
      const have = u32[C_FRONT_LEN];
      const n = readFd(this.#s.readFd, front.subarray(have));
      if (n <= 0) return NOTHING;
      u32[C_FRONT_LEN] = have + n;
    }
  }

  #startSegment(payload: Uint8Array): void {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const len = view.getFloat64(0, true);
    const nameBytes = payload.subarray(8);
    const slot = new Uint8Array(this.#view.buffer, B_SEG_NAME, 32);
    slot.fill(0);
    slot.set(nameBytes);
    this.#view.setFloat64(B_SEG_OFF, 0, true);
    this.#view.setFloat64(B_SEG_LEN, len, true);
  }

  #takeFromSegment(segLen: number): unknown {
    const slot = new Uint8Array(this.#view.buffer, B_SEG_NAME, 32);
    const end = slot.indexOf(0);
    const name = decoder.decode(slot.subarray(0, end < 0 ? 32 : end));
    if (this.#segment?.name !== name) {
      this.#segment?.map.unmap();
      this.#segment = { name, map: mapSharedMemory(name, false) };
    }
    const bytes = new Uint8Array(this.#segment.map.buffer);
    let off = this.#view.getFloat64(B_SEG_OFF, true);
    const size = new DataView(bytes.buffer, off, 4).getUint32(0, true);
    const value = decodeItem(bytes[off + 4], bytes.subarray(off + HEAD, off + 4 + size));
    off += 4 + size;
    if (off >= segLen) {
      this.#view.setFloat64(B_SEG_LEN, 0, true);
      this.#view.setFloat64(B_SEG_OFF, 0, true);
      this.#segment.map.unmap();
      this.#segment = null;
      unlinkSharedMemory(name);
      untrack("shm", name);
    } else {
      this.#view.setFloat64(B_SEG_OFF, off, true);
    }
    return value;
  }

  /**
   * At exit, with items still in this process's buffer: write them if the pipe has room, else
   * hand everything unread over in one segment (see the module notes). Synchronous.
   */
  #atExit(): void {
    if (this.#out.empty || this.#released) return;
    if (this.#cancelJoin) {
      this.#out = new Chunks();
      return;
    }
    const { wlock, rlock } = this.#s;
    if (!wlock.acquireSync({ timeout: 2000 })) return warnLost(this.#out.count());
    try {
      if (this.#writeNow(false) && this.#out.empty) return;
      if (this.#out.empty) return;
      if (!rlock.acquireSync({ timeout: 2000 })) return warnLost(this.#out.count());
      try {
        this.#spill();
      } finally {
        rlock.release();
      }
    } finally {
      wlock.release();
    }
  }

  /** Moves the read-ahead, the pipe's content and this buffer into one segment (both locks held). */
  #spill(): void {
    const u32 = this.#u32;
    const parts: Uint8Array[] = [this.#front.slice(u32[C_FRONT_OFF], u32[C_FRONT_LEN])];
    u32[C_FRONT_LEN] = 0;
    u32[C_FRONT_OFF] = 0;
    for (;;) {
      const buf = new Uint8Array(FRONT_CAP);
      const n = readFd(this.#s.readFd, buf);
      if (n <= 0) break;
      parts.push(buf.subarray(0, n));
    }
    parts.push(...this.#out.all());
    this.#out = new Chunks();
    const items: Encoded[] = [];
    for (const frame of frames(concatAll(parts))) {
      if (frame.tag !== TAG_SEGMENT) items.push(frame);
      else items.push(...segmentItems(frame.payload));
    }
    if (items.length === 0) return;
    const ref = new Chunks();
    ref.push(TAG_SEGMENT, makeSegment(items));
    writeFd(this.#s.writeFd, ref.first());
  }

  /** Releases this process's handles once closed and nothing of this process still uses them. */
  #maybeRelease(): void {
    if (
      this.#closed && this.#out.empty && this.#flushing === null && this.#getsPending === 0 &&
      this.#inflight === 0
    ) this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    exiting.delete(this.#onExit);
    finalizer.unregister(this);
    this.#segment?.map.unmap();
    this.#segment = null;
    releaseShared(this.#s);
  }
}

/**
 * A {@linkcode Queue} that also counts unfinished tasks, as Python's
 * `multiprocessing.JoinableQueue`: each accepted item adds one, each `taskDone()` takes one away,
 * and `join()` waits until none is left.
 *
 * @example Wait until every item is processed
 * ```ts
 * import { JoinableQueue, Process } from "@mp/multiprocessing";
 *
 * export async function worker(q: JoinableQueue<number>) {
 *   for (;;) {
 *     const n = await q.get();
 *     console.log(n * n);
 *     q.taskDone();
 *   }
 * }
 *
 * if (import.meta.main) {
 *   const q = new JoinableQueue<number>();
 *   const p = new Process({ target: worker, args: [q], daemon: true });
 *   await p.start();
 *   for (let i = 0; i < 5; i++) await q.put(i);
 *   await q.join(); // every item got its taskDone()
 *   q.close();
 * }
 * ```
 */
export class JoinableQueue<T = unknown> extends Queue<T> {
  /** Makes a joinable queue holding at most `maxsize` items (0 or omitted: unbounded). */
  constructor(maxsize = 0) {
    super(maxsize);
    joinable.add(this);
  }

  /**
   * Says that an item taken with `get()` is processed. Throws a `RangeError` when called more
   * times than items were put.
   */
  taskDone(): void {
    this._check("taskDone");
    if (!this._taskDone()) {
      throw new RangeError("Cannot mark a task done: taskDone() was called more times than items were put");
    }
  }

  /** Resolves once every item put so far (in any process) has been marked done. */
  async join(): Promise<void> {
    this._check("join");
    let pause = 1;
    while (this._unfinished() > 0) {
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 20);
    }
  }
}

/**
 * A simpler unbounded queue, as Python's `multiprocessing.SimpleQueue`: `put`, `get`, `empty`,
 * `close`. It shares {@linkcode Queue}'s machinery (and its guarantees).
 *
 * @example
 * ```ts
 * import { SimpleQueue } from "@mp/multiprocessing";
 *
 * const q = new SimpleQueue<string>();
 * await q.put("a");
 * console.log(await q.get(), q.empty()); // "a" true
 * q.close();
 * ```
 */
export class SimpleQueue<T = unknown> {
  #q: Queue<T>;

  /** Makes an unbounded queue. */
  constructor() {
    this.#q = simpleReviving ?? new Queue<T>();
    simpleReviving = null;
  }

  /** Puts an item; an item that cannot be serialized throws from this call. */
  put(item: T): Promise<void> {
    return this.#q.put(item);
  }

  /** Takes the next item, waiting for one. */
  get(): Promise<T> {
    return this.#q.get();
  }

  /** True when the queue holds no item. */
  empty(): boolean {
    return this.#q.empty();
  }

  /** Says this process will put and get no more (idempotent). */
  close(): void {
    this.#q.close();
  }

  /** Closes this process's handle. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal The queue underneath, for the reducer. */
  static _queue(q: SimpleQueue): Queue {
    return q.#q;
  }
}

// deno-lint-ignore no-explicit-any
let simpleReviving: Queue<any> | null = null;

interface QueueState {
  readFd: number;
  writeFd: number;
  controlName: string;
  slotsName: string;
  maxsize: number;
  locks: Uint8Array;
}

function reduceQueue(q: Queue, ctx: ReduceContext): QueueState {
  const s = Queue._shared(q);
  return {
    readFd: ctx.passFd(s.readFd),
    writeFd: ctx.passFd(s.writeFd),
    controlName: s.controlName,
    slotsName: s.slotsName,
    maxsize: s.maxsize,
    locks: serialize({ rlock: s.rlock, wlock: s.wlock }),
  };
}

function reviveShared(st: QueueState): Shared {
  const { rlock, wlock } = deserialize(st.locks) as { rlock: Lock; wlock: Lock };
  return {
    readFd: st.readFd,
    writeFd: st.writeFd,
    control: mapSharedMemory(st.controlName, false),
    controlName: st.controlName,
    slots: NamedSemaphore.open(st.slotsName),
    slotsName: st.slotsName,
    maxsize: st.maxsize,
    rlock,
    wlock,
    creator: false,
  };
}

registerReducer(Queue, {
  name: "mp.Queue",
  reduce: reduceQueue,
  revive(st: QueueState) {
    reviving = reviveShared(st);
    return new Queue();
  },
});
registerReducer(JoinableQueue, {
  name: "mp.JoinableQueue",
  reduce: reduceQueue,
  revive(st: QueueState) {
    reviving = reviveShared(st);
    return new JoinableQueue();
  },
});
registerReducer(SimpleQueue, {
  name: "mp.SimpleQueue",
  reduce: (q: SimpleQueue, ctx) => reduceQueue(SimpleQueue._queue(q), ctx),
  revive(st: QueueState) {
    reviving = reviveShared(st);
    simpleReviving = new Queue();
    return new SimpleQueue();
  },
});
