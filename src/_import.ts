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
