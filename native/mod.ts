/**
 * Safe, typed wrappers over libc. Every wrapper checks the return code and throws an
 * {@linkcode OsError} (or the matching `Deno.errors` class) naming the syscall and errno.
 * Raw pointers stay inside `native/`.
 *
 * @module
 */
import { OS } from "./constants.ts";
import { errno, isFailedPointer, libc, type Pointer, strerror, viewMemory } from "./libc.ts";

export { OS };
export {
  acceptOne,
  connectAbstract,
  CONNECTION_REFUSED,
  listenAbstract,
  recvWithFd,
  sendWithFd,
  stopListening,
} from "./scm.ts";

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(OS.errno).map(([name, code]) => [code, name]),
);

/** An error from a libc call: which call, and the `errno` it left. */
export interface OsErrorInfo {
  readonly syscall: string;
  readonly errno: number;
  readonly code: string;
}

/** Builds the error for a failed syscall, choosing the `Deno.errors` class that fits. */
export function osError(syscall: string, code = errno(), subject?: string): Error & OsErrorInfo {
  const name = ERRNO_NAMES[code] ?? `errno ${code}`;
  const message = `${syscall}(${subject ?? ""}) failed: ${strerror(code)} (${name})`;
  let err: Error;
  switch (code) {
    case OS.errno.ENOENT:
      err = new Deno.errors.NotFound(message);
      break;
    case OS.errno.EEXIST:
      err = new Deno.errors.AlreadyExists(message);
      break;
    case OS.errno.EACCES:
    case OS.errno.EPERM:
      err = new Deno.errors.PermissionDenied(message);
      break;
    case OS.errno.EBADF:
      err = new Deno.errors.BadResource(message);
      break;
    case OS.errno.ETIMEDOUT:
      err = new Deno.errors.TimedOut(message);
      break;
    case OS.errno.EINTR:
      err = new Deno.errors.Interrupted(message);
      break;
    case OS.errno.EPIPE:
      err = new Deno.errors.BrokenPipe(message);
      break;
    case OS.errno.EINVAL:
      err = new TypeError(message);
      break;
    default:
      err = new Error(message);
  }
  return Object.assign(err, { syscall, errno: code, code: name });
}

const encoder = new TextEncoder();
/** `s` as a NUL-terminated C string; a NUL inside `s` would silently cut it short, so it is refused. */
function cString(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) {
    throw new TypeError(
      `Invalid argument ${JSON.stringify(s)}: it contains a NUL character, which C reads as its end`,
    );
  }
  return encoder.encode(s + "\0");
}

// ---------------------------------------------------------------------------------------------
// Processes

/** This process's id. */
export function getpid(): number {
  return libc().getpid();
}

/** The parent process's id. */
export function getppid(): number {
  return libc().getppid();
}

/** Sends `signal` to `pid`. Returns false when no such process exists (ESRCH). */
export function kill(pid: number, signal: number | string): boolean {
  const sig = typeof signal === "number" ? signal : OS.signals[signal];
  if (sig === undefined) throw new TypeError(`Unknown signal: ${signal}`);
  if (libc().kill(pid, sig) === 0) return true;
  const code = errno();
  if (code === OS.errno.ESRCH) return false;
  throw osError("kill", code, `${pid}, ${sig}`);
}

/**
 * True when `pid` names a live process: it exists and, on Linux, is not a zombie (a process that
 * has ended but whose parent has not reaped it yet counts as dead). A process owned by another
 * user (EPERM) counts as alive.
 */
