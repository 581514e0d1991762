/**
 * The client side of a manager: one authenticated connection to a manager, shared by every proxy
 * of this process (CPython: `managers.py`'s `BaseProxy._connect`). Which connections this process
 * has, and the loading of this module on the first connect, are in `_manager_clients.ts`; the
 * process's reference counts of the objects its proxies point at are in `_manager_refs.ts`.
 *
 * The connection is a buffered `FdChannel` (`_fd_channel.ts`). A call waits for its first answer
 * (its reply, or the server's word that it waits) on this thread, in the one wait loop with the
 * park for answers that come at once (`ANSWER_PARK_MS` in `_wait.ts`), while the event loop is
 * not due a turn (`readyHere` in `_fd_wait.ts`);
 * what is still pending then, it waits for off the thread (the loop's usual park and slices).
 *
 * @module
 */
import { deserialize, serialize } from "./_reduction.ts";
import { type PackedError, unpackError } from "./_error_transport.ts";
import { ANSWER_PARK_MS, PARK_MS, raceTimeout, TIMED_OUT } from "./_wait.ts";
import { OS } from "../native/mod.ts";
import type { FdChannel } from "./_fd_channel.ts";
import { addressKey } from "./_manager_options.ts";
import {
  answerChallenge,
  CANCELLED,
  decodeReply,
  deliverChallenge,
  encodeRequest,
  type ManagerAddress,
  NATIVE_ERROR,
  OK,
  PENDING,
} from "./_manager_wire.ts";
import { connectChannel } from "./_manager_socket.ts";
import { AuthenticationError, EOFError, RemoteError } from "./errors.ts";

