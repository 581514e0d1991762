/**
 * Who holds what, so that a holder that dies never deadlocks the others (CPython does,
 * bpo-44138).
 *
 * - `Lock`/`RLock` keep the holder's pid in the lock word itself; a waiter that slept a slice
 *   asks {@linkcode isDead} about it.
 * - A `Semaphore` has no single holder: its block keeps up to {@linkcode N_SLOTS} holder slots,
 *   each a pair of words `(pid, units held)`, at `W.SLOTS`. Taking a unit counts it in this
 *   process's slot ({@linkcode noteTaken}); releasing counts it down, in this process's slot if
 *   it holds any, else in another's ({@linkcode noteGiven}). A waiter that slept a slice calls
 *   {@linkcode reclaimDeadSlots}: the units of a pid that no longer runs come back (the slot is
 *   set to -1 while one waiter reclaims it, so only one does).
 * - At a normal exit (the `holders` phase of `_exit.ts`) a process forgets its slots: units it
 *   took and never gave back count as consumed (a semaphore counting events, acquired here and
 *   released elsewhere). Only a process that vanished without that hook (SIGKILL, crash) has its
 *   units given back.
 *
 * @module
 */
import { processAlive } from "../native/mod.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { PID_MASK } from "./_state.ts";
import { N_SLOTS, PID, type SyncBlock, W } from "./_sync_block.ts";

/** True when `pid` is a process that has ended (so whatever it held is abandoned). */
export function isDead(pid: number): boolean {
  const p = pid & PID_MASK;
  return p > 0 && p !== Deno.pid && !processAlive(p);
}

/** Cores of semaphores in which this process holds a slot: cleared at a normal exit. Weak, so
 * that a dropped semaphore can still be collected (and its names unlinked). */
const holderRefs = new Set<WeakRef<SyncBlock>>();

/** Records that this process took one unit of a semaphore. */
export function noteTaken(core: SyncBlock): void {
  let s = core.slot;
  if (s === -1) s = claimSlot(core);
  if (s >= 0) Atomics.add(core.words, W.SLOTS + 2 * s + 1, 1);
}

function claimSlot(core: SyncBlock): number {
  const w = core.words;
  let s = -2;
  for (let i = 0; i < N_SLOTS; i++) {
    if (Atomics.load(w, W.SLOTS + 2 * i) === PID) {
      s = i;
      break;
    }
  }
  if (s === -2) {
    for (let i = 0; i < N_SLOTS; i++) {
      if (Atomics.compareExchange(w, W.SLOTS + 2 * i, 0, PID) === 0) {
        s = i;
        break;
      }
    }
  }
  core.slot = s;
  if (s >= 0) {
    const ref = new WeakRef(core);
    holderRefs.add(ref);
  }
  return s;
}

/**
 * Records that one unit is given back: by this process if it holds any, else on behalf of
 * another holder. Returns the slot index changed (-1: none), for {@linkcode undoGiven}.
 */
export function noteGiven(core: SyncBlock): number {
  const w = core.words;
  const s = core.slot;
  if (s >= 0 && decrementIfPositive(w, W.SLOTS + 2 * s + 1)) return s;
  for (let i = 0; i < N_SLOTS; i++) {
    if (decrementIfPositive(w, W.SLOTS + 2 * i + 1)) return i;
  }
  return -1;
}

/** Reverts {@linkcode noteGiven} (the release turned out to be an over-release). */
export function undoGiven(core: SyncBlock, slot: number): void {
  if (slot >= 0) Atomics.add(core.words, W.SLOTS + 2 * slot + 1, 1);
}

/** Atomically decrements `w[i]` if it is above zero; true when it did. */
export function decrementIfPositive(w: Int32Array, i: number): boolean {
  let c = Atomics.load(w, i);
  while (c > 0) {
    const seen = Atomics.compareExchange(w, i, c, c - 1);
    if (seen === c) return true;
    c = seen;
  }
  return false;
}

/**
 * Takes back the units of holders that died without giving them back. Returns how many units
 * were recovered (the caller adds them to the value and wakes waiters).
 */
export function reclaimDeadSlots(core: SyncBlock): number {
  const w = core.words;
  let total = 0;
  for (let i = 0; i < N_SLOTS; i++) {
    const p = Atomics.load(w, W.SLOTS + 2 * i);
    if (p <= 0 || !isDead(p)) continue;
    // -1 marks the slot busy so only one waiter reclaims it.
    if (Atomics.compareExchange(w, W.SLOTS + 2 * i, p, -1) !== p) continue;
    total += Atomics.exchange(w, W.SLOTS + 2 * i + 1, 0);
    Atomics.store(w, W.SLOTS + 2 * i, 0);
  }
  return total;
}

// At a normal exit, forget this process's holder slots (see the header).
atExit(ExitPhase.holders, () => {
  for (const ref of holderRefs) {
    const core = ref.deref();
    if (!core || core.closed || core.slot < 0) continue;
    const i = W.SLOTS + 2 * core.slot;
    Atomics.store(core.words, i + 1, 0);
    Atomics.compareExchange(core.words, i, PID, 0);
  }
});
