/**
 * This process's connections to managers: one per manager (address and authkey), opened and
 * authenticated on first use, shared by every proxy and by `Manager` itself.
 *
 * The connection's code (`Client` in `_manager_client.ts`, with the socket and the wire) is
 * imported on the first connect, not with the library: every child process and thread imports
 * the library, and most never use a manager. (A proxy revived in a child connects at once: its
 * revival tells the server it holds a reference.)
 *
 * @module
 */
import type { Client } from "./_manager_client.ts";
import { addressKey } from "./_manager_options.ts";
import type { ManagerAddress } from "./_manager_wire.ts";
import { serialize } from "./_reduction.ts";

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
  const onLost = () => {
    if (clients.get(key) === entry) clients.delete(key);
  };
  const entry: { client: Promise<Client>; ready?: Client } = {
    client: import("./_manager_client.ts").then(({ Client }) =>
      Client.open(address, authkey, onLost, timeout)
    ),
  };
  clients.set(key, entry);
  entry.client.then((c) => entry.ready = c, onLost);
  return entry.client;
}

/** Closes this process's connection to `to`. */
export function dropClient(to: Endpoint): void {
  const entry = clients.get(to.key);
  clients.delete(to.key);
  entry?.client.then((c) => c.close(), () => {});
}

/** This process's connection to `to` when it is open (and authenticated), else undefined. */
export function openClient(to: Endpoint): Client | undefined {
  return clients.get(to.key)?.ready;
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
  if (!(c instanceof Promise)) return c.request(objectId, method, bytes, signal);
  return c.then((c) => c.request(objectId, method, bytes, signal));
}
