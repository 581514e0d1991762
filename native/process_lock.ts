/**
 * A lock that every thread of this process shares with no memory in common: the main isolate,
 * every Worker, every test file of `deno test --parallel` (all isolates of one process).
 *
 * It is an abstract Unix socket name, `mp-<tag>-<pid>-<process start time>`: holding the lock is
 * having a socket bound to that name (and listening on it); the kernel refuses a second bind
 * (EADDRINUSE) until that socket is closed. An abstract name is no file: there is nothing to
 * unlink and nothing any ending leaves behind (SIGKILL included: the kernel closes the socket
 * with the process), and the name exists only while the lock is held. A process that never takes
 * the lock never makes it.
 *
 * A thread that finds the lock held waits in the kernel, not by polling: it connects to the
 * holder's socket (the connection waits in the backlog, never accepted) and polls its own end,
 * which hangs up when the holder closes its socket; then it tries to bind again. No order among
 * waiters is kept.
 *
 * The start time (field 22 of `/proc/self/stat`) stands beside the pid because abstract names are
 * per network namespace, pids per pid namespace: two containers on the host network may each
 * have a process with the same pid, and must not share a lock.
 *
 * @module
 */
import { OS } from "./constants.ts";
import { errno, libc } from "./libc.ts";
import { osError } from "./errors.ts";
import { pollFds, readFileRaw } from "./fd.ts";
import { abstractAddress, newSocket } from "./scm.ts";

/** Threads that may wait in the holder's backlog at once (the kernel caps it at somaxconn). */
const BACKLOG = 1024;

let processKey: string | undefined;

/** The pid and the start time of this process, base 36: the same in all its threads. */
function thisProcess(): string {
  if (processKey) return processKey;
  const stat = new TextDecoder().decode(readFileRaw("/proc/self/stat"));
  // "pid (comm) S ppid ...": field 3 (the state) follows the last ")"; the start time is field 22.
  const startTime = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  return processKey = `${Deno.pid.toString(36)}-${startTime.toString(36)}`;
}

/** A short sleep of this thread (a full backlog: rare), without any fd. */
function nap(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** This thread's handle on a lock shared by all threads of this process (see the module). */
export class ProcessLock {
  /** The abstract socket name (without its leading NUL byte). */
  readonly name: string;
  readonly #addr: Uint8Array<ArrayBuffer>;
  readonly #len: number;
  /** The bound socket while this thread holds the lock, else -1. */
  #held = -1;

  constructor(tag: string) {
    this.name = `mp-${tag}-${thisProcess()}`;
    [this.#addr, this.#len] = abstractAddress(this.name);
  }

  /**
   * Takes the lock, waiting at most `timeoutMs` (0: only try; Infinity: forever). False when it
   * was still held by another thread then. Not re-entrant: a thread that holds it must not ask again.
   */
  acquire(timeoutMs: number): boolean {
    if (this.#held >= 0) throw new Error(`The process lock ${this.name} is already held by this thread`);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const fd = this.#bind();
      if (fd >= 0) {
        this.#held = fd;
        return true;
      }
      const left = deadline - performance.now();
      if (!(left > 0)) return false;
      this.#waitForRelease(left);
    }
  }

  /** Gives the lock back (idempotent). */
  release(): void {
    const fd = this.#held;
    this.#held = -1;
    if (fd >= 0) libc().close(fd);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  /** Whether this thread holds the lock. */
  get held(): boolean {
    return this.#held >= 0;
  }

  /**
   * For tests, in the thread that holds the lock: waits at most `timeoutMs` until another thread
   * waits for it (its connection is in the backlog). False if none came.
   */
  waitForWaiter(timeoutMs: number): boolean {
    if (this.#held < 0) throw new Error(`The process lock ${this.name} is not held by this thread`);
    return pollFds([this.#held], OS.POLLIN, timeoutMs).length > 0;
  }

  /** A socket bound to the name and listening, or -1 if another socket has the name. */
  #bind(): number {
    const fd = newSocket(true);
    if (fd < 0) throw osError("socket", -fd, this.name);
    if (libc().bind(fd, this.#addr, this.#len) === 0) {
      if (libc().listen(fd, BACKLOG) === 0) return fd;
      const code = errno();
      libc().close(fd);
      throw osError("listen", code, this.name);
    }
    const code = errno();
    libc().close(fd);
    if (code === OS.errno.EADDRINUSE) return -1;
    throw osError("bind", code, this.name);
  }

  /** Returns once the holder let go (or may have), or after at most `ms`. */
  #waitForRelease(ms: number): void {
    const fd = newSocket(true);
    if (fd < 0) throw osError("socket", -fd, this.name);
    try {
      if (libc().connect(fd, this.#addr, this.#len) !== 0) {
        const code = errno();
        // Nobody listens there: released meanwhile (or bound a moment ago, not listening yet).
        if (code === OS.errno.ECONNREFUSED) return;
        // The backlog is full of waiting threads: look again a little later.
        if (code === OS.errno.EAGAIN) return nap(Math.min(ms, 1));
        throw osError("connect", code, this.name);
      }
      // Queued in the holder's backlog: our end hangs up once the holder closes its socket.
      pollFds([fd], OS.POLLIN, ms === Infinity ? -1 : Math.min(ms, 0x7fff_ffff));
    } finally {
      libc().close(fd);
    }
  }
}
