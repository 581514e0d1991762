/**
 * Starting a `deno` child with exactly the fds it should inherit.
 *
 * Every fd this library makes is close-on-exec, so a child spawned by anyone inherits none of
 * them. Around one spawn we clear the flag on the fds that child needs, and set it again right
 * after: they keep their numbers in the child. `spawn()` is synchronous, so nothing else of this
 * thread runs in between; but the flag is the process's, and another thread of it (a `Thread`, a
 * ThreadPool worker, another test file under `deno test --parallel`) may spawn meanwhile: its
 * child would inherit this child's fds, and a stray write end delays EOF for their reader until
 * that unrelated child ends. So every spawn here holds the process-wide spawn lock
 * (`native/process_lock.ts`: an abstract socket name, which every thread of the process sees and
 * nothing outlives) from clearing the flags until they are set again: a few syscalls, made only
 * by a process that spawns. A `Deno.Command` spawned by other code is not covered.
 *
 * A thread ended by `terminate()` inside that window (between two statements, no `finally` runs)
 * would keep the lock forever: a spawn waits at most {@linkcode LOCK_WAIT_MS} for it, then says
 * so and goes on without it, and that thread no longer waits for it later (it only tries).
 *
 * @module
 */
import { ProcessLock, setInheritable } from "../native/mod.ts";
import { childFlags } from "./_flags.ts";

export interface SpawnOptions {
  /** Arguments after the forwarded Deno flags: the main module and its arguments. */
  args: string[];
  /** fds the child inherits under the same numbers. */
  fds?: number[];
}

function runAllowed(command: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "run", command }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * The program a child runs: this Deno (`Deno.execPath()`), or `deno` as found on PATH when only
 * `--allow-run=deno` allows running it (Deno checks that scoped form against the PATH entry, a
 * symlink such as /usr/bin/deno, not against the binary it points to).
 */
function denoCommand(): string {
  const exec = Deno.execPath();
  return runAllowed(exec) || !runAllowed("deno") ? exec : "deno";
}

/** Whether this program may start Deno children (`--allow-run`, or a scoped form naming Deno). */
export function canRunDeno(): boolean {
  return runAllowed(denoCommand());
}

/** How long a spawn waits for the spawn lock before it goes on without it (a spawn holds it ~1 ms). */
export const LOCK_WAIT_MS = 10_000;

let lock: ProcessLock | undefined;
let lockWaitMs = LOCK_WAIT_MS;
/** Whether a wait for the lock ran out in this thread: from then on it only tries. */
let gaveUp = false;

/** Takes the spawn lock: its handle, or null when it goes on without it (see the module). */
function takeSpawnLock(): ProcessLock | null {
  lock ??= new ProcessLock("spawn");
  if (lock.acquire(gaveUp ? 0 : lockWaitMs)) return lock;
  if (!gaveUp) {
    gaveUp = true;
    console.error(
      `multiprocessing: another thread has held the spawn lock (${lock.name}) for ${lockWaitMs} ms ` +
        "(was it terminated while it started a process?); this thread now starts processes without " +
        "waiting for it, and their children may inherit fds meant for another child.",
    );
  }
  return null;
}

/**
 * For tests: takes the spawn lock in this thread, as a spawn does (waiting for it as long as it
 * takes); `release()` on the handle gives it back.
 */
export function _holdSpawnLock(): ProcessLock {
  lock ??= new ProcessLock("spawn");
  lock.acquire(Infinity);
  return lock;
}

/** For tests: how long a spawn of this thread waits for the lock; forgets an earlier giving up. */
export function _spawnLockWait(ms: number): void {
  lockWaitMs = ms;
  gaveUp = false;
}

/** Spawns `deno run <parent's flags> ...args`, sharing stdout/stderr with this process. */
export function spawnDeno({ args, fds = [] }: SpawnOptions): Deno.ChildProcess {
  const command = new Deno.Command(denoCommand(), {
    args: ["run", ...childFlags(), ...args],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  });
  const held = takeSpawnLock();
  try {
    for (const fd of fds) setInheritable(fd, true);
    return command.spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.NotCapable(
        `Cannot start a process: run deno with --allow-run, --allow-run=deno or --allow-run=${Deno.execPath()} ` +
          "(children run this Deno)",
        { cause: e },
      );
    }
    throw e;
  } finally {
    try {
      for (const fd of fds) setInheritable(fd, false);
    } finally {
      held?.release();
    }
  }
}
