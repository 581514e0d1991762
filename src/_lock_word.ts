/**
 * The lock word of `Lock` and `RLock` (word `W.A` of their shared block, `_sync_block.ts`), and
 * the wait spec both drive through the one wait loop (`_sync_wait.ts`).
 *
 * The word is 0 when the lock is free, else the holder's id ({@linkcode OWNER} bits: the pid, or
 * a thread's pid plus its number) plus {@linkcode FLAG} when a waiter may sleep. So taking and
 * releasing a lock nobody waits for is one compare-and-swap each, and a release posts the block's
 * semaphore only when the flag says someone may sleep. A waiter that got the lock while others
 * still wait keeps the flag set, so that its own release wakes them; a waiter that slept a slice
 * checks the holder and frees the lock of one that no longer runs.
 *
 * @module
 */
import { PID_MASK } from "./_state.ts";
import { PID, type SyncBlock, W } from "./_sync_block.ts";
import { isDead } from "./_sync_holders.ts";
import type { WaitSpec } from "./_sync_wait.ts";

/** Set in the lock word when a waiter may sleep: then the release must post. */
export const FLAG = 0x4000_0000;
/** The holder's id in the lock word (see `holderId`: the pid, plus a thread's number). */
export const OWNER = FLAG - 1;
/** What a closed handle looks at: a lock word no compare-and-swap matches, so every fast path
 * falls through to the slow path, which reports the handle closed. */
export const CLOSED_WORDS = new Int32Array(W.E + 1).fill(-1);

/** The wait spec shared by Lock and RLock; `took` runs once the lock word is ours. */
export function lockSpec(core: SyncBlock, took: () => void): WaitSpec {
  const w = core.words;
  return {
    what: "lock",
    tryTake() {
      // A waiter that gets the lock while others still wait keeps FLAG set, so its release wakes them.
      if (Atomics.compareExchange(w, W.A, 0, Atomics.load(w, W.WAITERS) > 1 ? PID | FLAG : PID) !== 0) {
        return false;
      }
      took();
      return true;
    },
    beforeSleep() {
      // Make sure the holder's release posts: set FLAG in its lock word.
      const c = Atomics.load(w, W.A);
      if (c === 0) return false;
      return (c & FLAG) !== 0 || Atomics.compareExchange(w, W.A, c, c | FLAG) === c;
    },
    recover() {
      // The holder is gone (SIGKILL, crash, exit while holding): free the lock for the waiters.
      for (let i = 0; i < 3; i++) {
        const c = Atomics.load(w, W.A);
        if (c === 0 || !isDead(c & OWNER)) return;
        if (Atomics.compareExchange(w, W.A, c, 0) === c) return;
      }
    },
    passOn() {
      // We took a release's post but give up: hand it to another waiter.
      if (Atomics.load(w, W.WAITERS) > 1) core.post(1);
    },
  };
}

/** What a lock word says, for printing: `unlocked`, or `locked` and the holder's pid. */
export function lockWordParts(word: number): string[] {
  return word === 0 ? ["unlocked"] : ["locked", `owner=${word & OWNER & PID_MASK}`];
}
