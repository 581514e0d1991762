/**
 * Synchronization primitives across processes (src/lock.ts, semaphore.ts, barrier.ts) against CPython's
 * `multiprocessing` and the C floor (POSIX named semaphores used directly).
 *
 * @module
 */
import { Barrier, Event, Lock, Process, Semaphore, Thread } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { BUSY, busyCores, nsPerOp, pythonNsPerOp } from "../_measure.ts";
import { barrierParty, pong, pongSync } from "./_sync_targets.ts";

const targets = new URL("./_sync_targets.ts", import.meta.url);

/** ns per uncontended `acquireSync()` + `release()`. */
export function lockSyncNs(): Promise<number> {
  using lock = new Lock();
  return Promise.resolve(nsPerOp(() => {
    lock.acquireSync();
    lock.release();
  }));
}

/** ns per uncontended `await lock.acquire(); lock.release()`. */
export async function lockAsyncNs(minMs = 200): Promise<number> {
  using lock = new Lock();
  const batch = 10_000;
  for (let i = 0; i < 20_000; i++) {
    await lock.acquire();
    lock.release();
  }
  let n = 0;
  let elapsed = 0;
  const t0 = performance.now();
  do {
    for (let i = 0; i < batch; i++) {
      await lock.acquire();
      lock.release();
    }
    n += batch;
    elapsed = performance.now() - t0;
  } while (elapsed < minMs);
  return (elapsed * 1e6) / n;
}

/** µs per round trip of a hand-off through two semaphores, with a child process (or a thread). */
export async function handOffUs(
  sync = false,
  rounds = 3000,
  warmup = 300,
  kind: typeof Process | typeof Thread = Process,
): Promise<number> {
  using ping = new Semaphore(0);
  using back = new Semaphore(0);
  const child = new kind({
    target: sync ? pongSync : pong,
    args: [ping, back, rounds + warmup],
    module: targets,
  });
  await child.start();
  try {
    const round = sync
      ? () => {
        ping.release();
        back.acquireSync();
      }
      : async () => {
        ping.release();
        await back.acquire();
      };
    for (let i = 0; i < warmup; i++) await round();
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) await round();
    const us = ((performance.now() - t0) * 1000) / rounds;
    await child.join(10_000);
    return us;
  } finally {
    if (child.isAlive()) child.terminate();
    await child.join(5000);
  }
}

/** ms for `passes` passes of a `parties`-party barrier: this process and parties-1 children. */
export async function barrierMs(parties = 5, passes = 1000): Promise<number> {
  using barrier = new Barrier(parties);
  using go = new Event();
  const children = Array.from(
    { length: parties - 1 },
    () => new Process({ target: barrierParty, args: [barrier, go, passes], module: targets }),
  );
  try {
    await Promise.all(children.map((c) => c.start()));
    const t0 = performance.now();
    go.set();
    for (let i = 0; i < passes; i++) await barrier.wait();
    const ms = performance.now() - t0;
    await Promise.all(children.map((c) => c.join(10_000)));
    return ms;
  } finally {
    for (const c of children) if (c.isAlive()) c.kill();
    await Promise.all(children.map((c) => c.join(5000)));
  }
}

const C_PRELUDE = `
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static sem_t *anonymous(int value, const char *tag) {
  char name[64];
  snprintf(name, sizeof name, "/mpbc%ld%s", (long)getpid(), tag);
  sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, value);
  if (s == SEM_FAILED) { perror("sem_open"); exit(1); }
  sem_unlink(name);
  return s;
}
`;

// The floor of an uncontended lock: sem_trywait + sem_post on a process-shared semaphore.
const C_LOCK = C_PRELUDE + `
int main(void) {
  sem_t *s = anonymous(1, "l");
  for (int i = 0; i < 10000; i++) { sem_trywait(s); sem_post(s); }
  long n = 0;
  double t0 = now_ns(), dt;
  do {
    for (int i = 0; i < 10000; i++) {
      if (sem_trywait(s) != 0) { perror("sem_trywait"); return 1; }
      sem_post(s);
    }
    n += 10000;
  } while ((dt = now_ns() - t0) < 2e8);
  printf("%.3f\\n", dt / n);
  return 0;
}
`;

