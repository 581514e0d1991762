/**
 * Three producers and four consumers share one Queue; each consumer stops at a `null` sentinel,
 * one per consumer, put by the main process once the producers are done. Python's classic:
 *
 *     def consumer(q):
 *         while (item := q.get()) is not None: ...
 *     for _ in consumers: q.put(None)
 *
 * Run: deno task example:producer_consumer
 */
import { Process, Queue } from "@mp/multiprocessing";

export async function producer(q: Queue<string | null>, id: number): Promise<void> {
  for (let i = 0; i < 5; i++) await q.put(`item ${i} from producer ${id}`);
}

export async function consumer(q: Queue<string | null>, results: Queue<number>, id: number): Promise<void> {
  let count = 0;
  for (let item = await q.get(); item !== null; item = await q.get()) {
    console.log(`consumer ${id} got ${item}`);
    count++;
  }
  await results.put(count);
}

if (import.meta.main) {
  const q = new Queue<string | null>();
  const results = new Queue<number>();
  const producers = [0, 1, 2].map((id) => new Process({ target: producer, args: [q, id] }));
  const consumers = [0, 1, 2, 3].map((id) => new Process({ target: consumer, args: [q, results, id] }));
  for (const p of [...producers, ...consumers]) p.start();
  for (const p of producers) await p.join();
  for (const _ of consumers) await q.put(null); // one sentinel per consumer
  let total = 0;
  for (const _ of consumers) total += await results.get();
  for (const c of consumers) await c.join();
  console.log(`${total} items consumed`);
  q.close();
  results.close();
  if (total !== 15) Deno.exit(1);
}
