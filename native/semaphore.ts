/**
 * POSIX named semaphores (`sem_open` and friends). A {@linkcode NamedSemaphore} is this
 * process's handle on a kernel semaphore that every process opening the same name shares; the
 * name lives in `/dev/shm/sem.<name>` until `sem_unlink`. `waitAsync` runs `sem_timedwait` on a
 * worker thread (the event loop keeps running) with an absolute CLOCK_REALTIME deadline, as
 * `sem_timedwait` wants. While such waits are in flight, `close()` only marks the handle closed;
 * the last wait to end frees it (a worker thread must never wait on a freed `sem_t`).
 *
 * @module
 */
import { OS } from "./constants.ts";
import { cString, errno, isFailedPointer, libc, type Pointer } from "./libc.ts";
import { osError } from "./errors.ts";
import { checkName } from "./shm.ts";

/**
 * The absolute CLOCK_REALTIME deadline `ms` from now, as sem_timedwait wants it (struct timespec
 * { time_t tv_sec; long tv_nsec; } on 64-bit Linux). Read from the clock itself, to the
 * nanosecond: a park of a fraction of a millisecond must not be cut by `Date.now()`'s rounding.
 */
function timespecAfter(ms: number): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(16);
  const view = new DataView(buf.buffer);
  libc().clock_gettime(OS.CLOCK_REALTIME, buf);
  const add = Math.max(0, ms);
  const whole = Math.floor(add / 1000);
  let sec = view.getBigInt64(0, true) + BigInt(whole);
  let nsec = view.getBigInt64(8, true) + BigInt(Math.floor((add - whole * 1000) * 1_000_000));
  if (nsec >= 1_000_000_000n) {
    sec += 1n;
    nsec -= 1_000_000_000n;
  }
  view.setBigInt64(0, sec, true);
  view.setBigInt64(8, nsec, true);
  return buf;
}

/** A POSIX named semaphore opened in this process. */
export class NamedSemaphore {
  #ptr: NonNullable<Pointer> | null;
  readonly name: string;
  #value = new Int32Array(1);
  /** `waitAsync` calls still running on worker threads, and whether close() waits for them. */
  #inflight = 0;
  #closing = false;

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
    if (this.#closing || this.#ptr === null) {
      throw new Deno.errors.BadResource(`Semaphore ${this.name} is closed`);
    }
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
    let strange = -1;
    for (;;) {
      if (libc().sem_timedwait(ptr, ts) === 0) return true;
      const code = errno();
      if (code === OS.errno.ETIMEDOUT) return false;
      if (code === OS.errno.EINTR) continue;
      // errno is read by a second call, and the runtime may run code between the two (seen once
      // in this project's benchmarks: ENOENT after a park that had timed out). A real error
      // comes back when the wait is tried again; a clobbered errno does not.
      if (code === strange) throw osError("sem_timedwait", code, this.name);
      strange = code;
    }
  }

  /**
   * Waits up to `timeoutMs` on a worker thread; the event loop keeps running. Resolves false on
   * timeout (or an interrupted wait: callers re-check and loop). With `signal`, rejects with
   * `signal.reason` at once when it aborts; the abandoned wait goes on on its thread, and a post
   * it takes then is posted again, so that none is lost. {@linkcode NamedSemaphore.close} waits
   * for the waits in flight before it frees the handle they use.
   */
  waitAsync(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const ptr = this.#handle();
    this.#inflight++;
    const done = libc().sem_timedwait_async(ptr, timespecAfter(timeoutMs)).then((r) => r === 0);
    if (!signal) return done.finally(this.#leave);
    return new Promise<boolean>((resolve, reject) => {
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) onAbort();
      done.then((took) => {
        signal.removeEventListener("abort", onAbort);
        if (!settled) {
          settled = true;
          resolve(took);
        } else if (took) libc().sem_post(ptr); // still open: this wait is in flight
      }, (e) => {
        signal.removeEventListener("abort", onAbort);
        if (!settled) {
          settled = true;
          reject(e);
        }
      }).finally(this.#leave);
    });
  }

  /** A wait in flight ended: the last one frees the handle of a semaphore closed meanwhile. */
  #leave = (): void => {
    if (--this.#inflight === 0 && this.#closing) this.#free();
  };

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

  /**
   * Closes this process's handle (idempotent): at once, or, while `waitAsync` calls are in flight
   * on worker threads (they use the handle), when the last of them ends. Either way no new call
   * can use it.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#inflight === 0) this.#free();
  }

  #free(): void {
    const ptr = this.#ptr;
    this.#ptr = null;
    if (ptr !== null && libc().sem_close(ptr) !== 0) throw osError("sem_close", errno(), this.name);
  }

  /** True once {@linkcode NamedSemaphore.close} was called. */
  get closed(): boolean {
    return this.#closing;
  }
}
