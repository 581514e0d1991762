/**
 * A thread running a function (Python: `threading.Thread(target=func, args=(1,))`): the same
 * API as a Process, in a Web Worker of this program. The function must be exported: the thread
 * imports this module to find it.
 *
 * Run: deno task example:thread_target
 */
import { currentThread, Thread } from "@mp/multiprocessing";

export function greet(n: number): void {
  console.log(`${currentThread().name} says hello ${n} times`);
}

if (import.meta.main) {
  const t = new Thread({ target: greet, args: [1], name: "greeter" });
  await t.start();
  await t.join();
  console.log(`${t.name} ended with code ${t.exitCode}, alive: ${t.isAlive()}`);
  console.log(`back in ${currentThread().name}`);
}
