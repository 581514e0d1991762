/**
 * How an error travels from one process to another: a pool task's error, a child that could not
 * start, a Manager call that failed. Structured clone alone keeps the message and stack of the
 * built-in classes (`Error`, `TypeError`, `RangeError`, ...) and nothing else: a `ConfigError`
 * arrives as `Error`, without its fields. So the sender packs the name, the class name, the stack
 * and the own fields beside it ({@linkcode packError}); the receiver rebuilds the error
 * ({@linkcode unpackError}).
 *
 * The class itself cannot travel, only its name. The receiver revives the error as that class
 * when it can find it where the sender could (CPython's pickle imports the class's module): in
 * the module namespace it is given (a pool's tasks' module, which the worker imported to find the
 * task), else among this library's errors (`QueueEmptyError`, `BrokenBarrierError`, ...), else
 * in `Deno.errors`. Revived means the clone's prototype is set to the class's, and the fields are
 * copied over: the constructor does not run (it could need arguments, or have effects). A name that is not an
 * exported `Error` subclass (not exported, or a function or value of that name) leaves a plain
 * `Error` with the name, message, stack and fields it had.
 *
 * @module
 */
import * as libraryErrors from "./errors.ts";
import type { ModuleNamespace } from "./_import.ts";
import { serialize } from "./_reduction.ts";

/** An error as it travels: a plain error of its standard class, and what structured clone drops. */
export interface PackedError {
  error: unknown;
  name?: string;
  /** The name of its class (`error.constructor.name`), when that is not the error's own name. */
  className?: string;
  stack?: string;
  props?: Record<string, unknown>;
  cause?: PackedError;
}

/** The classes structured clone keeps: an error travels as the first of them it is an instance of. */
const STANDARD = [EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, Error];
/** How deep a chain of causes travels. */
const MAX_CAUSES = 8;

/**
 * Packs a thrown value so that its class name, name, message, stack, own fields and cause survive.
 * The error itself does not travel: a `DOMException` or an error holding something that cannot
 * be cloned would fail the whole message. A fresh error of its standard class does, with the rest
 * beside it.
 */
export function packError(e: unknown, depth = 0): PackedError {
  if (!(e instanceof Error)) return { error: e };
  const Standard = STANDARD.find((c) => e instanceof c) ?? Error;
  const packed: PackedError = { error: new Standard(String(e.message)), name: e.name, stack: e.stack };
  try {
    const ctor = e.constructor;
    if (typeof ctor === "function" && ctor.name && ctor.name !== e.name) packed.className = ctor.name;
  } catch {
    // a hostile `constructor` getter: the name has to do
  }
  const props: Record<string, unknown> = { ...e };
  try {
    serialize(props);
    packed.props = props;
  } catch {
    // fields that cannot travel are left behind; the rest of the error still does
  }
  if (Object.hasOwn(e, "cause") && depth < MAX_CAUSES) {
    const cause = packError(e.cause, depth + 1);
    try {
      serialize(cause);
      packed.cause = cause;
    } catch {
      // a cause that cannot travel is left behind
    }
  }
  return packed;
}

/**
 * Rebuilds an error packed by {@linkcode packError}: as its class when `exports` (or this
 * library, or `Deno.errors`) exports an `Error` subclass of that name, else as its standard class;
 * with the remote name, stack, own fields and cause in both cases.
 */
export function unpackError(p: unknown, exports?: ModuleNamespace | null): unknown {
  const { error, name, className, stack, props, cause } = p as PackedError;
  if (!(error instanceof Error)) return error;
  const cls = errorClass(className ?? name, exports);
  const e = cls && !(error instanceof cls) ? revive(error, cls) : error;
  if (name !== undefined && e.name !== name) {
    Object.defineProperty(e, "name", { value: name, configurable: true, writable: true, enumerable: false });
  }
  if (stack !== undefined) e.stack = stack;
  if (props) Object.assign(e, props);
  if (cause) {
    Object.defineProperty(e, "cause", {
      value: unpackError(cause, exports),
      configurable: true,
      writable: true,
      enumerable: false,
    });
  }
  return e;
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** The `Error` subclass called `name` in `exports`, this library's errors or `Deno.errors`. */
function errorClass(
  name: string | undefined,
  exports: ModuleNamespace | null | undefined,
): ErrorClass | undefined {
  if (!name) return undefined;
  for (
    const table of [exports, libraryErrors, Deno.errors] as (Record<string, unknown> | null | undefined)[]
  ) {
    if (!table || !Object.hasOwn(table, name)) continue;
    const cls = table[name];
    if (typeof cls === "function" && cls.prototype instanceof Error) return cls as ErrorClass;
  }
  return undefined;
}

/**
 * `error` (a fresh clone, so a real Error object that prints and `Error.isError()`s as one) made
 * an instance of `cls`, without running `cls`'s constructor.
 */
function revive(error: Error, cls: ErrorClass): Error {
  return Object.setPrototypeOf(error, cls.prototype);
}