export function processAlive(pid: number): boolean {
  try {
    if (!kill(pid, 0)) return false;
  } catch (e) {
    if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
  }
  if (Deno.build.os !== "linux") return true;
  let stat: string;
  try {
    stat = new TextDecoder().decode(readFileRaw(`/proc/${pid}/stat`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    return true;
  }
  // "pid (comm) S ...": the state letter follows the last ")"; comm may itself contain ")".
  const state = stat.charAt(stat.lastIndexOf(")") + 2);
  return state !== "Z" && state !== "X";
}

/** Asks the kernel to send `signal` to this process when its parent thread dies (Linux). */
export function setParentDeathSignal(signal: string): void {
  if (libc().prctl(OS.PR_SET_PDEATHSIG, BigInt(OS.signals[signal]), 0n, 0n, 0n) !== 0) {
    throw osError("prctl", errno(), "PR_SET_PDEATHSIG");
  }
}

/**
 * Blocks the thread until child `pid` of this process has ended, without reaping it: Deno still
 * collects its exit status as usual (`waitid(P_PID, pid, WEXITED | WNOWAIT)`). Returns at once
 * for a pid that is not (or no longer) a child of this process.
 */
export function waitForChildExit(pid: number): void {
  const info = new Uint8Array(OS.SIGINFO_SIZE);
  for (;;) {
    if (libc().waitid(OS.P_PID, pid, info, OS.WEXITED | OS.WNOWAIT) === 0) return;
    const code = errno();
    if (code === OS.errno.ECHILD) return;
    if (code !== OS.errno.EINTR) throw osError("waitid", code, `${pid}`);
  }
}

/**
 * Makes this process the leader of a new session and process group (`setsid()`): signals sent
 * to the group it came from (Ctrl-C, Ctrl-\, `kill -9 -PGID`) no longer reach it. False when it
 * already leads a group (EPERM).
 */
export function newSession(): boolean {
  if (libc().setsid() >= 0) return true;
  const code = errno();
  if (code === OS.errno.EPERM) return false;
  throw osError("setsid", code);
}

/** The number of a signal name, e.g. `"SIGKILL"` → 9. */
export function signalNumber(name: string): number | undefined {
  return OS.signals[name];
}

/** Reads a whole file with libc, bypassing Deno's permission checks (used for /proc/self/cmdline). */
export function readFileRaw(path: string): Uint8Array {
  const fd = libc().open(cString(path), OS.O_RDONLY | OS.O_CLOEXEC, 0);
  if (fd < 0) throw osError("open", errno(), path);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(65536);
      const n = Number(libc().read(fd, buf, BigInt(buf.length)));
      if (n < 0) throw osError("read", errno(), path);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  } finally {
    libc().close(fd);
  }
}

/** True when `path` exists (checked with libc, so without Deno's read permission). */
export function fileExists(path: string): boolean {
  return libc().access(cString(path), 0 /* F_OK */) === 0;
}

// ---------------------------------------------------------------------------------------------
// File descriptors

/** Creates a pipe; both ends close-on-exec. Returns `[readEnd, writeEnd]`. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  if (libc().pipe2(fds, OS.O_CLOEXEC) !== 0) throw osError("pipe2");
  return [fds[0], fds[1]];
}

/** Creates a connected pair of Unix stream sockets, both close-on-exec. */
export function socketpair(): [number, number] {
  const fds = new Int32Array(2);
  if (libc().socketpair(OS.AF_UNIX, OS.SOCK_STREAM | OS.SOCK_CLOEXEC, 0, fds) !== 0) {
    throw osError("socketpair");
  }
  return [fds[0], fds[1]];
}

/**
 * Asks for a socket send buffer of `bytes` (the kernel caps it at `net.core.wmem_max`). On a Unix
 * stream socket this bounds how much one end can have in flight. Returns false if refused.
 */
export function setSendBufferSize(fd: number, bytes: number): boolean {
  return libc().setsockopt(fd, OS.SOL_SOCKET, OS.SO_SNDBUF, new Int32Array([bytes]), 4) === 0;
}

/** Sets or clears close-on-exec: an inheritable fd reaches every process spawned meanwhile. */
export function setInheritable(fd: number, inheritable: boolean): void {
  const flags = libc().fcntl(fd, OS.F_GETFD, 0);
  if (flags < 0) throw osError("fcntl", errno(), `${fd}, F_GETFD`);
  const next = inheritable ? flags & ~OS.FD_CLOEXEC : flags | OS.FD_CLOEXEC;
  if (libc().fcntl(fd, OS.F_SETFD, next) !== 0) throw osError("fcntl", errno(), `${fd}, F_SETFD`);
}

/** A new fd (close-on-exec) for the same open file as `fd`: closing one leaves the other open. */
export function dupFd(fd: number): number {
  const copy = libc().fcntl(fd, OS.F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw osError("fcntl", errno(), `${fd}, F_DUPFD_CLOEXEC`);
  return copy;
}

/**
 * Makes every fd from `first` up close-on-exec: what this process inherited then reaches no
 * process it starts unless a spawn passes it on purpose. One `close_range(CLOSE_RANGE_CLOEXEC)`
 * call where the kernel and libc have it; otherwise each fd below `OS.maxFdFallback`.
 */
export function closeOnExecFrom(first: number): void {
  const closeRange = libc().close_range;
  if (closeRange && closeRange(first, 0xffff_ffff, OS.CLOSE_RANGE_CLOEXEC) === 0) return;
  for (let fd = first; fd < OS.maxFdFallback; fd++) {
    const flags = libc().fcntl(fd, OS.F_GETFD, 0);
    if (flags >= 0 && !(flags & OS.FD_CLOEXEC)) libc().fcntl(fd, OS.F_SETFD, flags | OS.FD_CLOEXEC);
  }
}

/** Sets or clears O_NONBLOCK. */
export function setNonBlocking(fd: number, nonBlocking: boolean): void {
  const flags = libc().fcntl(fd, OS.F_GETFL, 0);
  if (flags < 0) throw osError("fcntl", errno(), `${fd}, F_GETFL`);
  const next = nonBlocking ? flags | OS.O_NONBLOCK : flags & ~OS.O_NONBLOCK;
  if (libc().fcntl(fd, OS.F_SETFL, next) !== 0) throw osError("fcntl", errno(), `${fd}, F_SETFL`);
}

/** Closes an fd. Closing an fd that is already closed (EBADF) is not an error. */
export function close(fd: number): void {
  if (libc().close(fd) !== 0) {
    const code = errno();
    if (code !== OS.errno.EBADF && code !== OS.errno.EINTR) throw osError("close", code, `${fd}`);
  }
}

/**
 * Reads up to `buf.length` bytes. Returns the count (0 at end of file), or -1 when a
 * non-blocking fd has nothing yet (EAGAIN).
 */
export function read(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc().read(fd, buf, BigInt(buf.length)));
    if (n >= 0) return n;
    const code = errno();
    if (code === OS.errno.EINTR) continue;
    if (code === OS.errno.EAGAIN) return -1;
    throw osError("read", code, `${fd}`);
  }
}

