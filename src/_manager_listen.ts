/**
 * The manager server's sockets: one listening socket and its connections, all polled by one loop
 * (CPython's server runs a thread per connection, each blocked in `recv`).
 *
 * Each connection is read and written with synchronous calls, and a request is answered in the
 * tick it is read: a round trip costs the server two syscalls, where `Deno.Conn` cost two async
 * ops and their promises (a third of the round trip, measured).
 *
 * Each wait of the loop is the one wait loop (`waitSteps` in `_wait.ts`) on the whole poll set,
 * driven by the one driver (`drive` in `_wait_drive.ts`):
 * - while requests keep coming and nothing else is in progress (no handshake, no call that
 *   waits, no write that waits for room), it spins while that pays and parks on this thread for
 *   up to `ANSWER_PARK_MS`: the next request of a busy client is read without a wake-up or a
 *   trip through the event loop. The event loop is blocked meanwhile, so such waits follow one
 *   another for at most the driver's budget (`TURN_BUDGET_MS`) before one lets the event loop
 *   turn (timers, signals);
 * - otherwise, and after a park that nothing ended, it polls on a worker thread in the loop's
 *   slices (the event loop runs: handshakes, timers, calls that wait), woken by a byte on its own
 *   pipe when something new must be watched.
 *
 * @module
 */
import {
  acceptSocket,
  close as closeFd,
  OS,
  pipe,
  PollSet,
  read as readFd,
  setNonBlocking,
  shutdownSocket,
  write as writeFd,
} from "../native/mod.ts";
import { ANSWER_PARK_MS, Deadline, Eagerness, waitSteps } from "./_wait.ts";
import { drive } from "./_wait_drive.ts";

/** After a failed accept() (EMFILE: out of fds), the listener rests this long, doubling up to 1 s. */
const ACCEPT_BACKOFF_MS = 10;
const ACCEPT_BACKOFF_MAX_MS = 1000;
const EAGAIN = OS.errno.EAGAIN;
const READABLE = OS.POLLIN | OS.POLLHUP | OS.POLLERR | OS.POLLNVAL;

interface Interest {
  events: number;
  resolve(ready: boolean): void;
}

/** A listening socket and its connections, polled by one loop. */
export class ServerLoop {
  #listener: number;
  #onAccept: (fd: number) => void;
  /** Connections being served: their fd → what to do when it is readable. */
  #served = new Map<number, () => void>();
  /** One-off waits (a handshake's read, a write waiting for room). */
  #interests = new Map<number, Interest[]>();
  #set = new PollSet();
  #wake: [number, number];
  #wakeBuf = new Uint8Array(64);
  #asyncWaiting = false;
  #stopped = false;
  /** How many fds the last poll of the set found ready. */
  #found = 0;
  #restUntil = 0;
  #backoff = ACCEPT_BACKOFF_MS;
  #eager = new Eagerness();
  /** Work in progress that needs the event loop (handshakes, calls that wait). */
  busy = 0;

  /** Serves the listening socket `listener` (the loop closes it); `onAccept` gets each connection. */
  constructor(listener: number, onAccept: (fd: number) => void) {
    this.#listener = listener;
    this.#onAccept = onAccept;
    this.#wake = pipe();
    setNonBlocking(this.#wake[0], true);
    setNonBlocking(this.#wake[1], true);
  }

  /** Resolves true when `fd` has `events`, false when `stop` aborts or the loop stops. */
  ready = (fd: number, events: number, stop: AbortSignal): Promise<boolean> => {
    if (this.#stopped || stop.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const interest: Interest = {
        events,
        resolve: (ready) => {
          stop.removeEventListener("abort", onAbort);
          resolve(ready);
        },
      };
      const onAbort = () => {
        this.#drop(fd, interest);
        interest.resolve(false);
      };
      stop.addEventListener("abort", onAbort, { once: true });
      const list = this.#interests.get(fd);
      if (list) list.push(interest);
      else this.#interests.set(fd, [interest]);
      this.#poke();
    });
  };

