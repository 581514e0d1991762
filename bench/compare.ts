/**
 * Side-by-side benchmarks: this library against CPython's `multiprocessing` and the C floor,
 * measured in one run on one machine.
 *
 * ```sh
 * deno run -A bench/compare.ts [filter] [--reps=N]
 * ```
 *
 * Loads every `bench/rows/*.ts` (files starting with `_` are helpers), keeps the rows whose name
 * contains `filter` (case-insensitive), and measures each side `--reps` times (default 3),
 * interleaved so that a noisy moment hurts every side alike; every cell is the median. A
 * baseline that cannot run shows "—" (tool missing) or "error" (and why, below the table); the
 * run always goes on and exits 0.
 *
 * @module
 */
import type { CompareRow } from "./_row.ts";
import {
  hasCommand,
  killRunning,
  lastNumber,
  median,
  run,
  runPython,
  Skipped,
  versionLine,
} from "./_measure.ts";

/** How long one measurement of one side may take before it counts as an error. */
const LIMIT_MS = 180_000;

interface Cell {
  values: number[];
  error?: string;
  skipped?: boolean;
}

interface Measured {
  row: CompareRow;
  file: string;
  cells: Map<string, Cell>;
}

function usage(): never {
  console.log("Usage: deno run -A bench/compare.ts [filter] [--reps=N]");
  Deno.exit(0);
}

function parseArgs(args: string[]): { filter: string; reps: number } {
  let reps = 3;
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-h" || a === "--help") usage();
    const m = /^--reps(?:=(.*))?$/.exec(a);
    if (m) {
      reps = Number(m[1] ?? args[++i]);
      if (!Number.isInteger(reps) || reps < 1) {
        console.error(`Invalid --reps: expected a positive integer, got ${m[1] ?? args[i]}`);
        Deno.exit(2);
      }
    } else words.push(a);
  }
  return { filter: words.join(" ").toLowerCase(), reps };
}

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").slice(0, 300);
}

async function loadRows(): Promise<{ file: string; row: CompareRow }[]> {
  const dir = new URL("./rows/", import.meta.url);
  const files = [...Deno.readDirSync(dir)]
    .filter((e) =>
      e.isFile && e.name.endsWith(".ts") && !e.name.startsWith("_") && !e.name.endsWith("_test.ts")
    )
    .map((e) => e.name)
    .sort();
  const out: { file: string; row: CompareRow }[] = [];
  for (const file of files) {
    try {
      const mod = await import(new URL(file, dir).href);
      if (!Array.isArray(mod.rows)) throw new Error("it does not export `rows: CompareRow[]`");
      for (const row of mod.rows as CompareRow[]) out.push({ file, row });
    } catch (e) {
      console.error(`Cannot load bench/rows/${file}: ${message(e)}`);
    }
  }
  return out;
}

async function machine(): Promise<string[]> {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1].trim() ?? cpu;
  } catch {
    // not Linux
  }
  const [python, cc] = await Promise.all([versionLine("python3"), versionLine("cc")]);
  return [
    `Machine: ${cpu}, ${navigator.hardwareConcurrency} cores, ${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}`,
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript})`,
    `Python: ${python ?? "not installed"}`,
    `C: ${cc ?? "not installed"}`,
  ];
}

function withLimit<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${LIMIT_MS / 1000} s`)), LIMIT_MS);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** Compiles a row's C source; resolves to the binary's path. */
async function compile(source: string, dir: string, index: number): Promise<string> {
  const src = `${dir}/row${index}.c`;
  const bin = `${dir}/row${index}`;
  await Deno.writeTextFile(src, source);
  await run("cc", ["-O2", "-pthread", "-o", bin, src, "-lrt"], 120_000);
  return bin;
}

async function measureRow(row: CompareRow, index: number, reps: number, tmp: () => Promise<string>) {
  const sides = new Map<string, () => Promise<number>>();
  const cells = new Map<string, Cell>();
  sides.set("deno", () => row.deno());
  if (row.python !== undefined) sides.set("python", () => runPython(row.python!, LIMIT_MS));
  if (row.c !== undefined) {
    const source = row.c;
    let binary: Promise<string> | undefined;
    sides.set("c", async () => {
      if (!(await hasCommand("cc"))) throw new Skipped("cc is not installed");
      binary ??= tmp().then((dir) => compile(source, dir, index));
      let bin: string;
      try {
        bin = await binary;
      } catch (e) {
        throw new Error(`compile: ${message(e)}`);
      }
      return lastNumber(await run(bin, [], LIMIT_MS));
    });
  }
  for (const [name, fn] of Object.entries(row.extra ?? {})) sides.set(name, fn);
  for (const name of sides.keys()) cells.set(name, { values: [] });

  const measure = async () => {
    for (let rep = 0; rep < reps; rep++) {
      for (const [name, fn] of sides) {
        const cell = cells.get(name)!;
        if (cell.error !== undefined || cell.skipped) continue;
        try {
          const v = await withLimit(fn(), name);
          if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`not a number: ${String(v)}`);
          cell.values.push(v);
        } catch (e) {
          if (e instanceof Skipped) cell.skipped = true;
          else cell.error = message(e);
        }
      }
    }
  };
  if (row.around) {
    try {
      await row.around(measure);
    } catch (e) {
      for (const cell of cells.values()) if (!cell.values.length) cell.error ??= message(e);
    }
  } else await measure();
  return cells;
}

// ---------------------------------------------------------------------------------------------
// Formatting

