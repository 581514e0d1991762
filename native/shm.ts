/**
 * POSIX shared memory (`shm_open` + `ftruncate` + `mmap`): {@linkcode mapSharedMemory} maps a
 * named object into this process as an `ArrayBuffer` that every process mapping the same name
 * shares; the name lives in `/dev/shm/<name>` until {@linkcode unlinkSharedMemory}. Unmapping
 * detaches the buffer first, so a view someone kept reads as empty instead of touching freed
 * memory. {@linkcode checkName} is the one check of a POSIX IPC name (semaphores use it too).
 *
 * @module
 */
import { OS } from "./constants.ts";
import { cString, errno, isFailedPointer, libc, type Pointer, viewMemory } from "./libc.ts";
import { osError } from "./errors.ts";

/** A mapping of a POSIX shared memory object into this process. */
export interface SharedMapping {
  /** The mapped bytes; every process that maps the name sees the same ones. */
  readonly buffer: ArrayBuffer;
  readonly size: number;
  /** Unmaps; the buffer is detached first, so views of it read as empty afterwards. */
  unmap(): void;
  /**
   * Unmaps without detaching, for a finalizer once `buffer` is unreachable: this function does
   * not refer to `buffer`, so registering it does not keep the buffer alive. Idempotent, and
   * shared with {@linkcode SharedMapping.unmap}.
   */
  readonly release: () => void;
}

/** The munmap of one mapping, made apart from its buffer (so that it does not keep it alive). */
function unmapper(
  ptr: NonNullable<Pointer>,
  length: number,
  name: string,
): { mapped: boolean; release(): void } {
  const state = {
    mapped: true,
    release() {
      if (!state.mapped) return;
      state.mapped = false;
      if (libc().munmap(ptr, BigInt(length)) !== 0) throw osError("munmap", errno(), name);
    },
  };
  return state;
}

/**
 * Opens (or with `create`, exclusively creates) the shared memory object `name` and maps it.
 * `size` is required when creating; when attaching, the object's own size is used.
 */
export function mapSharedMemory(name: string, create: boolean, size = 0): SharedMapping {
  checkName(name);
  const flags = OS.O_RDWR | OS.O_CLOEXEC | (create ? OS.O_CREAT | OS.O_EXCL : 0);
  const fd = libc().shm_open(cString(name), flags, 0o600);
  if (fd < 0) throw osError("shm_open", errno(), name);
  try {
    if (create) {
      if (libc().ftruncate(fd, BigInt(size)) !== 0) {
        const err = osError("ftruncate", errno(), `${name}, ${size}`);
        libc().shm_unlink(cString(name));
        throw err;
      }
    } else {
      size = Number(libc().lseek(fd, 0n, OS.SEEK_END));
      if (size < 0) throw osError("lseek", errno(), name);
    }
    // mmap refuses a zero length; map one byte so an empty segment still has an address.
    const length = Math.max(size, 1);
    const ptr = libc().mmap(null, BigInt(length), OS.PROT_READ | OS.PROT_WRITE, OS.MAP_SHARED, fd, 0n);
    if (isFailedPointer(ptr)) {
      const err = osError("mmap", errno(), `${name}, ${length}`);
      if (create) libc().shm_unlink(cString(name));
      throw err;
    }
    const state = unmapper(ptr!, length, name);
    const buffer = viewMemory(ptr!, size);
    return {
      buffer,
      size,
      unmap() {
        if (!state.mapped) return;
        // Detach first: a view someone kept then reads as empty instead of touching freed memory.
        buffer.transfer(0);
        state.release();
      },
      // Not an arrow made here: it would share this scope, which holds `buffer`.
      release: state.release,
    };
  } finally {
    libc().close(fd);
  }
}

/** Removes a shared memory name. False if it was already gone. */
export function unlinkSharedMemory(name: string): boolean {
  checkName(name);
  if (libc().shm_unlink(cString(name)) === 0) return true;
  const code = errno();
  if (code === OS.errno.ENOENT) return false;
  throw osError("shm_unlink", code, name);
}

const encoder = new TextEncoder();

/** Checks a POSIX IPC name before it reaches libc (which would cut it at a NUL). */
export function checkName(name: string): void {
  if (typeof name !== "string") throw new TypeError(`Invalid name: expected a string, got ${typeof name}`);
  if (name.includes("\0")) {
    throw new TypeError(
      `Invalid name ${
        JSON.stringify(name)
      }: it contains a NUL character, which would cut it short; remove it`,
    );
  }
  if (name.includes("\n")) {
    // The resource tracker reads one name per line: "/a\nb" would make it unlink "/a".
    throw new TypeError(`Invalid name ${JSON.stringify(name)}: it contains a line break; remove it`);
  }
  if (!name.startsWith("/") || name.indexOf("/", 1) !== -1) {
    throw new TypeError(`Invalid name "${name}": it must start with "/" and contain no other "/"`);
  }
  if (encoder.encode(name).length > OS.maxNameLength) {
    throw new RangeError(
      `Name "${name}" is too long: at most ${OS.maxNameLength} bytes, leading slash included`,
    );
  }
}
