/**
 * Named resources: POSIX named semaphores and shared memory objects, which live in `/dev/shm`
 * under a name until someone unlinks them, whatever happens to the processes that use them.
 * Making them under a fresh name, tearing them down, and tearing them down when their owner is
 * garbage collected are written here once, for sync blocks, shared memory, queues and a
 * manager's socket directory.
 *
 * - {@linkcode createNamed}: runs `make(name)` under a fresh {@linkcode uniqueName}, and under
 *   another one when the name turns out to be taken (`AlreadyExists`: another process, or a
 *   leftover of a process with a recycled pid, got there first). `make` undoes its own partial
 *   work before it throws.
 * - {@linkcode makeTracked}: makes one named resource, tracked from before it exists. The
 *   tracker hears "+name" first, then the resource is made (and on failure "-name"): a process
 *   killed at any point in between (a pool worker that its parent terminates while it imports)
 *   leaves nothing the tracker does not know. Tracking after making left a window: a SIGTERM
 *   there left a 20-byte pool progress block in /dev/shm for good. Every name this library
 *   creates is made through it.
 * - {@linkcode own}: marks a name this process made (with {@linkcode makeTracked}) as one that
 *   lives as long as this process does (a primitive's semaphores and block, a Value's block, a
 *   queue's shared part, as in CPython): the `names` phase of `_exit.ts` releases what is still
 *   owned at a normal exit.
 * - {@linkcode releaseNamed}: the teardown of names this process made: unlink, then untrack (the
 *   resource tracker then forgets them). Errors are swallowed: the name may be gone already, and
 *   the tracker unlinks whatever is left once the process tree has ended.
 *   {@linkcode unlinkNamed} is the same teardown, now and reporting errors, for a name that
 *   someone else may own (`SharedMemory.unlink()`, a queue's spilled segment).
 * - {@linkcode handOver}: keeps names alive while a child process or thread is being started.
 *   Its arguments travel as names (a lock, a queue, a Value), which the child opens while it
 *   revives them, before it answers `start()`. A name released in between (`q.close()` right
 *   after `p.start()`, before awaiting it) would be gone when the child opens it. So a release
 *   waits for the hand-overs that were under way when it was asked for and that began after the
 *   name was made (only those can carry it); then it happens. This process's own handles close
 *   at once: only the name stays, for the child to open. At exit, `names` releases everything.
 * - {@linkcode onCollected}/{@linkcode forgetCollected}: one `FinalizationRegistry` for every
 *   resource class. The cleanup must not reach the target (or it is never collected): build it
 *   in a function that does not see the target.
 *
 * @module
 */
import { atExit, ExitPhase } from "./_exit.ts";
import { type ResourceKind, track, uniqueName, unlinkResource, untrack } from "./_tracker.ts";

/** A named resource, as the tracker knows it. */
export interface Named {
  readonly kind: ResourceKind;
  readonly name: string;
}

/** How many fresh names {@linkcode createNamed} tries before it gives up. */
const ATTEMPTS = 5;

/**
 * Calls `make` with a fresh name (`tag` marks its kind, see {@linkcode uniqueName}) and returns
 * what it made; when `make` throws `Deno.errors.AlreadyExists`, tries again under another name.
 */
export function createNamed<T>(tag: string, make: (name: string) => T): T {
  for (let attempt = 1;; attempt++) {
    try {
      return make(uniqueName(tag));
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists) || attempt >= ATTEMPTS) throw e;
    }
  }
}

/** @internal For tests: called once each named resource exists, before `makeTracked` returns it. */
export const resourceTestHooks: { made?: (resource: Named) => void } = {};

/**
 * Makes `resource` with `make` (which creates it, exclusively), tracked from before it exists:
 * however this process ends from here on, the tracker unlinks it once the process tree is gone
 * unless it was released before. When `make` throws, the name is untracked (`make` made nothing,
 * or undid its partial work; a name that was taken stays tracked by whoever tracked it).
 */