/** Writes some of `buf`; returns the count, or -1 when a non-blocking fd is full (EAGAIN). */
export function write(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc().write(fd, buf, BigInt(buf.length)));
    if (n >= 0) return n;
    const code = errno();
    if (code === OS.errno.EINTR) continue;
    if (code === OS.errno.EAGAIN) return -1;
    throw osError("write", code, `${fd}`);
  }
}

/** Writes all of `buf`, blocking the thread as needed. */
export function writeAll(fd: number, buf: Uint8Array<ArrayBuffer>): void {
  let at = 0;
  while (at < buf.length) {
    const n = write(fd, at === 0 ? buf : buf.subarray(at));
    if (n < 0) pollFds([fd], OS.POLLOUT, -1);
    else at += n;
  }
}

/**
 * Waits until one of `fds` has any of `events` (or an error/hang-up), for at most `timeoutMs`
 * (-1: forever). Returns the fds that are ready. Blocks the thread.
 */
export function pollFds(fds: number[], events: number, timeoutMs: number): number[] {
  const buf = pollBuffer(fds, events);
  for (;;) {
    const n = libc().poll(buf, BigInt(fds.length), timeoutMs);
    if (n >= 0) return readyFds(buf, fds);
    const code = errno();
    if (code !== OS.errno.EINTR) throw osError("poll", code);
  }
}

/** As {@linkcode pollFds}, on a worker thread: the event loop keeps running meanwhile. */
export async function pollFdsAsync(fds: number[], events: number, timeoutMs: number): Promise<number[]> {
  const buf = pollBuffer(fds, events);
  const n = await libc().poll_async(buf, BigInt(fds.length), timeoutMs);
  // errno is thread-local and belongs to the worker thread: EINTR is the only likely failure,
  // and the caller loops on an empty answer anyway.
  return n > 0 ? readyFds(buf, fds) : [];
}

function pollBuffer(fds: number[], events: number): Uint8Array<ArrayBuffer> {
  // struct pollfd { int fd; short events; short revents; }
  const buf = new Uint8Array(8 * fds.length);
  const view = new DataView(buf.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(i * 8, fd, true);
    view.setInt16(i * 8 + 4, events, true);
  });
  return buf;
}

function readyFds(buf: Uint8Array<ArrayBuffer>, fds: number[]): number[] {
  const view = new DataView(buf.buffer);
  return fds.filter((_, i) => view.getInt16(i * 8 + 6, true) !== 0);
}

// ---------------------------------------------------------------------------------------------
// Named semaphores

function timespecAfter(ms: number): Uint8Array<ArrayBuffer> {
  // struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit Linux; CLOCK_REALTIME as sem_timedwait wants.
  const deadline = Date.now() + Math.max(0, ms);
  const buf = new Uint8Array(16);
  const view = new DataView(buf.buffer);
  view.setBigInt64(0, BigInt(Math.floor(deadline / 1000)), true);
  // Timeouts may be fractional (e.g. a remaining time): whole nanoseconds only.
  view.setBigInt64(8, BigInt(Math.floor((deadline % 1000) * 1_000_000)), true);
  return buf;
}

/** A POSIX named semaphore opened in this process. */
export class NamedSemaphore {
  #ptr: NonNullable<Pointer> | null;
  readonly name: string;
  #value = new Int32Array(1);

  private constructor(name: string, ptr: NonNullable<Pointer>) {
    this.name = name;
    this.#ptr = ptr;
  }

