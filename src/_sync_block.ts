/**
 * The shared block under every synchronization primitive, and its lifetime (CPython: the
 * `SemLock` part of `synchronize.py` and `_multiprocessing/semaphore.c`).
 *
 * Each primitive owns two named resources, `/mp…` and `/mp…m` (an Event or a Barrier a third,
 * `/mp…b`), made by the process that constructs it:
 *
 * - a **shared memory block** (`shm_open` + `mmap`, one 4096-byte page) that holds the
 *   primitive's state as 32-bit words ({@linkcode W}: the magic and kind a revived handle checks,
 *   how many processes wait, then words the primitive names for itself: who owns a lock, how many
 *   units a semaphore has, an event's flag; then holder slots). Every process maps the same bytes
 *   and changes them only with `Atomics` (compare-and-swap, add), so the state is always
 *   consistent without a lock around it.
 * - a **named semaphore** (`sem_open`) used only as a *wake-up channel*: a process that finds
 *   the state unfavourable (lock owned, no units) counts itself in the `waiters` word and sleeps
 *   on the semaphore; whoever changes the state in its favour posts the semaphore if `waiters`
 *   is not zero. A post is a hint ("look again"), never a grant: every waiter re-checks the
 *   state after waking, so a stale or extra post costs one look and nothing else. The loop that
 *   does this is in `_sync_wait.ts`.
 *
 * Why not the semaphore's own count as the state (as CPython does)? Because the uncontended
 * path then costs two FFI calls and cannot record *who* holds the lock; with the state in shared
 * memory, acquire+release is a couple of atomic instructions, and the owner's pid is the lock
 * word itself, which is what makes dead holders recoverable (`_sync_holders.ts`).
 *
 * Lifetime: the creating process registers the names with the resource tracker
 * (`own()` in `_resource.ts`), unlinks them on `close()` or when the object is garbage collected, and the
 * tracker unlinks them if the whole process tree ends first (SIGKILL included). Other processes
 * open the names when they revive a handle (only the name travels), and only close their own
 * mappings.
 *
 * @module
 */
import { mapSharedMemory, NamedSemaphore, type SharedMapping } from "../native/mod.ts";
import { holderId } from "./_state.ts";
import {
  createNamed,
  forgetCollected,
  makeTracked,
  type Named,
  onCollected,
  own,
  releaseNamed,
} from "./_resource.ts";
import { Eagerness } from "./_wait.ts";

/** Size of each primitive's shared block (one page): header words, then slots. */
const SHM_SIZE = 4096;
const MAGIC = 0x6d707379; // "mpsy"

/** Word indices in the shared block. */
export const W = {
  MAGIC: 0,
  KIND: 1,
  /** How many processes sleep (or are about to) on the semaphore. */
  WAITERS: 2,
  /** Free for the primitive: Lock owner, Semaphore value, Event flag, Condition sleepers. */
  A: 3,
  /** RLock count, Semaphore bound, Event generation, Condition pending signals. */
  B: 4,
  C: 5,
  D: 6,
  E: 7,
  /** Holder slots (pid, units) of a semaphore. */
  SLOTS: 8,
} as const;
/** How many distinct processes a semaphore can remember as holders (more: not recoverable). */
export const N_SLOTS = 32;
/** Where a Condition's waiter slots (state, ticket) start, and how many there are. */
export const COND_SLOTS = W.SLOTS + 2 * N_SLOTS;
export const N_COND_SLOTS = (SHM_SIZE / 4 - COND_SLOTS) / 2 | 0;

/** This process's pid (plus, in a thread, its number: see `holderId`), written into lock words. */
export const PID: number = holderId();

/** Kinds of primitives, checked when a handle is revived. */
export const KIND = { lock: 1, rlock: 2, semaphore: 3, event: 4, condition: 5, barrier: 6 } as const;

/** The shared block's name: the semaphore's plus "m" (the tracker keys resources by name). */
function shmName(name: string): string {
  return name + "m";
}

/** The name of wake-up channel `i`: the base name, then base + "b" (a Barrier has two). */
function semName(name: string, i: number): string {
  return i === 0 ? name : name + "b";
}

/** How many wake-up channels a primitive of `kind` has. */
function channelsOf(kind: number): number {
  return kind === KIND.barrier || kind === KIND.event ? 2 : 1;
}

/** The word counting the sleepers of wake-up channel `i`. */
export function waitersWord(channel: number): number {
  return channel === 0 ? W.WAITERS : W.E;
}

interface Handles {
  name: string;
  creator: boolean;
  sems: NamedSemaphore[];
  mapping: SharedMapping;
}

function releaseHandles(h: Handles): void {
  if (h.creator) releaseNamed(namesOf(h.name, h.sems.length));
  for (const sem of h.sems) {
    try {
      sem.close();
    } catch { /* already gone */ }
  }
  try {
    h.mapping.unmap();
  } catch { /* already gone */ }
}

/** The named resources of a primitive: its wake-up semaphores, then its shared block. */
function namesOf(name: string, channels: number): Named[] {
  const names: Named[] = [];
  for (let i = 0; i < channels; i++) names.push({ kind: "sem", name: semName(name, i) });
  names.push({ kind: "shm", name: shmName(name) });
  return names;
}

/** What runs when a block is collected without close(): unlink what we created, unmap what we
 * mapped. Made here, where the block itself is out of reach (a cleanup that reaches its target
 * keeps it alive). The target is the SyncBlock (reachable from every pending wait), so handles
 * are never freed under a running wait. */
function releaser(h: Handles): () => void {
  return () => releaseHandles(h);
}

