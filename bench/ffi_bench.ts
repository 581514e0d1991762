/**
 * The raw FFI floor: one synchronous libc call, and the uncontended semaphore operations every
 * Lock is built on. `deno bench -A bench/ffi_bench.ts`; `bench/compare.ts` puts the same
 * numbers beside C and CPython.
 *
 * @module
 */
import { getpid } from "../native/mod.ts";
import { anonymousSemaphore } from "./rows/ffi.ts";

// Its name is unlinked already: nothing is left in /dev/shm, whatever happens.
const sem = anonymousSemaphore();

Deno.bench({
  name: "sync FFI call (getpid)",
  group: "ffi",
  fn() {
    getpid();
  },
});

Deno.bench({
  name: "named semaphore sem_trywait+sem_post, sync FFI",
  group: "ffi",
  fn() {
    if (!sem.tryWait()) throw new Error("sem_trywait failed on an uncontended semaphore");
    sem.post();
  },
});