/** How long connecting to a manager and the handshake may take, unless `connect()` says. */
const CONNECT_TIMEOUT_MS = 20_000;
interface Pending {
  /** Neither its reply nor word that it waits has come yet. */
  fresh: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Client {
  #ch: FdChannel;
  #where: string;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  /** How many pending requests are fresh (see {@linkcode Pending}). */
  #fresh = 0;
  #lost: Error | null = null;
  #onLost: () => void;
  /** A quick drain is queued (as a microtask) for the requests just sent. */
  #kicked = false;
  /** A wait that does not block the event loop is in progress. */
  #waiting = false;

  constructor(ch: FdChannel, where: string, onLost: () => void) {
    this.#ch = ch;
    this.#where = where;
    this.#onLost = onLost;
  }

  /**
   * Connects and authenticates (both ways). Rejects with `Deno.errors.TimedOut` when that takes
   * longer than `timeout` ms: a server that accepts but never answers cannot hang the caller.
   */
  static async open(
    address: ManagerAddress,
    authkey: Uint8Array,
    onLost: () => void,
    timeout = CONNECT_TIMEOUT_MS,
  ): Promise<Client> {
    const where = `the manager at ${addressKey(address)}`;
    let ch: FdChannel | undefined;
    const giveUp = new AbortController();
    const opening = (async () => {
      try {
        ch = await connectChannel(address, giveUp.signal);
      } catch (e) {
        if (!(e instanceof Error)) throw e;
        const Class = e.constructor as new (message: string, options?: ErrorOptions) => Error;
        throw new Class(`Cannot connect to ${where}: ${e.message} (is it running?)`, { cause: e });
      }
      if (giveUp.signal.aborted) ch.close();
      try {
        await answerChallenge(ch, authkey, where);
        await deliverChallenge(ch, authkey, where);
      } catch (e) {
        ch.close();
        if (e instanceof AuthenticationError || !(e instanceof Error)) throw e;
        // Not a verdict on the authkey: the server went away, or it turned us away (too many
        // connections authenticating at once).
        const Class = e.constructor as new (message: string, options?: ErrorOptions) => Error;
        throw new Class(
          `Cannot connect to ${where}: it closed the connection during the handshake (is it running? it turns new clients away while too many connections are authenticating)`,
          { cause: e },
        );
      }
      return ch;
    })();
    const opened = await raceTimeout(opening, timeout);
    if (opened === TIMED_OUT) {
      giveUp.abort();
      ch?.close();
      opening.catch(() => {});
      throw new Deno.errors.TimedOut(
        `Cannot connect to ${where}: no answer to the handshake within ${timeout} ms (is it a manager, and is it overloaded?)`,
      );
    }
    return new Client(opened, where, onLost);
  }

  /** Settles the replies that have come; false at the end of the stream. */
  #readReplies(): boolean {
    for (;;) {
      // Whole frames never stay buffered between calls: read first.
      const got = this.#ch.fill();
      if (got === null) return false;
      let frame;
      while ((frame = this.#ch.takeFrame()) !== null) this.#reply(frame);
      if (!got || this.#ch.drained) return true;
    }
  }

  #reply(frame: Uint8Array): void {
    const { id, kind, payload } = decodeReply(frame);
    const p = this.#pending.get(id);
    if (!p) return;
    if (kind === PENDING) {
      if (p.fresh) this.#fresh--;
      p.fresh = false;
      return;
    }
    this.#settled(id, p);
    let value: unknown;
    try {
      value = deserialize(payload);
    } catch (e) {
      p.reject(e);
      return;
    }
    if (kind === OK) p.resolve(value);
    else if (kind === CANCELLED && p.signal?.aborted) p.reject(p.signal.reason);
    else p.reject(remoteError(kind, value as PackedError));
  }

  /**
   * Runs once after the requests of one stretch of synchronous code were sent: settles what has
   * come, and waits on this thread until each of them is answered or said to wait (so that a call
   * answered at once costs no trip through the event loop). What is still pending then is left
   * to {@linkcode #wait}.
   */
  #drain(): void {
    this.#kicked = false;
    if (this.#lost) return;
    try {
      // False also when the event loop is due a turn: the wait goes through #wait, which lets it turn.
      while (this.#fresh > 0) {
        const ready = this.#ch.readableHere(ANSWER_PARK_MS);
        if (!ready) break;
        if (!this.#readReplies()) return this.#lose();
      }
    } catch {
      return this.#lose();
    }
    if (this.#pending.size > 0) this.#wait();
  }

  /** Waits for replies without blocking the event loop, while any request is pending. */
  async #wait(): Promise<void> {
    if (this.#waiting) return;
    this.#waiting = true;
    try {
      while (this.#pending.size > 0 && !this.#lost) {
        const ready = this.#ch.ready(OS.POLLIN, PARK_MS);
        if (!(ready instanceof Promise ? await ready : ready)) break;
        if (!this.#readReplies()) break;
      }
    } catch {
      // the connection broke: same as its end
    } finally {
      this.#waiting = false;
    }
    if (this.#pending.size > 0 || this.#ch.closed) this.#lose();
  }

  #settled(id: number, p: Pending): void {
    this.#pending.delete(id);
    if (p.fresh) this.#fresh--;
    if (p.onAbort) p.signal!.removeEventListener("abort", p.onAbort);
  }

  #lose(): void {
    this.#lost ??= new EOFError(`Lost the connection to ${this.#where}: it has shut down or died`);
    if (!this.#ch.closed) {
      this.#ch.close();
      this.#onLost();
    }
    for (const [id, p] of [...this.#pending]) {
      this.#settled(id, p);
      p.reject(this.#lost);
    }
  }

  #send(frame: Uint8Array<ArrayBuffer>): void {
    try {
      this.#ch.send(frame);
    } catch {
      this.#lose();
      return;
    }
    if (!this.#kicked) {
      this.#kicked = true;
      queueMicrotask(() => this.#drain());
    }
  }

  /** Sends a request; its reply settles the promise. */
  request(objectId: number, method: string, args: Uint8Array, signal?: AbortSignal): Promise<unknown> {
    if (this.#lost) return Promise.reject(this.#lost);
    const id = this.#nextId++;
    const frame = encodeRequest(id, objectId, method, args);
    return new Promise((resolve, reject) => {
      const p: Pending = { fresh: true, resolve, reject };
      this.#pending.set(id, p);
      this.#fresh++;
      if (signal) {
        p.signal = signal;
        p.onAbort = () => this.#send(encodeRequest(this.#nextId++, 0, "cancel", serialize([id])));
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.#send(frame);
    });
  }

  close(): void {
    this.#lost ??= new EOFError(`The connection to ${this.#where} was closed: the manager has shut down`);
    this.#lose();
  }
}

/**
 * A failed call's error (`_error_transport.ts`): a documented outcome (`QueueEmptyError`,
 * `RangeError`, `Deno.errors.NotFound`, ...) as its own class; anything else as a `RemoteError`
 * whose `cause` is the server's error, with its name, stack and fields.
 */
function remoteError(kind: number, packed: PackedError): Error {
  const e = unpackError(packed);
  const error = e instanceof Error ? e : new Error(String(e));
  if (kind === NATIVE_ERROR) return error;
  return new RemoteError(error.name, error.message, { cause: error });
}
