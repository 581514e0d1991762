/**
 * `applyAsync` submits without waiting; `get(timeout)` collects each result (Python:
 * `[r.get(timeout=1) for r in results]`). A slow task shows what a timeout looks like.
 *
 * Run: deno task example:apply_async
 */
import { Pool } from "@mp/multiprocessing";

export function cube(x: number): number {
  return x ** 3;
}

export async function slow(ms: number): Promise<string> {
  await new Promise((r) => setTimeout(r, ms));
  return "finally done";
}

if (import.meta.main) {
  await using pool = new Pool(4);
  const results = Array.from({ length: 10 }, (_, i) => pool.applyAsync(cube, [i]));
  const cubes = await Promise.all(results.map((r) => r.get(10_000)));
  console.log(`cubes: ${cubes.join(" ")}`);

  const late = pool.applyAsync(slow, [500]);
  try {
    await late.get(50);
  } catch (e) {
    console.log(`get(50) gave up: ${(e as Error).name}`);
  }
  console.log(`get() waited: ${await late.get()}`);
}
