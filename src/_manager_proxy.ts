/**
 * What every manager proxy shares: its reference (`{ address, authkey, id, type }`, which is
 * what travels when a proxy is sent to another process), the call path, reference counting
 * (close(), or the garbage collector, lets go of the object), and revival by type.
 *
 * @module
 */
import { registerReducer } from "./_reduction.ts";
import { type Endpoint, endpoint, request } from "./_manager_clients.ts";
import { holdRef, lend, releaseRef } from "./_manager_refs.ts";
import type { ManagerAddress } from "./_manager_wire.ts";
import { forgetCollected, onCollected } from "./_resource.ts";

/** Only a Manager (and revival) makes proxies. */
export const INTERNAL: unique symbol = Symbol("Manager.internal");

/** What a proxy is: which object of which manager. It is all that travels. */
export interface ProxyRef {
  address: ManagerAddress;
  authkey: Uint8Array;
  id: number;
  type: string;
  /** What the proxy needs besides (a custom type's methods, a barrier's parties). */
  extra?: Record<string, unknown>;
}

interface State {
  ref: ProxyRef;
  to: Endpoint;
  closed: boolean;
}

/** The cleanup of a collected proxy: built here, where the proxy is out of sight. */
function releaser(to: Endpoint, id: number): () => void {
  return () => releaseRef(to, id);
}

let stateOf!: (p: BaseProxy) => State;

/**
 * The base of every manager proxy. The object it points at lives in the manager's server as long
 * as a proxy to it is open anywhere (in any process), or it is published by name.
 *
 * @example Close a proxy when done with it
 * ```ts
 * import { Manager } from "@mp/multiprocessing";
 *
 * await using manager = await Manager.start();
 * const d = await manager.dict<number>();
 * await d.set("a", 1);
 * d.close(); // the server may drop the dict once no proxy to it is open
 * ```
 */
export class BaseProxy {
  #s: State;

  /** @internal Proxies come from a {@linkcode Manager}. `counted`: the server counts it already. */
  constructor(token: symbol, ref: ProxyRef, counted = false) {
    if (token !== INTERNAL) {
      throw new TypeError("Cannot construct a proxy directly: ask a Manager, e.g. `await manager.dict()`");
    }
    const to = endpoint(ref.address, ref.authkey);
    this.#s = { ref, to, closed: false };
    holdRef(to, ref.id, counted);
    // A proxy collected without close() lets go of its object too.
    onCollected(this, releaser(to, ref.id));
  }

  /**
   * Says this process will use this proxy no more: once no proxy to the object is left open
   * anywhere (and it is not published), the server frees it. Further calls on this proxy throw
   * `Deno.errors.BadResource`. Idempotent.
   */
  close(): void {
    const s = this.#s;
    if (s.closed) return;
    s.closed = true;
    forgetCollected(this);
    releaseRef(s.to, s.ref.id);
  }

