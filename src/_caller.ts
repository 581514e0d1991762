/**
 * Finds the module that called into this library, from the call stack: the default home of a
 * Process target or Pool task (the child imports it to find the function by name).
 *
 * @module
 */

const OWN = [new URL("./", import.meta.url).href, new URL("../mod.ts", import.meta.url).href];
const FRAME_URL = /((?:file|https?|jsr|npm|data):[^\s()]+?):\d+:\d+\)?$/;

/** The URL of the first module on the stack outside this library's `src/` and `mod.ts`. */
export function callerModule(): string | undefined {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 50;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  for (const line of stack.split("\n").slice(1)) {
    const url = FRAME_URL.exec(line.trim())?.[1];
    if (url && !OWN.some((own) => url.startsWith(own))) return url;
  }
  return undefined;
}

/**
 * Normalizes a user-given `module` option: a URL, an absolute path, or a bare specifier the
 * import map resolves. Relative paths are refused: relative to what would be a guess.
 */
export function moduleSpecifier(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== "string" || module === "") {
    throw new TypeError(`Invalid module: expected a URL or an absolute path, got ${String(module)}`);
  }
  if (module.startsWith("/")) return new URL(`file://${module}`).href;
  if (module.startsWith("./") || module.startsWith("../")) {
    throw new TypeError(
      `Invalid module "${module}": relative paths are ambiguous; pass new URL("${module}", import.meta.url)`,
    );
  }
  return module;
}

/** How a function is found again in another process: its name, and its source text. */
export function describeFunction(fn: (...args: never[]) => unknown): { name: string; source: string } {
  return { name: fn.name, source: Function.prototype.toString.call(fn) };
}
