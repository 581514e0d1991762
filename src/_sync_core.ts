/**
 * The machinery under every synchronization primitive (CPython: the `SemLock` part of
 * `synchronize.py` and `_multiprocessing/semaphore.c`).
 *
 * Each primitive owns two named resources, `/mp…` and `/mp…m` (an Event or a Barrier a third,
 * `/mp…b`), made by the process that constructs it:
 *
 * - a **shared memory block** (`shm_open` + `mmap`, 512 bytes) that holds the primitive's state
 *   as 32-bit words: who owns a lock, how many units a semaphore has, an event's flag, how many
 *   processes wait. Every process maps the same bytes and changes them only with `Atomics`
 *   (compare-and-swap, add), so the state is always consistent without a lock around it.
 * - a **named semaphore** (`sem_open`) used only as a *wake-up channel*: a process that finds
 *   the state unfavourable (lock owned, no units) counts itself in the `waiters` word and sleeps
 *   on the semaphore; whoever changes the state in its favour posts the semaphore if `waiters`
 *   is not zero. A post is a hint ("look again"), never a grant: every waiter re-checks the
 *   state after waking, so a stale or extra post costs one look and nothing else.
 *
 * Why not the semaphore's own count as the state (as CPython does)? Because the uncontended
 * path then costs two FFI calls and cannot record *who* holds the lock; with the state in shared
 * memory, acquire+release is a couple of atomic instructions, and the owner's pid is the lock
 * word itself. That pid is what makes dead holders recoverable: a waiter wakes at least every
 * {@linkcode SLICE_MS} ms, and if the recorded holder no longer runs (`kill(pid, 0)`, and not a
 * zombie) it frees what the dead process held and wakes the others.
 *
 * Waiting never blocks the event loop: the async path first tries the state (no syscall at all),
 * and only when that fails sleeps in `sem_timedwait` on a worker thread, one slice at a time,
 * checking timeout, abort and dead holders between slices. The sync path (`acquireSync`) does
 * the same on the calling thread.
 *
 * Lifetime: the creating process registers both names with the resource tracker
 * (`ownedByProcess`), unlinks them on `close()` or when the object is garbage collected, and the
 * tracker unlinks them if the whole process tree ends first (SIGKILL included). Other processes
 * open the names when they revive a handle, and only close their own mappings.
 *
 * @module
 */
import {
  mapSharedMemory,
  NamedSemaphore,
  processAlive,
  type SharedMapping,
  unlinkSharedMemory,
} from "../native/mod.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { holderId, PID_MASK } from "./_state.ts";
import { type CheckedWait, checkWait, Deadline } from "./_wait.ts";
import { track, uniqueName, untrack } from "./_tracker.ts";

/** The longest a waiter sleeps before it looks at the state again (abort, dead holders). */
export const SLICE_MS = 50;

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

function newName(): string {
  return uniqueName("-y");
}

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
  if (h.creator) unlinkNames(h.name, h.sems.length);
  for (const sem of h.sems) {
    try {
      sem.close();
    } catch { /* already gone */ }
  }
  try {
    h.mapping.unmap();
  } catch { /* already gone */ }
}

function unlinkNames(name: string, channels: number): void {
  for (let i = 0; i < channels; i++) {
    try {
      NamedSemaphore.unlink(semName(name, i));
    } catch { /* the tracker retries */ }
  }
  try {
    unlinkSharedMemory(shmName(name));
  } catch { /* the tracker retries */ }
  try {
    for (let i = 0; i < channels; i++) untrack("sem", semName(name, i));
    untrack("shm", shmName(name));
  } catch { /* exiting */ }
}

// Collected without close(): unlink what we created, unmap what we mapped. The target is the
// Core (reachable from every pending wait), so handles are never freed under a running wait.
const finalizer = new FinalizationRegistry<Handles>(releaseHandles);

/** One process's handle on a primitive's shared block and wake-up semaphore. */
export class Core {
  readonly name: string;
  readonly kind: number;
  /** The shared words; only valid while the core is open. */
  readonly words: Int32Array;
  #h: Handles;
  #closed = false;
  /** Worker-thread waits still running (they use the semaphore: free it only after them). */
  #inflight = 0;
  #freeWhenIdle = false;
  /** Index of this process's holder slot (semaphores), -1 until claimed, -2 when full. */
  slot = -1;

  private constructor(h: Handles, kind: number) {
    this.name = h.name;
    this.kind = kind;
    this.#h = h;
    this.words = new Int32Array(h.mapping.buffer, 0, SHM_SIZE / 4);
    finalizer.register(this, h, this);
  }

  /** Creates fresh named resources for a primitive of `kind`. */
  static create(kind: number): Core {
    const channels = channelsOf(kind);
    for (let attempt = 0;; attempt++) {
      const name = newName();
      const sems: NamedSemaphore[] = [];
      try {
        for (let i = 0; i < channels; i++) {
          sems.push(NamedSemaphore.create(semName(name, i), 0));
          track("sem", semName(name, i), { ownedByProcess: true });
        }
        const mapping = mapSharedMemory(shmName(name), true, SHM_SIZE);
        track("shm", shmName(name), { ownedByProcess: true });
        const words = new Int32Array(mapping.buffer, 0, SHM_SIZE / 4);
        words[W.KIND] = kind;
        Atomics.store(words, W.MAGIC, MAGIC);
        return new Core({ name, creator: true, sems, mapping }, kind);
      } catch (e) {
        for (const sem of sems) sem.close();
        if (sems.length) unlinkNames(name, channels);
        if (e instanceof Deno.errors.AlreadyExists && attempt < 5) continue;
        throw e;
      }
    }
  }

