/**
 * `applyAsync` with a `callback`: the callback runs here, in the parent process, as each result
 * arrives (in completion order, so the results are sorted before printing).
 *
 * Run: deno task example:apply_async_callback
 */
import { Pool } from "@mp/multiprocessing";

export function double(x: number): { value: number; pid: number } {
  return { value: 2 * x, pid: Deno.pid };
}

if (import.meta.main) {
  const collected: number[] = [];
  const callbackPids = new Set<number>();
  const workerPids = new Set<number>();
  const pool = new Pool(3);
  for (let i = 0; i < 8; i++) {
    pool.applyAsync(double, [i], {
      callback(result) {
        collected.push(result.value);
        workerPids.add(result.pid);
        callbackPids.add(Deno.pid);
      },
    });
  }
  pool.close();
  await pool.join();
  console.log(`collected: ${collected.sort((a, b) => a - b).join(" ")}`);
  console.log(`callbacks ran in the parent: ${[...callbackPids].join() === String(Deno.pid)}`);
  console.log(`tasks ran elsewhere: ${!workerPids.has(Deno.pid)}`);
}
