/**
 * A Manager holds a dict and a list in its own server process; four processes add entries to
 * both through proxies, and the parent prints the sorted result. Python's classic:
 *
 *     def f(d, l, n):
 *         d[n] = n * n
 *         l.append(n)
 *
 *     with Manager() as manager:
 *         d, l = manager.dict(), manager.list()
 *         ...
 *
 * Run: deno task example:manager_dict
 */
import { type DictProxy, type ListProxy, Manager, Process } from "@mp/multiprocessing";

export async function addEntries(d: DictProxy<number>, l: ListProxy<string>, n: number): Promise<void> {
  await d.set(`worker ${n}`, n * n);
  await l.append(`hello from worker ${n}`);
}

if (import.meta.main) {
  await using manager = await Manager.start();
  const d = await manager.dict<number>();
  const l = await manager.list<string>();
  const workers = [0, 1, 2, 3].map((n) => new Process({ target: addEntries, args: [d, l, n] }));
  for (const p of workers) await p.start();
  for (const p of workers) await p.join();
  for (const [key, value] of (await d.entries()).sort()) console.log(`${key}: ${value}`);
  await l.sort();
  for (const line of await l.toArray()) console.log(line);
}
