/**
 * The resource tracker (CPython: `resource_tracker.py`).
 *
 * Named semaphores and shared memory outlive every process unless someone unlinks them. One
 * tracker process serves a whole process tree: the main process starts it with the read end of a
 * pipe; the main process and every child hold the write end, and write a line for each name they
 * create ("+sem /mp-...", written before the name exists: `makeTracked` in `_resource.ts`) and
 * unlink ("-sem /mp-..."). When the last write end closes (every
 * process of the tree has ended, however it ended, SIGKILL included) the tracker reads EOF and
 * unlinks whatever is still registered.
 *
 * Besides, a process unlinks at its normal exit the names it owns (`own()` in `_resource.ts`), so
 * that they are gone as soon as it ends.
 *
 * @module
 */
import { close, NamedSemaphore, pipe, unlinkSharedMemory, writeAll } from "../native/mod.ts";
import { spawnDeno } from "./_spawn.ts";
import { state } from "./_state.ts";

/** Named semaphores, shared memory, and directories (a manager's socket directory). */
export type ResourceKind = "sem" | "shm" | "dir";

const encoder = new TextEncoder();

let counter = 0;

/**
 * A fresh name for a semaphore or shared memory object: "/mp", this pid, `tag`, a counter and
 * 4 random characters, all base 36. Short enough (about 18 bytes) for macOS's 31-byte limit with
 * room for a suffix; the pid lets tests and people tell whose leftovers they see.
 */
export function uniqueName(tag: string): string {
  const rand = Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, "0");
  const name = `/mp${Deno.pid.toString(36)}${tag}${(counter++).toString(36)}${rand}`;
  heard?.(name);
  return name;
}

let heard: ((name: string) => void) | undefined;

/**
 * For tests: `hear` is told each name {@linkcode uniqueName} gives in this isolate from now on
 * (`undefined`: nobody). A name's pid cannot tell which test made it: `deno test --parallel` runs
 * test files as isolates of one process, and this module, its counter included, once per isolate.
 */
export function _hearNames(hear: ((name: string) => void) | undefined): void {
  heard = hear;
}

/** Unlinks a named resource of the given kind (a directory with what is in it); false if it was already gone. */
export function unlinkResource(kind: ResourceKind, name: string): boolean {
  if (kind === "dir") return removeDir(name);
  return kind === "sem" ? NamedSemaphore.unlink(name) : unlinkSharedMemory(name);
}

function removeDir(path: string): boolean {
  try {
    Deno.removeSync(path, { recursive: true });
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The fd of the tracker's pipe, starting the tracker first if this tree has none yet. */
export function trackerFd(): number {
  const s = state();
  if (s.trackerFd !== null) return s.trackerFd;
  const [readEnd, writeEnd] = pipe();
  try {
    const child = spawnDeno({
      args: [new URL("./_tracker_main.ts", import.meta.url).href, String(readEnd)],
      fds: [readEnd],
    });
    // The tracker must not keep this program alive: it ends by itself after we do.
    child.unref();
    child.status.catch(() => {});
  } catch (e) {
    close(writeEnd);
    throw e;
  } finally {
    close(readEnd);
  }
  s.trackerFd = writeEnd;
  return writeEnd;
}

/** Records that `name` exists and must be unlinked when the process tree is gone. */
export function track(kind: ResourceKind, name: string): void {
  writeAll(trackerFd(), encoder.encode(`+${kind} ${name}\n`));
}

/** Records that `name` was unlinked by its owner. */
export function untrack(kind: ResourceKind, name: string): void {
  const fd = state().trackerFd;
  if (fd !== null) writeAll(fd, encoder.encode(`-${kind} ${name}\n`));
}
