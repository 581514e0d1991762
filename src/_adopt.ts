/**
 * The one revival channel: how a reducer hands the state it revived (an opened shared block, a
 * mapping, ...) to a public constructor whose signature has no room for it.
 *
 * A reducer calls {@linkcode construct}`(cls, state)`; the constructor of `cls` calls
 * {@linkcode adopted}`(new.target)` first and gets `state` back, or `undefined` when it is an
 * ordinary `new` by a user. The state is keyed by the class being constructed, so a constructor
 * that itself makes other objects (a Condition its RLock, a Value its lock) cannot hand its state
 * to them by mistake: only the constructor whose `new.target` is `cls` takes it, and taking it
 * clears it. Everything happens synchronously inside `construct`, so no other code runs between
 * setting and taking it.
 *
 * @module
 */

let pending: { cls: abstract new (...args: never[]) => unknown; state: unknown } | null = null;

/** Builds `cls` with no arguments, its constructor adopting `state` (for reducers only). */
export function construct<T>(cls: new (...args: never[]) => T, state: unknown): T {
  const outer = pending;
  pending = { cls, state };
  try {
    return new (cls as new () => T)();
  } finally {
    pending = outer;
  }
}

/**
 * The state a reducer handed to exactly this class through {@linkcode construct}, if any; call it
 * with `new.target` before anything else in the constructor.
 */
export function adopted<S>(target: abstract new (...args: never[]) => unknown): S | undefined {
  if (pending === null || pending.cls !== target) return undefined;
  const { state } = pending;
  pending = null;
  return state as S;
}
