/**
 * ThreadPool (threads, the Pool scheduler) against the thread pools of Node's ecosystem, piscina
 * and workerpool's thread mode, and against CPython's `multiprocessing.pool.ThreadPool`: an apply
 * round trip, and a map of 200 000 tiny items, with 2 threads.
 *
 * piscina and workerpool are benchmark-only npm packages (`bench/npm/package.json`, a folder of
 * its own: a package.json in `bench/` would make Deno take `bench/` for a project without this
 * repository's deno.json; install them with `npm install --prefix bench/npm`): they run under Node, their home, through
 * `_node_pools.mjs`; their columns show "—" when Node or the packages are missing. Neither has
 * a map: their map is one task per item, submitted at once, as their users write it; it takes
 * them ~45 s for 200 000 items here, so each is measured once per run (the value repeats).
 *
 * @module
 */
import { Pool, ThreadPool } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { hasCommand, lastNumber, run, Skipped, timeMs } from "../_measure.ts";
import { identity } from "./_targets.ts";

const TARGETS = new URL("./_targets.ts", import.meta.url);
const APPLY_COUNT = 2000;
const MAP_ITEMS = 200_000;

async function withPool<T>(
  P: typeof Pool,
  fn: (pool: Pool) => Promise<T>,
): Promise<T> {
  const pool = new P({ processes: 2, module: TARGETS });
  try {
    await pool.map(identity, [0, 1], { chunksize: 1 }); // warm: both workers have started
    return await fn(pool);
  } finally {
    await pool.terminate();
  }
}

const applyUs = (P: typeof Pool) =>
  withPool(P, async (pool) => {
    for (let i = 0; i < 200; i++) await pool.apply(identity, [i]); // warm
    const t = await timeMs(async () => {
      for (let i = 0; i < APPLY_COUNT; i++) await pool.apply(identity, [i]);
    });
    return (t * 1000) / APPLY_COUNT;
  });

const mapMs = (P: typeof Pool, chunksize?: number) =>
  withPool(P, async (pool) => {
    const xs = Array.from({ length: MAP_ITEMS }, (_, i) => i);
    await pool.map(identity, xs, { chunksize });
    return await timeMs(() => pool.map(identity, xs, { chunksize }));
  });

const nodeRuns = new Map<string, Promise<number>>();
/** One Node baseline (µs per apply, or ms for the map), measured once per run of compare.ts. */
function node(
  lib: "piscina" | "workerpool",
  mode: "apply" | "map",
): () => Promise<number> {
  return () => {
    const key = `${lib}/${mode}`;
    let p = nodeRuns.get(key);
    if (!p) {
      p = (async () => {
        if (!(await hasCommand("node"))) {
          throw new Skipped("node is not installed");
        }
        try {
          await Deno.stat(
            new URL(`../npm/node_modules/${lib}/package.json`, import.meta.url),
          );
        } catch {
          throw new Skipped(
            `${lib} is not installed: npm install --prefix bench/npm`,
          );
        }
        const script = new URL("./_node_pools.mjs", import.meta.url).pathname;
        const count = mode === "apply" ? APPLY_COUNT : MAP_ITEMS;
        return lastNumber(
          await run("node", [script, lib, mode, String(count)], 170_000),
        );
      })();
      nodeRuns.set(key, p);
    }
    return p;
  };
}

const PY_POOL = `
import time
from multiprocessing.pool import ThreadPool
def identity(x):
    return x
if __name__ == "__main__":
    with ThreadPool(2) as pool:
        pool.map(identity, [0, 1], chunksize=1)
`;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "ThreadPool.apply round trip (2 threads)",
    unit: "µs/op",
    deno: () => applyUs(ThreadPool),
    python: `${PY_POOL}
        for i in range(200):
            pool.apply(identity, (i,))
        t0 = time.perf_counter()
        for i in range(${APPLY_COUNT}):
            pool.apply(identity, (i,))
        print((time.perf_counter() - t0) * 1e6 / ${APPLY_COUNT})
`,
    extra: {
      "piscina (Node)": node("piscina", "apply"),
      "workerpool thread (Node)": node("workerpool", "apply"),
      "Pool (processes)": () => applyUs(Pool),
    },
    goal: { vs: "piscina (Node)", ratio: 1 },
  },
  {
    name: "ThreadPool.map, 200 000 tiny items, 2 threads (after one warm-up map)",
    unit: "ms",
    deno: () => mapMs(ThreadPool),
    python: `${PY_POOL}
        xs = list(range(${MAP_ITEMS}))
        pool.map(identity, xs)
        t0 = time.perf_counter()
        pool.map(identity, xs)
        print((time.perf_counter() - t0) * 1e3)
`,
    extra: {
      "workerpool thread (Node, a task per item)": node("workerpool", "map"),
      "piscina (Node, a task per item)": node("piscina", "map"),
      "ThreadPool chunksize 1": () => mapMs(ThreadPool, 1),
      "Pool (processes)": () => mapMs(Pool),
    },
    goal: { vs: "workerpool thread (Node, a task per item)", ratio: 1 },
  },
];
