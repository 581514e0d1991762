/**
 * Managers: a server process holding shared objects that other processes, on this machine or
 * another, use through proxies (CPython: `managers.py`).
 *
 * `Manager.start()` starts the server (a daemon child) listening on a Unix socket (by default in
 * a fresh temporary directory) or a TCP port. Every process that uses a proxy holds one
 * connection to the server, opened on first use and authenticated with an HMAC challenge both
 * ways, over which each call is a request answered by id (see `_manager_wire.ts`,
 * `_manager_client.ts`).
 *
 * A proxy travels as `{ address, authkey, id, type }`: passed to a child, or stored inside another
 * shared object, it comes back as a proxy to the same object. Objects are counted by reference:
 * one is freed when no proxy to it is open anywhere and it is not published by name.
 * Locks, semaphores, events, conditions and barriers are served too (`manager_sync.ts`), so they
 * work for clients on other machines.
 *
 * @module
 */
import type { Process } from "./process.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { track } from "./_tracker.ts";
import { raceTimeout, timeoutMs } from "./_wait.ts";
import type { ManagerAddress } from "./_manager_wire.ts";
import {
  checkAddress,
  checkAuthkey,
  checkTypes,
  type ManagerConnectOptions,
  type ManagerStartOptions,
  removeDir,
  STOP_TIMEOUT_MS,
} from "./_manager_options.ts";
import type { Described } from "./_manager_table.ts";
import { clientFor, dropClient, type Endpoint, endpoint, request } from "./_manager_clients.ts";
import { INTERNAL, makeProxy, refOf, type Remote } from "./_manager_proxy.ts";
import {
  type DictProxy,
  entriesOf,
  type JoinableQueueProxy,
  type ListProxy,
  type NamespaceProxy,
  type QueueProxy,
  type ValueProxy,
} from "./manager_proxies.ts";
import type {
  BarrierProxy,
  BoundedSemaphoreProxy,
  ConditionProxy,
  EventProxy,
  LockProxy,
  RLockProxy,
  SemaphoreProxy,
} from "./manager_sync.ts";

