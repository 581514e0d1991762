/**
 * The pieces of the pool's bookkeeping: chunks of work (what a task is, and how its inputs
 * travel), per-function run-time estimates, the ring buffer behind every queue, and the errors.
 *
 * @module
 */
import { describeFunction } from "./_caller.ts";
import type { WorkerSlot } from "./_pool_slot.ts";
import type { FnDesc } from "./_pool_worker.ts";
import { serialize } from "./_reduction.ts";

/** Inputs of fewer items than this, all primitives, travel in the batch as they are. */
const PLAIN_ITEMS = 64;

// deno-lint-ignore no-explicit-any
type AnyFn = (...args: any[]) => unknown;

/** A task function as the scheduler knows it: how to find it, and how long it takes per item. */
export interface FnInfo {
  desc: FnDesc;
  /** Estimated ms per item (NaN until one chunk of it has run). */
  perItem: number;
}
const fnInfos = new WeakMap<AnyFn, FnInfo>();

/** Chunk states. */
export const QUEUED = 0;
export const SENT = 1;
export const DONE = 2;

/** One worker, as the scheduler keeps track of it. */
export interface Slot {
  io: WorkerSlot;
  /** Its progress word (-1: none, when all were taken). */
  lane: number;
  ready: boolean;
  dead: boolean;
  /** Sent SIGTERM by a closed, idle pool: given no more work. */
  retiring: boolean;
  /** Chunks sent, not yet answered, in order. */
  inflight: Ring<Chunk>;
  /** Sum of the estimates of `inflight`; `unknown` counts those without one. */
  est: number;
  unknown: number;
  /** When its current chunk started (the last answer, or the send to an idle worker). */
  since: number;
  /** Chunks it may still be sent before it retires (maxTasksPerChild). */
  left: number;
}

/** A chunk of work: one call of `applyAsync`, or `chunksize` items of a map. */
export interface Chunk {
  id: number;
  fn: FnInfo;
  star: boolean;
  /**
   * The inputs: a few primitives as they are (they cannot fail to travel), anything else
   * serialized when the task is made, so that bad input fails at the call that gave it.
   */
  items: unknown[] | Uint8Array;
  /** About how many bytes they take. */
  bytes: number;
  count: number;
  state: number;
  /** Called once, with the results or the error. */
  settle: (ok: boolean, value: unknown) => void;
  /** The worker it was sent to. */
  slot?: Slot;
  /** Its estimate when sent (NaN: unknown). */
  est: number;
  /** A task with its own deadline: runs alone on a worker. */
  deadline?: { timeout: number; signal?: AbortSignal; stop?: AbortController };
  /** Why its worker was killed on purpose. */
  killedFor?: unknown;
}

/**
 * Makes a chunk; a value that cannot travel throws here, at the call that sent it. `id` must be
 * new for the pool.
 */
export function makeChunk(
  id: number,
  fn: AnyFn,
  items: unknown[],
  star: boolean,
  settle: (ok: boolean, value: unknown) => void,
): Chunk {
  let info = fnInfos.get(fn);
  if (!info) {
    if (typeof fn !== "function") throw new TypeError(`Invalid task: expected a function, got ${typeof fn}`);
    fnInfos.set(fn, info = { desc: describeFunction(fn), perItem: NaN });
  }
  const plain = items.length < PLAIN_ITEMS && isPlain(items, star);
  const data = plain ? items : serialize(items);
  return {
    id,
    fn: info,
    star,
    items: data,
    bytes: plain ? 16 * items.length : (data as Uint8Array).length,
    count: items.length,
    state: QUEUED,
    settle,
    est: NaN,
  };
}

/** A growable ring buffer: O(1) push, shift and unshift. */
export class Ring<T> {
  #buf: (T | undefined)[] = new Array(8);
  #head = 0;
  size = 0;

  push(x: T): void {
    if (this.size === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.size) & (this.#buf.length - 1)] = x;
    this.size++;
  }

  unshift(x: T): void {
    if (this.size === this.#buf.length) this.#grow();
    this.#head = (this.#head - 1) & (this.#buf.length - 1);
    this.#buf[this.#head] = x;
    this.size++;
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const x = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#buf.length - 1);
    this.size--;
    return x;
  }

  peek(): T | undefined {
    return this.size === 0 ? undefined : this.#buf[this.#head];
  }

  #grow(): void {
    const old = this.#buf;
    const buf = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.size; i++) buf[i] = old[(this.#head + i) & (old.length - 1)];
    this.#buf = buf;
    this.#head = 0;
  }
}

/** True when every item (every argument, for `star`) is a primitive that structured clone takes. */
function isPlain(items: unknown[], star: boolean): boolean {
  for (let i = 0; i < items.length; i++) {
    const x = items[i];
    if (star && Array.isArray(x)) {
      for (let j = 0; j < x.length; j++) if (!isPrimitive(x[j])) return false;
    } else if (star || !isPrimitive(x)) return false;
  }
  return true;
}

function isPrimitive(x: unknown): boolean {
  const t = typeof x;
  return x === null || t === "number" || t === "string" || t === "boolean" || t === "undefined" ||
    t === "bigint";
}

export function terminatedError(): Error {
  return new Error("Cannot complete task: the pool was terminated");
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
