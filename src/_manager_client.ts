/**
 * The client side of a manager: one authenticated connection per manager per process, shared by
 * every proxy (CPython: `managers.py`'s `BaseProxy._connect` and `_incref`/`_decref`), and the
 * process's reference counts of the objects its proxies point at.
 *
 * @module
 */
import { deserialize, serialize } from "./_reduction.ts";
import { type PackedError, unpackError } from "./_error_transport.ts";
import { raceTimeout, TIMED_OUT } from "./_wait.ts";
import {
  addressKey,
  answerChallenge,
  CANCELLED,
  decodeReply,
  deliverChallenge,
  encodeRequest,
  FrameChannel,
  type ManagerAddress,
  NATIVE_ERROR,
  OK,
} from "./_manager_wire.ts";
import { AuthenticationError, EOFError, RemoteError } from "./errors.ts";

/** How long connecting to a manager and the handshake may take, unless `connect()` says. */
const CONNECT_TIMEOUT_MS = 20_000;

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Client {
  #ch: FrameChannel;
  #where: string;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #lost: Error | null = null;
  #onLost: () => void;

  constructor(ch: FrameChannel, where: string, onLost: () => void) {
    this.#ch = ch;
    this.#where = where;
    this.#onLost = onLost;
    ch.conn.unref(); // an idle connection does not keep the program alive
    this.#readLoop();
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
    let ch: FrameChannel | undefined;
    let gaveUp = false;
    const opening = (async () => {
      let conn: Deno.Conn;
      try {
        conn = "path" in address
          ? await Deno.connect({ transport: "unix", path: address.path })
          : await Deno.connect({ transport: "tcp", hostname: address.hostname, port: address.port });
      } catch (e) {
        if (!(e instanceof Error)) throw e;
        const Class = e.constructor as new (message: string, options?: ErrorOptions) => Error;
        throw new Class(`Cannot connect to ${where}: ${e.message} (is it running?)`, { cause: e });
      }
      ch = new FrameChannel(conn);
      if (gaveUp) ch.close();
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
      gaveUp = true;
      ch?.close();
      opening.catch(() => {});
      throw new Deno.errors.TimedOut(
        `Cannot connect to ${where}: no answer to the handshake within ${timeout} ms (is it a manager, and is it overloaded?)`,
      );
    }
    return new Client(opened, where, onLost);
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.#ch.readFrame();
        if (frame === null) break;
        const { id, kind, payload } = decodeReply(frame);
        const p = this.#pending.get(id);
        if (!p) continue;
        this.#settled(id, p);
        let value: unknown;
        try {
          value = deserialize(payload);
        } catch (e) {
          p.reject(e);
          continue;
        }
        if (kind === OK) {
          p.resolve(value);
        } else if (kind === CANCELLED && p.signal?.aborted) {
          p.reject(p.signal.reason);
        } else {
          p.reject(remoteError(kind, value as PackedError));
        }
      }
    } catch {
      // the connection broke: same as its end
    }
    this.#lose();
  }

  #settled(id: number, p: Pending): void {
    this.#pending.delete(id);
    if (p.onAbort) p.signal!.removeEventListener("abort", p.onAbort);
    if (this.#pending.size === 0) this.#unref();
  }

  #unref(): void {
    try {
      this.#ch.conn.unref();
    } catch { /* closed */ }
  }

  #lose(): void {
    this.#lost ??= new EOFError(`Lost the connection to ${this.#where}: it has shut down or died`);
    this.#ch.close();
    this.#onLost();
    for (const [id, p] of [...this.#pending]) {
      this.#settled(id, p);
      p.reject(this.#lost);
    }
  }

  /** Sends a request; its reply settles the promise. */
  request(objectId: number, method: string, args: Uint8Array, signal?: AbortSignal): Promise<unknown> {
    if (this.#lost) return Promise.reject(this.#lost);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const p: Pending = { resolve, reject };
      if (this.#pending.size === 0) this.#ch.conn.ref();
      this.#pending.set(id, p);
      if (signal) {
        p.signal = signal;
        p.onAbort = () => {
          this.#ch.writeFramed(encodeRequest(this.#nextId++, 0, "cancel", serialize([id]))).catch(() => {});
        };
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.#ch.writeFramed(encodeRequest(id, objectId, method, args)).catch(() => this.#lose());
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

const clients = new Map<string, { client: Promise<Client>; ready?: Client }>();

/** A manager as its clients know it: address, authkey, and the key of its connection. */
export interface Endpoint {
  readonly address: ManagerAddress;
  readonly authkey: Uint8Array;
  readonly key: string;
}

/** The endpoint of the manager at `address` with `authkey`. */
export function endpoint(address: ManagerAddress, authkey: Uint8Array): Endpoint {
  return { address, authkey, key: clientKey(address, authkey) };
}

function clientKey(address: ManagerAddress, authkey: Uint8Array): string {
  return `${addressKey(address)}\0${Array.from(authkey, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The connection to `to`, opened (and authenticated) on first use. */
export function clientFor(to: Endpoint, timeout?: number): Client | Promise<Client> {
  const { address, authkey, key } = to;
  const have = clients.get(key);
  if (have) return have.ready ?? have.client;
  const entry: { client: Promise<Client>; ready?: Client } = {
    client: Client.open(address, authkey, () => {
      if (clients.get(key) === entry) clients.delete(key);
    }, timeout),
  };
  clients.set(key, entry);
  entry.client.then((c) => entry.ready = c, () => {
    if (clients.get(key) === entry) clients.delete(key);
  });
  return entry.client;
}

/** Closes this process's connection to `to`. */
export function dropClient(to: Endpoint): void {
  const entry = clients.get(to.key);
  clients.delete(to.key);
  entry?.client.then((c) => c.close(), () => {});
}

/** Sends one call; `args` are serialized here, so a value that cannot travel throws at once. */
export function request(
  to: Endpoint,
  objectId: number,
  method: string,
  args: unknown[],
  signal?: AbortSignal,
): Promise<unknown> {
  const bytes = serialize(args);
  if (signal?.aborted) return Promise.reject(signal.reason);
  const c = clientFor(to);
  if (c instanceof Client) return c.request(objectId, method, bytes, signal);
  return c.then((c) => c.request(objectId, method, bytes, signal));
}

// ---------------------------------------------------------------------------------------------
// Reference counts. This process counts its live proxies per object, and tells the server only
// when the first appears (incref) and the last goes (decref): the server counts each
// connection once and forgets what a connection held when it ends. In the server itself,
// proxies revived inside stored values count directly in its table.

interface LocalServer {
  incref(id: number): void;
  decref(id: number): void;
}

const counts = new Map<string, number>();
let localServer: { key: string; hooks: LocalServer } | undefined;

/** Called by the server: proxies to itself revived in its process count in its own table. */
export function setLocalServer(address: ManagerAddress, authkey: Uint8Array, hooks: LocalServer): void {
  localServer = { key: clientKey(address, authkey), hooks };
}

/**
 * One more proxy to object `id` in this process. `counted`: the server already counts this
 * connection as holding it (the proxy of a `create()`), so there is nothing to tell it.
 */
export function holdRef(to: Endpoint, id: number, counted = false): void {
  const k = `${to.key}#${id}`;
  const n = counts.get(k) ?? 0;
  counts.set(k, n + 1);
  if (n > 0 || counted) return;
  if (localServer?.key === to.key) localServer.hooks.incref(id);
  else request(to, 0, "incref", [id]).catch(() => {});
}

/** One proxy fewer to object `id` in this process. */
export function releaseRef(to: Endpoint, id: number): void {
  const k = `${to.key}#${id}`;
  const n = (counts.get(k) ?? 0) - 1;
  if (n > 0) {
    counts.set(k, n);
    return;
  }
  counts.delete(k);
  if (localServer?.key === to.key) return localServer.hooks.decref(id);
  // Only over a connection that is open: when it is gone, the server forgot what it held.
  const entry = clients.get(to.key);
  if (entry?.ready) entry.ready.request(0, "decref", serialize([id])).catch(() => {});
}

/**
 * How long a process keeps holding an object after it sent a proxy to it away (to a child, into
 * a queue or a dict), so that the object outlives the trip even when the sender closes its proxy
 * at once: the receiver holds it from the moment it revives the proxy.
 */
export const LEND_MS = 30_000;

/** Holds object `id` for {@linkcode LEND_MS} (a proxy to it is on its way somewhere). */
export function lend(to: Endpoint, id: number): void {
  if (!counts.has(`${to.key}#${id}`)) return; // no live proxy here: nothing to keep
  holdRef(to, id);
  const timer = setTimeout(() => releaseRef(to, id), LEND_MS);
  Deno.unrefTimer(timer);
}
