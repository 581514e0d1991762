/**
 * Five processes print without a lock: their lines interleave (all start before any is done).
 * Python's classic:
 *
 *     def f(n): print(n, os.getpid(), "is running"); time.sleep(0.1); print(n, "is done")
 *
 * Python's sleep only makes the interleaving likely: on a busy machine one process may finish
 * before the next has started. Here the five meet at a Barrier instead, so every run shows all
 * five running before any is done.
 *
 * Run: deno task example:no_lock
 */
import { Barrier, Process } from "@mp/multiprocessing";

export async function work(n: number, allRunning: Barrier): Promise<void> {
  console.log(`${n}: ${Deno.pid} is running`);
  await allRunning.wait(); // the "work": nobody is done until all five are running
  console.log(`${n}: ${Deno.pid} is done`);
}

if (import.meta.main) {
  using allRunning = new Barrier(5);
  const processes = [0, 1, 2, 3, 4].map((n) => new Process({ target: work, args: [n, allRunning] }));
  for (const p of processes) p.start();
  for (const p of processes) await p.join();
}
