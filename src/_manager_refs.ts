/**
 * Reference counts across processes (CPython: `BaseProxy._incref`/`_decref`). This process
 * counts its live proxies per object, and tells the server only when the first appears (incref)
 * and the last goes (decref): the server counts each connection once and forgets what a
 * connection held when it ends. In the server itself, proxies revived inside stored values count
 * directly in its table.
 *
 * @module
 */
import { serialize } from "./_reduction.ts";
import { type Endpoint, endpoint, openClient, request } from "./_manager_clients.ts";
import type { ManagerAddress } from "./_manager_wire.ts";

interface LocalServer {
  incref(id: number): void;
  decref(id: number): void;
}

const counts = new Map<string, number>();
let localServer: { key: string; hooks: LocalServer } | undefined;

/** Called by the server: proxies to itself revived in its process count in its own table. */
export function setLocalServer(address: ManagerAddress, authkey: Uint8Array, hooks: LocalServer): void {
  localServer = { key: endpoint(address, authkey).key, hooks };
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
  openClient(to)?.request(0, "decref", serialize([id])).catch(() => {});
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