export type { ManagerAddress } from "./_manager_wire.ts";
export type { ManagerConnectOptions, ManagerStartOptions } from "./_manager_options.ts";
export {
  DictProxy,
  JoinableQueueProxy,
  ListProxy,
  NamespaceProxy,
  QueueProxy,
  ValueProxy,
} from "./manager_proxies.ts";
export {
  BarrierProxy,
  BoundedSemaphoreProxy,
  ConditionProxy,
  EventProxy,
  LockProxy,
  RLockProxy,
  SemaphoreProxy,
} from "./manager_sync.ts";
export { BaseProxy, ObjectProxy, type Remote } from "./_manager_proxy.ts";

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
  #to: Endpoint;
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
    this.#to = endpoint(address, authkey);
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
    const types = checkTypes(options.types);
    // Loaded here, not with the library: every child and thread imports the library.
    const { startServer } = await import("./_manager_start.ts");
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
    const { process, address: bound } = await startServer(address, authkey, types, tempDir);
    let manager: Manager | undefined;
    try {
      manager = new Manager(INTERNAL, bound, authkey, process, tempDir);
      await clientFor(endpoint(bound, authkey)); // connected and authenticated
      return manager;
    } catch (e) {
      await manager?.shutdown();
      throw e;
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
    await clientFor(endpoint(address, authkey), timeout);
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
      await raceTimeout(request(this.#to, 0, "shutdown", []), STOP_TIMEOUT_MS);
    } catch {
      // not running any more: nothing to stop
    }
    dropClient(this.#to);
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

  #manage(method: string, args: unknown[], what: string): Promise<unknown> {
    if (this.#shutdown) {
      return Promise.reject(new Error(`Cannot ${what}: the manager has been shut down`));
    }
    return request(this.#to, 0, method, args);
  }

  async #proxy<P>(type: string, args: unknown[]): Promise<P> {
    const d = await this.#manage("create", [type, ...args], `make a ${type}`) as Described;
    return makeProxy<P>(this.#ref(d), true);
  }

  #ref(d: Described) {
    return { address: this.#address, authkey: this.#authkey, id: d.id, type: d.type, extra: d.extra };
  }

  /**
   * Publishes `proxy`'s object under `name` (replacing what had that name): any client that knows
   * the authkey, in any program, gets a proxy to it with {@linkcode Manager.lookup}. A published
   * object lives while it is published, even when no proxy to it is open.
   */
  async publish(name: string, proxy: object): Promise<void> {
    if (typeof name !== "string" || name === "") {
      throw new TypeError(`Invalid name: ${Deno.inspect(name)}: expected a non-empty string`);
    }
    const ref = refOf(proxy, `publish ${JSON.stringify(name)}`);
    if (endpoint(ref.address, ref.authkey).key !== this.#to.key) {
      throw new TypeError(
        `Cannot publish ${JSON.stringify(name)}: the proxy belongs to another manager (at ${
          JSON.stringify(ref.address)
        })`,
      );
    }
    await this.#manage("publish", [name, ref.id], `publish ${JSON.stringify(name)}`);
  }

  /**
   * Removes the name `name` (Python has none; `del` of a registry entry is the nearest). The
   * object stays while a proxy to it is open anywhere, and is freed once none is. Resolves
   * `true` when a name was removed, `false` when no object had that name.
   */
  async unpublish(name: string): Promise<boolean> {
    if (typeof name !== "string") {
      throw new TypeError(`Invalid name: ${Deno.inspect(name)}: expected a string`);
    }
    return await this.#manage("unpublish", [name], `unpublish ${JSON.stringify(name)}`) as boolean;
  }

  /**
   * A proxy to the object published as `name` (by any client of this manager). Rejects with
   * `Deno.errors.NotFound` when no object has that name.
   */
  async lookup<P = unknown>(name: string): Promise<P> {
    if (typeof name !== "string") {
      throw new TypeError(`Invalid name: ${Deno.inspect(name)}: expected a string`);
    }
    const d = await this.#manage("lookup", [name], `look up ${JSON.stringify(name)}`) as Described;
    return makeProxy<P>(this.#ref(d));
  }

  /** The names published on this manager. */
  names(): Promise<string[]> {
    return this.#manage("names", [], "list the names") as Promise<string[]>;
  }

  /**
   * An object of a custom type given to {@linkcode Manager.start} (`types`), made in the server
   * with `args`; the proxy has the type's exposed methods, each returning a promise.
   */
  // deno-lint-ignore no-explicit-any
  create<T = any>(type: string, ...args: unknown[]): Promise<Remote<T>> {
    if (typeof type !== "string") throw new TypeError(`Invalid type: ${Deno.inspect(type)}: expected a name`);
    return this.#proxy<Remote<T>>(type, args);
  }

  /** A shared dict, filled from `init` (an object, a Map or an iterable of pairs). */
  dict<V = unknown, K = string>(
    init?: Record<string, V> | Iterable<readonly [K, V]>,
  ): Promise<DictProxy<V, K>> {
    return this.#proxy("dict", [entriesOf(init)]);
  }

  /** A shared list, filled from `init`. */
  list<V = unknown>(init?: Iterable<V>): Promise<ListProxy<V>> {
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
  queue<T = unknown>(maxsize?: number): Promise<QueueProxy<T>> {
    return this.#proxy("queue", [maxsize ?? 0]);
  }

  /** A shared joinable queue (0 or omitted: unbounded). */
  joinableQueue<T = unknown>(maxsize?: number): Promise<JoinableQueueProxy<T>> {
    return this.#proxy("joinableQueue", [maxsize ?? 0]);
  }

  /** A lock held by the server, for clients anywhere (see {@linkcode LockProxy}). */
  lock(): Promise<LockProxy> {
    return this.#proxy("lock", []);
  }

  /** A reentrant lock held by the server; its owner is a client process. */
  rlock(): Promise<RLockProxy> {
    return this.#proxy("rlock", []);
  }

  /** A semaphore (default value 1) held by the server. */
  semaphore(value?: number): Promise<SemaphoreProxy> {
    return this.#proxy("semaphore", value === undefined ? [] : [value]);
  }

  /** A bounded semaphore (default value 1) held by the server. */
  boundedSemaphore(value?: number): Promise<BoundedSemaphoreProxy> {
    return this.#proxy("boundedSemaphore", value === undefined ? [] : [value]);
  }

  /**
   * A condition (on `lock`, a lock or rlock of this manager, or on a new rlock) held by the
   * server; its `lock` is a proxy to that lock.
   */
  async condition(lock?: LockProxy | RLockProxy): Promise<ConditionProxy> {
    if (lock !== undefined) return await this.#proxy("condition", [refOf(lock, "make a condition").id]);
    // Its own rlock, held by the condition in the server (this proxy to it can go at once).
    using own = await this.rlock();
    return await this.#proxy("condition", [refOf(own, "make a condition").id]);
  }

  /** An event held by the server. */
  event(): Promise<EventProxy> {
    return this.#proxy("event", []);
  }

  /** A barrier for `parties` waiters held by the server. */
  barrier(parties: number, options?: { timeout?: number }): Promise<BarrierProxy> {
    const timeout = options?.timeout === undefined ? undefined : timeoutMs(options.timeout, "barrier()");
    return this.#proxy("barrier", [parties, { timeout }]);
  }
}

/** How many objects the server holds (tests and benchmarks only: not exported by mod.ts). */
export function objectCount(manager: Manager): Promise<number> {
  return request(endpoint(manager.address, manager.authkey), 0, "count", []) as Promise<number>;
}
