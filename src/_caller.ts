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

/**
 * How a function is found again in another process: its name, and its source text. A bound
 * function has neither: a TypeError that says what to do instead.
 */
export function describeFunction(fn: (...args: never[]) => unknown): { name: string; source: string } {
  checkFindable(fn);
  return { name: fn.name, source: Function.prototype.toString.call(fn) };
}

/**
 * Refuses a function another process cannot import: a bound method (`obj.method.bind(obj)`) has
 * no name of its own and no source, and its `this` cannot travel.
 */
function checkFindable(fn: (...args: never[]) => unknown): void {
  if (!fn.name.startsWith("bound ")) return;
  const name = fn.name.slice("bound ".length) || "work";
  throw new TypeError(
    `Invalid target: ${fn.name} is a bound function. Another process imports its function by name from ` +
      `its module, so bound methods, closures and inline functions cannot be used, and \`this\` does not ` +
      `travel. Export a function (export function ${name}(...) { ... }) and pass the state it needs as ` +
      `arguments, or subclass Process (or Thread) with the state as fields and the work in run().`,
  );
}

/** Start promises whose failure is reported here when nobody handles it. */
const starting = new WeakSet<Promise<void>>();
let reporting = false;

/**
 * Prints why a child process or thread could not start when nobody awaits or catches its
 * `start()` (as Python prints a failed child's traceback), without ending this program: one
 * message, printed here only (the child prints nothing, so a handled failure is not printed twice).
 */
export function reportUnhandledStart(started: Promise<void>): void {
  starting.add(started);
  if (reporting) return;
  reporting = true;
  globalThis.addEventListener("unhandledrejection", (e) => {
    if (!starting.has(e.promise)) return;
    e.preventDefault();
    const r = e.reason;
    console.error(r instanceof Error ? `${r.name}: ${r.message}` : `Cannot start: ${Deno.inspect(r)}`);
  });
}

/** The options of `Process` and `Thread`, checked, with `module` defaulting to the caller's. */
export interface TargetOptions {
  target: ((...args: never[]) => unknown) | undefined;
  args: unknown[];
  name: string | undefined;
  daemon: boolean;
  module: string | undefined;
}

/**
 * Checks the options of a `Process` or a `Thread` (`kind`) and finds the module of its target:
 * `module`, or the module that called the constructor.
 */
export function targetOptions(options: unknown, kind: string): TargetOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Invalid ${kind} options: expected an object like { target, args }`);
  }
  const { target, args = [], name, daemon = false, module } = options as Record<string, unknown>;
  if (target !== undefined && typeof target !== "function") {
    throw new TypeError(`Invalid target: expected a function, got ${typeof target}`);
  }
  if (target) checkFindable(target as (...args: never[]) => unknown);
  if (!Array.isArray(args)) throw new TypeError("Invalid args: expected an array");
  if (name !== undefined && typeof name !== "string") {
    throw new TypeError("Invalid name: expected a string");
  }
  return {
    target: target as TargetOptions["target"],
    args,
    name,
    daemon: Boolean(daemon),
    module: module !== undefined ? moduleSpecifier(module as string | URL) : callerModule(),
  };
}

/**
 * The checks `start()` of a `Process` or a `Thread` (`kind`) makes before anything is spawned:
 * this program (or child, or thread) must not be importing its module (Python's "attempt to start
 * a new process before the current process has finished its bootstrapping phase": every child
 * would start children of its own, without end), and the module of a target or subclass must be
 * known (the child imports it).
 */
export function checkStart(
  kind: "process" | "thread",
  { name, target, className, module, importing }: {
    name: string;
    target: unknown;
    className: string | null;
    module: string | undefined;
    /** `state().bootstrapping` and `state().moduleUrl`, when this program is importing its module. */
    importing: string | null | false;
  },
): void {
  if (importing !== false) {
    const who = kind === "process" ? "this child process" : "this program";
    throw new Error(
      `Cannot start ${name}: ${who} is still importing ${importing ?? "its module"}, ` +
        `whose top-level code starts ${kind === "process" ? "processes" : "threads"}. ` +
        "Put that code under `if (import.meta.main) { ... }` so that it runs only in the main program.",
    );
  }
  if ((target || className) && !module) {
    throw new TypeError(
      `Cannot start ${name}: cannot tell which module exports its ${
        className ? "class" : "target"
      }; pass { module: import.meta.url } from that module`,
    );
  }
}

/**
 * Finds an exported function by its name, or (exported under another name) by its source text.
 * `what` starts the error message, e.g. `Cannot run task: its function`.
 */
export function findExport(
  mod: Record<string, unknown>,
  { name, source }: { name: string; source: string },
  module: string | null,
  what: string,
  importer = "the child process",
): (...args: unknown[]) => unknown {
  const byName = mod[name];
  if (typeof byName === "function" && (byName.toString() === source || !exportedWithSource(mod, source))) {
    return byName as (...args: unknown[]) => unknown;
  }
  const bySource = Object.values(mod).find((v) => typeof v === "function" && v.toString() === source);
  if (bySource) return bySource as (...args: unknown[]) => unknown;
  // An inline arrow gets the name of the property it is written in (`target`, `fn`).
  const inline = !name || name === "target" || /^(async\s*)?(\([^)]*\)|[\w$]+)\s*=>/.test(source);
  const state = "state it needs goes in its arguments, or in the fields of a Process subclass";
  if (inline) {
    throw new TypeError(
      `${what}, an inline function${name ? ` ("${name}")` : ""}, is not exported from ${module}. ` +
        `${importer[0].toUpperCase()}${importer.slice(1)} imports its function by name, so bound methods, ` +
        `closures and inline functions cannot be used: define it at the top level of that module as ` +
        `export function work(...) { ... } and pass that function (${state}).`,
    );
  }
  throw new TypeError(
    `${what}, function "${name}", is not exported from ${module}. ` +
      `Export it from that module (export function ${name}(...) { ... }) so ${importer} can import it by ` +
      `name, or pass { module } naming the module that exports it. A closure or a function defined ` +
      `inside another cannot be used (${state}).`,
  );
}

function exportedWithSource(mod: Record<string, unknown>, source: string): boolean {
  return Object.values(mod).some((v) => typeof v === "function" && v.toString() === source);
}

/**
 * Finds an exported subclass of `base` (`Process`, or `Thread` for a thread) by its name; a
 * TypeError that says what to export otherwise.
 */
export function findClass<C extends abstract new (...args: never[]) => object>(
  mod: Record<string, unknown>,
  { name, className, module }: { name: string; className: string | null; module: string | null },
  base: C,
): C {
  const cls = mod[className!];
  if (typeof cls === "function" && cls.prototype instanceof base) return cls as C;
  const kind = base.name.toLowerCase();
  throw new TypeError(
    `Cannot start ${kind} "${name}": its class ${className} is not exported from ${module}. ` +
      `Export the class (export class ${className} extends ${base.name} { ... }) so the ${
        kind === "process" ? "child process" : kind
      } can import it, ` +
      `or pass { module } naming the module that exports it.`,
  );
}
