/**
 * Shared memory: four processes add to one Value under its lock, and fill their own slots of a
 * SharedArray (Python's `Value('i', 0)` and `Array('d', 4)`).
 *
 * Run: deno task example:shared_counter
 */
import { Process, SharedArray, Value } from "@mp/multiprocessing";

export async function work(id: number, counter: Value, squares: SharedArray): Promise<void> {
  for (let i = 0; i < 100; i++) {
    using _ = await counter.getLock().hold();
    counter.value += 1;
  }
  squares.array[id] = id * id;
}

if (import.meta.main) {
  using counter = new Value("i32", 0);
  using squares = new SharedArray("f64", 4);
  const processes = [0, 1, 2, 3].map((id) => new Process({ target: work, args: [id, counter, squares] }));
  for (const p of processes) await p.start();
  for (const p of processes) await p.join();
  console.log(`counter: ${counter.value}`);
  console.log(`squares: ${[...squares.array].join(" ")}`);
}
