/**
 * The fd sharer: how a connection or queue inside a message reaches whichever process receives
 * the message (CPython: `resource_sharer.py`). The OS part is in `native/scm.ts`.
 *
 * Sending: `share(fd)` keeps a close-on-exec duplicate of `fd` in this process, under a random
 * 128-bit token, and returns a handle (this process's abstract socket name + the token) that
 * travels inside the message in place of the fd number. The socket is made on first use, and
 * served by a thread of its own (`_fd_sharer_thread.ts`, a Worker that does not keep the program
 * alive), so that a sender whose own thread is busy or blocked (a pool worker between tasks)
 * still hands its fds over. The two threads share the table of fds in flight
 * (`_fd_sharer_table.ts`).
 *
 * Receiving: `take(handle)` connects to the sender's socket, writes the token and gets the fd by
 * `SCM_RIGHTS` (a handle of this very process is taken from the table, without a socket). The
 * receiver blocks meanwhile (reviving a message is synchronous); the sender's thread answers at
 * once, so this wait is one round trip.
 *
 * Who holds an end in flight, which decides when the other end sees EOF: the sending process,
 * from the send until a receiver asks for it with the token, or until the sending process ends
 * (a thread: until the thread ends; its exit step `fdSharer` stops the socket's thread and closes
 * what it held, since the process goes on).
 * A token is good once: the sender closes its duplicate as soon as it has handed the fd over (or
 * tried to: a receiver that died meanwhile spent the message). A message that is never received
 * keeps its ends open until the sender ends; a message received after the sender ended has lost
 * them (reviving it throws `Deno.errors.NotFound`, saying so). Nothing else holds a copy, so
 * "no fd stays open" holds: after the sender and receiver are done, the only copies left are the
 * ones a live program revived and did not close.
 *
 * @module
 */
import {
  close as closeFd,
  connectAbstract,
  CONNECTION_REFUSED,
  dupFd,
  getpid,
  listenAbstract,
  OS,
  osError,
  pollFds,
  recvWithFd,
  stopListening,
  writeAll,
} from "../native/mod.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { claim, drain, heldRows, newTable, put, release, ROWS, STOP, STOPPED } from "./_fd_sharer_table.ts";
import { workerRef } from "./_worker_ref.ts";

/** What travels inside a message in place of an fd. */
export interface FdHandle {
  /** The sender's abstract socket name. */
  at: string;
  /** The row of the sender's table. */
  row: number;
  /** 128 random bits: only the message's receiver knows them. */
  token: [number, number, number, number];
  /** The sender's pid, for error messages. */
  pid: number;
}

let table: Int32Array | null = null;
let name = "";
let next = 0;
/** Why the sharer's thread failed, if it did: nothing can be handed over then. */
let broken: string | null = null;

/** How long a receiver waits for the sender's answer, in ms (the receiver's thread is blocked). */
const ANSWER_WAIT_MS = 30_000;

function hex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Makes the socket and starts its thread, on first use. */
function start(): Int32Array {
  if (table) return table;
  let listener = -1;
  let at = "";
  for (let attempt = 0; listener < 0; attempt++) {
    at = `mp-fds-${getpid()}-${hex(8)}`;
    listener = listenAbstract(at);
    if (listener < 0 && attempt >= 3) throw osError("bind", -listener, at);
  }
  const t = newTable();
  const worker = new Worker(new URL("./_fd_sharer_thread.ts", import.meta.url), { type: "module" });
  workerRef?.call(worker, false);
  worker.onerror = (e) => {
    e.preventDefault();
    broken = e.message;
  };
  worker.postMessage({ listener, table: t.buffer });
  table = t;
  name = at;
  atExit(ExitPhase.fdSharer, () => stop(listener, t));
  return t;
}

/** How long an ending sender waits for its sharer's thread to stop, in ms. */
const STOP_WAIT_MS = 1000;

