/**
 * The same 100 small jobs run by a Pool of 4 workers, and by 100 separate Processes: a pool
 * pays for starting a process 4 times instead of 100.
 *
 * Run: deno task example:pool_vs_processes
 */
import { Pool, Process } from "@mp/multiprocessing";

export function job(n: number): number {
  let sum = 0;
  for (let i = 0; i < 10_000; i++) sum += (i * n) % 7;
  return sum;
}

if (import.meta.main) {
  const inputs = Array.from({ length: 100 }, (_, i) => i);

  let t0 = performance.now();
  await using pool = new Pool(4);
  const results = await pool.map(job, inputs);
  const poolMs = performance.now() - t0;

  t0 = performance.now();
  for (let i = 0; i < inputs.length; i += 4) {
    const batch = inputs.slice(i, i + 4).map((n) => new Process({ target: job, args: [n] }));
    for (const p of batch) p.start();
    for (const p of batch) await p.join();
  }
  const processesMs = performance.now() - t0;

  console.log(`results: ${results.length} (checksum ${results.reduce((a, b) => a + b, 0)})`);
  console.log(`Pool of 4 workers: ${poolMs.toFixed(0)} ms`);
  console.log(`100 separate processes, 4 at a time: ${processesMs.toFixed(0)} ms`);
}
