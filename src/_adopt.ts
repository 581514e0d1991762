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
 * A process or thread object rebuilt inside its own child is built with `{ only: Process }`: the
 * instance gets the user's subclass as its class, but only the library's constructor runs (the
 * subclass constructor ran in the parent; its fields travel with the state and are assigned
 * after). `new.target` is still the subclass, so `adopted(new.target)` finds the state.
 *
 * @module
 */

let pending: { cls: abstract new (...args: never[]) => unknown; state: unknown } | null = null;

/**
 * Builds `cls` with no arguments, its constructor adopting `state` (for reducers only). With
 * `only`, a base class of `cls`, runs that constructor alone (`Reflect.construct(only, [], cls)`):
 * no constructor between `only` and `cls` runs.
 */
export function construct<T>(
  cls: abstract new (...args: never[]) => T,
  state: unknown,
  { only }: { only?: abstract new (...args: never[]) => unknown } = {},
): T {
  const outer = pending;
  pending = { cls, state };
  try {
    return Reflect.construct(only ?? cls, [], cls) as T;
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
