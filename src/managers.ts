/**
 * Managers: a server process holding shared objects that other processes use through proxies
 * (CPython: `managers.py`).
 *
 * `Manager.start()` starts the server (a daemon child) listening on a Unix socket (by default in
 * a fresh temporary directory) or a TCP port. Every process that uses a proxy holds one
 * connection to the server, opened on first use and authenticated with an HMAC challenge both
 * ways, over which each call is a request answered by id (see `_manager_wire.ts`).
 *
 * A proxy travels as `{ address, authkey, id }`: passed to a child, or stored inside another
 * shared object, it comes back as a proxy to the same object. Locks, semaphores, events,
 * conditions and barriers made by a manager are the native objects themselves (their state
 * lives in named shared memory), kept alive by the server until it shuts down.
 *
 * @module
 */
import type { Barrier } from "./barrier.ts";
import type { Condition } from "./condition.ts";
import type { Event } from "./event.ts";
import type { Lock, RLock } from "./lock.ts";
import type { BoundedSemaphore, Semaphore } from "./semaphore.ts";
import type { QueueWaitOptions } from "./queues.ts";
import { Pipe } from "./connection.ts";
import { Process } from "./process.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { track, unlinkResource, untrack } from "./_tracker.ts";
import { checkWait, raceTimeout, TIMED_OUT, timeoutMs } from "./_wait.ts";
import { deserialize, registerReducer, serialize } from "./_reduction.ts";
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
import type { ServerReady } from "./_manager_server.ts";
import {
  AuthenticationError,
  EOFError,
  ProcessError,
  QueueEmptyError,
  QueueFullError,
  RemoteError,
} from "./errors.ts";

export type { ManagerAddress } from "./_manager_wire.ts";

/** Options of {@linkcode Manager.start}. */
export interface ManagerStartOptions {
  /** Where to listen: `{ path }` (a Unix socket) or `{ hostname, port }` (TCP; port 0 picks one).
   * Default: a Unix socket in a fresh temporary directory. */
  address?: ManagerAddress;
  /** The key clients must prove they know. Default: 32 random bytes. */
  authkey?: Uint8Array;
}

/** Options of {@linkcode Manager.connect}. */
export interface ManagerConnectOptions {
  /** The address of a running manager (its `address`). */
  address: ManagerAddress;
  /** The manager's authkey. */
  authkey: Uint8Array;
  /**
   * How long connecting and proving the authkey may take, in ms (default 20 000); after that
   * the call rejects with `Deno.errors.TimedOut`.
   */
  timeout?: number;
}

const INTERNAL = Symbol("Manager.internal");
const SERVER_MODULE = new URL("./_manager_server.ts", import.meta.url);
/** How long the server may take to start listening. */
const START_TIMEOUT_MS = 30_000;
/** How long shutdown() waits for the server to end before it kills it. */
const STOP_TIMEOUT_MS = 5_000;
/** How long connecting to a manager and the handshake may take, unless `connect()` says. */
const CONNECT_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// One connection per manager per process, shared by every proxy.

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

