/**
 * Five processes print without a lock: their lines interleave (all start before any is done).
 * Python's classic:
 *
 *     def f(n): print(n, os.getpid(), "is running"); time.sleep(0.1); print(n, "is done")
 *
 * Run: deno task example:no_lock
 */
import { Process } from "@mp/multiprocessing";

export async function work(n: number): Promise<void> {
  console.log(`${n}: ${Deno.pid} is running`);
  await new Promise((r) => setTimeout(r, 100));
  console.log(`${n}: ${Deno.pid} is done`);
}

if (import.meta.main) {
  const processes = [0, 1, 2, 3, 4].map((n) => new Process({ target: work, args: [n] }));
  for (const p of processes) p.start();
  for (const p of processes) await p.join();
}
