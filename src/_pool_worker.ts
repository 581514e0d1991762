/**
 * The child side of a Pool worker (CPython: `pool.worker`). After the usual start-up it runs the
 * initializer, says it is ready, then runs the tasks it is sent on its control fd:
 *
 *   parent → worker: one frame per batch: [[id, fn: { name, source }, star, items], ...]
 *   worker → parent: { ready: true } | { ready: false, error }, then frames of answers, in order:
 *                    [[id, true, results, ms] | [id, false, error, ms], ...]
 *
 * `items` is the task's chunk of inputs: as they are when they are a few primitives, else
 * serialized when the task was made; `results` likewise an array, or its serialized bytes when
 * it is long; `ms` the time the task took in the worker (the scheduler's estimate of how long
 * such tasks run, to batch only short ones).
 *
 * It reads with blocking calls: it has nothing else to do between tasks, and a task that is
 * async still runs on the event loop while it is being awaited. A closed pool ends an idle
 * worker with SIGTERM; EOF on the control fd (the parent is gone) ends it too.
 *
 * @module
 */
import { readFrameSync, writeFrameSync } from "./_frames.ts";
import { deserialize, serialize } from "./_reduction.ts";
import { findExport } from "./_caller.ts";
import { packError } from "./_error_transport.ts";
import { FLUSH_MS, ID_MASK, progressWords, type WorkerArgs } from "./_pool_slot.ts";

type Fn = (...args: unknown[]) => unknown;

/** A worker holds answers at most this many at once (and at most `FLUSH_MS`). */
const FLUSH_COUNT = 1024;

/** One task as it travels to a worker: `[id, fn, star, items]` (items: an array, or serialized). */
export type TaskFrame = [id: number, fn: FnDesc, star: boolean, items: unknown[] | Uint8Array];
/** A task's answer: `[id, true, results, ms]` or `[id, false, error, ms]`; `ms`: the time it took. */
export type ReplyFrame = [id: number, ok: boolean, payload: unknown, ms: number];
/** How a task function is found in the worker: its export name and source text. */
export type FnDesc = { name: string; source: string };

/** Results of at least this many values travel serialized on their own (dense numbers go raw). */
const OWN_FRAME = 64;

/**
 * Runs a worker: after its initializer, it says it is ready, then reads frames, each a batch of
 * tasks, and answers each task in order. `read` returns one frame's body, null at the end;
 * `write` sends one. Resolves to the exit code. The same loop serves any transport (a process's
 * control fd here, a thread's message channel in `_thread_main.ts`).
 */
export async function serveTasks(
  read: () => Uint8Array | null | Promise<Uint8Array | null>,
  write: (body: Uint8Array) => void,
  mod: Record<string, unknown>,
  args: WorkerArgs,
  module: string | null,
): Promise<number> {
  const { initializer, initargs, maxTasks } = args;
  try {
    if (initializer) {
      await findExport(mod, initializer, module, "Cannot start pool worker: its initializer")(...initargs);
    }
  } catch (e) {
    write(serialize({ ready: false, error: packError(e) }));
    return 1;
  }
  write(serialize({ ready: true }));

  // Tasks of one batch share their FnDesc object (the serializer sends it once).
  let lastDesc: FnDesc | undefined;
  let lastFn: Fn | undefined;
  const cache = new Map<string, Fn>();
  const lookup = (fn: FnDesc): Fn => {
    if (fn === lastDesc) return lastFn!;
    const key = `${fn.name}\0${fn.source}`;
    let f = cache.get(key);
    if (!f) cache.set(key, f = findExport(mod, fn, module, "Cannot run task: its function"));
    lastDesc = fn;
    return lastFn = f;
  };
  // Answers are held briefly and written together: a write per task wakes the parent per task,
  // which costs far more than the task (~100 µs of context switches on a busy machine). Before
  // each task its id goes into this worker's progress word, so if the worker dies the parent
  // knows which task was running even when answers were still held here.
  const { lane } = args;
  const progress = progressWords(args.progress);
  const held: ReplyFrame[] = [];
  const names: string[] = [];
  let heldSince = 0;
  const flush = () => {
    if (held.length === 0) return;
    write(serializeAnswers(held, names));
    held.length = 0;
    names.length = 0;
  };
  let done = 0;
  for (;;) {
    const next = read(); // a thread's transport may have to wait asynchronously
    const frame = next instanceof Promise ? await next : next;
    if (!frame) return 0;
    const batch = deserialize(frame) as TaskFrame[];
    let mark = performance.now();
    for (let t = 0; t < batch.length; t++) {
      const [id, fn, star, input] = batch[t];
      if (progress) Atomics.store(progress, lane, id & ID_MASK);
      let ok = true;
      let payload: unknown;
      try {
        const f = lookup(fn);
        const items = input instanceof Uint8Array ? deserialize(input) as unknown[] : input;
        const results = new Array(items.length);
        for (let i = 0; i < items.length; i++) {
          const item = items[i];
          const r = star ? f(...(item as unknown[])) : f(item);
          results[i] = r instanceof Promise ? await r : r;
        }
        payload = results.length >= OWN_FRAME ? serializeResults(results, fn.name) : results;
      } catch (e) {
        ok = false;
        payload = packError(e);
      }
      const now = performance.now();
      if (held.length === 0) heldSince = now;
      held.push([id, ok, payload, now - mark]);
      names.push(fn.name);
      mark = now;
      const last = maxTasks !== null && ++done >= maxTasks;
      // The end of a batch (a long task always ends its batch), or held long enough.
      if (last || t === batch.length - 1 || now - heldSince >= FLUSH_MS || held.length >= FLUSH_COUNT) {
        flush();
      }
      if (last) return 0;
    }
  }
}

/** Runs the worker loop on a process's control fd; resolves to the exit code. */
export function poolWorker(
  control: number,
  mod: Record<string, unknown>,
  args: unknown[],
  module: string | null,
): Promise<number> {
  return serveTasks(
    () => readFrameSync(control),
    (body) => writeFrameSync(control, body),
    mod,
    args[0] as WorkerArgs,
    module,
  );
}

/**
 * Serializes a task's results on their own (an array of numbers then takes the fast path); a
 * result that cannot travel fails its task, not the worker.
 */
function serializeResults(results: unknown[], name: string): Uint8Array {
  try {
    return serialize(results);
  } catch (e) {
    throw cannotSend("result", name, e);
  }
}

/** Serializes answers together; one that cannot travel fails its own task only. */
function serializeAnswers(answers: ReplyFrame[], names: string[]): Uint8Array {
  try {
    return serialize(answers);
  } catch {
    return serialize(answers.map((a, i) => {
      try {
        serialize(a);
        return a;
      } catch (e) {
        // A small result that cannot travel, or an error that cannot (packError dropped its odd
        // fields already, so only its own value is left to blame).
        const error = cannotSend(a[1] ? "result" : "error", names[i], e);
        return [a[0], false, packError(error), a[3]] satisfies ReplyFrame;
      }
    }));
  }
}

function cannotSend(what: string, name: string, e: unknown): TypeError {
  return new TypeError(
    `Cannot send the ${what} of task ${name || "(anonymous)"} back: ${(e as Error).message}`,
  );
}