export function makeTracked<T>(resource: Named, make: () => T): T {
  track(resource.kind, resource.name);
  let made: T;
  try {
    made = make();
  } catch (e) {
    untrack(resource.kind, resource.name);
    throw e;
  }
  resourceTestHooks.made?.(resource);
  return made;
}

/** Names this process owns, released at its normal exit unless released before; each with its
 * sequence number (when it was made, in {@linkcode handOver}'s order). */
const owned = new Map<string, { resource: Named; seq: number }>();
let seq = 0;

/**
 * Marks `resource` (made with {@linkcode makeTracked}) as owned by this process: it is released
 * when this process exits normally.
 */
export function own(resource: Named): void {
  owned.set(resource.name, { resource, seq: ++seq });
}

/** A hand-over under way: the names made before it began, released during it, wait for its end. */
interface Hold {
  readonly seq: number;
  readonly waiting: Named[];
}
const holds = new Set<Hold>();
/** Released names waiting for hand-overs to end: the number of hand-overs each waits for. */
const deferred = new Map<string, number>();

/**
 * Begins handing arguments over to a child that opens their names while it revives them. Call the
 * returned function once the child has revived them, or can no longer (it answered, failed or
 * ended): the releases that waited for this hand-over happen then.
 */
export function handOver(): () => void {
  const hold: Hold = { seq, waiting: [] };
  holds.add(hold);
  return () => {
    if (!holds.delete(hold)) return;
    for (const resource of hold.waiting) {
      const left = deferred.get(resource.name)! - 1;
      if (left > 0) deferred.set(resource.name, left);
      else {
        deferred.delete(resource.name);
        remove(resource);
      }
    }
  };
}

/**
 * Unlinks and untracks each of `resources`; never throws (the tracker retries what is left). A
 * name a child being started may still open is released once it has ({@linkcode handOver}).
 */
export function releaseNamed(resources: Iterable<Named>): void {
  for (const resource of resources) {
    const { name } = resource;
    if (deferred.has(name)) continue; // released already, waiting for a hand-over
    const made = owned.get(name)?.seq;
    if (made !== undefined && holds.size > 0) {
      let waits = 0;
      for (const hold of holds) {
        if (hold.seq >= made) {
          hold.waiting.push(resource);
          waits++;
        }
      }
      if (waits > 0) {
        deferred.set(name, waits);
        continue;
      }
    }
    remove(resource);
  }
}

function remove(resource: Named): void {
  owned.delete(resource.name);
  try {
    unlinkNamed(resource);
  } catch { /* the tracker retries; or exiting */ }
}

/**
 * Unlinks `resource` now, then untracks it; false if it was gone already. Throws what the unlink
 * met otherwise (a user's `SharedMemory.unlink()` reports it), and then the name stays tracked,
 * for the tracker to retry once the process tree has ended.
 */
export function unlinkNamed({ kind, name }: Named): boolean {
  const removed = unlinkResource(kind, name);
  untrack(kind, name);
  return removed;
}

const registry = new FinalizationRegistry<() => void>((cleanup) => {
  try {
    cleanup();
  } catch { /* nothing to report to: the tracker retries what is left */ }
});

/**
 * Runs `cleanup` once `target` has been garbage collected, unless {@linkcode forgetCollected}
 * is called with `token` first. `cleanup` must not refer to `target`.
 */
export function onCollected(target: object, cleanup: () => void, token: object = target): void {
  registry.register(target, cleanup, token);
}

/** Cancels the {@linkcode onCollected} registered with `token` (the resource was closed). */
export function forgetCollected(token: object): void {
  registry.unregister(token);
}

atExit(ExitPhase.names, () => {
  // The children still being started at exit are not waited for (non-daemon ones were joined).
  holds.clear();
  deferred.clear();
  releaseNamed([...owned.values()].map((o) => o.resource));
});
