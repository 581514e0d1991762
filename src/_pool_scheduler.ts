/**
 * The pool's scheduler: which task runs on which worker, and when.
 *
 * CPython's workers share one task queue, so when a worker dies nobody knows which task it held
 * and the pool waits forever. Here the parent hands each chunk of work to one chosen worker. A
 * worker runs its chunks in order, stores each chunk's id in its progress word (shared memory)
 * before running it, and writes its answers in groups (at the end of each batch, or every
 * {@linkcode FLUSH_MS}). When it dies, the word names the chunk it was running: that chunk fails
 * with `WorkerDiedError`; those before it finished but their answers died with the worker, so
 * they run again; those after it never started and go back to the front of the queue; a new
 * worker takes the dead one's place.
 *
 * The rules, in order:
 * 1. **Idle workers first.** A ready worker with nothing to do takes the chunk at the head of the
 *    queue, whatever it is, and at most its share of the queue (workers still starting count).
 * 2. **Batching and pipelining only of short work.** Each answer says how long its chunk ran;
 *    the scheduler keeps a per-function estimate. A chunk is sent behind other work (in the same
 *    frame, or to a busy worker) only when its function's estimate is known and the work before
 *    it is estimated under {@linkcode BATCH_MS} (same frame) or {@linkcode PIPE_MS} (busy
 *    worker), and only up to a fair share of the queue, so workers still starting get theirs. A
 *    function never seen, or a chunk running past its estimate, is long: nothing is queued behind
 *    it, so `N` long tasks on `N` workers run at once. An idle worker waits for work sent
 *    elsewhere only as long as the estimates are wrong about a short task, and many tiny tasks
 *    travel in few frames.
 * 3. **A task with a deadline runs alone** on an idle worker, and its `timeout` counts from the
 *    moment it is sent there (it starts at once): killing the worker when it runs late harms no
 *    other task.
 *
 * Every step per task is O(1) amortized: a ring-buffer queue, each worker's chunks in a ring
 * buffer, each chunk knowing its worker, counters for keep-alive; a canceled chunk stays in the
 * queue, marked, and is dropped when it reaches the head. Pumping runs once per microtask,
 * however many tasks were submitted or answered in it.
 *
 * The scheduler talks to workers only through `WorkerSlot` (`_pool_slot.ts`): processes today,
 * threads for a thread pool. Starting and replacing them, and telling which chunk a dead one was
 * running, is `_pool_workers.ts`'s; the per-task timers and signals are `_pool_deadline.ts`'s.
 *
 * @module
 */
import type { ReplyFrame, TaskFrame } from "./_pool_worker.ts";
import { FLUSH_MS } from "./_pool_slot.ts";
import { startTimer, watchSignal } from "./_pool_deadline.ts";
import { Workers, type WorkersOptions } from "./_pool_workers.ts";
import { deserialize, serialize } from "./_reduction.ts";
import {
  type Chunk,
  DONE,
  errorText,
  makeChunk,
  QUEUED,
  Ring,
  SENT,
  type Slot,
  terminatedError,
} from "./_pool_task.ts";
import type { PackedError } from "./_error_transport.ts";
import { WorkerDiedError } from "./errors.ts";

/** Estimated ms of work sent to a worker in one frame, beyond its first chunk. */
export const BATCH_MS = 2;
/** Estimated ms of outstanding work above which nothing more is sent to a busy worker. */
export const PIPE_MS = 16;
/** At most this many chunks per frame, and (beyond the first) this many input bytes. */
const MAX_BATCH = 1024;
const MAX_BATCH_BYTES = 1 << 20;
// deno-lint-ignore no-explicit-any
type AnyFn = (...args: any[]) => unknown;

/** Weight of the newest sample in a function's running estimate. */
const EWMA = 0.5;

