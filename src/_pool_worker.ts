/**
 * The child side of a Pool worker (CPython: `pool.worker`). After the usual start-up it runs the
 * initializer, says it is ready, then runs the tasks it is sent on its control fd:
 *
 *   parent → worker: one frame per batch: [[id, fn: { name, source }, star, items], ...]
 *   worker → parent: { ready: true } | { ready: false, error }, then one frame per task, in order:
 *                    [id, true, results, ms] | [id, false, error, ms]
 *
 * `items` is the task's serialized chunk of inputs; `results` an array, or its serialized bytes
 * when it is long; `ms` the time the task took in the worker (the scheduler's estimate of how
 * long such tasks run, to batch only short ones).
 *
 * It reads with blocking calls: it has nothing else to do between tasks, and a task that is
 * async still runs on the event loop while it is being awaited. A closed pool ends an idle
 * worker with SIGTERM; EOF on the control fd (the parent is gone) ends it too.
 *
 * @module
 */
import { readFrameSync, writeFrameSync } from "./_frames.ts";
import { deserialize, serialize } from "./_reduction.ts";
import { findExport } from "./_child.ts";

type Fn = (...args: unknown[]) => unknown;

/** What the pool gives each worker as its Process args. */
export interface WorkerArgs {
  initializer: { name: string; source: string } | null;
  initargs: unknown[];
  maxTasks: number | null;
}

/** An error as it travels back: structured clone keeps only built-in error names and no fields. */
export interface PackedError {
  error: unknown;
  name?: string;
  stack?: string;
  props?: Record<string, unknown>;
}

/** Packs a thrown value so that its name, message, stack and own fields survive the trip. */
export function packError(e: unknown): PackedError {
  if (!(e instanceof Error)) return { error: e };
  const props: Record<string, unknown> = { ...e };
  try {
    serialize(props);
  } catch {
    return { error: e, name: e.name, stack: e.stack };
  }
  return { error: e, name: e.name, stack: e.stack, props };
}

/** One task as it travels to a worker: `[id, fn, star, items]` (items: a serialized chunk). */
export type TaskFrame = [id: number, fn: FnDesc, star: boolean, items: Uint8Array];
/** A task's answer: `[id, true, results, ms]` or `[id, false, error, ms]`; `ms`: the time it took. */
export type ReplyFrame = [id: number, ok: boolean, payload: unknown, ms: number];
/** How a task function is found in the worker: its export name and source text. */
export type FnDesc = { name: string; source: string };

/** Results of at least this many values travel serialized on their own (dense numbers go raw). */
const OWN_FRAME = 64;

/**
 * Runs a worker: after its initializer, it says it is ready, then reads frames, each a batch of
 * tasks, and answers each task as soon as it is done (before it starts the next: that is how the
 * parent knows which task a dead worker was running). `read` returns null at the end.
 * Resolves to the exit code. The same loop serves any transport (a process's control fd here).
 */
export async function serveTasks(
  read: () => Uint8Array | null,
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
  let done = 0;
  for (;;) {
    const frame = read();
    if (!frame) return 0;
    const batch = deserialize(frame) as TaskFrame[];
    let mark = performance.now();
    for (const [id, fn, star, bytes] of batch) {
      let ok = true;
      let payload: unknown;
      try {
        const f = lookup(fn);
        const items = deserialize(bytes) as unknown[];
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
      write(reply(id, ok, payload, now - mark, fn.name));
      mark = now;
      if (maxTasks !== null && ++done >= maxTasks) return 0;
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

function reply(id: number, ok: boolean, payload: unknown, ms: number, name: string): Uint8Array {
  try {
    return serialize([id, ok, payload, ms] satisfies ReplyFrame);
  } catch (e) {
    // A small result that cannot travel, or an error that cannot (packError dropped its odd
    // fields already, so only its own value is left to blame).
    const error = cannotSend(ok ? "result" : "error", name, e);
    return serialize([id, false, packError(error), ms] satisfies ReplyFrame);
  }
}

function cannotSend(what: string, name: string, e: unknown): TypeError {
  return new TypeError(
    `Cannot send the ${what} of task ${name || "(anonymous)"} back: ${(e as Error).message}`,
  );
}
