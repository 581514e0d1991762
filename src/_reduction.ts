/**
 * What can travel between processes, and how (CPython: `reduction.py`).
 *
 * Values use V8's structured-clone wire format. The library's own objects (locks, queues,
 * connections, shared memory, proxies) cannot be cloned as plain data: each class registers a
 * reducer that turns an instance into a small state (a semaphore's name, an fd number, ...) and
 * back. When a message contains any of them, the serializer sends a copy of the value in which
 * each such object is replaced by a marker, plus the list of reduced states; the receiver revives
 * them in place.
 *
 * An fd inside a message (a connection or queue in a queue item, a `send()`, a pool task) goes
 * through this process's fd sharer (`src/_fd_sharer.ts`): the state holds an index into the
 * message's handles, and the receiver fetches each fd while reviving.
 *
 * Deno's own resources (an open file, a socket, a child process) cannot travel: the sending call
 * throws a TypeError that names them, rather than let them arrive as `{}`.
 *
 * @module
 */
import { fastSerializer, type Serializer } from "../native/v8.ts";
import { close as closeFd } from "../native/mod.ts";
import { type FdHandle, share as shareFd, take as takeFd, withdraw as withdrawFd } from "./_fd_sharer.ts";

/** What a reducer may ask of the transport carrying the value. */
export interface ReduceContext {
  /**
   * Asks that `fd` reach the receiver, and returns what to put in the state: the number the
   * receiver finds it under when starting a process (inherited: the same number) or a thread (a
   * duplicate, so that the thread and this program close their copies independently); inside a
   * message, an index into the message's fd handles (`src/_fd_sharer.ts`). The reviver turns
   * it back into an fd with {@linkcode receivedFd}.
   */
  passFd(fd: number): number;
}

/** The fd handles of the message being revived (null: fds arrived as numbers). */
let incoming: { handles: FdHandle[]; taken: number[] } | null = null;

/**
 * The fd a reducer's `passFd()` result stands for, in the process reviving it: a reviver of an
 * object holding fds calls this on each. Inside a message it fetches the fd from the sender.
 */
export function receivedFd(passed: number): number {
  if (incoming === null) return passed;
  const h = incoming.handles[passed];
  if (h === undefined) throw new TypeError(`Cannot revive this message: fd handle ${passed} is missing`);
  const fd = takeFd(h);
  incoming.taken.push(fd);
  return fd;
}

/** How instances of one library class travel. */
export interface Reducer<T extends object, S> {
  /** A stable name, the same in every process. */
  readonly name: string;
  reduce(obj: T, ctx: ReduceContext): S;
  revive(state: S): T;
}

// deno-lint-ignore no-explicit-any
type Class = abstract new (...args: any[]) => object;
// deno-lint-ignore no-explicit-any
type AnyReducer = Reducer<any, any>;

const byClass = new Map<Class, AnyReducer>();
const byName = new Map<string, AnyReducer>();

/** Registers how instances of `cls` (and its subclasses, unless they register their own) travel. */
export function registerReducer<T extends object, S>(
  cls: abstract new (...args: never[]) => T,
  reducer: Reducer<T, S>,
): void {
  byClass.set(cls as unknown as Class, reducer);
  byName.set(reducer.name, reducer);
}

function reducerFor(obj: object): AnyReducer | undefined {
  if (byClass.size === 0) return undefined;
  for (
    let p = Object.getPrototypeOf(obj);
    p !== null && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    const r = byClass.get(p.constructor);
    if (r) return r;
  }
  return undefined;
}

// Deno's own binding to V8's ValueSerializer (native/v8.ts) is ~10x faster than node:v8's and
// writes the same format; fall back to node:v8 when this Deno has none.
// Loading any node: module costs a child ~3-15 ms of start-up: node:v8 only when needed.
const v8: Serializer = fastSerializer ?? await import("node:v8");

function v8Serialize(value: unknown): Uint8Array {
  try {
    return v8.serialize(value);
  } catch (e) {
    throw cloneError(e);
  }
}

function v8Deserialize(bytes: Uint8Array): unknown {
  return v8.deserialize(bytes);
}

function cloneError(e: unknown): Error {
  const detail = e instanceof Error ? e.message : String(e);
  return new DOMException(
    `Cannot send this value to another process: ${detail} Only structured-clone data (and this library's own objects) can travel; functions, symbols, sockets and class instances' methods cannot.`,
    "DataCloneError",
  );
}

const PLAIN = 0;
/** The first byte of every V8 serialization (its version tag). */
const V8_VERSION_TAG = 0xff;
const WITH_HANDLES = 1;
/** As WITH_HANDLES, plus the fd handles that the states' fd indices point into. */
const WITH_FDS = 3;
/** A dense array of numbers, sent as raw float64s: ~10x cheaper than V8's format per element. */
const NUMBERS = 2;
/** Below this length the check is not worth it. */
const NUMBERS_MIN = 64;
const HANDLE_KEY = "__multiprocessing_handle__";

