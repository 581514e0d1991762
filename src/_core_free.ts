/**
 * Whether a core is free: the load signal of the wait policy (`waitSteps` in `_wait.ts` spins
 * long while one is, briefly while none is). A spin that waits for a peer costs nothing while a
 * core is idle, and takes the CPU that the peer (or anyone) needs while none is.
 *
 * The signal: since this thread last looked (every {@linkcode LOOK_EVERY_MS} at most), each time
 * it became runnable it waited less than {@linkcode LOADED_WAIT_MS} on average for a CPU
 * (`/proc/thread-self/schedstat`, ~10 µs a look; where that cannot be read: any core but ours).
 * Each thread (isolate) looks for itself.
 *
 * What it cannot see, measured on the 2-core VM: five processes at a Barrier wait 50–100 µs a
 * turn, as a quiet round trip's thread does (55 µs); their spins then take the CPU the last
 * arrivals need (+20–35% against 0752135). A Barrier's waits therefore give way as they spin
 * (`polite` in `_wait.ts`). Tried and dropped:
 * - the count of runnable threads (`/proc/loadavg`, before 06202d4): an instant, often above the
 *   cores on a quiet machine (GC helpers, Deno's own threads): a quiet hand-off read as loaded in
 *   2975 of 3286 waits;
 * - this thread's share of time spent waiting: a thread woken from a park waits for its halted
 *   vCPU to wake, so a hand-off that parks read as loaded too;
 * - the machine's CPU pressure (`/proc/pressure/cpu`, smoothed over 50 ms, loaded from 0.4): a
 *   Barrier's pressure follows the policy (0.6 while its waits spin long, 0.15–0.3 while they do
 *   not), so the judgement swung between the two; Barrier −0–17%, Semaphore hand-off +24%.
 *
 * @module
 */
import { type CpuTurns, cpuTurns } from "../native/mod.ts";

/** How often a thread looks at how long it waits for a CPU, in ms. */
const LOOK_EVERY_MS = 10;

/**
 * The mean wait for a CPU per turn, in ms, from which every core counts as taken: a quiet VM wakes
 * a thread in 10–30 µs; one that shares its core with busy ones waits hundreds of µs and more.
 */
const LOADED_WAIT_MS = 0.2;

const CORES = navigator.hardwareConcurrency ?? 1;
let seenAt = -Infinity;
let turnsSeen: CpuTurns = { waitedNs: 0, turns: 0 };
let free = CORES > 1;

/** Whether a core is free for this thread (as of its last look). Never on one core. */
export function coreIsFree(): boolean {
  const now = performance.now();
  if (now - seenAt < LOOK_EVERY_MS || CORES <= 1) return free;
  seenAt = now;
  const turns = cpuTurns();
  if (turns === undefined) return free = true; // nothing to judge by: any core but ours
  const n = turns.turns - turnsSeen.turns;
  free = n <= 0 || (turns.waitedNs - turnsSeen.waitedNs) / n < LOADED_WAIT_MS * 1e6;
  turnsSeen = turns;
  return free;
}