// Two processes ping-pong through two semaphores with blocking sem_wait.
const C_HANDOFF = C_PRELUDE + `
int main(void) {
  sem_t *ping = anonymous(0, "a"), *pong = anonymous(0, "b");
  int rounds = 3000, warmup = 300;
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < rounds + warmup; i++) { sem_wait(ping); sem_post(pong); }
    _exit(0);
  }
  for (int i = 0; i < warmup; i++) { sem_post(ping); sem_wait(pong); }
  double t0 = now_ns();
  for (int i = 0; i < rounds; i++) { sem_post(ping); sem_wait(pong); }
  double dt = now_ns() - t0;
  waitpid(pid, NULL, 0);
  printf("%.3f\\n", dt / rounds / 1000);
  return 0;
}
`;

const PY_LOCK = pythonNsPerOp(
  "import multiprocessing as mp\nlock = mp.Lock()\nacquire, release = lock.acquire, lock.release",
  "acquire(); release()",
);

// Fork context: under \`python3 -c\` a spawned child cannot import functions from __main__.
export const PY_HANDOFF = `
import multiprocessing as mp, time
ctx = mp.get_context("fork")
ping, pong = ctx.Semaphore(0), ctx.Semaphore(0)
rounds, warmup = 3000, 300
def child():
    for _ in range(rounds + warmup):
        ping.acquire(); pong.release()
p = ctx.Process(target=child)
p.start()
for _ in range(warmup):
    ping.release(); pong.acquire()
t0 = time.perf_counter()
for _ in range(rounds):
    ping.release(); pong.acquire()
dt = time.perf_counter() - t0
p.join()
print(dt / rounds * 1e6)
`;

const PY_BARRIER = `
import multiprocessing as mp, time
ctx = mp.get_context("fork")
parties, passes = 5, 1000
barrier, go = ctx.Barrier(parties), ctx.Event()
def party():
    go.wait()
    for _ in range(passes):
        barrier.wait()
children = [ctx.Process(target=party) for _ in range(parties - 1)]
for c in children: c.start()
time.sleep(0.2)
t0 = time.perf_counter()
go.set()
for _ in range(passes):
    barrier.wait()
dt = time.perf_counter() - t0
for c in children: c.join()
print(dt * 1e3)
`;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "Lock acquireSync+release, uncontended",
    unit: "ns/op",
    deno: lockSyncNs,
    python: PY_LOCK,
    c: C_LOCK,
    goal: { vs: "c", ratio: 5 },
  },
  {
    name: "Lock await acquire()+release, uncontended",
    unit: "ns/op",
    deno: () => lockAsyncNs(),
    python: PY_LOCK,
    c: C_LOCK,
    goal: { vs: "python", ratio: 1 },
  },
  {
    name: "Semaphore hand-off round trip, 2 processes, await acquire()",
    unit: "µs",
    deno: () => handOffUs(false),
    python: PY_HANDOFF,
    c: C_HANDOFF,
    goal: { vs: "c", ratio: 1.5 },
  },
  {
    name:
      `Semaphore hand-off round trip, 2 processes, await acquire(), ${BUSY} cores busy (spinning processes)`,
    unit: "µs",
    deno: () => handOffUs(false),
    python: PY_HANDOFF,
    c: C_HANDOFF,
    around: busyCores,
  },
  {
    name: "Semaphore hand-off round trip, 2 processes, acquireSync()",
    unit: "µs",
    deno: () => handOffUs(true),
    python: PY_HANDOFF,
    c: C_HANDOFF,
    goal: { vs: "c", ratio: 1.5 },
  },
  {
    name: "Barrier, 5 processes x 1000 passes",
    unit: "ms",
    deno: () => barrierMs(5, 1000),
    python: PY_BARRIER,
  },
];
