/**
 * Proxies to the plain objects a manager holds: dict, list, namespace, value, queue and joinable
 * queue (CPython: `DictProxy`, `ListProxy`, `NamespaceProxy`, `ValueProxy`, `Queue`).
 *
 * @module
 */
import type { QueueWaitOptions } from "./queue.ts";
import { checkWait } from "./_wait.ts";
import { BaseProxy, call, checkOpen, registerProxy } from "./_manager_proxy.ts";

export function entriesOf(init: unknown): [unknown, unknown][] {
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
export class DictProxy<V = unknown, K = string> extends BaseProxy {
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
export class ListProxy<V = unknown> extends BaseProxy {
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
export class NamespaceProxy extends BaseProxy {
  /** The attribute `name`. */
  get<T = unknown>(name: string): Promise<T> {
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
  toObject(): Promise<Record<string, unknown>> {
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
export class ValueProxy<V = unknown> extends BaseProxy {
  /** The value. */
  get(): Promise<V> {
    return call(this, "get", []);
  }
  /** Replaces the value. */
  set(value: V): Promise<void> {
    return call(this, "set", [value]);
  }
}

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
export class QueueProxy<T = unknown> extends BaseProxy {
  /** Puts an item, waiting for room in a bounded queue ({@linkcode QueueFullError} if none). */
  put(item: T, options?: QueueWaitOptions): Promise<void> {
    checkOpen(this, "put");
    const wait = checkWait(options, "put()");
    return call(this, "put", [item, { block: wait.block, timeout: wait.timeout }], wait.signal);
  }
  /** Puts an item if there is room at once, else rejects with {@linkcode QueueFullError}. */
  putNowait(item: T): Promise<void> {
    return call(this, "putNowait", [item]);
  }
  /** Takes the next item, waiting for one ({@linkcode QueueEmptyError} if none comes). */
  get(options?: QueueWaitOptions): Promise<T> {
    checkOpen(this, "get");
    const wait = checkWait(options, "get()");
    return call(this, "get", [{ block: wait.block, timeout: wait.timeout }], wait.signal);
  }
  /** Takes the next item if there is one at once, else rejects with {@linkcode QueueEmptyError}. */
  getNowait(): Promise<T> {
    return call(this, "getNowait", []);
  }
  /** The number of items in the queue. */
  qsize(): Promise<number> {
    return call(this, "qsize", []);
  }
  /** True when the queue holds no item. */
  empty(): Promise<boolean> {
    return call(this, "empty", []);
  }
  /** True when a bounded queue holds `maxsize` items. */
  full(): Promise<boolean> {
    return call(this, "full", []);
  }
  /** Resolves at once: a put has reached the server when its promise resolves. */
  joinThread(): Promise<void> {
    return Promise.resolve();
  }
  /** Does nothing: nothing is buffered in this process. */
  cancelJoinThread(): void {}
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
export class JoinableQueueProxy<T = unknown> extends QueueProxy<T> {
  /** Says an item taken with `get()` is processed (`RangeError` when more than were put). */
  taskDone(): Promise<void> {
    return call(this, "taskDone", []);
  }
  /** Resolves once every item put so far has been marked done. */
  join(options?: { signal?: AbortSignal }): Promise<void> {
    checkOpen(this, "join");
    return call(this, "join", [], checkWait(options, "join()").signal);
  }
}

registerProxy("dict", DictProxy);
registerProxy("list", ListProxy);
registerProxy("namespace", NamespaceProxy);
registerProxy("value", ValueProxy);
registerProxy("queue", QueueProxy);
registerProxy("joinableQueue", JoinableQueueProxy);
