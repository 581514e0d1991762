/**
 * The manager's server process (CPython: `managers.py`'s `Server`).
 *
 * It listens on a Unix socket or a TCP port, authenticates each connection (HMAC challenge both
 * ways), and keeps one table of shared objects keyed by id. A request names an object and a
 * method; only the methods listed for that object's type can be called. Each request runs on its
 * own (a queue `get()` that waits does not hold up the others), and its reply carries the
 * request's id.
 *
 * Locks, semaphores, events, conditions and barriers are not proxied: the server creates the
 * native object, whose state lives in named shared memory, and sends it as a handle. The caller
 * then uses it at native speed; the server keeps it alive (and unlinks its names) until shutdown.
 *
 * @module
 */
import type { Connection } from "./connection.ts";
import { deserialize, serialize } from "./_reduction.ts";
import {
  addressKey,
  answerChallenge,
  CANCELLED,
  decodeRequest,
  deliverChallenge,
  encodeReply,
  ERROR,
  FrameChannel,
  type ManagerAddress,
  NATIVE_ERROR,
  OK,
} from "./_manager_wire.ts";
import { QueueEmptyError, QueueFullError } from "./errors.ts";
import { checkWait, Deadline, sleep, whenAborted } from "./_wait.ts";
import { Barrier } from "./barrier.ts";
import { Condition } from "./condition.ts";
import { Event } from "./event.ts";
import { Lock, RLock } from "./lock.ts";
import { BoundedSemaphore, Semaphore } from "./semaphore.ts";
// Proxies stored inside shared objects revive here (as handles; the server never calls them).
import "./managers.ts";

class KeyError extends Error {
  override name = "KeyError";
}
class IndexError extends Error {
  override name = "IndexError";
}
class ValueError extends Error {
  override name = "ValueError";
}
class AttributeError extends Error {
  override name = "AttributeError";
}

function repr(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : Deno.inspect(v);
}

const latin1 = new TextDecoder("latin1");

