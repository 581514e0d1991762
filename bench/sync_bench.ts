/**
 * Micro-benchmarks of the synchronization primitives in one process (uncontended paths).
 * Hand-offs between processes and the side-by-side baselines are in bench/rows/sync.ts.
 *
 * Run: deno bench -A bench/sync_bench.ts
 */
import { BoundedSemaphore, Event, Lock, RLock, Semaphore } from "../mod.ts";

const lock = new Lock();
const rlock = new RLock();
const sem = new Semaphore(1);
const bounded = new BoundedSemaphore(1);
const event = new Event();

Deno.bench("Lock acquireSync + release", { group: "lock", baseline: true }, () => {
  lock.acquireSync();
  lock.release();
});

Deno.bench("Lock await acquire + release", { group: "lock" }, async () => {
  await lock.acquire();
  lock.release();
});

Deno.bench("RLock acquireSync x2 + release x2", { group: "lock" }, () => {
  rlock.acquireSync();
  rlock.acquireSync();
  rlock.release();
  rlock.release();
});

Deno.bench("Semaphore acquireSync + release", { group: "semaphore", baseline: true }, () => {
  sem.acquireSync();
  sem.release();
});

Deno.bench("BoundedSemaphore acquireSync + release", { group: "semaphore" }, () => {
  bounded.acquireSync();
  bounded.release();
});

Deno.bench("Semaphore getValue", { group: "semaphore" }, () => {
  sem.getValue();
});

Deno.bench("Event set + isSet + clear", { group: "event" }, () => {
  event.set();
  event.isSet();
  event.clear();
});

globalThis.addEventListener("unload", () => {
  for (const x of [lock, rlock, sem, bounded, event]) x.close();
});