  /** Closes this proxy: `using d = await manager.dict()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  static {
    stateOf = (p) => p.#s;
  }
}

/** The reference of an open proxy (for `publish`). */
export function refOf(proxy: unknown, what: string): ProxyRef {
  if (!(proxy instanceof BaseProxy)) {
    throw new TypeError(`Cannot ${what}: expected a proxy made by a Manager, got ${Deno.inspect(proxy)}`);
  }
  const s = stateOf(proxy);
  if (s.closed) throw new Deno.errors.BadResource(`Cannot ${what}: the proxy was closed`);
  return s.ref;
}

/** A proxy to object `id` (of `type`) of the manager that `proxy` belongs to. */
export function relatedProxy<P>(proxy: BaseProxy, id: number, type: string): P {
  const { address, authkey } = stateOf(proxy).ref;
  return makeProxy<P>({ address, authkey, id, type });
}

/** What the server said about the proxy's object besides its type. */
export function extraOf(proxy: BaseProxy): Record<string, unknown> {
  return stateOf(proxy).ref.extra ?? {};
}

/** Throws `Deno.errors.BadResource` when the proxy was closed. */
export function checkOpen(proxy: BaseProxy, what: string): void {
  if (stateOf(proxy).closed) {
    throw new Deno.errors.BadResource(`Cannot ${what}: this ${stateOf(proxy).ref.type} proxy was closed`);
  }
}

/** Calls `method` of the proxy's object; `args` are serialized at once (a bad one throws here). */
export function call<R>(proxy: BaseProxy, method: string, args: unknown[], signal?: AbortSignal): Promise<R> {
  const s = stateOf(proxy);
  if (s.closed) {
    throw new Deno.errors.BadResource(`Cannot call ${method}(): this ${s.ref.type} proxy was closed`);
  }
  return request(s.to, s.ref.id, method, args, signal) as Promise<R>;
}

type ProxyClass = new (token: symbol, ref: ProxyRef, counted?: boolean) => BaseProxy;
const classes = new Map<string, ProxyClass>();

/** Says which class serves proxies of `type` (types without one get an {@linkcode ObjectProxy}). */
export function registerProxy(type: string, cls: ProxyClass): void {
  classes.set(type, cls);
}

/** A proxy for `ref`; `counted`: the server already counts this process as holding it. */
export function makeProxy<P>(ref: ProxyRef, counted = false): P {
  const cls = classes.get(ref.type) ?? ObjectProxy;
  return new cls(INTERNAL, ref, counted) as P;
}

/**
 * A proxy to an object of a custom type (see `ManagerStartOptions.types`): it has one method per
 * name the type exposes, each a round trip to the server that returns a promise.
 *
 * @example A counter kept in the server
 * ```ts
 * import { Manager, ObjectProxy } from "@mp/multiprocessing";
 *
 * export class Counter {
 *   n = 0;
 *   inc(by: number): number {
 *     return this.n += by;
 *   }
 * }
 *
 * if (import.meta.main) {
 *   await using manager = await Manager.start({
 *     types: { Counter: { module: import.meta.url, export: "Counter" } },
 *   });
 *   const counter = await manager.create<Counter>("Counter");
 *   console.log(counter instanceof ObjectProxy, await counter.inc(2)); // true 2
 * }
 * ```
 */
export class ObjectProxy extends BaseProxy {
  /** @internal Proxies come from a {@linkcode Manager}. */
  constructor(token: symbol, ref: ProxyRef, counted = false) {
    super(token, ref, counted);
    const exposed = (ref.extra?.exposed ?? []) as string[];
    for (const name of exposed) {
      // close() and dispose stay the proxy's; a `then` would make the proxy a thenable, which
      // `await` would call instead of returning the proxy.
      if (name in this || name === "then") continue;
      Object.defineProperty(this, name, {
        value: (...args: unknown[]) => call(this, name, args),
        enumerable: true,
      });
    }
  }
}

/**
 * A proxy to a `T` of a custom type: each of its methods, returning a promise.
 *
 * @example The type of a custom object's proxy
 * ```ts
 * import type { Remote } from "@mp/multiprocessing";
 *
 * class Counter {
 *   n = 0;
 *   inc(by: number): number {
 *     return this.n += by;
 *   }
 * }
 * // { inc(by: number): Promise<number> }, and the proxy's own members
 * async function bump(counter: Remote<Counter>): Promise<number> {
 *   return await counter.inc(1);
 * }
 * console.log(typeof bump); // function
 * ```
 */
export type Remote<T> =
  & {
    // deno-lint-ignore no-explicit-any
    [K in keyof T as T[K] extends (...args: any[]) => unknown ? K : never]: T[K] extends
      (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
  }
  & ObjectProxy;

registerReducer(BaseProxy, {
  name: "mp.Proxy",
  reduce: (p: BaseProxy) => {
    const s = stateOf(p);
    if (!s.closed) lend(s.to, s.ref.id); // the object outlives the trip
    return s.ref;
  },
  revive: (ref: ProxyRef) => makeProxy(ref),
});
