/**
 * Process targets for the synchronization benchmark rows (bench/rows/sync.ts). A child imports
 * this module and looks its target up by name, so every target is exported and the module does
 * nothing when imported.
 *
 * @module
 */
import type { Barrier, Event, Semaphore } from "../../mod.ts";
import "../../mod.ts";

/** The other half of a ping-pong: takes `ping`, gives `pong`, `n` times (async waits). */
export async function pong(ping: Semaphore, pongSem: Semaphore, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await ping.acquire();
    pongSem.release();
  }
}

/** The same with blocking waits (`acquireSync`). */
export function pongSync(ping: Semaphore, pongSem: Semaphore, n: number): void {
  for (let i = 0; i < n; i++) {
    ping.acquireSync();
    pongSem.release();
  }
}

/** Passes `barrier` `n` times once `go` is set. */
export async function barrierParty(barrier: Barrier, go: Event, n: number): Promise<void> {
  await go.wait();
  for (let i = 0; i < n; i++) await barrier.wait();
}
