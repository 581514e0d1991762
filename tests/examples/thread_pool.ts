/**
 * Python's `multiprocessing.dummy` / `ThreadPool`: the same `map` as `pool_map.ts`, in 2 threads
 * of this process instead of 4 processes. Each word's length is computed in a worker thread.
 *
 * Run: deno task example:thread_pool
 */
import { ThreadPool } from "@mp/multiprocessing";

export function shout(word: string): string {
  return `${word.toUpperCase()} (${word.length})`;
}

if (import.meta.main) {
  await using pool = new ThreadPool(2);
  const words = ["thread", "pool", "same", "api", "as", "pool"];
  for (const line of await pool.map(shout, words)) console.log(line);
}
