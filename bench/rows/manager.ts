/**
 * Manager: a dict proxy's `set` round trip (client → server process → client), against
 * CPython's `Manager().dict()` item assignment.
 *
 * @module
 */
import { Manager } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { timeMs } from "../_measure.ts";

const SETS = 5000;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "Manager dict set round trip",
    unit: "µs/op",
    deno: async () => {
      await using manager = await Manager.start();
      const d = await manager.dict<number>();
      for (let i = 0; i < 500; i++) await d.set("x", i); // warm both sides
      const t = await timeMs(async () => {
        for (let i = 0; i < SETS; i++) await d.set("x", i);
      });
      return (t * 1000) / SETS;
    },
    python: `
import multiprocessing as mp, time
if __name__ == "__main__":
    with mp.get_context("spawn").Manager() as m:
        d = m.dict()
        for i in range(500):
            d["x"] = i
        t0 = time.perf_counter()
        for i in range(${SETS}):
            d["x"] = i
        print((time.perf_counter() - t0) * 1e6 / ${SETS})
`,
    goal: { vs: "python", ratio: 1 },
  },
];