/**
 * The sender ends: its ends in flight end with it (in a thread as in a process, where the OS
 * would close them anyway). Receivers still waiting get "ended before it was received".
 */
function stop(listener: number, t: Int32Array): void {
  // A process's end closes all of this by itself, and at once; only a thread's end leaves the
  // process running (a Worker's global scope is a WorkerGlobalScope).
  if (!("WorkerGlobalScope" in globalThis)) return;
  Atomics.store(t, STOP, 1);
  stopListening(listener);
  try {
    Atomics.wait(t, STOPPED, 0, STOP_WAIT_MS);
  } catch {
    // Atomics.wait not allowed on this thread: the thread checks STOP as soon as it wakes anyway
  }
  drain(t, closeFd);
  closeFd(listener);
  if (table === t) table = null;
}

/** Keeps a duplicate of `fd` until a receiver takes it (or this process ends). */
export function share(fd: number): FdHandle {
  if (broken !== null) {
    throw new Deno.errors.Interrupted(
      `Cannot send a connection or queue inside a message: this process's fd sharer thread failed (${broken})`,
    );
  }
  const t = start();
  const token = crypto.getRandomValues(new Int32Array(4));
  const copy = dupFd(fd);
  const row = put(t, copy, token, next);
  if (row < 0) {
    closeFd(copy);
    throw new Deno.errors.Busy(
      `Cannot send another connection or queue: this process already has ${ROWS} of them in messages not yet received. Receive some first`,
    );
  }
  next = (row + 1) % ROWS;
  return { at: name, row, token: [token[0], token[1], token[2], token[3]], pid: getpid() };
}

/** Closes the duplicate behind a handle of this process that will not be sent after all. */
export function withdraw(h: FdHandle): void {
  if (!table || h.at !== name) return;
  const fd = claim(table, h.row, new Int32Array(h.token));
  if (fd < 0) return;
  closeFd(fd);
  release(table, h.row);
}

/** The fds of this process in flight (for tests and leak checks). */
export function heldCount(): number {
  return table ? heldRows(table) : 0;
}

function gone(h: FdHandle): Error {
  return new Deno.errors.NotFound(
    `A connection or queue in this message was sent by process ${h.pid} (or a thread of it), which ended before the message was received: its file descriptors ended with it. Keep the sending process alive until the receiver has the object (for example, wait for its answer)`,
  );
}

function spent(h: FdHandle): Error {
  return new Deno.errors.NotFound(
    `A connection or queue in this message (sent by process ${h.pid}) was already received: a message that holds one can be received once`,
  );
}

/** Gets the fd behind `h` (close-on-exec), from this process or from the one that sent it. */
export function take(h: FdHandle): number {
  if (table && h.at === name) {
    const fd = claim(table, h.row, new Int32Array(h.token));
    if (fd < 0) throw spent(h);
    release(table, h.row);
    return fd;
  }
  const sock = connectAbstract(h.at);
  if (sock < 0) {
    if (-sock === CONNECTION_REFUSED) throw gone(h);
    throw osError("connect", -sock, h.at);
  }
  try {
    writeAll(sock, new Uint8Array(new Int32Array([h.row, ...h.token]).buffer));
    if (pollFds([sock], OS.POLLIN, ANSWER_WAIT_MS).length === 0) {
      throw new Deno.errors.TimedOut(
        `Process ${h.pid} did not hand over the connection or queue in this message within ${ANSWER_WAIT_MS} ms (is it stopped?)`,
      );
    }
    const status = new Uint8Array(1);
    const { bytes, fd } = recvWithFd(sock, status);
    if (-bytes === OS.errno.ECONNRESET) throw gone(h);
    if (bytes < 0) throw osError("recvmsg", -bytes, h.at);
    if (bytes === 0) throw gone(h);
    if (status[0] !== 1 || fd < 0) {
      if (fd >= 0) closeFd(fd);
      throw spent(h);
    }
    return fd;
  } finally {
    closeFd(sock);
  }
}