  #drop(fd: number, interest: Interest): void {
    const list = this.#interests.get(fd);
    const i = list?.indexOf(interest) ?? -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) this.#interests.delete(fd);
  }

  /** Calls `onReadable` (synchronously, from the loop) each time `fd` has something to read. */
  serve(fd: number, onReadable: () => void): void {
    this.#served.set(fd, onReadable);
    this.#poke();
  }

  /** Stops watching `fd` (before it is closed). */
  forget(fd: number): void {
    this.#served.delete(fd);
    for (const i of this.#interests.get(fd) ?? []) i.resolve(false);
    this.#interests.delete(fd);
  }

  /** Wakes a poll in progress on a worker thread: there is something new to watch. */
  #poke(): void {
    if (this.#asyncWaiting) writeFd(this.#wake[1], this.#wakeBuf.subarray(0, 1));
  }

  /** Runs until {@linkcode stop}. */
  async run(): Promise<void> {
    try {
      await this.#run();
    } finally {
      closeFd(this.#wake[0]);
      closeFd(this.#wake[1]);
    }
  }

  async #run(): Promise<void> {
    const set = this.#set;
    while (!this.#stopped) {
      set.clear();
      set.add(this.#wake[0], OS.POLLIN);
      const now = performance.now();
      if (now >= this.#restUntil) set.add(this.#listener, OS.POLLIN);
      for (const fd of this.#served.keys()) {
        let events = OS.POLLIN;
        for (const i of this.#interests.get(fd) ?? []) events |= i.events;
        set.add(fd, events);
      }
      for (const [fd, list] of this.#interests) {
        if (!this.#served.has(fd)) set.add(fd, list.reduce((e, i) => e | i.events, 0));
      }
      const n = await this.#wait(now);
      if (this.#stopped) break;
      if (n > 0) this.#dispatch();
      // Let what was resolved go on (a handshake's next step) before the next poll.
      await null;
    }
  }

  /**
   * One wait of the loop (`waitSteps`) on the poll set: spin and park on this thread only while
   * nothing else needs the event loop; sleep on a worker thread (woken by `#poke`) until the
   * listener's rest ends. Resolves to the count of ready fds, 0 at that deadline.
   */
  #wait(now: number): number | Promise<number> {
    const set = this.#set;
    const steps = waitSteps(
      { tryTake: () => (this.#found = set.wait(0)) > 0, wakeTakes: true },
      new Deadline(this.#restUntil > now ? this.#restUntil - now : Infinity),
      this.#eager,
      undefined,
      this.busy === 0 && this.#interests.size === 0 ? ANSWER_PARK_MS : 0,
    );
    const ready = drive(steps, {
      park: (ms) => (this.#found = set.wait(ms)) > 0,
      sleep: async (ms) => {
        this.#asyncWaiting = true;
        try {
          this.#found = await set.waitAsync(ms);
        } finally {
          this.#asyncWaiting = false;
        }
        return this.#stopped ? null : this.#found > 0;
      },
      // A turn the loop was due before this wait may have added fds to watch: build the set anew.
      stopped: () => true,
    });
    if (typeof ready === "boolean") return ready ? this.#found : 0;
    return ready.then((ready) => ready ? this.#found : 0);
  }

  #dispatch(): void {
    const set = this.#set;
    for (let i = 0; i < set.size && !this.#stopped; i++) {
      const revents = set.revents(i);
      if (revents === 0) continue;
      const fd = set.fd(i);
      if (fd === this.#wake[0]) {
        while (readFd(fd, this.#wakeBuf) > 0) { /* drained */ }
        continue;
      }
      if (fd === this.#listener) {
        this.#accept();
        continue;
      }
      const list = this.#interests.get(fd);
      if (list) {
        // A hang-up or an error ends every wait on the fd: the read or write that follows says what.
        const all = (revents & (OS.POLLHUP | OS.POLLERR | OS.POLLNVAL)) !== 0;
        for (const x of list.filter((x) => all || (x.events & revents) !== 0)) {
          this.#drop(fd, x);
          x.resolve(true);
        }
      }
      if (revents & READABLE) this.#served.get(fd)?.();
    }
  }

  #accept(): void {
    for (;;) {
      const fd = acceptSocket(this.#listener);
      if (fd >= 0) {
        this.#backoff = ACCEPT_BACKOFF_MS;
        this.#onAccept(fd);
        continue;
      }
      // EAGAIN: none left. EMFILE/ENFILE (out of fds), or a connection reset before it was
      // accepted: the connected clients keep working; the listener rests a moment.
      if (-fd !== EAGAIN) {
        this.#restUntil = performance.now() + this.#backoff;
        this.#backoff = Math.min(2 * this.#backoff, ACCEPT_BACKOFF_MAX_MS);
      }
      return;
    }
  }

  /** Stops the loop and closes the listening socket and the wake pipe (idempotent). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const [fd] of this.#interests) this.forget(fd);
    shutdownSocket(this.#listener); // a poll in progress on a worker thread wakes up
    this.#poke();
    closeFd(this.#listener);
  }
}