  /** Creates a new semaphore; `Deno.errors.AlreadyExists` if the name is taken. */
  static create(name: string, value: number): NamedSemaphore {
    return NamedSemaphore.#open(name, OS.O_CREAT | OS.O_EXCL, value);
  }

  /** Opens an existing semaphore; `Deno.errors.NotFound` if there is none by that name. */
  static open(name: string): NamedSemaphore {
    return NamedSemaphore.#open(name, 0, 0);
  }

  static #open(name: string, flags: number, value: number): NamedSemaphore {
    checkName(name);
    const ptr = libc().sem_open(cString(name), flags, 0o600, value);
    if (isFailedPointer(ptr)) throw osError("sem_open", errno(), name);
    return new NamedSemaphore(name, ptr!);
  }

  /** Removes the name; processes that have it open keep using it. False if it was already gone. */
  static unlink(name: string): boolean {
    checkName(name);
    if (libc().sem_unlink(cString(name)) === 0) return true;
    const code = errno();
    if (code === OS.errno.ENOENT) return false;
    throw osError("sem_unlink", code, name);
  }

  #handle(): NonNullable<Pointer> {
    if (this.#ptr === null) throw new Deno.errors.BadResource(`Semaphore ${this.name} is closed`);
    return this.#ptr;
  }

  /** Decrements if the value is above zero; never waits. */
  tryWait(): boolean {
    const ptr = this.#handle();
    for (;;) {
      if (libc().sem_trywait(ptr) === 0) return true;
      const code = errno();
      if (code === OS.errno.EAGAIN) return false;
      if (code !== OS.errno.EINTR) throw osError("sem_trywait", code, this.name);
    }
  }

  /** Waits (blocking the thread) up to `timeoutMs`, or forever when undefined. */
  waitSync(timeoutMs?: number): boolean {
    const ptr = this.#handle();
    if (timeoutMs === undefined) {
      for (;;) {
        if (libc().sem_wait(ptr) === 0) return true;
        const code = errno();
        if (code !== OS.errno.EINTR) throw osError("sem_wait", code, this.name);
      }
    }
    const ts = timespecAfter(timeoutMs);
    for (;;) {
      if (libc().sem_timedwait(ptr, ts) === 0) return true;
      const code = errno();
      if (code === OS.errno.ETIMEDOUT) return false;
      if (code !== OS.errno.EINTR) throw osError("sem_timedwait", code, this.name);
    }
  }

  /**
   * Waits up to `timeoutMs` on a worker thread; the event loop keeps running. Resolves false on
   * timeout (or an interrupted wait: callers re-check and loop).
   */
  async waitAsync(timeoutMs: number): Promise<boolean> {
    const ptr = this.#handle();
    return (await libc().sem_timedwait_async(ptr, timespecAfter(timeoutMs))) === 0;
  }

  /** Increments the value, waking one waiter. */
  post(): void {
    if (libc().sem_post(this.#handle()) !== 0) throw osError("sem_post", errno(), this.name);
  }

  /** The current value. */
  value(): number {
    if (libc().sem_getvalue(this.#handle(), this.#value) !== 0) {
      throw osError("sem_getvalue", errno(), this.name);
    }
    return this.#value[0];
  }

  /** Closes this process's handle (idempotent). */
  close(): void {
    if (this.#ptr === null) return;
    const ptr = this.#ptr;
    this.#ptr = null;
    if (libc().sem_close(ptr) !== 0) throw osError("sem_close", errno(), this.name);
  }

  get closed(): boolean {
    return this.#ptr === null;
  }
}

// ---------------------------------------------------------------------------------------------
// Shared memory

/** A mapping of a POSIX shared memory object into this process. */
export interface SharedMapping {
  /** The mapped bytes; every process that maps the name sees the same ones. */
  readonly buffer: ArrayBuffer;
  readonly size: number;
  /** Unmaps; the buffer is detached first, so views of it read as empty afterwards. */
  unmap(): void;
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
    let mapped = true;
    const buffer = viewMemory(ptr!, size);
    return {
      buffer,
      size,
      unmap() {
        if (!mapped) return;
        mapped = false;
        // Detach first: a view someone kept then reads as empty instead of touching freed memory.
        buffer.transfer(0);
        if (libc().munmap(ptr, BigInt(length)) !== 0) throw osError("munmap", errno(), name);
      },
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

/** Checks a POSIX IPC name before it reaches libc (which would cut it at a NUL). */
function checkName(name: string): void {
  if (typeof name !== "string") throw new TypeError(`Invalid name: expected a string, got ${typeof name}`);
  if (name.includes("\0")) {
    throw new TypeError(
      `Invalid name ${
        JSON.stringify(name)
      }: it contains a NUL character, which would cut it short; remove it`,
    );
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
