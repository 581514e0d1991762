/**
 * Daemon consumers take tasks from a JoinableQueue and mark each done; the main process waits
 * with `join()` until every task is done, then exits (the daemons end with it). Python's classic:
 *
 *     def worker(q):
 *         while True: item = q.get(); ...; q.task_done()
 *     q.join()
 *
 * Run: deno task example:joinable_queue
 */
import { JoinableQueue, Process, Queue } from "@mp/multiprocessing";

export async function worker(tasks: JoinableQueue<number>, done: Queue<string>): Promise<void> {
  for (;;) {
    const n = await tasks.get();
    await done.put(`${n} squared is ${n * n} (pid ${Deno.pid})`);
    tasks.taskDone();
  }
}

if (import.meta.main) {
  const tasks = new JoinableQueue<number>();
  const done = new Queue<string>();
  for (let i = 0; i < 3; i++) {
    await new Process({ target: worker, args: [tasks, done], daemon: true }).start();
  }
  for (let n = 1; n <= 10; n++) await tasks.put(n);
  await tasks.join();
  console.log(`all tasks done: ${done.qsize()} results`);
  while (!done.empty()) console.log(await done.get());
  tasks.close();
  done.close();
}
