/**
 * File descriptors through libc: pipes and Unix socket pairs (both ends close-on-exec, because an
 * inheritable fd reaches every process spawned meanwhile: NOTES.md, "the fd-inheritance trap"),
 * fd flags (close-on-exec, O_NONBLOCK), raw `read`/`write` (-1 means EAGAIN on a non-blocking fd,
 * EINTR is retried), `poll` on this thread or on a worker thread, and file reads that bypass
 * Deno's permission checks (`/proc/self/cmdline`, `/proc/<pid>/stat`).
 *
 * @module
 */
import { OS } from "./constants.ts";
import { cString, errno, libc } from "./libc.ts";
import { osError } from "./errors.ts";

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
 * (-1: forever; a fraction of a millisecond is honoured, through `ppoll`). Returns the fds that
 * are ready. Blocks the thread.
 */
export function pollFds(fds: number[], events: number, timeoutMs: number): number[] {
  const buf = pollBuffer(fds, events);
  return pollArray(buf, fds.length, timeoutMs) > 0 ? readyFds(buf, fds) : [];
}

/**
 * `poll()` of the first `n` entries of a `struct pollfd` array, blocking the thread for at most
 * `timeoutMs` (-1: forever; a fraction of a millisecond is honoured, through `ppoll`); retried
 * on EINTR. Returns how many entries have events.
 */
export function pollArray(buf: Uint8Array<ArrayBuffer>, n: number, timeoutMs: number): number {
  const ppoll = libc().ppoll; // optional: where libc has none, the timeout is rounded up
  const exact = ppoll && timeoutMs > 0 && !Number.isInteger(timeoutMs) ? timespec(timeoutMs) : null;
  for (;;) {
    const ready = exact
      ? ppoll!(buf, BigInt(n), exact, null)
      : libc().poll(buf, BigInt(n), timeoutMs < 0 ? -1 : Math.ceil(timeoutMs));
    if (ready >= 0) return ready;
    const code = errno();
    if (code !== OS.errno.EINTR) throw osError("poll", code);
  }
}

/**
 * Lets the program end while the op behind a promise is pending: Deno's own `unrefOpPromise` (the
 * one `Deno.Conn.unref()` uses), found through `Deno[Deno.internal].core`; undefined where this
 * Deno has none.
 */
const unrefOpPromise: ((promise: Promise<unknown>) => void) | undefined = (() => {
  // deno-lint-ignore no-explicit-any
  const core = (Deno as any)[(Deno as any).internal]?.core;
  return typeof core?.unrefOpPromise === "function" && core.promiseIdSymbol !== undefined
    ? (promise: Promise<unknown>) => core.unrefOpPromise(promise)
    : undefined;
})();

/**
 * As {@linkcode pollFds}, on a worker thread: the event loop keeps running meanwhile. A pending
 * call keeps the program alive, like any op, unless `unref` is true (a wait that must not hold
 * the program: a queue's drain, whose items the exit hook hands over).
 */
export async function pollFdsAsync(
  fds: number[],
  events: number,
  timeoutMs: number,
  options?: { unref?: boolean },
): Promise<number[]> {
  if (options?.unref && !unrefOpPromise) {
    // No way to unref the call on this Deno: look again after at most 1 ms, on a timer that does
    // not hold the program.
    await new Promise<void>((r) => Deno.unrefTimer(setTimeout(r, Math.min(Math.max(timeoutMs, 0), 1))));
    return pollFds(fds, events, 0);
  }
  const buf = pollBuffer(fds, events);
  const call = libc().poll_async(buf, BigInt(fds.length), timeoutMs);
  if (options?.unref) unrefOpPromise!(call);
  const n = await call;
  // errno is thread-local and belongs to the worker thread: EINTR is the only likely failure,
  // and the caller loops on an empty answer anyway.
  return n > 0 ? readyFds(buf, fds) : [];
}

/** A relative `struct timespec` of `ms` (64-bit Linux: two 64-bit words). */
function timespec(ms: number): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(16);
  const view = new DataView(buf.buffer);
  const whole = Math.floor(ms / 1000);
  view.setBigInt64(0, BigInt(whole), true);
  view.setBigInt64(8, BigInt(Math.floor((ms - whole * 1000) * 1e6)), true);
  return buf;
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
