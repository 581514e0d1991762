/**
 * Making connected pairs and waiting on several (CPython: `connection.py`'s `Pipe` and `wait`):
 * `Pipe()` makes a Unix socket pair (duplex) or an OS pipe (one-way) and a {@linkcode Connection}
 * on each end; `wait()` watches many connections (one poll of their fds, through `_fd_wait.ts`)
 * and processes (their exit).
 *
 * @module
 */
import { OS, pipe, setSendBufferSize, socketpair } from "../native/mod.ts";
import { Waiter } from "./_fd_wait.ts";
import { Deadline, raceTimeout, timeoutMs } from "./_wait.ts";
import { Connection, openConnection, receiveReady } from "./connection.ts";
import { type Process, whenExited } from "./process.ts";

/** The send buffer a duplex pipe asks for (default 208 KiB; capped by net.core.wmem_max). */
const SEND_BUFFER = 1 << 20;

/**
 * Makes a pair of connected {@linkcode Connection}s. Duplex (the default): both ends send and
 * receive. `duplex: false`: `[reader, writer]`, where the reader only receives and the writer
 * only sends.
 *
 * @example A one-way pipe
 * ```ts
 * import { Pipe } from "@mp/multiprocessing";
 *
 * const [reader, writer] = Pipe<string>({ duplex: false });
 * await writer.send("hello");
 * console.log(await reader.recv()); // "hello"
 * reader.close();
 * writer.close();
 * ```
 */
export function Pipe<T = unknown>(options: { duplex?: boolean } = {}): [Connection<T>, Connection<T>] {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("Invalid Pipe options: expected an object like { duplex: false }");
  }
  if (options.duplex === false) {
    const [r, w] = pipe();
    return [openConnection<T>(r, true, false), openConnection<T>(w, false, true)];
  }
  const [a, b] = socketpair();
  // Larger messages in fewer wake-ups, where the system allows (net.core.wmem_max).
  setSendBufferSize(a, SEND_BUFFER);
  setSendBufferSize(b, SEND_BUFFER);
  return [openConnection<T>(a, true, true), openConnection<T>(b, true, true)];
}

/**
 * Waits until at least one of `objects` is ready, for at most `timeout` ms (default: forever),
 * and resolves to the ready ones (an empty array after the timeout). A connection is ready when
 * `recv()` would not wait (a message, or the end of the stream); a process when it has ended.
 *
 * @example Serve whichever child answers first
 * ```ts
 * import { Pipe, wait } from "@mp/multiprocessing";
 *
 * const [a1, a2] = Pipe();
 * const [b1, b2] = Pipe();
 * await b2.send("from b");
 * const ready = await wait([a1, b1], 1000);
 * console.log(ready.length, ready[0] === b1); // 1 true
 * for (const c of [a1, a2, b1, b2]) c.close();
 * ```
 */
export async function wait(
  objects: Array<Connection | Process>,
  timeout?: number,
): Promise<Array<Connection | Process>> {
  if (!Array.isArray(objects)) throw new TypeError("Invalid objects for wait(): expected an array");
  const ms = timeoutMs(timeout, "wait()");
  const ready = () =>
    objects.filter((o) => o instanceof Connection ? receiveReady(o) : (o as Process).exitCode !== null);
  for (const o of objects) {
    if (o instanceof Connection) {
      if (o.closed) throw new Deno.errors.BadResource("Cannot wait on a closed connection");
      if (!o.readable) throw new Deno.errors.BadResource("Cannot wait on the write end of a one-way pipe");
    } else if (typeof (o as Process)?.join !== "function") {
      throw new TypeError("Invalid object for wait(): expected Connections and Processes");
    }
  }
  const now = ready();
  if (now.length > 0 || !(ms > 0) || objects.length === 0) return now;
  // One wait (`_fd_wait.ts`) watches every connection; processes report their exit.
  const fds = objects.filter((o) => o instanceof Connection).map((c) => (c as Connection).fileno());
  // Their exit, not join(): a join keeps a daemon child's program alive until it has ended,
  // also after this wait has returned. A process not started yet ends the wait's watch at once.
  const joins = objects.filter((o) => !(o instanceof Connection)).map((p) =>
    Promise.resolve(whenExited(p as Process))
  );
  let exited: Promise<unknown> | null = joins.length > 0 ? Promise.race(joins) : null;
  const deadline = new Deadline(ms);
  const waiter = new Waiter();
  for (;;) {
    let exit = false;
    const stop = exited ? exited.then(() => void (exit = true)) : new Promise<void>(() => {});
    if (fds.length > 0) await waiter.ready(fds, OS.POLLIN, stop, deadline.at);
    else await raceTimeout(stop, deadline.left());
    if (exit) exited = null; // at most once: a process that never started stays unready
    const r = ready();
    if (r.length > 0 || deadline.left() <= 0) return r;
  }
}
