/**
 * Threads (Web Workers) against processes, a raw Deno Worker and CPython's threading: starting
 * and joining one that does nothing, and a semaphore hand-off between two of them.
 *
 * @module
 */
import { Thread } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { median, timeMs } from "../_measure.ts";
import { startJoinMs } from "./process.ts";
import { handOffUs } from "./sync.ts";
import { empty } from "./_targets.ts";

const TARGETS = new URL("./_targets.ts", import.meta.url);
/** Threads started per measurement (the median is reported). */
const COUNT = 10;

/** One `start()` + `join()` of a thread running the empty target, in ms. */
async function threadStartJoinOnce(): Promise<number> {
  const t = new Thread({ target: empty, module: TARGETS });
  try {
    return await timeMs(async () => {
      await t.start();
      await t.join();
    });
  } finally {
    if (t.isAlive()) t.terminate();
  }
}

/** Median ms of {@linkcode COUNT} thread start+join, after one warm-up. */
async function threadStartJoinMs(count = COUNT): Promise<number> {
  await threadStartJoinOnce();
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await threadStartJoinOnce());
  return median(times);
}

// The floor: a Worker whose module only says it is up, terminated once it has.
const RAW_WORKER = `data:application/javascript,${encodeURIComponent("postMessage(0);")}`;

/** Median ms of a raw Deno Worker's start (until its first message) + terminate(). */
async function rawWorkerMs(count = COUNT): Promise<number> {
  const once = () =>
    timeMs(async () => {
      const w = new Worker(RAW_WORKER, { type: "module" });
      await new Promise((resolve, reject) => {
        w.onmessage = resolve;
        w.onerror = (e) => (e.preventDefault(), reject(new Error(e.message)));
      });
      w.terminate();
    });
  await once();
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await once());
  return median(times);
}

const PY_START_JOIN = `
import threading, statistics, time
def once():
    t0 = time.perf_counter()
    t = threading.Thread(target=int)
    t.start()
    t.join()
    return (time.perf_counter() - t0) * 1e3
once()
print(statistics.median([once() for _ in range(${COUNT})]))
`;

const PY_THREAD_HANDOFF = `
import threading, time
N, W = 3000, 300
ping, back = threading.Semaphore(0), threading.Semaphore(0)
def pong():
    for _ in range(N + W):
        ping.acquire()
        back.release()
t = threading.Thread(target=pong)
t.start()
for _ in range(W):
    ping.release(); back.acquire()
t0 = time.perf_counter()
for _ in range(N):
    ping.release(); back.acquire()
print((time.perf_counter() - t0) * 1e6 / N)
t.join()
`;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "Thread start+join (empty target)",
    unit: "ms",
    deno: () => threadStartJoinMs(),
    python: PY_START_JOIN,
    extra: {
      "Process start+join": () => startJoinMs(),
      "raw Worker start+terminate": () => rawWorkerMs(),
    },
    goal: { vs: "Process start+join", ratio: 0.7 },
  },
  {
    name: "Semaphore hand-off round trip, 2 threads, await acquire()",
    unit: "µs",
    deno: () => handOffUs(false, 3000, 300, Thread),
    python: PY_THREAD_HANDOFF,
    extra: { "2 processes": () => handOffUs(false) },
  },
  {
    name: "Semaphore hand-off round trip, 2 threads, acquireSync()",
    unit: "µs",
    deno: () => handOffUs(true, 3000, 300, Thread),
    python: PY_THREAD_HANDOFF,
    extra: { "2 processes": () => handOffUs(true) },
  },
];
