/**
 * Checks that keep the layout in place (DESIGN.md, "Checks that keep the layout in place"):
 *
 * 1. no import cycle in the module graph of `mod.ts` or of the child entry (`src/_child.ts`);
 * 2. no file in `src/` or `native/` over {@linkcode MAX_LINES} lines;
 * 3. no `_`-prefixed member (or export) in the public API (`deno doc --json mod.ts`);
 * 4. only `native/` touches `Deno.dlopen`, `Deno.Unsafe*` or `Deno[Deno.internal]`.
 *
 * Each check has an allow-list of today's offenders. A test fails on a new offender, and also on
 * an allow-listed entry that no longer offends: remove it from the list, so the lists only
 * shrink. They are empty when the redesign (issue 9) is done.
 */
import assert from "node:assert/strict";
import { runDeno } from "./fixtures/helpers.ts";

const ROOT = new URL("../", import.meta.url);

// ---------------------------------------------------------------------------------------------
// Allow-lists: today's offenders. Shrink them; never add to them.

/** Import cycles (strongly connected components), each as its sorted module paths joined by " ↔ ". */
const ALLOWED_CYCLES: Record<string, string[]> = {
  "mod.ts": [],
  "src/_child.ts": [],
};

/** Files of `src/` and `native/` allowed over {@linkcode MAX_LINES} lines. */
const ALLOWED_BIG_FILES: string[] = [];

/** `_`-prefixed members of the public API, as `Class.member`. */
const ALLOWED_UNDERSCORE_MEMBERS: string[] = [];

/** Files outside `native/` allowed to touch FFI or Deno's internals. */
const ALLOWED_FFI_FILES: string[] = [];

// ---------------------------------------------------------------------------------------------

const MAX_LINES = 400;

/**
 * Compares what a check found with its allow-list: fails on a new offender and on an allowed
 * entry that no longer offends, and says which list to edit.
 */
function assertOnlyAllowed(
  what: string,
  list: string,
  found: string[],
  allowed: string[],
  detail: (entry: string) => string = (entry) => entry,
): void {
  const fresh = found.filter((f) => !allowed.includes(f)).sort();
  const gone = allowed.filter((a) => !found.includes(a)).sort();
  const lines = [`${what}: ${found.length} offender(s) now, ${allowed.length} allowed in ${list}.`];
  if (fresh.length) {
    lines.push(`New offenders (fix them; do not add them to ${list}):`, ...fresh.map((f) => `  + ${f}`));
  }
  if (gone.length) {
    lines.push(`No longer offending (remove them from ${list}):`, ...gone.map((g) => `  - ${g}`));
  }
  if (found.length) {
    console.log([`${what} (allowed for now):`, ...found.sort().map((f) => `  ${detail(f)}`)].join("\n"));
  }
  assert.ok(fresh.length === 0 && gone.length === 0, lines.join("\n"));
}

async function denoJson(args: string[]): Promise<unknown> {
  const out = await runDeno(args, { cwd: ROOT.pathname, timeoutMs: 120_000 });
  assert.equal(out.code, 0, `deno ${args.join(" ")} failed:\n${out.stderr}`);
  return JSON.parse(out.stdout);
}

function relative(specifier: string): string {
  return specifier.startsWith(ROOT.href) ? specifier.slice(ROOT.href.length) : specifier;
}

/** Strongly connected components with more than one module (or a module importing itself). */
function cycles(graph: Map<string, string[]>): string[][] {
  // Tarjan's algorithm, iterative so that a deep graph cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work: { v: string; i: number }[] = [{ v: root, i: 0 }];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length) {
      const top = work[work.length - 1];
      const deps = graph.get(top.v) ?? [];
      if (top.i < deps.length) {
        const w = deps[top.i++];
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push({ v: w, i: 0 });
        } else if (onStack.has(w)) low.set(top.v, Math.min(low.get(top.v)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length) {
        const parent = work[work.length - 1].v;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.v)!));
      }
      if (low.get(top.v) === index.get(top.v)) {
        const component: string[] = [];
        for (;;) {
          const w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
          if (w === top.v) break;
        }
        if (component.length > 1 || deps.includes(top.v)) out.push(component.sort());
      }
    }
  }
  return out;
}

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

for (const entry of Object.keys(ALLOWED_CYCLES)) {
  Deno.test(`The module graph of ${entry} has no import cycle beyond the allowed ones`, async () => {
    const info = await denoJson(["info", "--json", entry]) as { modules: InfoModule[] };
    const graph = new Map<string, string[]>();
    for (const m of info.modules) {
      const deps = (m.dependencies ?? []).flatMap((d) => [d.code?.specifier, d.type?.specifier])
        .filter((s): s is string => s !== undefined);
      graph.set(relative(m.specifier), [...new Set(deps.map(relative))]);
    }
    assert.ok(graph.size > 1, `deno info --json ${entry} listed no modules`);
    const found = cycles(graph).map((c) => c.join(" ↔ "));
    assertOnlyAllowed(
      `Import cycles from ${entry}`,
      `ALLOWED_CYCLES["${entry}"]`,
      found,
      ALLOWED_CYCLES[entry],
    );
  });
}

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(new URL(rel, ROOT))) {
      if (e.isDirectory && e.name !== ".git" && e.name !== "node_modules") walk(`${rel}${e.name}/`);
      else if (e.isFile && /\.(ts|js|mjs)$/.test(e.name)) files.push(`${rel}${e.name}`);
    }
  };
  walk(dir);
  return files.sort();
}

