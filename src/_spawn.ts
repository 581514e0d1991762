/**
 * Starting a `deno` child with exactly the fds it should inherit.
 *
 * Every fd this library makes is close-on-exec, so a child spawned by anyone inherits none of
 * them. Around one spawn (synchronous, so nothing else runs in between) we clear the flag on the
 * fds that child needs, and set it again right after: they keep their numbers in the child.
 *
 * @module
 */
import { setInheritable } from "../native/mod.ts";
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

/** Spawns `deno run <parent's flags> ...args`, sharing stdout/stderr with this process. */
export function spawnDeno({ args, fds = [] }: SpawnOptions): Deno.ChildProcess {
  const command = new Deno.Command(denoCommand(), {
    args: ["run", ...childFlags(), ...args],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  });
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
    for (const fd of fds) setInheritable(fd, false);
  }
}