  /** Opens the resources of an existing primitive (a revived handle). */
  static open(name: string, kind: number, what: string): Core {
    const sems: NamedSemaphore[] = [];
    try {
      for (let i = 0; i < channelsOf(kind); i++) sems.push(NamedSemaphore.open(semName(name, i)));
      const mapping = mapSharedMemory(shmName(name), false);
      const words = new Int32Array(mapping.buffer, 0, Math.min(SHM_SIZE, mapping.size) / 4);
      if (mapping.size < SHM_SIZE || words[W.MAGIC] !== MAGIC || words[W.KIND] !== kind) {
        mapping.unmap();
        throw new TypeError(`Cannot open ${what} ${name}: the shared block does not hold a ${what}`);
      }
      return new Core({ name, creator: false, sems, mapping }, kind);
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
    finalizer.unregister(this);
    if (this.#inflight === 0) releaseHandles(this.#h);
    else {
      if (this.#h.creator) unlinkNames(this.name, this.#h.sems.length);
      this.#h.creator = false;
      this.#freeWhenIdle = true;
    }
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
   * when aborted; the abandoned sleep passes on any post it takes later, so none is lost.
   */
  sleep(ms: number, signal?: AbortSignal, channel = 0): Promise<boolean> {
    const sem = this.#h.sems[channel];
    this.#inflight++;
    const done = sem.waitAsync(ms).finally(() => {
      if (--this.#inflight === 0 && this.#freeWhenIdle) {
        this.#freeWhenIdle = false;
        releaseHandles(this.#h);
      }
    });
    if (!signal) return done;
    return new Promise<boolean>((resolve, reject) => {
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#inflight++; // keep the semaphore open until a late post is passed on
      done.then((took) => {
        signal.removeEventListener("abort", onAbort);
        if (settled) {
          if (took) sem.post();
        } else {
          settled = true;
          resolve(took);
        }
      }, (e) => {
        signal.removeEventListener("abort", onAbort);
        if (!settled) {
          settled = true;
          reject(e);
        }
      }).finally(() => {
        if (--this.#inflight === 0 && this.#freeWhenIdle) {
          this.#freeWhenIdle = false;
          releaseHandles(this.#h);
        }
      });
    });
  }
}

/**
 * How long a waiter spins (re-trying the state) before it sleeps, in ms. A hand-off between two
 * processes on different cores usually completes within it, which saves the two thread hops of
 * a sleep on a worker thread (~100 µs); a lock held longer costs the waiter this much CPU once.
 * No spinning on a single core, where the holder cannot run meanwhile.
 */
const SPIN_MS = (navigator.hardwareConcurrency ?? 1) > 1 ? 0.05 : 0;

/** Re-tries `spec.tryTake()` for up to {@linkcode SPIN_MS}; true when it succeeded. */
export function spin(spec: WaitSpec): boolean {
  if (SPIN_MS === 0) return false;
  const until = performance.now() + SPIN_MS;
  for (;;) {
    for (let i = 0; i < 32; i++) if (spec.tryTake()) return true;
    if (performance.now() > until) return false;
  }
}

/** What a wait needs to know about its primitive (made once per handle). */
export interface WaitSpec {
  /** Names the primitive in errors, e.g. "lock". */
  readonly what: string;
  /** The wake-up channel to sleep on (default 0). */
  readonly channel?: number;
  /** Tries to take what the waiter wants; true on success. Never waits. */
  tryTake(): boolean;
  /**
   * Runs right before each sleep, e.g. to make sure the holder's release will post. False means
   * the state just changed: try again instead of sleeping.
   */
  beforeSleep?(): boolean;
  /** After a slice that ended without a post: recover from dead holders. */
  recover?(): void;
  /** After a post that did not let `tryTake()` succeed: maybe pass it on. */
  stray?(): void;
  /** When the waiter gives up (timeout) after its last sleep took a post: maybe pass it on. */
  passOn?(): void;
}

/**
 * The one wait loop, shared by the async and the sync driver. It counts itself among the
 * channel's waiters, then alternates: try to take; give up at the deadline; otherwise yield how
 * long to sleep (at most {@linkcode SLICE_MS}) and receive whether the sleep took a post. The
 * driver does the sleeping (on a worker thread, or on the calling thread) and must call
 * `return()` when it leaves early (an abort, a closed handle), so that the count is undone.
 */
function* waitSteps(core: Core, spec: WaitSpec, deadline: Deadline): Generator<number, boolean, boolean> {
  const waiters = waitersWord(spec.channel ?? 0);
  Atomics.add(core.words, waiters, 1);
  let took = false;
  try {
    for (;;) {
      if (spec.tryTake()) return true;
      const left = deadline.left();
      if (left <= 0) {
        if (took) spec.passOn?.();
        return false;
      }
      if (spec.beforeSleep && !spec.beforeSleep()) continue;
      took = yield Math.min(SLICE_MS, Math.ceil(left));
      if (took) {
        if (spec.tryTake()) return true;
        spec.stray?.();
      } else spec.recover?.();
    }
  } finally {
    if (!core.closed) Atomics.sub(core.words, waiters, 1);
  }
}

/**
 * What every wait does before it sleeps: true or false when it is already decided (taken at
 * once or in a short spin; not taken and must not wait), undefined when it must sleep.
 */
function before(core: Core, spec: WaitSpec, wait: CheckedWait, spun: boolean): boolean | undefined {
  core.check(spec.what);
  if (spec.tryTake()) return true;
  if (!wait.block || wait.timeout <= 0) return false;
  if (!spun && spin(spec)) return true;
  return undefined;
}

/**
 * Waits until `spec.tryTake()` succeeds: at once when it can, else spinning briefly, else
 * sleeping on the core's semaphore in slices of at most {@linkcode SLICE_MS}. Resolves false
 * on timeout or `block: false`; rejects with `signal.reason` when aborted. `wait` comes from
 * `checkWait()` (the caller validates its arguments, naming its call); `spun`: the caller has
 * already spun.
 */
export async function waitUntil(
  core: Core,
  spec: WaitSpec,
  wait: CheckedWait,
  spun = false,
): Promise<boolean> {
  const signal = wait.signal;
  signal?.throwIfAborted();
  const now = before(core, spec, wait, spun);
  if (now !== undefined) return now;
  const channel = spec.channel ?? 0;
  const steps = waitSteps(core, spec, new Deadline(wait.timeout));
  try {
    let step = steps.next();
    while (!step.done) {
      const took = await core.sleep(step.value, signal, channel);
      core.check(spec.what); // closed meanwhile: its words may be unmapped, look no further
      step = steps.next(took);
    }
    return step.value;
  } finally {
    steps.return(false);
  }
}

/**
 * {@linkcode waitUntil} with the caller's raw options, checked here (`call` names the call in
 * errors): an invalid one rejects with a `TypeError`.
 */
export function waitWith(core: Core, spec: WaitSpec, options: unknown, call: string): Promise<boolean> {
  let wait: CheckedWait;
  try {
    wait = checkWait(options, call);
  } catch (e) {
    return Promise.reject(e);
  }
  return waitUntil(core, spec, wait);
}

/** As {@linkcode waitUntil}, blocking the calling thread (no signal: nothing could abort it). */
export function waitUntilSync(core: Core, spec: WaitSpec, wait: CheckedWait): boolean {
  const now = before(core, spec, wait, false);
  if (now !== undefined) return now;
  const channel = spec.channel ?? 0;
  const steps = waitSteps(core, spec, new Deadline(wait.timeout));
  try {
    let step = steps.next();
    while (!step.done) step = steps.next(core.sleepSync(step.value, channel));
    return step.value;
  } finally {
    steps.return(false);
  }
}

/** True when `pid` is a process that has ended (so whatever it held is abandoned). */
export function isDead(pid: number): boolean {
  const p = pid & PID_MASK;
  return p > 0 && p !== Deno.pid && !processAlive(p);
}

// ---------------------------------------------------------------------------------------------
// Semaphore holder slots

/** Cores of semaphores in which this process holds a slot: cleared at a normal exit. Weak, so
 * that a dropped semaphore can still be collected (and its names unlinked). */
const holderRefs = new Set<WeakRef<Core>>();

/** Records that this process took one unit of a semaphore. */
export function noteTaken(core: Core): void {
  let s = core.slot;
  if (s === -1) s = claimSlot(core);
  if (s >= 0) Atomics.add(core.words, W.SLOTS + 2 * s + 1, 1);
}

function claimSlot(core: Core): number {
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
export function noteGiven(core: Core): number {
  const w = core.words;
  const s = core.slot;
  if (s >= 0 && decrementIfPositive(w, W.SLOTS + 2 * s + 1)) return s;
  for (let i = 0; i < N_SLOTS; i++) {
    if (decrementIfPositive(w, W.SLOTS + 2 * i + 1)) return i;
  }
  return -1;
}

/** Reverts {@linkcode noteGiven} (the release turned out to be an over-release). */
export function undoGiven(core: Core, slot: number): void {
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
export function reclaimDeadSlots(core: Core): number {
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

// At a normal exit, units this process took and never gave back count as consumed (a semaphore
// counting events, acquired here and released elsewhere): forget them, so nobody "recovers" them.
// Only a process that vanished without this hook (SIGKILL, crash) has its units given back.
atExit(ExitPhase.holders, () => {
  for (const ref of holderRefs) {
    const core = ref.deref();
    if (!core || core.closed || core.slot < 0) continue;
    const i = W.SLOTS + 2 * core.slot;
    Atomics.store(core.words, i + 1, 0);
    Atomics.compareExchange(core.words, i, PID, 0);
  }
});
