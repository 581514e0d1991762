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

/** Spawns `deno run <parent's flags> ...args`, sharing stdout/stderr with this process. */
export function spawnDeno({ args, fds = [] }: SpawnOptions): Deno.ChildProcess {
  const command = new Deno.Command(Deno.execPath(), {
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
        `Cannot start a process: run deno with --allow-run (children run ${Deno.execPath()})`,
        { cause: e },
      );
    }
    throw e;
  } finally {
    for (const fd of fds) setInheritable(fd, false);
  }
}
