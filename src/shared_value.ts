/**
 * Typed values and arrays in shared memory (CPython: `Value` and `Array` of `sharedctypes.py`).
 *
 * {@linkcode Value} and {@linkcode SharedArray} are typed views of a block of their own (one
 * `shm_open` name each), guarded by a lock for compound updates. Their block belongs to the
 * process that made them (like a `Lock`'s): it is unlinked by `close()` there, when it is
 * collected there (once neither the object nor a view of its bytes is left), or when that process
 * exits; processes that already have it keep using it. The lock a Value or SharedArray made (or
 * revived along with it) is closed with it; a lock passed in stays its owner's.
 *
 * Both travel to children as handles (the block's name, its type and length, and the lock's own
 * handle) and see the same bytes there.
 *
 * @module
 */
import { mapSharedMemory, type SharedMapping } from "../native/mod.ts";
import { adopted, construct } from "./_adopt.ts";
import { described, inspect } from "./_inspect.ts";
import { deserialize, registerReducer, serialize } from "./_reduction.ts";
import { createNamed, forgetCollected, makeTracked, onCollected, own, releaseNamed } from "./_resource.ts";
import { type Lock, RLock } from "./lock.ts";

/**
 * Element types of {@linkcode Value} and {@linkcode SharedArray}: signed and unsigned integers of 8 to
 * 64 bits, and 32- or 64-bit floats (the 64-bit integer types hold bigints).
 *
 * @example A type code picks the element type
 * ```ts
 * import { SharedArray, type TypeCode, Value } from "@mp/multiprocessing";
 *
 * const code: TypeCode = "f64";
 * const xs = new SharedArray(code, 3);
 * const big = new Value("i64", 1n);
 * console.log(xs.array.length, big.value); // 3 1n
 * xs.close();
 * big.close();
 * ```
 */
export type TypeCode = "i8" | "u8" | "i16" | "u16" | "i32" | "u32" | "i64" | "u64" | "f32" | "f64";

const ARRAYS = {
  i8: Int8Array,
  u8: Uint8Array,
  i16: Int16Array,
  u16: Uint16Array,
  i32: Int32Array,
  u32: Uint32Array,
  i64: BigInt64Array,
  u64: BigUint64Array,
  f32: Float32Array,
  f64: Float64Array,
} as const;

/**
 * `number` or `bigint`: what a {@linkcode Value} holds. `new Value("i32", 5)` infers `V = 5`;
 * its `value` is still any number.
 *
 * @example A literal type widened
 * ```ts
 * import type { Widen } from "@mp/multiprocessing";
 *
 * const n: Widen<5> = 7; // number
 * const b: Widen<1n> = 2n; // bigint
 * console.log(n, b);
 * ```
 */
export type Widen<V> = V extends number ? number : V extends bigint ? bigint : V;

/**
 * The typed array a {@linkcode SharedArray} of type code `T` exposes: `SharedTypedArray<"f64">`
 * is `Float64Array`; without `T`, any of the ten.
 *
 * @example The array of an f64 SharedArray
 * ```ts
 * import { SharedArray, type SharedTypedArray } from "@mp/multiprocessing";
 *
 * const shared = new SharedArray("f64", [1.5, 2.5]);
 * const view: SharedTypedArray<"f64"> = shared.array; // a Float64Array
 * console.log(view.reduce((a, b) => a + b, 0)); // 4
 * shared.close();
 * ```
 */
export type SharedTypedArray<T extends TypeCode = TypeCode> = T extends "i8" ? Int8Array
  : T extends "u8" ? Uint8Array
  : T extends "i16" ? Int16Array
  : T extends "u16" ? Uint16Array
  : T extends "i32" ? Int32Array
  : T extends "u32" ? Uint32Array
  : T extends "i64" ? BigInt64Array
  : T extends "u64" ? BigUint64Array
  : T extends "f32" ? Float32Array
  : T extends "f64" ? Float64Array
  : never;

/**
 * Options of {@linkcode Value} and {@linkcode SharedArray}.
 *
 * @example A value without a lock, and one sharing a lock
 * ```ts
 * import { Lock, Value } from "@mp/multiprocessing";
 *
 * const fast = new Value("i32", 0, { lock: false }); // single writer: no lock needed
 * const lock = new Lock();
 * const guarded = new Value("i32", 0, { lock });
 * console.log(guarded.getLock() === lock); // true
 * fast.close();
 * guarded.close();
 * lock.close();
 * ```
 */
export interface SharedValueOptions {
  /** `true` (default): a new `RLock` guards compound updates; `false`: none; or your own lock. */
  lock?: boolean | Lock | RLock;
}

/**
 * What runs when a Value's or SharedArray's bytes are collected without close(): unmap, and in the
 * process that made the block, remove its name. Made apart from the block, which it must not reach.
 */
