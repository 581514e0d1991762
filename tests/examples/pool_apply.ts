/**
 * `apply` in a loop: each call runs in a worker process and waits for its result.
 *
 * Run: deno task example:pool_apply
 */
import { Pool } from "@mp/multiprocessing";

export function square(x: number): number {
  return x * x;
}

if (import.meta.main) {
  await using pool = new Pool(2);
  for (let i = 0; i < 10; i++) {
    console.log(`${i} squared is ${await pool.apply(square, [i])}`);
  }
}