/**
 * Serializes `value` to bytes. Throws a `DataCloneError` naming the value when something in it
 * cannot travel.
 */
export function serialize(value: unknown, ctx?: ReduceContext): Uint8Array {
  if (Array.isArray(value) && value.length >= NUMBERS_MIN && isNumberArray(value)) return numbersFrame(value);
  // Plain data goes as V8's own bytes, uncopied: they start with V8's version tag (0xFF), which
  // no kind byte below uses. (Copying them behind a kind byte cost ~0.4 µs of ~1.3 µs.)
  if (isFlat(value) || !containsReducible(value, new Set())) return v8Serialize(value);
  const states: [string, unknown][] = [];
  if (ctx) return frame(WITH_HANDLES, v8Serialize([replaceReducible(value, new Map(), states, ctx), states]));
  // A message: fds go through the fd sharer. If the message cannot be made after all, the
  // duplicates kept for it are closed here, so nothing stays held for a message never sent.
  const handles: FdHandle[] = [];
  try {
    const copy = replaceReducible(value, new Map(), states, {
      passFd: (fd) => handles.push(shareFd(fd)) - 1,
    });
    if (handles.length === 0) return frame(WITH_HANDLES, v8Serialize([copy, states]));
    return frame(WITH_FDS, v8Serialize([copy, states, handles]));
  } catch (e) {
    for (const h of handles) withdrawFd(h);
    throw e;
  }
}

/** Revives a value made by {@linkcode serialize}, reviving library objects in this process. */
export function deserialize(bytes: Uint8Array): unknown {
  if (bytes[0] === V8_VERSION_TAG) return v8Deserialize(bytes);
  const body = bytes.subarray(1);
  if (bytes[0] === PLAIN) return v8Deserialize(body);
  if (bytes[0] === NUMBERS) return Array.from(new Float64Array(bytes.slice(8).buffer));
  const [copy, states, handles] = v8Deserialize(body) as [unknown, [string, unknown][], FdHandle[]?];
  const outer = incoming;
  incoming = bytes[0] === WITH_FDS ? { handles: handles ?? [], taken: [] } : null;
  const mine = incoming;
  try {
    const revived = states.map(([name, state]) => {
      const r = byName.get(name);
      if (!r) throw new TypeError(`Cannot revive a ${name}: this process has not loaded the code for it`);
      return r.revive(state);
    });
    return reviveMarkers(copy, revived, new Set());
  } catch (e) {
    // The objects revived so far are dropped with the message: close the fds they received.
    for (const fd of mine?.taken ?? []) closeFd(fd);
    throw e;
  } finally {
    incoming = outer;
  }
}

function isNumberArray(a: unknown[]): a is number[] {
  for (let i = 0; i < a.length; i++) {
    // `i in a` keeps holes out: a sparse array must come back sparse.
    if (typeof a[i] !== "number" || !(i in a)) return false;
  }
  return true;
}

function numbersFrame(a: number[]): Uint8Array {
  // The float64s start at offset 8 so they can be viewed in place; byte 0 is the kind.
  const out = new Uint8Array(8 + a.length * 8);
  out[0] = NUMBERS;
  new Float64Array(out.buffer, 8).set(a);
  return out;
}

function frame(kind: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 1);
  out[0] = kind;
  out.set(body, 1);
  return out;
}

function isContainer(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return false;
  if (Array.isArray(v) || v instanceof Map || v instanceof Set) return true;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * True for a primitive, or a plain object or array whose values are all primitives: the usual
 * message, which cannot hold a library object (checked without allocating anything).
 */
function isFlat(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x === "object" && x !== null) return false;
    }
    return true;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return false;
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k];
    if (typeof x === "object" && x !== null) return false;
  }
  return true;
}

/** Values that structured clone copies as they are: nothing of ours can hide inside them. */
function isLeaf(v: object): boolean {
  return ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Date || v instanceof RegExp ||
    v instanceof Boolean || v instanceof Number || v instanceof String;
}

/** Classes of Deno resources that `Deno` does not export by name. */
const DENO_RESOURCES = new Set([
  "Conn",
  "TcpConn",
  "UnixConn",
  "TlsConn",
  "VsockConn",
  "Listener",
  "TcpListener",
  "UnixListener",
  "TlsListener",
  "VsockListener",
  "DatagramConn",
  "FsWatcher",
  "HttpConn",
  "Stdin",
  "Stdout",
  "Stderr",
]);

