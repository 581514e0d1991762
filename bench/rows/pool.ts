/**
 * Pool: apply round trip, 20 000 applyAsync calls, map with chunksize 1 and with the default
 * chunksize over many tiny tasks, imapUnordered streaming (throughput and
 * peak RSS), and the time from `new Pool(2)` to its first result, against CPython's Pool.
 *
 * The Python side uses the builtin `abs` as its task (under `python3 -c` a spawned child cannot
 * import a function defined in __main__); that is as cheap a task as CPython has.
 *
 * @module
 */
import { Pool } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { median, run, timeMs } from "../_measure.ts";
import { identity } from "./_targets.ts";

const TARGETS = new URL("./_targets.ts", import.meta.url);

async function withPool<T>(fn: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = new Pool({ processes: 2, module: TARGETS });
  try {
    await pool.apply(identity, [0]); // warm: both workers have started
    return await fn(pool);
  } finally {
    await pool.terminate();
  }
}

const APPLY_COUNT = 2000;
const ASYNC_COUNT = 20_000;
const MAP_ITEMS = 200_000;
const IMAP_ITEMS = 1_000_000;
const IMAP_CHUNK = 1000;

// Peak RSS is measured with V8's old space capped: left alone, V8 grows its heap lazily while it
// has room (RSS then rises with the input though nothing leaks: 74/94/137 MB at 0.3/1/3 M items);
// capped, RSS stays flat whatever the input, which is what bounded memory means.
const RSS_HEAP_FLAG = "--v8-flags=--max-old-space-size=64";

const imapRuns = new Map<string, Promise<{ perSecond: number; peakRssMB: number }>>();
function imapRun(items: number, capped = false) {
  const key = `${items}/${capped}`;
  let pending = imapRuns.get(key);
  if (!pending) {
    pending = (async () => {
      const program = new URL("./_imap_rss.ts", import.meta.url).pathname;
      const flags = capped ? [RSS_HEAP_FLAG] : [];
      return JSON.parse(
        await run(Deno.execPath(), ["run", "-A", ...flags, program, `${items}`, `${IMAP_CHUNK}`], 300_000),
      );
    })();
    imapRuns.set(key, pending);
    pending.finally(() => setTimeout(() => imapRuns.delete(key), 0));
  }
  return pending;
}

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "Pool.apply round trip (2 workers)",
    unit: "µs/op",
    deno: () =>
      withPool(async (pool) => {
        const t = await timeMs(async () => {
          for (let i = 0; i < APPLY_COUNT; i++) await pool.apply(identity, [i]);
        });
        return (t * 1000) / APPLY_COUNT;
      }),
    python: `
import multiprocessing as mp, time
if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as pool:
        pool.apply(abs, (0,))
        t0 = time.perf_counter()
        for i in range(${APPLY_COUNT}):
            pool.apply(abs, (i,))
        print((time.perf_counter() - t0) * 1e6 / ${APPLY_COUNT})
`,
    goal: { vs: "python", ratio: 0.3 },
  },
  {
    name: `Pool.applyAsync, ${ASYNC_COUNT / 1000} 000 tiny tasks, 2 workers`,
    unit: "k tasks/s",
    higherIsBetter: true,
    deno: () =>
      withPool(async (pool) => {
        const t = await timeMs(async () => {
          const rs = Array.from({ length: ASYNC_COUNT }, (_, i) => pool.applyAsync(identity, [i]));
          for (const r of rs) await r.get();
        });
        return ASYNC_COUNT / t;
      }),
    python: `
import multiprocessing as mp, time
if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as pool:
        pool.apply(abs, (0,))
        t0 = time.perf_counter()
        rs = [pool.apply_async(abs, (i,)) for i in range(${ASYNC_COUNT})]
        for r in rs:
            r.get()
        print(${ASYNC_COUNT} / (time.perf_counter() - t0) / 1000)
`,
    goal: { vs: "python", ratio: 1.5 },
  },
  {
    name: "Pool.map, 200 000 items with chunksize 1, 2 workers",
    unit: "ms",
    deno: () =>
      withPool(async (pool) => {
        const xs = Array.from({ length: MAP_ITEMS }, (_, i) => i);
        return await timeMs(() => pool.map(identity, xs, { chunksize: 1 }));
      }),
    python: `
import multiprocessing as mp, time
if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as pool:
        pool.apply(abs, (0,))
        xs = list(range(${MAP_ITEMS}))
        t0 = time.perf_counter()
        pool.map(abs, xs, chunksize=1)
        print((time.perf_counter() - t0) * 1e3)
`,
    goal: { vs: "python", ratio: 0.5 },
  },
  {
    // Both sides map once before the timed run: V8 compiles the hot loops on first use (the
    // first map takes ~2x as long here), CPython has nothing to warm.
    name: "Pool.map, 200 000 tiny tasks, 2 workers (after one warm-up map)",
    unit: "ms",
    deno: () =>
      withPool(async (pool) => {
        const xs = Array.from({ length: MAP_ITEMS }, (_, i) => i);
        await pool.map(identity, xs);
        return await timeMs(() => pool.map(identity, xs));
      }),
    python: `
import multiprocessing as mp, time
if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as pool:
        pool.apply(abs, (0,))
        xs = list(range(${MAP_ITEMS}))
        pool.map(abs, xs)
        t0 = time.perf_counter()
        pool.map(abs, xs)
        print((time.perf_counter() - t0) * 1e3)
`,
    goal: { vs: "python", ratio: 0.8 },
  },
  {
    name: `Pool.imapUnordered, 1 000 000 items (chunksize ${IMAP_CHUNK})`,
    unit: "k items/s",
    higherIsBetter: true,
    deno: async () => (await imapRun(IMAP_ITEMS)).perSecond / 1000,
    python: `
import multiprocessing as mp, time
if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as pool:
        pool.apply(abs, (0,))
        t0 = time.perf_counter()
        n = sum(1 for _ in pool.imap_unordered(abs, range(${IMAP_ITEMS}), chunksize=${IMAP_CHUNK}))
        assert n == ${IMAP_ITEMS}
        print(${IMAP_ITEMS} / (time.perf_counter() - t0) / 1000)
`,
    extra: {
      "peak RSS MB, 100k items (heap capped)": async () => (await imapRun(100_000, true)).peakRssMB,
      "1M items": async () => (await imapRun(IMAP_ITEMS, true)).peakRssMB,
      "3M items": async () => (await imapRun(3 * IMAP_ITEMS, true)).peakRssMB,
      "1M items, heap not capped": async () => (await imapRun(IMAP_ITEMS)).peakRssMB,
    },
  },
  {
    name: "new Pool(2) until its first result",
    unit: "ms",
    deno: async () => {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        times.push(
          await timeMs(async () => {
            const pool = new Pool({ processes: 2, module: TARGETS });
            await pool.apply(identity, [1]);
            await pool.terminate();
          }),
        );
      }
      return median(times);
    },
    python: `
import multiprocessing as mp, time, statistics
def once():
    t0 = time.perf_counter()
    pool = mp.get_context("spawn").Pool(2)
    pool.apply(abs, (1,))
    t = (time.perf_counter() - t0) * 1e3
    pool.terminate()
    pool.join()
    return t
if __name__ == "__main__":
    print(statistics.median([once() for _ in range(5)]))
`,
    goal: { vs: "python", ratio: 0.7 },
  },
];
