/**
 * Barriers shared between processes (CPython: `Barrier` in `synchronize.py`).
 *
 * Unlike CPython's (a Condition and a lock), a Barrier is one shared word, `W.A` of its block
 * (`_sync_block.ts`): `generation << 16 | arrived`. Each party adds one (its index); the last one
 * runs the action, then starts the next generation with none arrived and wakes everyone; the
 * others wait for the generation to move on. `reset()` moves it on by two, which the waiters of
 * the old generation read as broken. `W.B` is the broken flag and `W.C` the number of parties.
 * Waiters of alternate generations sleep on two semaphores (by parity), so a fast party's next
 * `wait()` cannot take a wake-up meant for a slow party of the previous pass.
 *
 * @module
 */
import { adopted, construct } from "./_adopt.ts";
import { described, inspect } from "./_inspect.ts";
import { callerModule } from "./_caller.ts";
import { importModule } from "./_import.ts";
import { registerReducer } from "./_reduction.ts";
import { KIND, registerBlocks, SyncBlock, W, waitersWord } from "./_sync_block.ts";
import { timedWait, waitUntil } from "./_sync_wait.ts";
import { timeoutMs } from "./_wait.ts";
import { BrokenBarrierError } from "./errors.ts";

// Barrier words: the pass word (generation << 16 | parties arrived), broken, parties.
const PASS = W.A;
const BROKEN = W.B;
const PARTIES = W.C;
const COUNT_MASK = 0xffff;
const GEN_MASK = 0x7fff;

/**
 * Options of {@linkcode Barrier}.
 *
 * @example A barrier whose waits give up after 5 s
 * ```ts
 * import { Barrier } from "@mp/multiprocessing";
 *
 * const barrier = new Barrier(1, { timeout: 5_000, action: () => console.log("all here") });
 * console.log(await barrier.wait()); // 0
 * barrier.close();
 * ```
 */
export interface BarrierOptions {
  /**
   * Runs once per pass, in the last process to arrive, before any party is released. To run in
   * a child, it must be exported from the module that created the barrier (as a Process target).
   */
  action?: () => unknown;
  /** Default timeout of `wait()`, in ms. */
  timeout?: number;
}

interface ActionRef {
  name: string;
  module: string;
}

/**
 * A barrier for a fixed number of parties across processes, as Python's
 * `multiprocessing.Barrier`: each `wait()` blocks until `parties` waits are pending, then all
 * are released together and each gets a distinct index.
 *
 * Unlike CPython's (a Condition and a lock), it is one shared word: `generation << 16 | arrived`.
 * Each party adds one (its index); the last one runs the action, then starts the next
 * generation with none arrived and wakes everyone; the others wait for the generation to move
 * on. `reset()` moves it on by two, which the waiters of the old generation read as broken.
 *
 * @example Two parties meet
 * ```ts
 * import { Barrier } from "@mp/multiprocessing";
 *
 * using barrier = new Barrier(2);
 * const [a, b] = await Promise.all([barrier.wait(), barrier.wait()]);
 * console.log([a, b].sort()); // [0, 1]
 * ```
 */
export class Barrier {
  #core: SyncBlock;
  #w: Int32Array;
  #parties: number;
  #timeout: number | undefined;
  #action: (() => unknown) | undefined;
  #actionRef: ActionRef | null;

