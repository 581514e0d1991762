/**
 * `applyAsync` submits without waiting; `get(timeout)` collects each result (Python:
 * `[r.get(timeout=1) for r in results]`). A slow task shows what a timeout looks like: it
 * waits for an Event that the parent sets only after `get(50)` gave up (a plain sleep would
 * only make that likely, not certain, on a busy machine).
 *
 * Run: deno task example:apply_async
 */
import { Event, Pool } from "@mp/multiprocessing";

export function cube(x: number): number {
  return x ** 3;
}

export async function slow(release: Event): Promise<string> {
  await release.wait();
  return "finally done";
}

if (import.meta.main) {
  await using pool = new Pool(4);
  const results = Array.from({ length: 10 }, (_, i) => pool.applyAsync(cube, [i]));
  const cubes = await Promise.all(results.map((r) => r.get(10_000)));
  console.log(`cubes: ${cubes.join(" ")}`);

  using release = new Event();
  const late = pool.applyAsync(slow, [release]);
  try {
    await late.get(50);
  } catch (e) {
    console.log(`get(50) gave up: ${(e as Error).name}`);
  }
  release.set();
  console.log(`get() waited: ${await late.get()}`);
}
