/**
 * Deno's own binding to V8's ValueSerializer, found through `Deno[Deno.internal].core`. It writes
 * the same structured-clone wire format as `node:v8` and is ~10x faster (measured: 1.4 µs vs 15 µs
 * to serialize a small object). It is internal to Deno, so it is probed once (a round trip of a
 * value holding a bigint and a string) and {@linkcode fastSerializer} is `undefined` when it is
 * missing or behaves differently; the caller then falls back to `node:v8`.
 *
 * @module
 */

/** A structured-clone serializer: V8's wire format both ways. */
export interface Serializer {
  serialize(value: unknown): Uint8Array;
  deserialize(bytes: Uint8Array): unknown;
}

/** Deno's internal V8 serializer, or `undefined` when this Deno has none that passes the probe. */
export const fastSerializer: Serializer | undefined = (() => {
  // deno-lint-ignore no-explicit-any
  const c = (Deno as any)[(Deno as any).internal]?.core;
  if (typeof c?.serialize !== "function" || typeof c?.deserialize !== "function") return undefined;
  try {
    const probe = c.deserialize(c.serialize({ a: [1n, "x"] }));
    return probe?.a?.[0] === 1n && probe.a[1] === "x" ? c : undefined;
  } catch {
    return undefined;
  }
})();