/** Dict keys: primitives as they are; objects (e.g. tuples as arrays) by their serialized bytes. */
function canon(key: unknown): unknown {
  return typeof key === "object" && key !== null ? `\0mp-key:${latin1.decode(serialize(key))}` : key;
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b || Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const x = serialize(a), y = serialize(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function typeName(v: unknown): string {
  return v === null
    ? "null"
    : Array.isArray(v)
    ? "array"
    : typeof v === "object"
    ? v.constructor?.name ?? "object"
    : typeof v;
}

/** Python's default ordering: numbers with numbers, strings with strings, arrays element-wise. */
function compare(a: unknown, b: unknown): number {
  const num = (v: unknown) => typeof v === "number" || typeof v === "bigint" || typeof v === "boolean";
  if (num(a) && num(b)) {
    const x = typeof a === "boolean" ? Number(a) : a as number | bigint;
    const y = typeof b === "boolean" ? Number(b) : b as number | bigint;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === "string" && typeof b === "string") return a < b ? -1 : a > b ? 1 : 0;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = compare(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  throw new TypeError(
    `Cannot compare a ${typeName(a)} with a ${typeName(b)}: sort() needs values of one kind`,
  );
}

class DictImpl {
  #m = new Map<unknown, [unknown, unknown]>();
  constructor(entries: Iterable<[unknown, unknown]> = []) {
    this.update(entries);
  }
  get(key: unknown, ...fallback: unknown[]): unknown {
    const e = this.#m.get(canon(key));
    return e ? e[1] : fallback[0];
  }
  set(key: unknown, value: unknown): void {
    this.#m.set(canon(key), [key, value]);
  }
  has(key: unknown): boolean {
    return this.#m.has(canon(key));
  }
  delete(key: unknown): boolean {
    return this.#m.delete(canon(key));
  }
  keys(): unknown[] {
    return [...this.#m.values()].map((e) => e[0]);
  }
  values(): unknown[] {
    return [...this.#m.values()].map((e) => e[1]);
  }
  entries(): [unknown, unknown][] {
    return [...this.#m.values()].map(([k, v]) => [k, v]);
  }
  size(): number {
    return this.#m.size;
  }
  clear(): void {
    this.#m.clear();
  }
  update(entries: Iterable<[unknown, unknown]>): void {
    for (const [k, v] of entries) this.set(k, v);
  }
  pop(key: unknown, ...fallback: unknown[]): unknown {
    const c = canon(key);
    const e = this.#m.get(c);
    if (e) {
      this.#m.delete(c);
      return e[1];
    }
    if (fallback.length) return fallback[0];
    throw new KeyError(`Cannot pop ${repr(key)}: no such key`);
  }
  setdefault(key: unknown, value?: unknown): unknown {
    const c = canon(key);
    const e = this.#m.get(c);
    if (e) return e[1];
    this.#m.set(c, [key, value]);
    return value;
  }
  toObject(): Record<string, unknown> {
    return Object.fromEntries(this.entries() as [PropertyKey, unknown][]);
  }
}

class ListImpl {
  #a: unknown[];
  constructor(items: unknown[] = []) {
    this.#a = [...items];
  }
  #index(i: unknown, what: string): number {
    if (typeof i !== "number" || !Number.isInteger(i)) {
      throw new TypeError(`Invalid list index: ${repr(i)}: expected an integer`);
    }
    const j = i < 0 ? i + this.#a.length : i;
    if (j < 0 || j >= this.#a.length) {
      throw new IndexError(`Cannot ${what} index ${i}: the list has ${this.#a.length} items`);
    }
    return j;
  }
  get(i: number): unknown {
    return this.#a[this.#index(i, "get")];
  }
  set(i: number, v: unknown): void {
    this.#a[this.#index(i, "set")] = v;
  }
  append(v: unknown): void {
    this.#a.push(v);
  }
  extend(items: unknown[]): void {
    for (const v of items) this.#a.push(v);
  }
  insert(i: number, v: unknown): void {
    if (typeof i !== "number" || !Number.isInteger(i)) {
      throw new TypeError(`Invalid list index: ${repr(i)}: expected an integer`);
    }
    const n = this.#a.length;
    this.#a.splice(Math.min(Math.max(i < 0 ? i + n : i, 0), n), 0, v);
  }
  pop(...at: number[]): unknown {
    if (this.#a.length === 0) throw new IndexError("Cannot pop: the list is empty");
    return this.#a.splice(this.#index(at.length ? at[0] : -1, "pop"), 1)[0];
  }
  remove(v: unknown): void {
    const i = this.#a.findIndex((x) => equal(x, v));
    if (i < 0) throw new ValueError(`Cannot remove ${repr(v)}: it is not in the list`);
    this.#a.splice(i, 1);
  }
  index(v: unknown, start = 0, stop = this.#a.length): number {
    const n = this.#a.length;
    const from = Math.max(start < 0 ? start + n : start, 0);
    const to = Math.min(stop < 0 ? stop + n : stop, n);
    for (let i = from; i < to; i++) if (equal(this.#a[i], v)) return i;
    throw new ValueError(`${repr(v)} is not in the list`);
  }
  count(v: unknown): number {
    return this.#a.filter((x) => equal(x, v)).length;
  }
  length(): number {
    return this.#a.length;
  }
  slice(start?: number, end?: number): unknown[] {
    return this.#a.slice(start, end);
  }
  sort(options: { reverse?: boolean } = {}): void {
    const sorted = [...this.#a].sort(compare); // throws before anything changes
    this.#a = options.reverse ? sorted.reverse() : sorted;
  }
  reverse(): void {
    this.#a.reverse();
  }
  clear(): void {
    this.#a.length = 0;
  }
  toArray(): unknown[] {
    return this.#a;
  }
}

class NamespaceImpl {
  #m: Map<string, unknown>;
  constructor(init: Record<string, unknown> = {}) {
    this.#m = new Map(Object.entries(init));
  }
  get(name: string): unknown {
    if (!this.#m.has(name)) throw new AttributeError(`The namespace has no attribute ${repr(name)}`);
    return this.#m.get(name);
  }
  set(name: string, value: unknown): void {
    if (typeof name !== "string") {
      throw new TypeError(`Invalid attribute name: ${repr(name)}: expected a string`);
    }
    this.#m.set(name, value);
  }
  delete(name: string): void {
    if (!this.#m.delete(name)) throw new AttributeError(`The namespace has no attribute ${repr(name)}`);
  }
  toObject(): Record<string, unknown> {
    return Object.fromEntries(this.#m);
  }
}

class ValueImpl {
  #v: unknown;
  constructor(v: unknown) {
    this.#v = v;
  }
  get(): unknown {
    return this.#v;
  }
  set(v: unknown): void {
    this.#v = v;
  }
}

/** The wait options of a queue call, as they came over the wire (checked by `checkWait`). */
type WaitOptions = unknown;

/** Errors that are the documented outcome of a queue call: raised as the native class. */
const nativeErrors = new WeakSet<object>();
function native<E extends Error>(e: E): E {
  nativeErrors.add(e);
  return e;
}

/** A queue living in the server (CPython's manager serves a `queue.Queue` the same way). */
class QueueImpl {
  #items: unknown[] = [];
  #maxsize: number;
  #unfinished = 0;
  #wakers = new Set<() => void>();
  constructor(maxsize = 0) {
    if (typeof maxsize !== "number" || !Number.isInteger(maxsize) || maxsize < 0) {
      throw native(new RangeError(`Invalid maxsize: ${maxsize}: expected an integer from 0 (unbounded)`));
    }
    this.#maxsize = maxsize;
  }
  #changed(): void {
    const wakers = [...this.#wakers];
    this.#wakers.clear();
    for (const w of wakers) w();
  }
  /** Waits until `ready()`; false when the timeout passed first. */
  async #until(ready: () => boolean, opts: WaitOptions, signal: AbortSignal): Promise<boolean> {
    let wait;
    try {
      wait = checkWait(opts, "a queue call");
    } catch (e) {
      throw native(e as TypeError); // the proxy checks first; this is for clients that did not
    }
    if (ready()) return true;
    if (!wait.block || !(wait.timeout > 0)) return false;
    const deadline = new Deadline(wait.timeout);
    const aborted = whenAborted([signal]);
    try {
      while (!ready()) {
        signal.throwIfAborted();
        const left = deadline.left();
        if (left <= 0) return false;
        const timer = new AbortController();
        let wake!: () => void;
        const woken = new Promise<void>((resolve) => wake = resolve);
        this.#wakers.add(wake);
        await Promise.race([woken, aborted.promise, sleep(left, { signal: timer.signal }).catch(() => {})]);
        timer.abort();
        this.#wakers.delete(wake);
      }
      return true;
    } finally {
      aborted.dispose();
    }
  }
  #full(): boolean {
    return this.#maxsize > 0 && this.#items.length >= this.#maxsize;
  }
  #full_error(): QueueFullError {
    return native(new QueueFullError(`Queue is full: it holds its maxsize of ${this.#maxsize} items`));
  }
  async put(item: unknown, opts: WaitOptions, signal: AbortSignal): Promise<void> {
    if (!(await this.#until(() => !this.#full(), opts, signal))) throw this.#full_error();
    this.putNowait(item);
  }
  putNowait(item: unknown): void {
    if (this.#full()) throw this.#full_error();
    this.#items.push(item);
    this.#unfinished++;
    this.#changed();
  }
  async get(opts: WaitOptions, signal: AbortSignal): Promise<unknown> {
    if (!(await this.#until(() => this.#items.length > 0, opts, signal))) {
      throw native(new QueueEmptyError());
    }
    return this.getNowait();
  }
  getNowait(): unknown {
    if (this.#items.length === 0) throw native(new QueueEmptyError());
    const item = this.#items.shift();
    this.#changed();
    return item;
  }
  qsize(): number {
    return this.#items.length;
  }
  empty(): boolean {
    return this.#items.length === 0;
  }
  full(): boolean {
    return this.#full();
  }
  taskDone(): void {
    if (this.#unfinished <= 0) {
      throw native(
        new RangeError("Cannot mark a task done: taskDone() was called more times than items were put"),
      );
    }
    if (--this.#unfinished === 0) this.#changed();
  }
  async join(signal: AbortSignal): Promise<void> {
    await this.#until(() => this.#unfinished === 0, undefined, signal);
  }
}

type Impl = DictImpl | ListImpl | NamespaceImpl | ValueImpl | QueueImpl;

const QUEUE_METHODS = ["put", "putNowait", "get", "getNowait", "qsize", "empty", "full"];
/** What each proxied type can be asked, and how it is made. */
const TYPES: Record<string, { methods: Set<string>; make(...args: unknown[]): Impl }> = {
  dict: {
    methods: new Set([
      "get",
      "set",
      "has",
      "delete",
      "keys",
      "values",
      "entries",
      "size",
      "clear",
      "update",
      "pop",
      "setdefault",
      "toObject",
    ]),
    make: (entries) => new DictImpl(entries as [unknown, unknown][] | undefined),
  },
  list: {
    methods: new Set([
      "get",
      "set",
      "append",
      "extend",
      "insert",
      "pop",
      "remove",
      "index",
      "count",
      "length",
      "slice",
      "sort",
      "reverse",
      "clear",
      "toArray",
    ]),
    make: (items) => new ListImpl(items as unknown[] | undefined),
  },
  namespace: {
    methods: new Set(["get", "set", "delete", "toObject"]),
    make: (init) => new NamespaceImpl(init as Record<string, unknown> | undefined),
  },
  value: { methods: new Set(["get", "set"]), make: (v) => new ValueImpl(v) },
  queue: { methods: new Set(QUEUE_METHODS), make: (n) => new QueueImpl(n as number | undefined) },
  joinableQueue: {
    methods: new Set([...QUEUE_METHODS, "taskDone", "join"]),
    make: (n) => new QueueImpl(n as number | undefined),
  },
};
/** Queue methods that may wait: they get the request's abort signal as their last argument. */
const WAITING = new Set(["put", "get", "join"]);

type Native = Lock | RLock | Semaphore | BoundedSemaphore | Condition | Event | Barrier;
const NATIVES: Record<string, (...args: never[]) => Native> = {
  lock: () => new Lock(),
  rlock: () => new RLock(),
  semaphore: (n?: number) => new Semaphore(n),
  boundedSemaphore: (n?: number) => new BoundedSemaphore(n),
  condition: (lock?: Lock | RLock) => new Condition(lock),
  event: () => new Event(),
  barrier: (parties: number, options?: { timeout?: number }) =>
    new Barrier(parties, { timeout: options?.timeout }),
};

/** What the server tells the process that started it, once (the address: a TCP port may be 0). */
export type ServerReady = { ok: true; address: ManagerAddress } | {
  ok: false;
  name: string;
  message: string;
};

/** How the server guards itself against connections that do not authenticate. */
export interface ServerLimits {
  /** A connection that has not proven it knows the authkey after this many ms is closed. */
  handshakeMs: number;
  /** At most this many connections may be authenticating at once; more are closed at once. */
  maxUnauthenticated: number;
}

/** The limits a manager's server runs with. */
export const SERVER_LIMITS: ServerLimits = { handshakeMs: 10_000, maxUnauthenticated: 64 };
/** After a failed accept() (EMFILE: out of fds), the server waits this long, doubling up to 1 s. */
const ACCEPT_BACKOFF_MS = 10;
const ACCEPT_BACKOFF_MAX_MS = 1000;

/**
 * The server's main: runs until a client asks it to shut down, or SIGTERM/SIGINT. Nothing a
 * client does, authenticated or not, ends it: a failed write to a client that went away is that
 * client's loss, an accept() that fails (out of fds) is retried after a pause, a connection that
 * does not authenticate within `limits.handshakeMs` is closed, and at most
 * `limits.maxUnauthenticated` may try at once.
 */
export async function serve(
  ready: Connection<ServerReady>,
  address: ManagerAddress,
  authkey: Uint8Array,
  limits: ServerLimits = SERVER_LIMITS,
): Promise<void> {
  // The last line of defence: a rejection nobody handled is a bug in this file, and it must cost
  // one request, not every dict, list and queue of every client.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    console.error("multiprocessing manager: unhandled rejection (the server keeps running):", e.reason);
  });
  let listener: Deno.Listener;
  try {
    listener = "path" in address
      ? Deno.listen({ transport: "unix", path: address.path })
      : Deno.listen({ transport: "tcp", hostname: address.hostname, port: address.port });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    await ready.send({ ok: false, name: err.name, message: err.message });
    ready.close();
    return;
  }
  const bound: ManagerAddress = "path" in address
    ? address
    : { hostname: address.hostname, port: (listener.addr as Deno.NetAddr).port };
  const where = addressKey(bound);

  const objects = new Map<number, { type: string; impl: Impl }>();
  const natives: Native[] = [];
  const channels = new Set<FrameChannel>();
  let nextId = 1;
  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((r) => stopped = r);

  const stop = () => {
    if (stopping) return;
    stopping = true;
    try {
      listener.close();
    } catch { /* closed */ }
    for (const ch of channels) ch.close();
    for (const n of natives) {
      try {
        n.close();
      } catch { /* already closed */ }
    }
    if ("path" in bound) {
      try {
        Deno.removeSync(bound.path);
      } catch { /* gone */ }
    }
    for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.removeSignalListener(sig, stop);
    stopped();
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, stop);

  const manage = (method: string, args: unknown[]): unknown => {
    if (method === "shutdown") {
      setTimeout(stop, 0); // after the reply has gone out
      return null;
    }
    if (method !== "create") throw new AttributeError(`The manager has no method ${repr(method)}`);
    const [type, ...rest] = args as [string, ...unknown[]];
    const t = TYPES[type];
    if (t) {
      const id = nextId++;
      objects.set(id, { type, impl: t.make(...rest) });
      return id;
    }
    const make = NATIVES[type];
    if (!make) throw new TypeError(`The manager cannot make a ${repr(type)}`);
    const obj = (make as (...a: unknown[]) => Native)(...rest);
    natives.push(obj);
    return obj;
  };

  const call = (objectId: number, method: string, args: unknown[], signal: AbortSignal): unknown => {
    if (objectId === 0) return manage(method, args);
    const entry = objects.get(objectId);
    if (!entry) throw new ReferenceError(`The manager at ${where} has no object ${objectId}`);
    if (!TYPES[entry.type].methods.has(method)) {
      throw new AttributeError(`A ${entry.type} proxy has no method ${repr(method)}`);
    }
    if (entry.impl instanceof QueueImpl && WAITING.has(method)) args = [...args, signal];
    return (entry.impl as unknown as Record<string, (...a: unknown[]) => unknown>)[method](...args);
  };

  let unauthenticated = 0;
  const serveConnection = async (conn: Deno.Conn) => {
    const ch = new FrameChannel(conn);
    if (unauthenticated >= limits.maxUnauthenticated || stopping) {
      ch.close();
      return;
    }
    unauthenticated++;
    channels.add(ch);
    const inflight = new Map<number, AbortController>();
    const tooSlow = setTimeout(() => ch.close(), limits.handshakeMs);
    try {
      try {
        await deliverChallenge(ch, authkey, "the client");
        await answerChallenge(ch, authkey, "the client");
      } finally {
        clearTimeout(tooSlow);
        unauthenticated--;
      }
      for (;;) {
        const frame = await ch.readFrame();
        if (frame === null) break;
        const { id, objectId, method, args: argBytes } = decodeRequest(frame);
        if (method === "cancel" && objectId === 0) {
          inflight.get((deserialize(argBytes) as number[])[0])?.abort();
          continue;
        }
        const ctl = new AbortController();
        inflight.set(id, ctl);
        // Revived now: the bytes are valid only until the next read.
        let args: unknown[] | Error;
        try {
          args = deserialize(argBytes) as unknown[];
        } catch (e) {
          args = e instanceof Error ? e : new Error(String(e));
        }
        (async () => {
          let reply: Uint8Array;
          try {
            if (args instanceof Error) throw args;
            let result = call(objectId, method, args, ctl.signal);
            if (result instanceof Promise) result = await result;
            reply = encodeReply(id, OK, serialize(result));
          } catch (e) {
            const err = e instanceof Error ? e : new Error(String(e));
            const kind = ctl.signal.aborted ? CANCELLED : nativeErrors.has(err) ? NATIVE_ERROR : ERROR;
            reply = encodeReply(id, kind, serialize([err.name, err.message, err.stack ?? ""]));
          } finally {
            inflight.delete(id);
          }
          await ch.writeFramed(reply).catch(() => {});
        })();
      }
    } catch {
      // A client that failed authentication or went away: nothing to do but forget it.
    } finally {
      for (const ctl of inflight.values()) ctl.abort();
      channels.delete(ch);
      ch.close();
    }
  };

  (async () => {
    let backoff = ACCEPT_BACKOFF_MS;
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (stopping || e instanceof Deno.errors.BadResource) return; // closed by stop()
        // Out of fds (EMFILE/ENFILE) or a connection that was reset before it was accepted: the
        // clients that are connected keep working; try again in a moment.
        await sleep(backoff);
        backoff = Math.min(2 * backoff, ACCEPT_BACKOFF_MAX_MS);
        continue;
      }
      backoff = ACCEPT_BACKOFF_MS;
      serveConnection(conn);
    }
  })();

  await ready.send({ ok: true, address: bound });
  ready.close();
  await done;
}