/** One process's handle on a primitive's shared block and wake-up semaphore. */
export class SyncBlock {
  readonly name: string;
  readonly kind: number;
  /** The shared words; only valid while the core is open. */
  readonly words: Int32Array;
  #h: Handles;
  #closed = false;
  /** Index of this process's holder slot (semaphores), -1 until claimed, -2 when full. */
  slot = -1;
  /** How eagerly this process's waits on the block spin and park before they sleep (`_wait.ts`). */
  readonly eager: Eagerness = new Eagerness();

  private constructor(h: Handles, kind: number) {
    this.name = h.name;
    this.kind = kind;
    this.#h = h;
    this.words = new Int32Array(h.mapping.buffer, 0, SHM_SIZE / 4);
    onCollected(this, releaser(h));
  }

  /** Creates fresh named resources for a primitive of `kind`. */
  static create(kind: number): SyncBlock {
    const channels = channelsOf(kind);
    return createNamed("-y", (name) => {
      const sems: NamedSemaphore[] = [];
      const made: Named[] = [];
      try {
        for (let i = 0; i < channels; i++) {
          const sem: Named = { kind: "sem", name: semName(name, i) };
          sems.push(makeTracked(sem, () => NamedSemaphore.create(sem.name, 0)));
          made.push(sem);
          own(sem);
        }
        const shm: Named = { kind: "shm", name: shmName(name) };
        const mapping = makeTracked(shm, () => mapSharedMemory(shm.name, true, SHM_SIZE));
        made.push(shm);
        own(shm);
        const words = new Int32Array(mapping.buffer, 0, SHM_SIZE / 4);
        words[W.KIND] = kind;
        Atomics.store(words, W.MAGIC, MAGIC);
        return new SyncBlock({ name, creator: true, sems, mapping }, kind);
      } catch (e) {
        for (const sem of sems) sem.close();
        releaseNamed(made); // only what we made: a name that was taken is someone else's
        throw e;
      }
    });
  }

  /** Opens the resources of an existing primitive (a revived handle). */
  static open(name: string, kind: number, what: string): SyncBlock {
    const sems: NamedSemaphore[] = [];
    try {
      for (let i = 0; i < channelsOf(kind); i++) sems.push(NamedSemaphore.open(semName(name, i)));
      const mapping = mapSharedMemory(shmName(name), false);
      const words = new Int32Array(mapping.buffer, 0, Math.min(SHM_SIZE, mapping.size) / 4);
      if (mapping.size < SHM_SIZE || words[W.MAGIC] !== MAGIC || words[W.KIND] !== kind) {
        mapping.unmap();
        throw new TypeError(`Cannot open ${what} ${name}: the shared block does not hold a ${what}`);
      }
      return new SyncBlock({ name, creator: false, sems, mapping }, kind);
    } catch (e) {
      for (const sem of sems) sem.close();
      if (e instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(
          `Cannot open ${what} ${name}: it no longer exists (the process that created it closed it or ended)`,
          { cause: e },
        );
      }
      throw e;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The names of this primitive's named resources (semaphores, then the shared block). */
  get resourceNames(): { sem: string[]; shm: string } {
    return { sem: this.#h.sems.map((_, i) => semName(this.name, i)), shm: shmName(this.name) };
  }

  get creator(): boolean {
    return this.#h.creator;
  }

  /** Throws `BadResource` once closed. */
  check(what: string): void {
    if (this.#closed) throw new Deno.errors.BadResource(`Cannot use ${what}: it is closed`);
  }

  /**
   * Closes this handle (idempotent). The creator also unlinks the names: processes that have
   * them open keep working, new handles can no longer be revived.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    forgetCollected(this);
    // A sleep still in flight keeps its semaphore open until it ends (NamedSemaphore.close());
    // the words are unmapped now, and every wait re-checks `closed` before it looks at them.
    releaseHandles(this.#h);
  }

  /** Wakes one sleeper (if anyone sleeps). */
  wakeOne(): void {
    if (Atomics.load(this.words, W.WAITERS) > 0) this.#h.sems[0].post();
  }

  /** Posts `n` times on wake-up channel `channel`. */
  post(n: number, channel = 0): void {
    const sem = this.#h.sems[channel];
    for (let i = 0; i < n; i++) sem.post();
  }

  /** Sleeps on a wake-up channel up to `ms` on this thread; true when a post was taken. */
  sleepSync(ms: number, channel = 0): boolean {
    return this.#h.sems[channel].waitSync(ms);
  }

  /**
   * Sleeps on the semaphore up to `ms` on a worker thread. Rejects with `signal.reason` at once
   * when aborted; the abandoned sleep passes on any post it takes later, so none is lost (and
   * the semaphore stays open for it: `NamedSemaphore.waitAsync`).
   */
  sleep(ms: number, signal?: AbortSignal, channel = 0): Promise<boolean> {
    return this.#h.sems[channel].waitAsync(ms, signal);
  }
}

/** The blocks behind each public object, for {@linkcode _resourceNames}. */
const blocksOf = new WeakMap<object, SyncBlock[]>();

/** Records the blocks behind a public primitive (for {@linkcode _resourceNames}). */
export function registerBlocks(obj: object, blocks: SyncBlock[]): void {
  blocksOf.set(obj, blocks);
}

/** The blocks registered for `obj` (a Condition lists its own lock's). */
export function blocksBehind(obj: object): SyncBlock[] {
  return blocksOf.get(obj) ?? [];
}

/**
 * The names of the named resources behind a primitive: `sem` for `sem_open`, `shm` for
 * `shm_open` (tests use it to check that nothing is left behind). Not part of the public API.
 *
 * @internal
 */
export function _resourceNames(obj: object): { sem: string[]; shm: string[] } {
  const blocks = blocksBehind(obj);
  return {
    sem: blocks.flatMap((c) => c.resourceNames.sem),
    shm: blocks.map((c) => c.resourceNames.shm),
  };
}
