/**
 * Process targets for the benchmarks. A child imports this module and looks its target up by
 * name, so every target is exported and the module does nothing when imported.
 *
 * @module
 */

// As a real program's module does: the child loads the whole library, and pays for it.
import "../../mod.ts";

/** Does nothing: measures the cost of a process itself. */
export function empty(): void {}

/** A tiny task: the cost measured is the pool's, not the work's. */
export function identity(x: number): number {
  return x;
}