Deno.test(`No file in src/ or native/ is over ${MAX_LINES} lines beyond the allowed ones`, () => {
  const files = [...sourceFiles("src/"), ...sourceFiles("native/")];
  assert.ok(files.includes("src/_wait.ts"), "the walk found the source files");
  const sizes = files.map((f) => {
    const text = Deno.readTextFileSync(new URL(f, ROOT));
    return { f, lines: text.split("\n").length - (text.endsWith("\n") ? 1 : 0) };
  });
  const found = sizes.filter((s) => s.lines > MAX_LINES).map((s) => s.f);
  assertOnlyAllowed(
    `Files over ${MAX_LINES} lines`,
    "ALLOWED_BIG_FILES",
    found,
    ALLOWED_BIG_FILES,
    (f) => `${f}: ${sizes.find((s) => s.f === f)!.lines} lines`,
  );
});

interface DocDeclaration {
  kind: string;
  def?: {
    methods?: { name: string }[];
    properties?: { name: string }[];
  };
}
interface DocSymbol {
  name: string;
  declarations: DocDeclaration[];
}

Deno.test("The public API (deno doc mod.ts) has no _-prefixed member beyond the allowed ones", async () => {
  const doc = await denoJson(["doc", "--json", "mod.ts"]) as {
    nodes: Record<string, { symbols: DocSymbol[] }>;
  };
  const symbols = Object.values(doc.nodes).flatMap((n) => n.symbols);
  assert.ok(symbols.some((s) => s.name === "Lock"), "deno doc listed the exports of mod.ts");
  const found = new Set<string>();
  for (const s of symbols) {
    if (s.name.startsWith("_")) found.add(s.name);
    for (const d of s.declarations) {
      for (const m of [...(d.def?.methods ?? []), ...(d.def?.properties ?? [])]) {
        if (typeof m.name === "string" && m.name.startsWith("_")) found.add(`${s.name}.${m.name}`);
      }
    }
  }
  assertOnlyAllowed(
    "_-prefixed public members",
    "ALLOWED_UNDERSCORE_MEMBERS",
    [...found],
    ALLOWED_UNDERSCORE_MEMBERS,
  );
});

/** FFI and the runtime's internals: `Deno.dlopen`, `Deno.Unsafe*`, `Deno.internal`,
 * `(Deno as any).internal` and so `Deno[Deno.internal]`. */
const BOUNDARY = [/Deno\s*\.\s*(dlopen|Unsafe\w*)/, /Deno(\s+as\s+any\))?\s*\.internal/];

Deno.test("Only native/ touches Deno.dlopen, Deno.Unsafe* and Deno[Deno.internal], beyond the allowed files", () => {
  const self = "tests/architecture_test.ts";
  const files = sourceFiles("").filter((f) => !f.startsWith("native/") && f !== self);
  assert.ok(
    files.includes("mod.ts") && files.some((f) => f.startsWith("tests/")),
    "the walk found the files",
  );
  const found = files.filter((f) => {
    const text = Deno.readTextFileSync(new URL(f, ROOT));
    return BOUNDARY.some((re) => re.test(text));
  });
  assertOnlyAllowed(
    "Files outside native/ that touch FFI or internals",
    "ALLOWED_FFI_FILES",
    found,
    ALLOWED_FFI_FILES,
  );
});

Deno.test("The boundary check catches each form it is meant to catch", () => {
  const caught = (text: string) => BOUNDARY.some((re) => re.test(text));
  for (
    const text of [
      "Deno.dlopen(path, symbols)",
      "new Deno.UnsafePointerView(p)",
      "Deno . UnsafeCallback",
      "(Deno as any)[(Deno as any).internal]",
      "Deno[Deno.internal].core",
    ]
  ) assert.ok(caught(text), text);
  for (const text of ['Symbol("Connection.internal")', "Deno.pid", "Deno.Command"]) {
    assert.ok(!caught(text), text);
  }
});

Deno.test("deno publish --dry-run prints no warning (no unanalyzable dynamic import, no slow type)", async () => {
  // Runs offline: the dry run analyses the package and uploads nothing. Every import of a user's
  // module at run time goes through `src/_import.ts`, which the analysis does not flag.
  const out = await runDeno(["publish", "--dry-run", "--allow-dirty"], {
    cwd: ROOT.pathname,
    env: { NO_COLOR: "1" },
    timeoutMs: 120_000,
  });
  const text = out.stdout + out.stderr;
  assert.equal(out.code, 0, `deno publish --dry-run failed:\n${text}`);
  assert.match(text, /Dry run complete/);
  const warnings = text.split("\n").filter((line) => /warning/i.test(line));
  assert.deepEqual(warnings, [], `deno publish --dry-run warned:\n${text}`);
});