function num(v: number): string {
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

function ratio(r: number): string {
  if (!Number.isFinite(r)) return "—";
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

function value(cell: Cell | undefined): number | undefined {
  return cell && cell.values.length ? median(cell.values) : undefined;
}

function show(cell: Cell | undefined): string {
  if (!cell || cell.skipped) return "—";
  if (cell.error !== undefined) return "error";
  return num(median(cell.values));
}

const HEADER = [
  "Benchmark",
  "Unit",
  "Deno",
  "Python",
  "C",
  "Deno/Python",
  "Deno/C",
  "Goal",
  "Other baselines",
];
const RIGHT = new Set([2, 3, 4, 5, 6]);

function tableCells(m: Measured): string[] {
  const { row, cells } = m;
  const deno = value(cells.get("deno"));
  const py = value(cells.get("python"));
  const c = value(cells.get("c"));
  const rel = (base: number | undefined) =>
    deno !== undefined && base !== undefined ? ratio(deno / base) : "—";
  let goal = "";
  if (row.goal) {
    const { vs, ratio: r } = row.goal;
    const base = value(cells.get(vs));
    const words = `${row.higherIsBetter ? "≥" : "≤"} ${r}× ${
      vs === "c" ? "C" : vs === "python" ? "Python" : vs
    }`;
    if (deno === undefined || base === undefined) goal = `? ${words}`;
    else {
      const ok = row.higherIsBetter ? deno >= r * base : deno <= r * base;
      goal = `${ok ? "✔" : "✘"} ${words}`;
    }
  }
  const extras = Object.keys(row.extra ?? {}).map((name) => `${name}: ${show(cells.get(name))}`).join(", ");
  const unit = row.higherIsBetter ? `${row.unit} ↑` : row.unit;
  return [
    row.name,
    unit,
    show(cells.get("deno")),
    show(cells.get("python")),
    show(cells.get("c")),
    rel(py),
    rel(c),
    goal,
    extras,
  ];
}

function textTable(rows: string[][]): string {
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => [...r[i]].length)));
  const line = (r: string[]) =>
    r.map((s, i) => RIGHT.has(i) ? s.padStart(widths[i]) : s.padEnd(widths[i])).join("  ").trimEnd();
  return [line(HEADER), widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

function markdownTable(rows: string[][]): string {
  const esc = (s: string) => s.replaceAll("|", "\\|");
  const line = (r: string[]) => `| ${r.map(esc).join(" | ")} |`;
  const sep = `|${HEADER.map((_, i) => RIGHT.has(i) ? "---:" : "---").join("|")}|`;
  return [line(HEADER), sep, ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { filter, reps } = parseArgs(Deno.args);
  let tmpDir: string | undefined;
  const cleanup = () => {
    if (tmpDir !== undefined) {
      try {
        Deno.removeSync(tmpDir, { recursive: true });
      } catch {
        // already gone
      }
      tmpDir = undefined;
    }
  };
  const onInterrupt = () => {
    killRunning();
    cleanup();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  let tmpPromise: Promise<string> | undefined;
  const tmp = () => tmpPromise ??= Deno.makeTempDir({ prefix: "mp-bench-c-" }).then((d) => (tmpDir = d));

  try {
    const header = await machine();
    const all = await loadRows();
    const selected = all.filter(({ row }) => row.name.toLowerCase().includes(filter));
    console.log(header.join("\n"));
    console.log(
      `Each cell: median of ${reps} run${reps === 1 ? "" : "s"}, measured ${
        new Date().toISOString().slice(0, 16)
      }Z.`,
    );
    if (selected.length === 0) {
      console.log(
        filter ? `No benchmark row matches "${filter}".` : "No benchmark rows found in bench/rows/.",
      );
      return;
    }
    const measured: Measured[] = [];
    for (const [i, { row, file }] of selected.entries()) {
      const t0 = performance.now();
      console.error(`[${i + 1}/${selected.length}] ${row.name} (${file})…`);
      const cells = await measureRow(row, i, reps, tmp);
      measured.push({ row, file, cells });
      const summary = [...cells].map(([k, c]) => `${k} ${show(c)}`).join(", ");
      console.error(`    ${summary} ${row.unit}  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
    const cells = measured.map(tableCells);
    const notes: string[] = [];
    for (const m of measured) {
      for (const [side, cell] of m.cells) {
        if (cell.error !== undefined) notes.push(`${m.row.name} — ${side}: ${cell.error}`);
      }
    }
    console.log();
    console.log(textTable(cells));
    console.log();
    const legend =
      "Python: multiprocessing (spawn context where processes start); C: the same operation in C. " +
      "Ratios are Deno ÷ baseline: for times, below 1× means Deno is faster; for ↑ (higher is better), above 1×.";
    console.log(legend);
    if (notes.length) console.log(`Errors:\n${notes.map((n) => `  ${n}`).join("\n")}`);
    console.log("\nMarkdown:\n");
    console.log(header.map((h) => `${h}  `).join("\n"));
    console.log(`Each cell: median of ${reps} run${reps === 1 ? "" : "s"}.\n`);
    console.log(markdownTable(cells));
    console.log(`\n${legend}`);
  } catch (e) {
    console.error(`Benchmark run failed: ${message(e)}`);
  } finally {
    cleanup();
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

if (import.meta.main) {
  await main();
  // A measurement that timed out may still hold the event loop: end now (exit code 0).
  Deno.exit(0);
}
