/**
 * Shared memory between processes (CPython: `shared_memory.py` and `sharedctypes.py`), on POSIX
 * `shm_open` + `mmap`.
 *
 * - {@linkcode SharedMemory} is a named block of bytes. As in Python, it lives until someone calls
 *   `unlink()`; the resource tracker unlinks a block nobody unlinked once the whole process tree
 *   has ended.
 * - {@linkcode Value} and {@linkcode SharedArray} are typed views of a block of their own,
 *   guarded by a lock for compound updates. Their block belongs to the process that made them
 *   (like a `Lock`'s semaphore): it is unlinked by `close()` there or when that process exits;
 *   processes that already have it keep using it.
 *
 * All three travel to children as handles (the block's name) and see the same bytes there.
 *
 * @module
 */
import { mapSharedMemory, type SharedMapping, unlinkSharedMemory } from "../native/mod.ts";
import { adopted, construct } from "./_adopt.ts";
import { deserialize, registerReducer, serialize } from "./_reduction.ts";
import { track, uniqueName, untrack } from "./_tracker.ts";
import { type Lock, RLock } from "./lock.ts";

/** Element types of {@linkcode Value} and {@linkcode SharedArray}. */
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
 */
export type Widen<V> = V extends number ? number : V extends bigint ? bigint : V;

/** The typed array a {@linkcode SharedArray} of each type code exposes. */
export type SharedTypedArray =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

/** Options of {@linkcode SharedMemory}. */
export interface SharedMemoryOptions {
  /** The block's name (with or without the leading "/"); default: a fresh one (with `create`). */
  name?: string;
  /** Create a new block (`Deno.errors.AlreadyExists` if the name is taken); default: attach. */
  create?: boolean;
  /** Size in bytes of a new block. */
  size?: number;
}

function slashed(name: string): string {
  return name.startsWith("/") ? name : `/${name}`;
}

/**
 * A named block of memory shared between processes, as Python's
 * `multiprocessing.shared_memory.SharedMemory`.
 *
 * @example Create, fill, attach elsewhere, then unlink
 * ```ts
 * import { SharedMemory } from "@mp/multiprocessing";
 *
 * using shm = new SharedMemory({ create: true, size: 16 });
 * shm.buf[0] = 42;
 * using other = new SharedMemory({ name: shm.name }); // e.g. in a child process
 * console.log(other.buf[0]); // 42
 * shm.unlink();
 * ```
 */
export class SharedMemory {
  #name: string;
  #mapping: SharedMapping | null;
  #buf: Uint8Array;

  /** Creates a new block, or attaches to an existing one by name. */
  constructor(options: SharedMemoryOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("Invalid SharedMemory options: expected { name, create, size }");
    }
    const { name, create = false, size = 0 } = options;
    if (name !== undefined && (typeof name !== "string" || name === "")) {
      throw new TypeError("Invalid name: expected a non-empty string");
    }
    if (create) {
      if (!Number.isSafeInteger(size) || size <= 0) {
        throw new RangeError(
          `Invalid size: ${size}; a new SharedMemory needs a positive whole number of bytes`,
        );
      }
    } else if (name === undefined) {
      throw new TypeError(
        "Cannot attach to shared memory without its name: pass { name }, or { create: true, size }",
      );
    }
    const full = name !== undefined ? slashed(name) : uniqueName("s");
    this.#mapping = mapSharedMemory(full, create, size);
    if (create) track("shm", full);
    this.#name = full;
    this.#buf = new Uint8Array(this.#mapping.buffer);
  }

  /** The block's name without the leading "/" (pass it to attach elsewhere). */
  get name(): string {
    return this.#name.slice(1);
  }

  /** Size in bytes. */
  get size(): number {
    return this.#buf.length;
  }

  /** The shared bytes; after `close()` an empty array. */
  get buf(): Uint8Array {
    return this.#buf;
  }

  /** Unmaps the block in this process (idempotent). Views of `buf` then read as empty. */
  close(): void {
    if (!this.#mapping) return;
    this.#mapping.unmap();
    this.#mapping = null;
    this.#buf = new Uint8Array(0);
  }

  /** Removes the name: no process can attach any more; those attached keep the bytes. */
  unlink(): void {
    unlinkSharedMemory(this.#name);
    untrack("shm", this.#name);
  }

  /** `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    // Only the name travels: the receiver attaches to the same block.
    registerReducer(SharedMemory, {
      name: "multiprocessing.SharedMemory",
      reduce: (shm) => shm.name,
      revive: (name: string) => new SharedMemory({ name }),
    });
  }
}

/** Options of {@linkcode Value} and {@linkcode SharedArray}. */
export interface SharedValueOptions {
  /** `true` (default): a new `RLock` guards compound updates; `false`: none; or your own lock. */
  lock?: boolean | Lock | RLock;
}

/** The block of a Value or SharedArray, owned by the process that made it. */
class TypedBlock {
  readonly name: string;
  readonly type: TypeCode;
  readonly length: number;
  readonly array: SharedTypedArray;
  readonly lock: Lock | RLock | null;
  #mapping: SharedMapping | null;
  #owner: boolean;

  constructor(type: TypeCode, length: number, lock: boolean | Lock | RLock, name?: string) {
    const Typed = ARRAYS[type];
    if (!Typed) {
      throw new TypeError(`Invalid type code "${type}": expected one of ${Object.keys(ARRAYS).join(", ")}`);
    }
    this.type = type;
    this.length = length;
    this.#owner = name === undefined;
    this.name = name ?? uniqueName("v");
    this.#mapping = mapSharedMemory(this.name, this.#owner, Math.max(1, length) * Typed.BYTES_PER_ELEMENT);
    if (this.#owner) track("shm", this.name, { ownedByProcess: true });
    this.array = new Typed(this.#mapping.buffer, 0, length);
    this.lock = lock === true ? new RLock() : lock === false ? null : lock;
  }

  close(): void {
    if (!this.#mapping) return;
    this.#mapping.unmap();
    this.#mapping = null;
    if (this.#owner) {
      unlinkSharedMemory(this.name);
      untrack("shm", this.name);
    }
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
  return new TypedBlock(s.type, s.length, lock, s.name);
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

  /** A new shared number of the given type, set to `initial` (default 0). */
  constructor(type: TypeCode, initial?: V, options: SharedValueOptions = {}) {
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
export class SharedArray {
  #block: TypedBlock;

  /** A new shared array: of `length` zeros, or holding the given items. */
  constructor(
    type: TypeCode,
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

  /** The shared elements. */
  get array(): SharedTypedArray {
    return this.#block.array;
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

  static {
    registerReducer(SharedArray, {
      name: "multiprocessing.SharedArray",
      reduce: (a) => reduceBlock(a.#block),
      revive: (s: ReturnType<typeof reduceBlock>) => construct(SharedArray, reviveBlock(s)),
    });
  }
}
