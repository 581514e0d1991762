/**
 * Per-task deadlines of the pool (`apply`/`applyAsync` with `timeout` or `signal`). A task with a
 * deadline runs alone on an idle worker (`_pool_scheduler.ts`), so its `timeout` counts from the
 * moment it is sent there, when it starts; its `signal` is watched from the moment it is
 * submitted. Either failing calls `fail`: the scheduler fails a queued task at once and kills the
 * worker of a running one. `deadline.stop` is aborted when the task settles, which stops both
 * watches.
 *
 * @module
 */
import type { Chunk } from "./_pool_task.ts";
import { sleep } from "./_wait.ts";

/** A task with a timeout: the clock starts now, as it starts running. */
export function startTimer(c: Chunk, fail: (c: Chunk, reason: unknown) => void): void {
  const d = c.deadline!;
  if (d.timeout === Infinity) return;
  d.stop ??= new AbortController();
  sleep(Math.max(0, d.timeout), { signal: d.stop.signal }).then(
    () =>
      fail(
        c,
        new Deno.errors.TimedOut(`Task ${c.fn.desc.name} did not finish within ${d.timeout} ms`),
      ),
    () => {},
  );
}

/** A task with a signal: it fails with the signal's reason once aborted. */
export function watchSignal(c: Chunk, fail: (c: Chunk, reason: unknown) => void): void {
  const d = c.deadline!;
  const signal = d.signal!;
  d.stop ??= new AbortController();
  const onAbort = () => fail(c, signal.reason);
  if (signal.aborted) return queueMicrotask(onAbort);
  signal.addEventListener("abort", onAbort, { once: true, signal: d.stop.signal });
}
