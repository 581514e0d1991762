/**
 * Python's classic `Pool(4).map(f, range(100))`: the squares of 0..99, computed in 4 processes.
 *
 * Run: deno task example:pool_map
 */
import { Pool } from "@mp/multiprocessing";

export function f(x: number): number {
  return x * x;
}

if (import.meta.main) {
  await using pool = new Pool(4);
  const squares = await pool.map(f, Array.from({ length: 100 }, (_, i) => i));
  console.log(`[${squares.join(", ")}]`);
}