function collector(release: () => void, owned: string | null): () => void {
  return () => {
    release();
    if (owned !== null) releaseNamed([{ kind: "shm", name: owned }]);
  };
}

/**
 * The block of a Value or SharedArray, owned by the process that made it, and its lock. A lock
 * the block made (`lock: true`) or revived (it came with a handle) belongs to it and is closed
 * with it; a lock the caller passed in is the caller's.
 */
class TypedBlock {
  readonly name: string;
  readonly type: TypeCode;
  readonly length: number;
  readonly array: SharedTypedArray;
  readonly lock: Lock | RLock | null;
  #mapping: SharedMapping | null;
  #owner: boolean;
  #ownsLock: boolean;

  constructor(
    type: TypeCode,
    length: number,
    lock: boolean | Lock | RLock,
    revived?: { name: string },
  ) {
    const Typed = ARRAYS[type];
    if (!Typed) {
      throw new TypeError(`Invalid type code "${type}": expected one of ${Object.keys(ARRAYS).join(", ")}`);
    }
    this.type = type;
    this.length = length;
    this.#owner = revived === undefined;
    const bytes = Math.max(1, length) * Typed.BYTES_PER_ELEMENT;
    const [name, mapping] = revived
      ? [revived.name, mapSharedMemory(revived.name, false)] as const
      : createNamed("v", (fresh) =>
        [
          fresh,
          makeTracked({ kind: "shm", name: fresh }, () => mapSharedMemory(fresh, true, bytes)),
        ] as const);
    if (this.#owner) own({ kind: "shm", name });
    this.name = name;
    this.#mapping = mapping;
    this.array = new Typed(mapping.buffer, 0, length);
    onCollected(mapping.buffer, collector(mapping.release, this.#owner ? name : null), this);
    this.#ownsLock = lock === true || (revived !== undefined && lock !== false);
    this.lock = lock === true ? new RLock() : lock === false ? null : lock;
  }

  get closed(): boolean {
    return this.#mapping === null;
  }

  close(): void {
    if (!this.#mapping) return;
    forgetCollected(this);
    this.#mapping.unmap();
    this.#mapping = null;
    if (this.#owner) releaseNamed([{ kind: "shm", name: this.name }]);
    if (this.#ownsLock) this.lock?.close();
  }
}

/** Throws a `TypeError` unless `v` can be stored in an element of `type` (a bigint for "i64"/"u64",
 * else a number): a typed array would store "a" as 0 without a word. */
function checkElement(type: TypeCode, v: unknown, what: string): void {
  const big = type === "i64" || type === "u64";
  if (big ? typeof v !== "bigint" : typeof v !== "number") {
    throw new TypeError(
      `Invalid ${what} ${
        typeof v === "string" ? JSON.stringify(v) : String(v)
      }: a "${type}" element holds a ${big ? "bigint" : "number"}`,
    );
  }
}

function checkLockOption(lock: unknown): boolean | Lock | RLock {
  if (lock === undefined) return true;
  if (typeof lock === "boolean" || (typeof lock === "object" && lock !== null && "acquire" in lock)) {
    return lock as boolean | Lock | RLock;
  }
  throw new TypeError("Invalid lock option: expected true, false, a Lock or an RLock");
}

/** An element as it prints: a bigint with its `n`. */
function show(v: number | bigint): string {
  return typeof v === "bigint" ? `${v}n` : String(v);
}

function lockOf(block: TypedBlock, what: string): Lock | RLock {
  if (!block.lock) throw new Error(`Cannot get the lock of this ${what}: it was made with { lock: false }`);
  return block.lock;
}

function reduceBlock(block: TypedBlock) {
  // The lock travels as a handle of its own, serialized here (a reducer's state is plain data).
  return {
    name: block.name,
    type: block.type,
    length: block.length,
    lock: block.lock && serialize(block.lock),
  };
}

function reviveBlock(s: ReturnType<typeof reduceBlock>): TypedBlock {
  const lock = s.lock ? deserialize(s.lock) as Lock | RLock : false;
  return new TypedBlock(s.type, s.length, lock, { name: s.name });
}

/**
 * A single number in shared memory, as Python's `multiprocessing.Value`. Reads and writes of
 * `value` go straight to the shared bytes; hold `getLock()` for read-modify-write updates.
 *
 * @example A counter several processes add to
 * ```ts
 * import { Value } from "@mp/multiprocessing";
 *
 * const counter = new Value("i32", 0);
 * using _ = await counter.getLock().hold();
 * counter.value += 1;
 * ```
 */
export class Value<V extends number | bigint = number> {
  #block: TypedBlock;

  /**
   * A new shared number of the given type, set to `initial` (default 0). A 64-bit type holds a
   * bigint, so `new Value("i64")` does not compile: write `new Value<bigint>("i64")` or give a
   * bigint `initial`, and `value` is typed `bigint`.
   */
  constructor(
    type: [V] extends [bigint] ? "i64" | "u64"
      : [V] extends [number] ? Exclude<TypeCode, "i64" | "u64">
      : TypeCode,
    initial?: V,
    options: SharedValueOptions = {},
  ) {
    const revived = adopted<TypedBlock>(new.target);
    if (revived) {
      this.#block = revived;
      return;
    }
    const lock = checkLockOption(options?.lock);
    if (initial !== undefined && type in ARRAYS) checkElement(type, initial, "initial value");
    this.#block = new TypedBlock(type, 1, lock);
    if (initial !== undefined) this.value = initial as Widen<V>;
  }

  /** The shared number (a bigint for "i64" and "u64"). */
  get value(): Widen<V> {
    return this.#block.array[0] as Widen<V>;
  }
  set value(v: Widen<V>) {
    checkElement(this.#block.type, v, "value");
    (this.#block.array as unknown as (number | bigint)[])[0] = v;
  }

  /** The lock that guards compound updates. */
  getLock(): Lock | RLock {
    return lockOf(this.#block, "Value");
  }

  /** Unmaps it here; in the process that made it, also removes its name (idempotent). */
  close(): void {
    this.#block.close();
  }

  /** `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** How it prints: `Value("i32", 3)`, `Value("i64", 3n)`, `Value(closed)`. */
  [inspect](): string {
    return described("Value", this.#block.closed, () => [JSON.stringify(this.#block.type), show(this.value)]);
  }

  static {
    registerReducer(Value, {
      name: "multiprocessing.Value",
      reduce: (v) => reduceBlock(v.#block),
      revive: (s: ReturnType<typeof reduceBlock>) => construct(Value, reviveBlock(s)),
    });
  }
}

/**
 * An array of numbers in shared memory, as Python's `multiprocessing.Array`. `array` is a typed
 * array over the shared bytes.
 *
 * @example Children fill an array their parent reads
 * ```ts
 * import { SharedArray } from "@mp/multiprocessing";
 *
 * const squares = new SharedArray("f64", 10);
 * squares.array[3] = 9;
 * console.log(squares.length, squares.array[3]); // 10 9
 * ```
 */
export class SharedArray<T extends TypeCode = TypeCode> {
  #block: TypedBlock;

  /** A new shared array: of `length` zeros, or holding the given items. */
  constructor(
    type: T,
    sizeOrItems: number | Iterable<number | bigint>,
    options: SharedValueOptions = {},
  ) {
    const revived = adopted<TypedBlock>(new.target);
    if (revived) {
      this.#block = revived;
      return;
    }
    const lock = checkLockOption(options?.lock);
    if (typeof sizeOrItems === "number") {
      if (!Number.isSafeInteger(sizeOrItems) || sizeOrItems < 0) {
        throw new RangeError(`Invalid size: ${sizeOrItems}; expected a whole number of elements, 0 or more`);
      }
      this.#block = new TypedBlock(type, sizeOrItems, lock);
    } else {
      if (typeof (sizeOrItems as Iterable<unknown> | null)?.[Symbol.iterator] !== "function") {
        throw new TypeError(
          `Invalid SharedArray size or items: expected a number of elements or an iterable of numbers, got ${
            sizeOrItems === null ? "null" : typeof sizeOrItems
          }`,
        );
      }
      const items = [...sizeOrItems];
      if (type in ARRAYS) items.forEach((item, i) => checkElement(type, item, `item ${i}`));
      this.#block = new TypedBlock(type, items.length, lock);
      (this.#block.array as unknown as { set(a: ArrayLike<number | bigint>): void }).set(items);
    }
  }

  /** The shared elements, as the typed array of its type code (`"f64"`: a `Float64Array`). */
  get array(): SharedTypedArray<T> {
    return this.#block.array as SharedTypedArray<T>;
  }

  /** Number of elements. */
  get length(): number {
    return this.#block.length;
  }

  /** The lock that guards compound updates. */
  getLock(): Lock | RLock {
    return lockOf(this.#block, "SharedArray");
  }

  /** Unmaps it here; in the process that made it, also removes its name (idempotent). */
  close(): void {
    this.#block.close();
  }

  /** `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** How it prints: `SharedArray("f64", [1.5, 2.5])` (the first 10 items), `SharedArray(closed)`. */
  [inspect](): string {
    return described("SharedArray", this.#block.closed, () => {
      const a = this.#block.array;
      const items = Array.from(a.subarray(0, 10) as ArrayLike<number | bigint>, show);
      if (a.length > 10) items.push(`... ${a.length - 10} more`);
      return [JSON.stringify(this.#block.type), `[${items.join(", ")}]`];
    });
  }

  static {
    registerReducer(SharedArray, {
      name: "multiprocessing.SharedArray",
      reduce: (a) => reduceBlock(a.#block),
      revive: (s: ReturnType<typeof reduceBlock>) => construct(SharedArray, reviveBlock(s)),
    });
  }
}
