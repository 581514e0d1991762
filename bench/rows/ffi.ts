/**
 * The raw FFI floor: what one synchronous libc call costs from Deno, and the uncontended named
 * semaphore operations every Lock is built on, against the same calls in C.
 *
 * @module
 */
import { getpid, NamedSemaphore } from "../../native/mod.ts";
import type { CompareRow } from "../_row.ts";
import { nsPerOp, pythonNsPerOp } from "../_measure.ts";

let counter = 0;

/** A fresh semaphore name of ours ("/mp" prefix, short enough for macOS). */
export function uniqueName(): string {
  const random = Math.floor(Math.random() * 36 ** 4).toString(36);
  return `/mpb${Deno.pid.toString(36)}-${(counter++).toString(36)}-${random}`;
}

/**
 * A semaphore with value 1 whose name is already unlinked: the handle keeps working, and
 * nothing is left in /dev/shm even if the caller never closes it.
 */
export function anonymousSemaphore(): NamedSemaphore {
  const name = uniqueName();
  const sem = NamedSemaphore.create(name, 1);
  NamedSemaphore.unlink(name);
  return sem;
}

/** ns per sync FFI `getpid()` (a real syscall: glibc does not cache it). */
export function getpidNs(): Promise<number> {
  return Promise.resolve(nsPerOp(() => void getpid()));
}

/** ns per `sem_trywait` + `sem_post` pair on an uncontended named semaphore. */
export function semaphoreNs(): Promise<number> {
  const sem = anonymousSemaphore();
  try {
    return Promise.resolve(nsPerOp(() => {
      if (!sem.tryWait()) throw new Error("sem_trywait failed on an uncontended semaphore");
      sem.post();
    }));
  } finally {
    sem.close();
  }
}

// Loops of ~0.2 s, timed with CLOCK_MONOTONIC, in batches so the clock is read rarely.
const C_PRELUDE = `
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}
#define BATCH 10000
#define MIN_NS 2e8
`;

const C_GETPID = C_PRELUDE + `
int main(void) {
  volatile long sink = 0;
  for (int i = 0; i < BATCH; i++) sink += syscall(SYS_getpid);
  long n = 0;
  double t0 = now_ns(), dt;
  do {
    for (int i = 0; i < BATCH; i++) sink += syscall(SYS_getpid);
    n += BATCH;
  } while ((dt = now_ns() - t0) < MIN_NS);
  printf("%.3f\\n", dt / n);
  return sink == 0;
}
`;

const C_SEMAPHORE = C_PRELUDE + `
int main(void) {
  char name[64];
  snprintf(name, sizeof name, "/mpbc%ld", (long)getpid());
  sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 1);
  if (s == SEM_FAILED) { perror("sem_open"); return 1; }
  sem_unlink(name);
  for (int i = 0; i < BATCH; i++) { if (sem_trywait(s) != 0) return 1; sem_post(s); }
  long n = 0;
  double t0 = now_ns(), dt;
  do {
    for (int i = 0; i < BATCH; i++) {
      if (sem_trywait(s) != 0) { perror("sem_trywait"); return 1; }
      sem_post(s);
    }
    n += BATCH;
  } while ((dt = now_ns() - t0) < MIN_NS);
  sem_close(s);
  printf("%.3f\\n", dt / n);
  return 0;
}
`;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "sync FFI call (getpid)",
    unit: "ns/op",
    deno: getpidNs,
    python: pythonNsPerOp("import os\ngetpid = os.getpid", "getpid()"),
    c: C_GETPID,
  },
  {
    name: "named semaphore sem_trywait+sem_post, sync FFI",
    unit: "ns/op",
    deno: semaphoreNs,
    python: pythonNsPerOp(
      "import multiprocessing as mp\nlock = mp.Lock()\nacquire, release = lock.acquire, lock.release",
      "acquire(); release()",
    ),
    c: C_SEMAPHORE,
  },
];
