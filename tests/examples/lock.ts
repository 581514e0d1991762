/**
 * Five processes print under a Lock: each process's two lines stay together. Python's classic:
 *
 *     def f(lock, n):
 *         with lock:
 *             print(n, os.getpid(), "is running"); time.sleep(0.1); print(n, "is done")
 *
 * Compare with no_lock.ts, where the lines interleave.
 *
 * Run: deno task example:lock
 */
import { Lock, Process } from "@mp/multiprocessing";

export async function work(lock: Lock, n: number): Promise<void> {
  using _ = await lock.hold(); // `with lock:`
  console.log(`${n}: ${Deno.pid} is running`);
  await new Promise((r) => setTimeout(r, 100));
  console.log(`${n}: ${Deno.pid} is done`);
}

if (import.meta.main) {
  using lock = new Lock();
  const processes = [0, 1, 2, 3, 4].map((n) => new Process({ target: work, args: [lock, n] }));
  for (const p of processes) p.start();
  for (const p of processes) await p.join();
}