/** The pool's engine: queue, workers, dispatch. `Pool` is its public face. */
export class Scheduler {
  #workers: Workers;
  #queue = new Ring<Chunk>();
  /** Chunks in the queue that were not canceled. */
  #queued = 0;
  #inflight = 0;
  #nextId = 1;
  #pumpSoon = false;
  /** "running" | "closed" | "terminated": set by the Pool. */
  state: "running" | "closed" | "terminated" = "running";
  /** map and imap calls reading their input right now (they may go on after close()). */
  #feeding = 0;
  #alive: ReturnType<typeof setInterval> | undefined;
  /** Why workers cannot start (initializer or module failure): later tasks fail with it. */
  #broken: Error | undefined;

  constructor(options: WorkersOptions) {
    this.#workers = new Workers(options, {
      frame: (slot, body) => this.#onFrame(slot, body),
      startFailed: (error) => this.#startFailed(error),
      exited: (slot) => this.#onExit(slot),
    });
  }

  /** Starts the workers; if one cannot be started, stops those that were and throws. */
  start(): void {
    try {
      this.#workers.start();
    } catch (error) {
      this.state = "terminated";
      throw this.#workers.abortStart(error);
    }
  }

  get size(): number {
    return this.#workers.size;
  }

  /** Makes a chunk; a value that cannot travel throws here, at the call that sent it. */
  chunk(fn: AnyFn, items: unknown[], star: boolean, settle: (ok: boolean, value: unknown) => void): Chunk {
    return makeChunk(this.#nextId++, fn, items, star, settle);
  }

  /** Queues a chunk (or fails it at once when the pool is terminated or broken). */
  submit(chunk: Chunk): void {
    // A map or imap still reading its input may submit after terminate(): it must not wait forever.
    if (this.state === "terminated") return this.#finish(chunk, false, terminatedError());
    if (this.#broken) return this.#finish(chunk, false, this.#broken);
    this.#queue.push(chunk);
    this.#queued++;
    if (chunk.deadline?.signal) watchSignal(chunk, (c, reason) => this.#fail(c, reason));
    this.#schedule();
  }

  /** Counts a map or imap that is reading its input (the pool must stay up meanwhile). */
  feeding(delta: 1 | -1): void {
    this.#feeding += delta;
    this.#keepAlive();
    if (delta < 0) this.#maybeRetire();
  }

  /** After close(), or when an imap stops: lets idle workers go once nothing is left. */
  closeIfIdle(): void {
    this.#maybeRetire();
  }

  /** Stops the workers now; every pending chunk fails. */
  terminate(): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    const error = terminatedError();
    this.#failQueue(error);
    for (const s of this.#workers.slots) {
      for (let c = s.inflight.shift(); c; c = s.inflight.shift()) this.#finish(c, false, error);
      s.est = s.unknown = 0;
      if (!s.dead) s.io.kill();
    }
    this.#inflight = 0;
    this.#keepAlive();
  }

  /** Waits for every worker to end (including replacements started meanwhile). */
  async join(): Promise<void> {
    await this.#workers.join();
    if (this.state !== "running") this.dispose();
  }

  /** Frees the progress words (once no worker is left; workers started later go without). */
  dispose(): void {
    this.#workers.dispose();
  }

  /** Starts workers until there are `size` of them (retired or dead ones are replaced). */
  #topUp(): void {
    if (this.state === "terminated" || this.#broken) return;
    this.#workers.topUp();
  }

  /** A worker that could not find its module, initializer or entry point: the pool is broken. */
  #startFailed(error: unknown): void {
    if (this.state === "terminated") return;
    this.#broken ??= new Error(`Cannot run tasks: a pool worker could not start: ${errorText(error)}`, {
      cause: error,
    });
    this.#failQueue(this.#broken);
    this.#keepAlive();
  }

  #onFrame(slot: Slot, body: Uint8Array): void {
    if (slot.dead || this.state === "terminated") return;
    const msg = deserialize(body) as ReplyFrame[] | { ready: true } | { ready: false; error: PackedError };
    if (!Array.isArray(msg)) {
      if (!msg.ready) return this.#startFailed(this.#workers.unpackError(msg.error));
      this.#workers.readied(slot);
      this.#schedule();
      return;
    }
    this.#schedule();
    for (const answer of msg) {
      // A callback may have terminated the pool meanwhile.
      if (slot.dead || (this.state as string) === "terminated") return;
      this.#onAnswer(slot, answer);
    }
  }

  #onAnswer(slot: Slot, [id, ok, payload, ms]: ReplyFrame): void {
    const chunk = slot.inflight.peek();
    if (chunk?.id !== id) {
      // Cannot happen unless the worker is broken: replace it (its chunks go back to the queue).
      slot.io.kill();
      return;
    }
    slot.inflight.shift();
    this.#inflight--;
    if (Number.isNaN(chunk.est)) slot.unknown--;
    else slot.est -= chunk.est;
    if (slot.inflight.size === 0) slot.est = slot.unknown = 0; // no drift
    slot.since = performance.now();
    const info = chunk.fn;
    const perItem = ms / Math.max(1, chunk.count);
    info.perItem = Number.isNaN(info.perItem) ? perItem : info.perItem + EWMA * (perItem - info.perItem);
    const value = ok
      ? (payload instanceof Uint8Array ? deserialize(payload) : payload)
      : this.#workers.unpackError(payload);
    this.#finish(chunk, ok, value);
  }

  #onExit(slot: Slot): void {
    const sent: Chunk[] = [];
    for (let c = slot.inflight.shift(); c; c = slot.inflight.shift()) sent.push(c);
    this.#inflight -= sent.length;
    // Which one was running (see `Workers.ended`). Those before it had finished, but their
    // answers died with the worker: they run again. Those after it never started.
    const running = this.#workers.ended(slot, sent);
    const rest: Chunk[] = [];
    for (let i = 0; i < sent.length; i++) {
      const c = sent[i];
      if (i === running || c.killedFor !== undefined) {
        const { pid, exitCode } = slot.io;
        this.#finish(c, false, c.killedFor ?? new WorkerDiedError(pid!, exitCode));
      } else rest.push(c);
    }
    for (let i = rest.length - 1; i >= 0; i--) {
      rest[i].state = QUEUED;
      rest[i].slot = undefined;
      this.#queue.unshift(rest[i]);
      this.#queued++;
    }
    if (this.#queued > 0 || this.state === "running") this.#topUp();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#pumpSoon) return;
    this.#pumpSoon = true;
    queueMicrotask(() => {
      this.#pumpSoon = false;
      this.#pump();
    });
  }

  /** Hands queued chunks to workers by the rules in this module's header. */
  #pump(): void {
    if (this.state === "terminated") return;
    if (this.#broken) this.#failQueue(this.#broken);
    if (this.#queued === 0 && this.#queue.size > 0) this.#queue = new Ring(); // only canceled ones
    let usable = 0;
    for (const s of this.#workers.slots) {
      if (s.dead || s.retiring || s.left <= 0) continue;
      usable++;
    }
    // 1. Idle workers first.
    for (const s of this.#workers.slots) {
      if (this.#queued === 0) break;
      if (s.ready && !s.dead && !s.retiring && s.left > 0 && s.inflight.size === 0) {
        this.#send(s, Math.ceil(this.#queued / usable), BATCH_MS);
      }
    }
    // 2. Pipelining onto busy workers: only short work, at most a fair share of the queue (the
    //    share of workers still starting waits for them).
    if (this.#queued > 0) {
      const now = performance.now();
      for (;;) {
        let best: Slot | undefined;
        for (const s of this.#workers.slots) {
          if (!s.ready || s.dead || s.retiring || s.left <= 0 || s.unknown > 0) continue;
          const head = s.inflight.peek();
          if (head?.deadline) continue;
          // A chunk running well past its estimate is long: queue nothing behind it.
          if (head && now - s.since > FLUSH_MS + 2 * head.est + 1) continue;
          if (s.est >= PIPE_MS) continue;
          if (!best || s.est < best.est) best = s;
        }
        if (!best || this.#send(best, Math.ceil(this.#queued / usable), PIPE_MS - best.est) === 0) break;
        if (this.#queued === 0) break;
      }
    }
    this.#keepAlive();
    this.#maybeRetire();
  }

  /**
   * Sends `slot` up to `share` chunks from the head of the queue in one frame: the first one
   * whatever it is when the slot is idle, then only chunks with a known estimate, each only while
   * the estimated work sent before it in this frame is under `budget` ms. Returns how many were
   * sent.
   */
  #send(slot: Slot, share: number, budget: number): number {
    const idle = slot.inflight.size === 0;
    const limit = Math.min(share, slot.left, MAX_BATCH);
    const batch: TaskFrame[] = [];
    let bytes = 0;
    let est = 0;
    while (batch.length < limit) {
      const c = this.#queue.peek();
      if (!c) break;
      if (c.state !== QUEUED) { // canceled while queued
        this.#queue.shift();
        continue;
      }
      const first = idle && batch.length === 0;
      if (c.deadline) {
        if (!first) break;
      } else if (!first) {
        // It would wait for the work sent before it: that must be known and short.
        if (Number.isNaN(c.fn.perItem) || est >= budget || bytes + c.bytes > MAX_BATCH_BYTES) break;
      }
      this.#queue.shift();
      this.#queued--;
      this.#inflight++;
      c.state = SENT;
      c.slot = slot;
      c.est = c.fn.perItem * c.count;
      if (Number.isNaN(c.est)) slot.unknown++;
      else {
        slot.est += c.est;
        est += c.est;
      }
      slot.inflight.push(c);
      slot.left--;
      bytes += c.bytes;
      batch.push([c.id, c.fn.desc, c.star, c.items]);
      if (c.deadline) {
        startTimer(c, (c, reason) => this.#fail(c, reason));
        break; // alone
      }
      if (Number.isNaN(c.est)) break; // maybe long: nothing behind it
    }
    if (batch.length === 0) return 0;
    if (idle) slot.since = performance.now();
    slot.io.send(serialize(batch));
    return batch.length;
  }

  /** Fails a task on purpose: a queued one at once, a running one by killing its worker. */
  #fail(c: Chunk, reason: unknown): void {
    if (c.state === QUEUED) {
      this.#queued--;
      this.#finish(c, false, reason);
      this.#keepAlive();
      this.#maybeRetire();
    } else if (c.state === SENT && c.slot && !c.slot.dead) {
      c.killedFor = reason;
      c.slot.io.kill();
    }
  }

  #finish(c: Chunk, ok: boolean, value: unknown): void {
    if (c.state === DONE) return;
    c.state = DONE;
    c.slot = undefined;
    c.deadline?.stop?.abort();
    c.settle(ok, value);
  }

  #failQueue(error: unknown): void {
    for (let c = this.#queue.shift(); c; c = this.#queue.shift()) {
      if (c.state === QUEUED) this.#finish(c, false, error);
    }
    this.#queued = 0;
  }

  /**
   * While someone awaits the pool's work (queued, in flight, or input still being read), the
   * program must not end: the workers are daemons and their sockets are unref'd, so the pool
   * holds one ref'd timer of its own for exactly that long.
   */
  #keepAlive(): void {
    const busy = this.state !== "terminated" && (this.#queued > 0 || this.#feeding > 0 || this.#inflight > 0);
    if (busy && this.#alive === undefined) this.#alive = setInterval(() => {}, 1 << 30);
    if (!busy && this.#alive !== undefined) {
      clearInterval(this.#alive);
      this.#alive = undefined;
    }
  }

  /** Once closed and idle, lets the workers go (SIGTERM: an idle worker holds nothing). */
  #maybeRetire(): void {
    if (this.state !== "closed" || this.#queued > 0 || this.#feeding > 0 || this.#inflight > 0) return;
    // A worker still starting is let go once it says it is ready.
    for (const s of this.#workers.slots) {
      if (s.ready && !s.retiring && !s.dead) {
        s.retiring = true;
        s.io.retire();
      }
    }
  }
}