  /** Creates a barrier for `parties` parties. */
  constructor(parties: number, options: BarrierOptions = {}) {
    const revived = adopted<BarrierState>(new.target);
    if (revived) {
      this.#core = revived.core;
      this.#parties = revived.core.words[PARTIES];
      this.#timeout = revived.timeout;
      this.#action = undefined;
      this.#actionRef = revived.action;
    } else {
      if (
        typeof parties !== "number" || !Number.isInteger(parties) || parties < 1 || parties > COUNT_MASK - 1
      ) {
        throw new RangeError(`Invalid parties: expected an integer from 1 to 65534, got ${String(parties)}`);
      }
      const { action, timeout } = options;
      if (action !== undefined && typeof action !== "function") {
        throw new TypeError(`Invalid action: expected a function, got ${typeof action}`);
      }
      timeoutMs(timeout, "new Barrier()");
      this.#parties = parties;
      this.#timeout = timeout;
      this.#action = action;
      const module = action ? callerModule() : undefined;
      this.#actionRef = action && module && action.name ? { name: action.name, module } : null;
      this.#core = SyncBlock.create(KIND.barrier);
      this.#core.words[PARTIES] = parties;
    }
    this.#w = this.#core.words;
    registerBlocks(this, [this.#core]);
  }

  /** The number of parties needed to pass. */
  get parties(): number {
    return this.#parties;
  }

  /** How many parties are waiting now. */
  get nWaiting(): number {
    this.#core.check("barrier");
    if (Atomics.load(this.#w, BROKEN)) return 0;
    const arrived = Atomics.load(this.#w, PASS) & COUNT_MASK;
    return arrived >= this.#parties ? 0 : arrived;
  }

  /** True when the barrier is broken (aborted, or a wait timed out); `reset()` repairs it. */
  get broken(): boolean {
    this.#core.check("barrier");
    return Atomics.load(this.#w, BROKEN) !== 0;
  }

  /**
   * Waits for the other parties; resolves a distinct index 0..parties-1. Rejects with
   * `BrokenBarrierError` when the barrier is or becomes broken, and breaks it when this wait
   * times out or is aborted (the other parties cannot pass without this one any more).
   */
  async wait(timeout?: number, options?: { signal?: AbortSignal }): Promise<number> {
    const { timeout: ms, signal } = timedWait(timeout ?? this.#timeout, options, "Barrier.wait()");
    const core = this.#core;
    core.check("barrier");
    signal?.throwIfAborted();
    const w = this.#w;
    const parties = this.#parties;
    for (;;) {
      if (Atomics.load(w, BROKEN)) throw new BrokenBarrierError();
      const v = Atomics.load(w, PASS);
      const gen = (v >>> 16) & GEN_MASK;
      const index = v & COUNT_MASK;
      if (index >= parties) {
        // The last party of this pass is running the action: wait for the next generation.
        await waitUntil(core, {
          what: "barrier",
          channel: gen & 1,
          tryTake: () => Atomics.load(w, PASS) !== v || Atomics.load(w, BROKEN) !== 0,
        }, { block: true, timeout: Infinity, signal });
        continue;
      }
      if (Atomics.compareExchange(w, PASS, v, v + 1) !== v) continue;
      if (index + 1 === parties) {
        if (this.#action || this.#actionRef) {
          try {
            await (await this.#findAction())();
          } catch (error) {
            this.#break();
            throw error;
          }
          if (Atomics.load(w, BROKEN) || Atomics.load(w, PASS) !== v + 1) throw new BrokenBarrierError();
        }
        // Next generation, nobody arrived yet; wake everyone of this one.
        if (Atomics.compareExchange(w, PASS, v + 1, ((gen + 1) & GEN_MASK) << 16) !== v + 1) {
          throw new BrokenBarrierError();
        }
        this.#wake(gen);
        return index;
      }
      let passed: boolean;
      try {
        passed = await waitUntil(core, {
          what: "barrier",
          // Each generation sleeps on its own channel (by parity): the next generation's early
          // arrivals cannot take the posts that wake this one.
          channel: gen & 1,
          // Three parties or more: the ones still to come need a CPU more than this spin does.
          polite: parties > 2,
          tryTake: () => ((Atomics.load(w, PASS) >>> 16) & GEN_MASK) !== gen || Atomics.load(w, BROKEN) !== 0,
        }, { block: true, timeout: ms, signal });
      } catch (error) {
        this.#breakIfStill(gen);
        throw error;
      }
      const now = (Atomics.load(w, PASS) >>> 16) & GEN_MASK;
      // The generation moved on by one: this pass completed (even if broken since).
      if (now === ((gen + 1) & GEN_MASK)) return index;
      if (now !== gen) throw new BrokenBarrierError("Barrier is broken: it was reset while waiting");
      if (!passed) {
        this.#breakIfStill(gen);
        throw new BrokenBarrierError(`Barrier is broken: wait timed out after ${ms} ms`);
      }
      throw new BrokenBarrierError();
    }
  }

  async #findAction(): Promise<() => unknown> {
    if (this.#action) return this.#action;
    const ref = this.#actionRef!;
    const mod = await importModule(ref.module);
    const fn = mod[ref.name];
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot run the barrier's action "${ref.name}" in this process: it is not exported from ${ref.module}. Export it so other processes can import it.`,
      );
    }
    return this.#action = fn as () => unknown;
  }

  /** Wakes every sleeper of generation `gen`. */
  #wake(gen: number): void {
    const channel = gen & 1;
    this.#core.post(Atomics.load(this.#w, waitersWord(channel)), channel);
  }

  #break(): void {
    Atomics.store(this.#w, BROKEN, 1);
    this.#wake(0);
    this.#wake(1);
  }

  #breakIfStill(gen: number): void {
    if (this.#core.closed) return; // closed while waiting: its words are unmapped
    if (((Atomics.load(this.#w, PASS) >>> 16) & GEN_MASK) === gen) this.#break();
  }

  /** Breaks the barrier: every waiting and future `wait()` rejects with `BrokenBarrierError`. */
  abort(): void {
    this.#core.check("barrier");
    this.#break();
  }

  /** Returns the barrier to its empty state; current waiters reject with `BrokenBarrierError`. */
  reset(): void {
    this.#core.check("barrier");
    const w = this.#w;
    for (;;) {
      const v = Atomics.load(w, PASS);
      const gen = (v >>> 16) & GEN_MASK;
      // Two generations on: waiters of this one read it as a reset, not as a completed pass.
      if (Atomics.compareExchange(w, PASS, v, ((gen + 2) & GEN_MASK) << 16) === v) break;
    }
    Atomics.store(w, BROKEN, 0);
    this.#wake(0);
    this.#wake(1);
  }

  /** Closes this handle (idempotent); the creating process also removes the names. */
  close(): void {
    this.#core.close();
  }

  /** Same as {@linkcode Barrier.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** How it prints: `Barrier(parties=3, waiting=1, broken=false)`, `Barrier(closed)`. */
  [inspect](): string {
    return described("Barrier", this.#core.closed, () => [
      `parties=${this.#parties}`,
      `waiting=${this.nWaiting}`,
      `broken=${this.broken}`,
    ]);
  }

  static {
    registerReducer(Barrier, {
      name: "mp.Barrier",
      reduce: (b: Barrier): BarrierWire => {
        b.#core.check("barrier");
        return { name: b.#core.name, timeout: b.#timeout, action: b.#actionRef };
      },
      revive: (s: BarrierWire) =>
        construct(Barrier, {
          core: SyncBlock.open(s.name, KIND.barrier, "Barrier"),
          timeout: s.timeout,
          action: s.action,
        }),
    });
  }
}

interface BarrierState {
  core: SyncBlock;
  timeout: number | undefined;
  action: ActionRef | null;
}

interface BarrierWire {
  name: string;
  timeout: number | undefined;
  action: ActionRef | null;
}
