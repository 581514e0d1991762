/**
 * A Thread subclass overriding run() (Python: `class MyThread(threading.Thread)`): the
 * instance's own fields travel to the thread, where its run() is called. The class must be
 * exported so the thread can import it.
 *
 * Run: deno task example:thread_subclass
 */
import { currentThread, Thread } from "@mp/multiprocessing";

export class Counter extends Thread {
  upTo: number;
  constructor(upTo: number, name: string) {
    super({ name });
    this.upTo = upTo;
  }

  override run(): void {
    for (let i = 1; i <= this.upTo; i++) console.log(`${currentThread().name}: ${i}`);
  }
}

if (import.meta.main) {
  const counter = new Counter(3, "counter");
  await counter.start();
  await counter.join();
  console.log(`${counter.name} exited with code ${counter.exitCode}`);
}
