/**
 * One row of the side-by-side benchmark table printed by `bench/compare.ts`.
 *
 * Every module in `bench/rows/*.ts` (except `_`-prefixed helpers) exports
 * `export const rows: CompareRow[]`.
 *
 * @module
 */

/** What one row measures, and the baselines it is compared with. */
export interface CompareRow {
  /** What is measured, e.g. "Lock acquire+release, sync". */
  name: string;
  /** Unit of every number this row reports, e.g. "ns/op", "µs/op", "ms", "k msg/s", "GB/s". */
  unit: string;
  /** True when a bigger number is better (throughput). Default false (a time). */
  higherIsBetter?: boolean;
  /** Measures this module (may spawn processes); resolves to the number in `unit`. */
  deno: () => Promise<number>;
  /** Python 3 source run as `python3 -c`, printing ONE number in `unit` on its last line.
   *  Skipped (shown as "—") when python3 is missing. */
  python?: string;
  /** C source compiled with `cc -O2 -pthread` (+ `-lrt`), printing ONE number in `unit`.
   *  Skipped when cc is missing. */
  c?: string;
  /** Other baselines measured in the same run, e.g. { "deno run (empty file)": async () => ms }. */
  extra?: Record<string, () => Promise<number>>;
  /** The goal in words, checked and printed: e.g. { vs: "python", ratio: 0.7 } means
   *  deno ≤ 0.7 × python for times (deno ≥ ratio × python when higherIsBetter). */
  goal?: { vs: "python" | "c" | string; ratio: number };
  /** Runs the row's whole measurement (every side, every rep) inside it, e.g. with the cores
   *  kept busy by other processes (`withBusyCores` in `_measure.ts`); it must clean up in
   *  `finally`. */
  around?: (measure: () => Promise<void>) => Promise<void>;
}
