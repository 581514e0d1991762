/**
 * Named shared memory between processes (CPython: `shared_memory.py`), on POSIX `shm_open` +
 * `mmap`.
 *
 * {@linkcode SharedMemory} is a named block of bytes. As in Python, it lives until someone calls
 * `unlink()`; the resource tracker unlinks a block nobody unlinked once the whole process tree has
 * ended. It travels to children as a handle (the block's name) and sees the same bytes there. A
 * SharedMemory collected without `close()` is unmapped once no view of its bytes is left either
 * (`_resource.ts`); its name stays until `unlink()`.
 *
 * @module
 */
import { mapSharedMemory, type SharedMapping } from "../native/mod.ts";
import { described, inspect } from "./_inspect.ts";
import { registerReducer } from "./_reduction.ts";
import { createNamed, forgetCollected, makeTracked, onCollected, unlinkNamed } from "./_resource.ts";

/**
 * Options of {@linkcode SharedMemory}.
 *
 * @example Create a block, then attach to it by name
 * ```ts
 * import { SharedMemory } from "@mp/multiprocessing";
 *
 * const block = new SharedMemory({ create: true, size: 1024 });
 * const same = new SharedMemory({ name: block.name });
 * console.log(same.size >= 1024); // true
 * same.close();
 * block.close();
 * block.unlink();
 * ```
 */
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
    // A new block is tracked from before it exists (`makeTracked`): the tracker unlinks it if
    // this process dies at any point (Python's: only unlink() removes it while the tree lives).
    const make = (full: string) =>
      makeTracked({ kind: "shm", name: full }, () => mapSharedMemory(full, true, size));
    const [full, mapping] = name === undefined
      ? createNamed("s", (fresh) => [fresh, make(fresh)] as const)
      : [slashed(name), create ? make(slashed(name)) : mapSharedMemory(slashed(name), false)] as const;
    this.#mapping = mapping;
    this.#name = full;
    this.#buf = new Uint8Array(mapping.buffer);
    // Collected without close(): unmap once neither this object nor a view of its bytes is left.
    // The name stays (as in Python: only unlink() removes it; the tracker does at the end).
    onCollected(mapping.buffer, mapping.release, this);
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
    forgetCollected(this);
    this.#mapping.unmap();
    this.#mapping = null;
    this.#buf = new Uint8Array(0);
  }

  /** Removes the name: no process can attach any more; those attached keep the bytes. */
  unlink(): void {
    unlinkNamed({ kind: "shm", name: this.#name });
  }

  /** `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** How it prints: `SharedMemory(name="mp1a2b3", size=100)`, `SharedMemory(closed)`. */
  [inspect](): string {
    return described("SharedMemory", this.#mapping === null, () => [
      `name=${JSON.stringify(this.name)}`,
      `size=${this.size}`,
    ]);
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
