/**
 * The child side of a Pool worker (CPython: `pool.worker`). After the usual start-up it runs the
 * initializer, says it is ready, then answers task frames on its control fd one at a time:
 *
 *   parent → worker: { id, fn: { name, source }, star, items }   (items: a serialized chunk of inputs)
 *   worker → parent: { id, ok: true, results } | { id, ok: false, error }   (results: serialized)
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

/**
 * Serializes a task's results on their own (an array of numbers then takes the fast path); a
 * result that cannot travel fails its task, not the worker.
 */
function serializeResults(results: unknown[], name: string): Uint8Array {
  try {
    return serialize(results);
  } catch (e) {
    throw new TypeError(
      `Cannot send the result of task ${name || "(anonymous)"} back: ${(e as Error).message}`,
    );
  }
}

/** Runs the worker loop; resolves to the exit code. */
export async function poolWorker(
  control: number,
  mod: Record<string, unknown>,
  args: unknown[],
  module: string | null,
): Promise<number> {
  const { initializer, initargs, maxTasks } = args[0] as WorkerArgs;
  const send = (msg: unknown) => writeFrameSync(control, serialize(msg));
  try {
    if (initializer) {
      await findExport(mod, initializer, module, "Cannot start pool worker: its initializer")(...initargs);
    }
  } catch (e) {
    send({ ready: false, error: packError(e) });
    return 1;
  }
  send({ ready: true });

  const cache = new Map<string, Fn>();
  const lookup = (fn: { name: string; source: string }): Fn => {
    const key = `${fn.name}\0${fn.source}`;
    let f = cache.get(key);
    if (!f) cache.set(key, f = findExport(mod, fn, module, "Cannot run task: its function"));
    return f;
  };
  for (let done = 0; maxTasks === null || done < maxTasks; done++) {
    const frame = readFrameSync(control);
    if (!frame) break;
    const task = deserialize(frame) as {
      id: number;
      fn: { name: string; source: string };
      star: boolean;
      items: Uint8Array;
    };
    let reply: unknown;
    try {
      const f = lookup(task.fn);
      const items = deserialize(task.items) as unknown[];
      const results = new Array(items.length);
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        const r = task.star ? f(...(item as unknown[])) : f(item);
        results[i] = r instanceof Promise ? await r : r;
      }
      reply = { id: task.id, ok: true, results: serializeResults(results, task.fn.name) };
    } catch (e) {
      reply = { id: task.id, ok: false, error: packError(e) };
    }
    let bytes: Uint8Array;
    try {
      bytes = serialize(reply);
    } catch (e) {
      // Only an error that cannot travel gets here (packError dropped its odd fields already).
      const error = new TypeError(
        `Cannot send the error of task ${task.fn.name || "(anonymous)"} back: ${(e as Error).message}`,
      );
      bytes = serialize({ id: task.id, ok: false, error: packError(error) });
    }
    writeFrameSync(control, bytes);
  }
  return 0;
}
