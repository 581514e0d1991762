/**
 * How this library's objects print in `console.log` and `Deno.inspect`: one style for all, close
 * to Python's reprs, `Kind(key=value, ..., flag, ...)`, e.g.
 * `Process(name="Process-2", pid=4, parent=3, started, daemon)`.
 *
 * @module
 */

/**
 * `Kind(key=value, ..., flag, ...)`: strings quoted, undefined fields and false flags left out.
 *
 * @example
 * ```ts ignore
 * describe("Lock", { holder: 12 }, { locked: true }); // Lock(holder=12, locked)
 * ```
 */
export function describe(
  kind: string,
  fields: Record<string, string | number | bigint | boolean | null | undefined>,
  flags: Record<string, boolean> = {},
): string {
  const parts = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === "string" ? JSON.stringify(v) : String(v)}`);
  for (const [flag, on] of Object.entries(flags)) if (on) parts.push(flag);
  return `${kind}(${parts.join(", ")})`;
}

/** `object` with a non-enumerable `Deno.customInspect` method returning `text()` (so it does not travel). */
export function withInspect<T extends object>(object: T, text: () => string): T {
  Object.defineProperty(object, Symbol.for("Deno.customInspect"), { value: text });
  return object;
}
