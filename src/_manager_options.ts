/**
 * Checking what a user gives `Manager.start()`/`connect()`, and the manager's temporary
 * directory.
 *
 * @module
 */
import { unlinkResource, untrack } from "./_tracker.ts";
import type { ManagerAddress } from "./_manager_wire.ts";
import type { CustomTypeSpec } from "./_manager_types.ts";

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
  try {
    unlinkResource("dir", path);
    untrack("dir", path);
  } catch {
    // cannot remove it (the tracker will try again at the end) or the tracker is gone
  }
}