/** The name of the Deno resource class `v` is an instance of, if it is one. */
function denoResource(v: object): string | undefined {
  for (let p = Object.getPrototypeOf(v); p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    const c = p.constructor;
    if (typeof c !== "function") continue;
    if ((Deno as unknown as Record<string, unknown>)[c.name] === c || DENO_RESOURCES.has(c.name)) {
      return c.name;
    }
  }
  return undefined;
}

function refuseResource(v: object): void {
  const what = denoResource(v);
  if (what === undefined) return;
  throw new TypeError(
    `Cannot send a Deno.${what} to another process: it is a resource of this process (an open file, socket, child process or the like), which cannot travel. Send what it names instead (a path, an address) and open it there, or send a Pipe() Connection`,
  );
}

function containsReducible(v: unknown, seen: Set<object>): boolean {
  if (typeof v !== "object" || v === null) return false;
  if (!isContainer(v)) {
    if (reducerFor(v) !== undefined) return true;
    refuseResource(v);
    if (isLeaf(v) || seen.has(v)) return false;
    seen.add(v);
    if (v instanceof Error) {
      // Structured clone keeps an error's message, stack and cause only: a library object in
      // them cannot be revived in place, so say so rather than let it arrive as {}.
      if (
        containsReducible((v as { cause?: unknown }).cause, seen) || containsReducible(Object.values(v), seen)
      ) {
        throw new DOMException(
          `Cannot send this ${v.name}: its cause or fields hold a lock, queue or other object of this library, which cannot travel inside an error`,
          "DataCloneError",
        );
      }
      return false;
    }
    // Any other class instance travels as a plain object of its own fields: look inside.
    for (const x of Object.values(v)) if (containsReducible(x, seen)) return true;
    return false;
  }
  if (seen.has(v)) return false;
  seen.add(v);
  if (v instanceof Map) {
    for (const [k, x] of v) if (containsReducible(k, seen) || containsReducible(x, seen)) return true;
    return false;
  }
  const values = v instanceof Set ? v : Array.isArray(v) ? v : Object.values(v);
  for (const x of values) if (containsReducible(x, seen)) return true;
  return false;
}

function replaceReducible(
  v: unknown,
  memo: Map<object, unknown>,
  states: [string, unknown][],
  ctx: ReduceContext,
): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (memo.has(v)) return memo.get(v);
  if (!isContainer(v)) {
    const r = reducerFor(v);
    // Leaves and errors cannot hold ours (containsReducible threw for an error that did); any
    // other class instance is copied as the plain object structured clone would make of it.
    if (!r && (isLeaf(v) || v instanceof Error)) return v;
    if (!r) return replaceFields(v, {}, memo, states, ctx);
    const marker = { [HANDLE_KEY]: states.length };
    states.push([r.name, r.reduce(v, ctx)]);
    memo.set(v, marker);
    return marker;
  }
  const rec = (x: unknown) => replaceReducible(x, memo, states, ctx);
  if (v instanceof Map) {
    const m = new Map();
    memo.set(v, m);
    for (const [k, x] of v) m.set(rec(k), rec(x));
    return m;
  }
  if (v instanceof Set) {
    const s = new Set();
    memo.set(v, s);
    for (const x of v) s.add(rec(x));
    return s;
  }
  const out = Array.isArray(v) ? new Array(v.length) : Object.create(Object.getPrototypeOf(v));
  return replaceFields(v, out, memo, states, ctx);
}

function replaceFields(
  v: object,
  out: Record<string, unknown>,
  memo: Map<object, unknown>,
  states: [string, unknown][],
  ctx: ReduceContext,
): unknown {
  memo.set(v, out);
  for (const k of Object.keys(v)) {
    out[k] = replaceReducible((v as Record<string, unknown>)[k], memo, states, ctx);
  }
  return out;
}

function reviveMarkers(v: unknown, revived: unknown[], seen: Set<object>): unknown {
  if (typeof v !== "object" || v === null || !isContainer(v)) return v;
  if (!Array.isArray(v) && !(v instanceof Map) && !(v instanceof Set) && HANDLE_KEY in v) {
    return revived[(v as Record<string, number>)[HANDLE_KEY]];
  }
  if (seen.has(v)) return v;
  seen.add(v);
  const rec = (x: unknown) => reviveMarkers(x, revived, seen);
  if (v instanceof Map) {
    const entries = [...v];
    v.clear();
    for (const [k, x] of entries) v.set(rec(k), rec(x));
  } else if (v instanceof Set) {
    const items = [...v];
    v.clear();
    for (const x of items) v.add(rec(x));
  } else {
    for (const k of Object.keys(v)) {
      (v as Record<string, unknown>)[k] = rec((v as Record<string, unknown>)[k]);
    }
  }
  return v;
}
