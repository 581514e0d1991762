/**
 * What a user gives `Manager.start()`/`connect()` (the options' types, and their checks), how an
 * address is named, and the manager's temporary directory. Every process that imports the library
 * loads this module: the wire, the client's connection and the server are loaded only by a
 * process that uses a manager (see `_manager_clients.ts`, `manager.ts`).
 *
 * @module
 */
import { releaseNamed } from "./_resource.ts";
import type { ManagerAddress } from "./_manager_wire.ts";
import type { CustomTypeSpec } from "./_manager_types.ts";

/**
 * Options of {@linkcode Manager.start}.
 *
 * @example A manager with a key of your own
 * ```ts
 * import { Manager, type ManagerStartOptions } from "@mp/multiprocessing";
 *
 * const options: ManagerStartOptions = { authkey: new TextEncoder().encode("a shared secret") };
 * await using manager = await Manager.start(options);
 * console.log(manager.address);
 * ```
 */
export interface ManagerStartOptions {
  /** Where to listen: `{ path }` (a Unix socket) or `{ hostname, port }` (TCP; port 0 picks one).
   * Default: a Unix socket in a fresh temporary directory. */
  address?: ManagerAddress;
  /** The key clients must prove they know. Default: 32 random bytes. */
  authkey?: Uint8Array;
  /**
   * Custom types the server can make (Python's `BaseManager.register(typeid, callable,
   * exposed)`): `{ Counter: { module: import.meta.url, export: "Counter", exposed: ["inc"] } }`.
   * `module` is the URL (or absolute path) of a module exporting the class; `exposed` lists the
   * methods a proxy may call (default: every public method, i.e. not starting with `_`). Make one
   * with `manager.create("Counter", ...args)`, from any client.
   */
  types?: Record<string, { module: string | URL; export: string; exposed?: string[] }>;
}

/**
 * Options of {@linkcode Manager.connect}.
 *
 * @example Connect to a manager another program started
 * ```ts
 * import { Manager, type ManagerConnectOptions } from "@mp/multiprocessing";
 *
 * await using server = await Manager.start();
 * const options: ManagerConnectOptions = { address: server.address, authkey: server.authkey, timeout: 5_000 };
 * const client = await Manager.connect(options);
 * const d = await client.dict<number>({ a: 1 });
 * console.log(await d.get("a")); // 1
 * ```
 */
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

export function checkAuthkey(authkey: unknown): Uint8Array {
  if (!(authkey instanceof Uint8Array)) throw new TypeError("Invalid authkey: expected a Uint8Array");
  if (authkey.length === 0) {
    throw new RangeError(
      "Invalid authkey: it is empty; pass the manager's key (at least one byte, 32 random ones are best)",
    );
  }
  return authkey.slice();
}

export function checkAddress(address: unknown): ManagerAddress {
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

/** A string naming an address, for messages and as a map key. */
export function addressKey(address: ManagerAddress): string {
  return "path" in address ? address.path : `${address.hostname}:${address.port}`;
}

/** How long shutdown() waits for the server to end before it kills it. */
export const STOP_TIMEOUT_MS = 5_000;

export function listenError(msg: { name: string; message: string }): Error {
  const Class = (Deno.errors as Record<string, new (m: string) => Error>)[msg.name] ?? Error;
  return new Class(`Cannot start the manager's server: ${msg.message}`);
}
/** Checks `types` and turns module URLs into strings for the server. */
export function checkTypes(types: unknown): Record<string, CustomTypeSpec> {
  if (types === undefined) return {};
  if (typeof types !== "object" || types === null) {
    throw new TypeError("Invalid types: expected { Name: { module, export, exposed? } }");
  }
  const out: Record<string, CustomTypeSpec> = {};
  for (const [name, spec] of Object.entries(types)) {
    const { module, export: exported, exposed } = (spec ?? {}) as Record<string, unknown>;
    if (!(typeof module === "string" || module instanceof URL) || typeof exported !== "string") {
      throw new TypeError(
        `Invalid type ${
          JSON.stringify(name)
        }: expected { module: import.meta.url, export: "ClassName", exposed?: ["method"] }`,
      );
    }
    if (exposed !== undefined && !(Array.isArray(exposed) && exposed.every((m) => typeof m === "string"))) {
      throw new TypeError(
        `Invalid exposed methods of type ${JSON.stringify(name)}: expected an array of names`,
      );
    }
    let href: string;
    try {
      href = module instanceof URL
        ? module.href
        : new URL(module.startsWith("/") ? `file://${module}` : module).href;
    } catch {
      throw new TypeError(
        `Invalid module of type ${JSON.stringify(name)}: ${
          JSON.stringify(module)
        }: expected a URL (import.meta.url) or an absolute path`,
      );
    }
    out[name] = { module: href, export: exported, exposed: exposed as string[] | undefined };
  }
  return out;
}

/** Removes a manager's temporary directory and tells the resource tracker it is gone. */
export function removeDir(path: string): void {
  releaseNamed([{ kind: "dir", name: path }]);
}
