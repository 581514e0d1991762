/**
 * The plain objects a manager's server holds (dict, list, namespace, value), the errors they
 * raise under Python's names, and the one way server objects wait for a change
 * ({@linkcode Changes}), which queues and synchronization objects share.
 *
 * @module
 */
import { serialize } from "./_reduction.ts";
import { checkWait, Deadline, sleep, whenAborted } from "./_wait.ts";

export class KeyError extends Error {
  override name = "KeyError";
}
export class IndexError extends Error {
  override name = "IndexError";
}
export class ValueError extends Error {
  override name = "ValueError";
}
export class AttributeError extends Error {
  override name = "AttributeError";
}

export function repr(v: unknown): string {
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

export class DictImpl {
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

export class ListImpl {
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

export class NamespaceImpl {
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

export class ValueImpl {
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

/** Errors that are the documented outcome of a call: raised as the native class by the client. */
export const nativeErrors = new WeakSet<object>();
/** Marks `e` as an error of the native class's API (QueueEmptyError, RangeError, ...). */
export function native<E extends Error>(e: E): E {
  nativeErrors.add(e);
  return e;
}

/**
 * Waiting for a change of one server object. `until(attempt, wait, signal)` calls `attempt()`
 * (which checks AND takes, in one synchronous step, so that two waiters woken together cannot
 * both take) now and after each `changed()`, until it returns true, the wait's timeout passes
 * (false), or `signal` aborts (its reason is thrown).
 */
export class Changes {
  #wakers = new Set<() => void>();

  /** Wakes every waiter, which then tries again. */
  changed(): void {
    if (this.#wakers.size === 0) return;
    const wakers = [...this.#wakers];
    this.#wakers.clear();
    for (const w of wakers) w();
  }

  /**
   * Tries `attempt` until it succeeds (true) or the wait ends (false). `wait` is
   * `{ block, timeout }` as it came over the wire (checked here). An attempt that succeeds at
   * once, or a wait of none, answers without a promise: the server then replies in the same tick.
   */
  until(
    attempt: () => boolean,
    wait: unknown,
    signal: AbortSignal,
    what: string,
  ): boolean | Promise<boolean> {
    let checked;
    try {
      checked = checkWait(wait, what);
    } catch (e) {
      throw native(e as TypeError); // the proxy checks first; this is for clients that did not
    }
    if (attempt()) return true;
    if (!checked.block || !(checked.timeout > 0)) return false;
    return this.#wait(attempt, checked.timeout, signal);
  }

  async #wait(attempt: () => boolean, timeout: number, signal: AbortSignal): Promise<boolean> {
    const deadline = new Deadline(timeout);
    const aborted = whenAborted([signal]);
    try {
      for (;;) {
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
        signal.throwIfAborted();
        if (attempt()) return true;
      }
    } finally {
      aborted.dispose();
    }
  }
}
