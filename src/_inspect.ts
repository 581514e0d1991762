/**
 * How the library's objects print in `console.log` and `Deno.inspect`: each class has a method
 * under {@linkcode inspect} (`Symbol.for("Deno.customInspect")`, which Deno looks up) that returns
 * one line with its state, as CPython's reprs do (`Lock(owner=1234)`, `Value("i32", 3)`).
 *
 * @module
 */

/** The key Deno's `console.log`/`Deno.inspect` call on an object to print it. */
export const inspect: unique symbol = Symbol.for("Deno.customInspect");

/** `Name(part, part, ...)`, the one format of every class's line; `closed` when closed. */
export function described(name: string, closed: boolean, parts: () => unknown[]): string {
  return closed ? `${name}(closed)` : `${name}(${parts().join(", ")})`;
}

/**
 * `object` with a non-enumerable {@linkcode inspect} method returning `line()`: for the plain
 * objects `currentProcess()` and `currentThread()` return (non-enumerable, so it does not travel).
 */
export function withInspect<T extends object>(object: T, line: () => string): T {
  Object.defineProperty(object, inspect, { value: line });
  return object;
}
