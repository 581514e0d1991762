/**
 * The pool's workers, as its scheduler counts them (`_pool_scheduler.ts`): starting `size` of
 * them, replacing those that die or retire, and the progress words.
 *
 * Each worker gets a lane: one word of a block shared with every worker (`ProgressBlock`), in
 * which the worker stores the id of the chunk it is about to run. There are `2 * size + 1`
 * lanes, so that replacements get one while retiring workers still hold theirs; a lane goes back
 * to the free list once its worker has ended. When a worker has ended, its word names the chunk
 * it was running (see {@linkcode Workers.ended}); a worker started without a lane (the block was
 * already freed) counts its oldest unanswered chunk as the one it was running.
 *
 * Workers that die while starting are replaced, until {@linkcode MAX_START_DEATHS} die in a row
 * (a module that does not parse, say): then the pool is broken.
 *
 * @module
 */
import {
  ID_MASK,
  type ProgressBlock,
  type WorkerArgs,
  type WorkerKind,
  type WorkerSlot,
} from "./_pool_slot.ts";
import { type Chunk, errorText, Ring, type Slot } from "./_pool_task.ts";
import { unpackError } from "./_error_transport.ts";
import { importModule, type ModuleNamespace } from "./_import.ts";

/** Workers dying in a row while starting before the pool gives up. */
const MAX_START_DEATHS = 3;

/** What the workers tell the scheduler. */
export interface WorkerEvents {
  /** A frame a worker sent. */
  frame(slot: Slot, body: Uint8Array): void;
  /** Workers cannot be started (their module, initializer or entry point failed): the pool is broken. */
  startFailed(error: unknown): void;
  /** A worker has ended. */
  exited(slot: Slot): void;
}

/** What the workers are started with. */
export interface WorkersOptions {
  size: number;
  module: string;
  args: Omit<WorkerArgs, "progress" | "lane">;
  kind: WorkerKind;
}

/** The pool's workers (see the module comment). */
export class Workers {
  /** How many workers the pool keeps. */
  readonly size: number;
  /** The workers started and not yet ended, retiring ones included. */
  readonly slots = new Set<Slot>();
  #module: string;
  #args: Omit<WorkerArgs, "progress" | "lane">;
  #kind: WorkerKind;
  #events: WorkerEvents;
  #progress: ProgressBlock | undefined;
  /** Progress words not in use: enough for every worker plus those retiring meanwhile. */
  #lanes: number[] = [];
  #startDeaths = 0;
  #exports: ModuleNamespace | undefined;

  constructor(options: WorkersOptions, events: WorkerEvents) {
    this.size = options.size;
    this.#module = options.module;
    this.#args = options.args;
    this.#kind = options.kind;
    this.#events = events;
    // The tasks' module, for the classes of their errors (`_error_transport.ts`). Already loaded
    // here in the usual case (the tasks were passed from it), so this runs none of its code again,
    // and resolves before any answer can come. While that module is still running its top-level
    // code (a main module awaiting the pool at the top level) it may stay pending: errors then
    // arrive with their name and fields, as instances of the class structured clone gave them.
    importModule(options.module).then((ns) => this.#exports = ns, () => {});
  }

  /** A worker's error (a task's, or its start's) as it was thrown: `_error_transport.ts`. */
  unpackError(packed: unknown): unknown {
    return unpackError(packed, this.#exports);
  }

  /** Starts the workers; throws when one cannot be started (then call {@linkcode Workers.abortStart}). */
  start(): void {
    const lanes = 2 * this.size + 1;
    this.#progress = this.#kind.progress(lanes);
    for (let i = lanes - 1; i >= 0; i--) this.#lanes.push(i);
    for (let i = 0; i < this.size; i++) this.#spawn();
  }

  /** Stops the workers a failed {@linkcode Workers.start} started; returns the error to throw. */
  abortStart(error: unknown): unknown {
    const started = this.slots.size;
    for (const s of this.slots) s.io.kill();
    this.dispose();
    if (started === 0) return error;
    return new Error(
      `Cannot start the pool: started ${started} of ${this.size} worker processes, then: ${
        errorText(error)
      }. The ones started were stopped; ask for fewer processes, or raise the system's limit.`,
      { cause: error },
    );
  }

  #spawn(): void {
    const lane = this.#progress ? this.#lanes.pop() ?? -1 : -1;
    if (lane >= 0) Atomics.store(this.#progress!.words, lane, 0);
    const slot: Slot = {
      io: undefined as unknown as WorkerSlot,
      lane,
      ready: false,
      dead: false,
      retiring: false,
      inflight: new Ring(),
      est: 0,
      unknown: 0,
      since: 0,
      left: this.#args.maxTasks ?? Infinity,
    };
    const args: WorkerArgs = { ...this.#args, progress: lane >= 0 ? this.#progress!.handle : null, lane };
    try {
      slot.io = this.#kind.spawn({ module: this.#module, args }, {
        frame: (body) => this.#events.frame(slot, body),
        startFailed: (error, transient) => {
          // One killed while starting is replaced like any dead worker, unless starting keeps
          // failing (e.g. a module that does not parse).
          if (!transient || ++this.#startDeaths >= MAX_START_DEATHS) this.#events.startFailed(error);
        },
        exited: () => this.#events.exited(slot),
      });
    } catch (error) {
      if (lane >= 0) this.#lanes.push(lane);
      throw error;
    }
    this.slots.add(slot);
  }

  /** Starts workers until there are `size` of them (retired or dead ones are replaced). */
  topUp(): void {
    let live = 0;
    for (const s of this.slots) if (!s.retiring && !s.dead) live++;
    for (; live < this.size; live++) {
      try {
        this.#spawn();
      } catch (error) {
        // The OS refused a process: go on with fewer workers; with none, the pool cannot serve.
        if (live === 0) this.#events.startFailed(error);
        return;
      }
    }
  }

  /** A worker said it is ready. */
  readied(slot: Slot): void {
    slot.ready = true;
    slot.since = performance.now();
    this.#startDeaths = 0;
  }

  /**
   * A worker has ended: it leaves the set and gives its lane back. Returns which of `sent` (the
   * chunks it had not answered, oldest first) it was running: the one whose id is in its
   * progress word (none, -1, if its answer came); without a word, the oldest unanswered.
   */
  ended(slot: Slot, sent: Chunk[]): number {
    slot.dead = true;
    this.slots.delete(slot);
    let running = sent.length > 0 ? 0 : -1;
    if (slot.lane >= 0 && this.#progress) {
      const id = Atomics.load(this.#progress.words, slot.lane);
      running = sent.findIndex((c) => (c.id & ID_MASK) === id);
      this.#lanes.push(slot.lane);
    }
    return running;
  }

  /** Waits for every worker to end (including replacements started meanwhile). */
  async join(): Promise<void> {
    while (this.slots.size > 0) await Promise.all([...this.slots].map((s) => s.io.join()));
  }

  /** Frees the progress words (once no worker is left; workers started later go without). */
  dispose(): void {
    this.#progress?.dispose();
    this.#progress = undefined;
  }
}
