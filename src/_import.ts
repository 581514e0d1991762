/**
 * How this library imports a user's module: the module of a Process target, a Pool task, a
 * Barrier action, a Manager's registered type, or a remote error's class. Every such import goes
 * through this file, in one of two forms:
 *
 * - {@linkcode importSource}: the source text of a loader, `()=>import("<url>")`, for the data:
 *   URL a child process or thread starts from. There the import is a literal in the child's main
 *   module, so Deno loads it with the module graph and the child needs no read permission for it.
 * - {@linkcode importModule}: an import at run time, from inside the library.
 *
 * A child process or thread imports its target's module through {@linkcode importTarget}, which
 * says in the error when the module failed to load.
 *
 * Why `importModule` is not a plain `import(specifier)`: `deno publish` rewrites the specifiers
 * of a package's imports (import-map entries become `jsr:`/`npm:` ones), and it warns
 * (`unanalyzable-dynamic-import`) at every `import()` whose specifier is not a string literal.
 * Nothing here needs rewriting: the specifier is always the user's own URL (from the call stack)
 * or their `module` option, resolved at run time exactly as a plain `import()` resolves it (with
 * the running program's import map, and the same read/import permission checks). Deno has no
 * directive to mark one import as intended (denoland/deno#22594), so the import expression lives
 * in a function made from source text, which the publish analysis does not read.
 * `tests/architecture_test.ts` checks that `deno publish --dry-run` prints no warning.
 *
 * @module
 */
import { state } from "./_state.ts";

/** A module's namespace: its exports by name. */
export type ModuleNamespace = Record<string, unknown>;

const dynamicImport = new Function("specifier", "return import(specifier);") as (
  specifier: string,
) => Promise<ModuleNamespace>;

/**
 * Imports a user's module at run time (a URL, or a bare specifier the program's import map
 * resolves), as `import(specifier)` does.
 */
export function importModule(specifier: string): Promise<ModuleNamespace> {
  return dynamicImport(String(specifier));
}

/** The source text of a loader of `specifier` (`()=>import("…")`), for a child's entry data: URL. */
export function importSource(specifier: string): string {
  return `()=>import(${JSON.stringify(specifier)})`;
}

/**
 * Imports the target's module (`load`) in a child process or thread (`kind`), flagged as
 * bootstrapping meanwhile (starting a process or thread then is an error, see `checkStart`).
 */
export async function importTarget(
  load: (() => Promise<ModuleNamespace>) | null,
  module: string | null,
  kind: "child process" | "thread",
): Promise<ModuleNamespace> {
  const s = state();
  s.bootstrapping = true;
  try {
    return load ? await load() : {};
  } catch (error) {
    throw whileImporting(error, module, kind);
  } finally {
    s.bootstrapping = false;
  }
}

/**
 * The error of a child (`kind`: "child process" or "thread") whose module threw while it was
 * imported, with a message that says so: the module's top-level code runs again in every child
 * that imports it (a `Deno.serve()` there fails with "Address already in use"). The error keeps
 * its class and name.
 */
function whileImporting(error: unknown, module: string | null, kind: string): unknown {
  if (!(error instanceof Error) || /import\.meta\.main/.test(error.message)) return error;
  const notLoaded = error instanceof SyntaxError ||
    /^(Module not found|Relative import path|Import )/.test(error.message);
  const old = error.message;
  error.message = `the ${kind} was importing ${module} (to find its target) when it failed: ${old}` +
    (notLoaded ? "" : `. Importing a module runs its top-level code again in every ${kind}: ` +
      "put top-level side effects (Deno.serve(), writing files, starting processes) under " +
      "`if (import.meta.main) { ... }` so that they run only in the main program.");
  const stack = error.stack ?? "";
  const at = stack.indexOf("\n    at ");
  error.stack = `${error.name}: ${error.message}${at >= 0 ? stack.slice(at) : ""}`;
  return error;
}