class Client {
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
          p.reject(remoteError(kind, ...(value as [string, string, string])));
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

function remoteError(kind: number, name: string, message: string, stack: string): Error {
  if (kind === NATIVE_ERROR) {
    switch (name) {
      case "QueueEmptyError":
        return new QueueEmptyError(message);
      case "QueueFullError":
        return new QueueFullError(message);
      case "RangeError":
        return new RangeError(message);
      case "TypeError":
        return new TypeError(message);
    }
  }
  const remote = new Error(message);
  remote.name = name;
  remote.stack = stack;
  return new RemoteError(name, message, { cause: remote });
}

const clients = new Map<string, { client: Promise<Client>; ready?: Client }>();

function clientKey(address: ManagerAddress, authkey: Uint8Array): string {
  return `${addressKey(address)}\0${Array.from(authkey, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function clientFor(address: ManagerAddress, authkey: Uint8Array, timeout?: number): Client | Promise<Client> {
  const key = clientKey(address, authkey);
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

function dropClient(address: ManagerAddress, authkey: Uint8Array): void {
  const entry = clients.get(clientKey(address, authkey));
  clients.delete(clientKey(address, authkey));
  entry?.client.then((c) => c.close(), () => {});
}

/** Sends one call; `args` are serialized here, so a value that cannot travel throws at once. */
function request(
  address: ManagerAddress,
  authkey: Uint8Array,
  objectId: number,
  method: string,
  args: unknown[],
  signal?: AbortSignal,
): Promise<unknown> {
  const bytes = serialize(args);
  if (signal?.aborted) return Promise.reject(signal.reason);
  const c = clientFor(address, authkey);
  if (c instanceof Client) return c.request(objectId, method, bytes, signal);
  return c.then((c) => c.request(objectId, method, bytes, signal));
}

// ---------------------------------------------------------------------------------------------
// Proxies

type ProxyType = "dict" | "list" | "namespace" | "value" | "queue" | "joinableQueue";

interface ProxyRef {
  address: ManagerAddress;
  authkey: Uint8Array;
  id: number;
  type: ProxyType;
}

const refs = new WeakMap<object, ProxyRef>();

function proxyRef(token: symbol, proxy: object, ref: ProxyRef): void {
  if (token !== INTERNAL) {
    throw new TypeError("Cannot construct a proxy directly: ask a Manager, e.g. `await manager.dict()`");
  }
  refs.set(proxy, ref);
}

function call<R>(proxy: object, method: string, args: unknown[], signal?: AbortSignal): Promise<R> {
  const ref = refs.get(proxy)!;
  return request(ref.address, ref.authkey, ref.id, method, args, signal) as Promise<R>;
}

function entriesOf(init: unknown): [unknown, unknown][] {
  if (init === undefined || init === null) return [];
  if (typeof init === "object" && Symbol.iterator in init) return [...(init as Iterable<[unknown, unknown]>)];
  if (typeof init === "object") return Object.entries(init);
  throw new TypeError(`Invalid dict contents: expected an object or an iterable of [key, value] pairs`);
}

/**
 * A dict living in a manager's server (Python's `DictProxy`). Every method is a round trip to the
 * server; keys are strings, numbers, bigints, booleans, null, or structured data (an array key
 * matches an equal array).
 *
 * @example
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const d = await manager.dict<number>({ a: 1 });
 * await d.set("b", 2);
 * console.log(await d.get("b"), await d.size()); // 2 2
 * ```
 */
// deno-lint-ignore no-explicit-any
export class DictProxy<V = any, K = string> {
  /** @internal Proxies come from a {@linkcode Manager}. */
  constructor(token: symbol, ref: ProxyRef) {
    proxyRef(token, this, ref);
  }
  /** The value under `key`, or `fallback` (default undefined) when there is none. */
  get(key: unknown): Promise<V | undefined>;
  /** The value under `key`, or `fallback` when there is none. */
  get<D>(key: unknown, fallback: D): Promise<V | D>;
  get(key: unknown, ...fallback: unknown[]): Promise<unknown> {
    return call(this, "get", [key, ...fallback.slice(0, 1)]);
  }
  /** Stores `value` under `key`. */
  set(key: unknown, value: V): Promise<void> {
    return call(this, "set", [key, value]);
  }
  /** True when there is a value under `key`. */
  has(key: unknown): Promise<boolean> {
    return call(this, "has", [key]);
  }
  /** Removes `key`; true if it was there. */
  delete(key: unknown): Promise<boolean> {
    return call(this, "delete", [key]);
  }
  /** The keys, in insertion order. */
  keys(): Promise<K[]> {
    return call(this, "keys", []);
  }
  /** The values, in insertion order. */
  values(): Promise<V[]> {
    return call(this, "values", []);
  }
  /** The `[key, value]` pairs, in insertion order. */
  entries(): Promise<[K, V][]> {
    return call(this, "entries", []);
  }
  /** The number of keys. */
  size(): Promise<number> {
    return call(this, "size", []);
  }
  /** Removes every key. */
  clear(): Promise<void> {
    return call(this, "clear", []);
  }
  /** Stores every pair of `other` (an object, a Map, or an iterable of pairs). */
  update(other: Record<string, V> | Iterable<readonly [unknown, V]>): Promise<void> {
    return call(this, "update", [entriesOf(other)]);
  }
  /**
   * Removes `key` and returns its value; when it is missing, returns `fallback` if given, else
   * rejects with a `RemoteError` named `KeyError`.
   */
  pop(key: unknown, ...fallback: [V?]): Promise<V> {
    return call(this, "pop", [key, ...fallback.slice(0, 1)]);
  }
  /** The value under `key`; when there is none, stores `value` there first and returns it. */
  setdefault(key: unknown, value?: V): Promise<V> {
    return call(this, "setdefault", [key, value]);
  }
  /** A copy of the contents as a plain object (keys become strings). */
  toObject(): Promise<Record<string, V>> {
    return call(this, "toObject", []);
  }
}

/**
 * A list living in a manager's server (Python's `ListProxy`). Indexes may be negative (from the
 * end); one out of range rejects with a `RemoteError` named `IndexError`.
 *
 * @example
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const l = await manager.list([3, 1]);
 * await l.append(2);
 * await l.sort();
 * console.log(await l.toArray()); // [1, 2, 3]
 * ```
 */
// deno-lint-ignore no-explicit-any
export class ListProxy<V = any> {
  /** @internal Proxies come from a {@linkcode Manager}. */
  constructor(token: symbol, ref: ProxyRef) {
    proxyRef(token, this, ref);
  }
  /** The item at `index`. */
  get(index: number): Promise<V> {
    return call(this, "get", [index]);
  }
  /** Replaces the item at `index`. */
  set(index: number, value: V): Promise<void> {
    return call(this, "set", [index, value]);
  }
  /** Adds an item at the end. */
  append(value: V): Promise<void> {
    return call(this, "append", [value]);
  }
  /** Adds every item of `items` at the end. */
  extend(items: Iterable<V>): Promise<void> {
    return call(this, "extend", [[...items]]);
  }
  /** Inserts an item before `index` (clamped to the list, as Python's). */
  insert(index: number, value: V): Promise<void> {
    return call(this, "insert", [index, value]);
  }
  /** Removes and returns the item at `index` (default: the last). */
  pop(index?: number): Promise<V> {
    return call(this, "pop", index === undefined ? [] : [index]);
  }
  /** Removes the first item equal to `value`; a `RemoteError` named `ValueError` if none is. */
  remove(value: V): Promise<void> {
    return call(this, "remove", [value]);
  }
  /** The index of the first item equal to `value` in `[start, stop)`; `ValueError` if none is. */
  index(value: V, start?: number, stop?: number): Promise<number> {
    return call(this, "index", [
      value,
      ...(start === undefined ? [] : [start]),
      ...(stop === undefined ? [] : [stop]),
    ]);
  }
  /** How many items equal `value`. */
  count(value: V): Promise<number> {
    return call(this, "count", [value]);
  }
  /** The number of items. */
  length(): Promise<number> {
    return call(this, "length", []);
  }
  /** A copy of the items from `start` up to `end`, as `Array.prototype.slice`. */
  slice(start?: number, end?: number): Promise<V[]> {
    return call(this, "slice", [start, end]);
  }
  /**
   * Sorts in place in Python's order (numbers by value, strings by code unit, arrays item by
   * item); values that cannot be compared reject with a `RemoteError` named `TypeError`.
   */
  sort(options?: { reverse?: boolean }): Promise<void> {
    return call(this, "sort", [{ reverse: options?.reverse ?? false }]);
  }
  /** Reverses in place. */
  reverse(): Promise<void> {
    return call(this, "reverse", []);
  }
  /** Removes every item. */
  clear(): Promise<void> {
    return call(this, "clear", []);
  }
  /** A copy of the items. */
  toArray(): Promise<V[]> {
    return call(this, "toArray", []);
  }
}

/**
 * A namespace living in a manager's server (Python's `Namespace`): named attributes. A missing
 * one rejects with a `RemoteError` named `AttributeError`.
 *
 * @example
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const ns = await manager.namespace({ x: 1 });
 * await ns.set("y", "two");
 * console.log(await ns.toObject()); // { x: 1, y: "two" }
 * ```
 */
export class NamespaceProxy {
  /** @internal Proxies come from a {@linkcode Manager}. */
  constructor(token: symbol, ref: ProxyRef) {
    proxyRef(token, this, ref);
  }
  /** The attribute `name`. */
  // deno-lint-ignore no-explicit-any
  get<T = any>(name: string): Promise<T> {
    return call(this, "get", [name]);
  }
  /** Sets the attribute `name`. */
  set(name: string, value: unknown): Promise<void> {
    return call(this, "set", [name, value]);
  }
  /** Removes the attribute `name`. */
  delete(name: string): Promise<void> {
    return call(this, "delete", [name]);
  }
  /** A copy of every attribute as a plain object. */
  // deno-lint-ignore no-explicit-any
  toObject(): Promise<Record<string, any>> {
    return call(this, "toObject", []);
  }
}

/**
 * One value living in a manager's server (Python's `Manager().Value`).
 *
 * @example
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const v = await manager.value("ready");
 * await v.set("go");
 * console.log(await v.get()); // "go"
 * ```
 */
// deno-lint-ignore no-explicit-any
export class ValueProxy<V = any> {
  /** @internal Proxies come from a {@linkcode Manager}. */
  constructor(token: symbol, ref: ProxyRef) {
    proxyRef(token, this, ref);
  }
  /** The value. */
  get(): Promise<V> {
    return call(this, "get", []);
  }
  /** Replaces the value. */
  set(value: V): Promise<void> {
    return call(this, "set", [value]);
  }
}

const closedProxies = new WeakSet<object>();

/**
 * A queue living in a manager's server (Python's `Manager().Queue()`). Its methods are those of
 * {@linkcode Queue}, but every one is a round trip to the server, so those that are synchronous
 * there (`putNowait`, `getNowait`, `qsize`, `empty`, `full`) return promises here. Errors are the
 * native ones: `QueueEmptyError`, `QueueFullError`, the signal's reason.
 *
 * @example
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const q = await manager.queue<string>();
 * await q.put("job");
 * console.log(await q.get(), await q.empty()); // "job" true
 * ```
 */
// deno-lint-ignore no-explicit-any
export class QueueProxy<T = any> {
  /** @internal Proxies come from a {@linkcode Manager}. */
  constructor(token: symbol, ref: ProxyRef) {
    proxyRef(token, this, ref);
  }
  /** @internal */
  protected _check(what: string): void {
    if (closedProxies.has(this)) {
      throw new Deno.errors.BadResource(`Cannot ${what}: this queue proxy was closed`);
    }
  }
  /** Puts an item, waiting for room in a bounded queue ({@linkcode QueueFullError} if none). */
  put(item: T, options?: QueueWaitOptions): Promise<void> {
    this._check("put");
    const wait = checkWait(options, "put()");
    return call(this, "put", [item, { block: wait.block, timeout: wait.timeout }], wait.signal);
  }
  /** Puts an item if there is room at once, else rejects with {@linkcode QueueFullError}. */
  putNowait(item: T): Promise<void> {
    this._check("putNowait");
    return call(this, "putNowait", [item]);
  }
  /** Takes the next item, waiting for one ({@linkcode QueueEmptyError} if none comes). */
  get(options?: QueueWaitOptions): Promise<T> {
    this._check("get");
    const wait = checkWait(options, "get()");
    return call(this, "get", [{ block: wait.block, timeout: wait.timeout }], wait.signal);
  }
  /** Takes the next item if there is one at once, else rejects with {@linkcode QueueEmptyError}. */
  getNowait(): Promise<T> {
    this._check("getNowait");
    return call(this, "getNowait", []);
  }
  /** The number of items in the queue. */
  qsize(): Promise<number> {
    this._check("qsize");
    return call(this, "qsize", []);
  }
  /** True when the queue holds no item. */
  empty(): Promise<boolean> {
    this._check("empty");
    return call(this, "empty", []);
  }
  /** True when a bounded queue holds `maxsize` items. */
  full(): Promise<boolean> {
    this._check("full");
    return call(this, "full", []);
  }
  /** Says this process will use this proxy no more (the queue itself lives on). Idempotent. */
  close(): void {
    closedProxies.add(this);
  }
  /** Resolves at once: a put has reached the server when its promise resolves. */
  joinThread(): Promise<void> {
    return Promise.resolve();
  }
  /** Does nothing: nothing is buffered in this process. */
  cancelJoinThread(): void {}
  /** Closes this proxy. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A joinable queue living in a manager's server (Python's `Manager().JoinableQueue()`):
 * {@linkcode QueueProxy} plus `taskDone()` and `join()`.
 *
 * @example
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const q = await manager.joinableQueue<number>();
 * await q.put(1);
 * await q.get();
 * await q.taskDone();
 * await q.join(); // every item put was marked done
 * ```
 */
// deno-lint-ignore no-explicit-any
export class JoinableQueueProxy<T = any> extends QueueProxy<T> {
  /** Says an item taken with `get()` is processed (`RangeError` when more than were put). */
  taskDone(): Promise<void> {
    this._check("taskDone");
    return call(this, "taskDone", []);
  }
  /** Resolves once every item put so far has been marked done. */
  join(options?: { signal?: AbortSignal }): Promise<void> {
    this._check("join");
    return call(this, "join", [], checkWait(options, "join()").signal);
  }
}

const PROXIES: Record<ProxyType, new (token: symbol, ref: ProxyRef) => object> = {
  dict: DictProxy,
  list: ListProxy,
  namespace: NamespaceProxy,
  value: ValueProxy,
  queue: QueueProxy,
  joinableQueue: JoinableQueueProxy,
};

for (const [type, cls] of Object.entries(PROXIES)) {
  registerReducer(cls, {
    name: `mp.Proxy.${type}`,
    reduce: (p: object) => refs.get(p)!,
    revive: (ref: ProxyRef) => new cls(INTERNAL, ref),
  });
}

// ---------------------------------------------------------------------------------------------
// The manager

function checkAuthkey(authkey: unknown): Uint8Array {
  if (!(authkey instanceof Uint8Array)) throw new TypeError("Invalid authkey: expected a Uint8Array");
  if (authkey.length === 0) {
    throw new RangeError(
      "Invalid authkey: it is empty; pass the manager's key (at least one byte, 32 random ones are best)",
    );
  }
  return authkey.slice();
}

function checkAddress(address: unknown): ManagerAddress {
  if (typeof address === "object" && address !== null) {
    const a = address as Record<string, unknown>;
    if (typeof a.path === "string" && a.path) return { path: a.path };
    if (typeof a.hostname === "string" && Number.isInteger(a.port) && (a.port as number) >= 0) {
      return { hostname: a.hostname, port: a.port as number };
    }
  }
  throw new TypeError(
    `Invalid address: ${Deno.inspect(address)}: expected { path } (a Unix socket) or { hostname, port }`,
  );
}

function listenError(msg: { name: string; message: string }): Error {
  const Class = (Deno.errors as Record<string, new (m: string) => Error>)[msg.name] ?? Error;
  return new Class(`Cannot start the manager's server: ${msg.message}`);
}

/**
 * A server process holding shared objects (Python's `multiprocessing.Manager()`): dicts, lists,
 * namespaces, values and queues used through proxies, and locks, semaphores, events, conditions
 * and barriers. Proxies can be passed to child processes and stored inside one another.
 * `shutdown()` (or `await using`) stops the server.
 *
 * @example Four processes fill one dict
 * ```ts
 * import { type DictProxy, Manager, Process } from "@mp/multiprocessing";
 *
 * export async function work(d: DictProxy<number>, n: number) {
 *   await d.set(`worker ${n}`, n * n);
 * }
 *
 * if (import.meta.main) {
 *   await using manager = await Manager.start();
 *   const d = await manager.dict<number>();
 *   const ps = [0, 1, 2, 3].map((n) => new Process({ target: work, args: [d, n] }));
 *   for (const p of ps) await p.start();
 *   for (const p of ps) await p.join();
 *   console.log(await d.toObject());
 * }
 * ```
 */
export class Manager {
  #address: ManagerAddress;
  #authkey: Uint8Array;
  #process: Process | undefined;
  #tempDir: string | undefined;
  #shutdown: Promise<void> | undefined;
  #removeExitHook: (() => void) | undefined;

  /** @internal Use {@linkcode Manager.start} or {@linkcode Manager.connect}. */
  constructor(
    token: symbol,
    address: ManagerAddress,
    authkey: Uint8Array,
    process?: Process,
    tempDir?: string,
  ) {
    if (token !== INTERNAL) {
      throw new TypeError("Cannot construct a Manager directly: use Manager.start() or Manager.connect()");
    }
    this.#address = address;
    this.#authkey = authkey;
    this.#process = process;
    this.#tempDir = tempDir;
    if (tempDir) {
      // If the program ends without shutdown(), the daemon server is terminated: remove its socket.
      this.#removeExitHook = atExit(ExitPhase.managerDirs, () => removeDir(tempDir));
    }
  }

  /**
   * Starts a manager's server process and connects to it. By default it listens on a Unix socket
   * in a fresh temporary directory, with a random authkey.
   */
  static async start(options: ManagerStartOptions = {}): Promise<Manager> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("Invalid options: expected an object like { authkey, address }");
    }
    const authkey = options.authkey === undefined
      ? crypto.getRandomValues(new Uint8Array(32))
      : checkAuthkey(options.authkey);
    let address = options.address === undefined ? undefined : checkAddress(options.address);
    let tempDir: string | undefined;
    if (!address) {
      tempDir = Deno.makeTempDirSync({ prefix: "mp-manager-" });
      // However this program ends (SIGKILL included), the resource tracker removes the directory.
      try {
        track("dir", tempDir);
      } catch (e) {
        removeDir(tempDir);
        throw e;
      }
      address = { path: `${tempDir}/socket` };
    }
    const [reader, writer] = Pipe<ServerReady>({ duplex: false });
    const { serve } = await import("./_manager_server.ts");
    const process = new Process({
      target: serve,
      args: [writer, address, authkey],
      module: SERVER_MODULE,
      daemon: true,
      name: "Manager",
    });
    let manager: Manager | undefined;
    try {
      await process.start();
      writer.close(); // the server has its own copy: its exit means EOF here
      if (!(await reader.poll(START_TIMEOUT_MS))) {
        throw new ProcessError(`The manager's server did not start listening within ${START_TIMEOUT_MS} ms`);
      }
      let ready: ServerReady;
      try {
        ready = await reader.recv();
      } catch (e) {
        if (!(e instanceof EOFError)) throw e;
        await process.join(STOP_TIMEOUT_MS);
        throw new ProcessError(
          `The manager's server exited (code ${process.exitCode}) before it listened; its stderr says why`,
        );
      }
      if (!ready.ok) throw listenError(ready);
      manager = new Manager(INTERNAL, ready.address, authkey, process, tempDir);
      await clientFor(ready.address, authkey); // connected and authenticated
      return manager;
    } catch (e) {
      if (manager) await manager.shutdown();
      else {
        if (process.isAlive()) process.kill();
        await process.join(STOP_TIMEOUT_MS);
        if (tempDir) removeDir(tempDir);
      }
      throw e;
    } finally {
      writer.close();
      reader.close();
    }
  }

  /**
   * Connects to a manager that runs already (started by another process). A wrong authkey
   * rejects with {@linkcode AuthenticationError}.
   */
  static async connect(options: ManagerConnectOptions): Promise<Manager> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("Invalid options: expected { address, authkey }");
    }
    const address = checkAddress(options.address);
    const authkey = checkAuthkey(options.authkey);
    const timeout = timeoutMs(options.timeout, "Manager.connect()");
    await clientFor(address, authkey, timeout);
    return new Manager(INTERNAL, address, authkey);
  }

  /** Where the server listens (pass it, with the authkey, to {@linkcode Manager.connect}). */
  get address(): ManagerAddress {
    return { ...this.#address };
  }

  /** The key that clients must know (a copy). */
  get authkey(): Uint8Array {
    return this.#authkey.slice();
  }

  /**
   * Stops the server (also when this manager came from `connect()`): its objects are gone, and
   * proxies to them reject with `EOFError` or a connection error. Idempotent.
   */
  shutdown(): Promise<void> {
    return this.#shutdown ??= this.#stop();
  }

  async #stop(): Promise<void> {
    try {
      await raceTimeout(request(this.#address, this.#authkey, 0, "shutdown", []), STOP_TIMEOUT_MS);
    } catch {
      // not running any more: nothing to stop
    }
    dropClient(this.#address, this.#authkey);
    const p = this.#process;
    if (p) {
      await p.join(STOP_TIMEOUT_MS);
      if (p.isAlive()) {
        p.kill();
        await p.join(STOP_TIMEOUT_MS);
      }
    }
    if (this.#tempDir) removeDir(this.#tempDir);
    this.#removeExitHook?.();
  }

  /** Stops the server: `await using manager = await Manager.start()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  #create(type: string, args: unknown[]): Promise<unknown> {
    if (this.#shutdown) {
      return Promise.reject(new Error(`Cannot make a ${type}: the manager has been shut down`));
    }
    return request(this.#address, this.#authkey, 0, "create", [type, ...args]);
  }

  async #proxy<P>(type: ProxyType, args: unknown[]): Promise<P> {
    const id = await this.#create(type, args) as number;
    const ref: ProxyRef = { address: this.#address, authkey: this.#authkey, id, type };
    return new PROXIES[type](INTERNAL, ref) as P;
  }

  /** A shared dict, filled from `init` (an object, a Map or an iterable of pairs). */
  // deno-lint-ignore no-explicit-any
  dict<V = any, K = string>(init?: Record<string, V> | Iterable<readonly [K, V]>): Promise<DictProxy<V, K>> {
    return this.#proxy("dict", [entriesOf(init)]);
  }

  /** A shared list, filled from `init`. */
  // deno-lint-ignore no-explicit-any
  list<V = any>(init?: Iterable<V>): Promise<ListProxy<V>> {
    return this.#proxy("list", [init === undefined ? [] : [...init]]);
  }

  /** A shared namespace with the attributes of `init`. */
  namespace(init?: Record<string, unknown>): Promise<NamespaceProxy> {
    return this.#proxy("namespace", [init ?? {}]);
  }

  /** A shared value. */
  value<V>(initial: V): Promise<ValueProxy<V>> {
    return this.#proxy("value", [initial]);
  }

  /** A shared queue (0 or omitted: unbounded). */
  // deno-lint-ignore no-explicit-any
  queue<T = any>(maxsize?: number): Promise<QueueProxy<T>> {
    return this.#proxy("queue", [maxsize ?? 0]);
  }

  /** A shared joinable queue (0 or omitted: unbounded). */
  // deno-lint-ignore no-explicit-any
  joinableQueue<T = any>(maxsize?: number): Promise<JoinableQueueProxy<T>> {
    return this.#proxy("joinableQueue", [maxsize ?? 0]);
  }

  /** A {@linkcode Lock} kept by the server. */
  lock(): Promise<Lock> {
    return this.#create("lock", []) as Promise<Lock>;
  }

  /** An {@linkcode RLock} kept by the server. */
  rlock(): Promise<RLock> {
    return this.#create("rlock", []) as Promise<RLock>;
  }

  /** A {@linkcode Semaphore} (default value 1) kept by the server. */
  semaphore(value?: number): Promise<Semaphore> {
    return this.#create("semaphore", value === undefined ? [] : [value]) as Promise<Semaphore>;
  }

  /** A {@linkcode BoundedSemaphore} (default value 1) kept by the server. */
  boundedSemaphore(value?: number): Promise<BoundedSemaphore> {
    return this.#create("boundedSemaphore", value === undefined ? [] : [value]) as Promise<BoundedSemaphore>;
  }

  /** A {@linkcode Condition} (on `lock`, or on a new lock) kept by the server. */
  condition(lock?: Lock | RLock): Promise<Condition> {
    return this.#create("condition", lock === undefined ? [] : [lock]) as Promise<Condition>;
  }

  /** An {@linkcode Event} kept by the server. */
  event(): Promise<Event> {
    return this.#create("event", []) as Promise<Event>;
  }

  /** A {@linkcode Barrier} for `parties` processes kept by the server. */
  barrier(parties: number, options?: { timeout?: number }): Promise<Barrier> {
    const timeout = options?.timeout === undefined ? undefined : timeoutMs(options.timeout, "barrier()");
    return this.#create("barrier", [parties, { timeout }]) as Promise<Barrier>;
  }
}

/** Removes a manager's temporary directory and tells the resource tracker it is gone. */
function removeDir(path: string): void {
  try {
    unlinkResource("dir", path);
    untrack("dir", path);
  } catch {
    // cannot remove it (the tracker will try again at the end) or the tracker is gone
  }
}
