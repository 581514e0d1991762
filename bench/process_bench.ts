/**
 * Starting and joining a process that does nothing, beside the floor for any Deno child (a
 * `deno run` of an empty file). Few iterations: each one spawns a process.
 *
 * @module
 */
import { startJoinOnce } from "./rows/process.ts";

const EMPTY_FILE = new URL("./rows/_empty.ts", import.meta.url);

Deno.bench({
  name: "Process start+join (empty target)",
  group: "process",
  n: 20,
  warmup: 2,
  async fn() {
    await startJoinOnce();
  },
});

Deno.bench({
  name: "deno run (empty file)",
  group: "process",
  baseline: true,
  n: 20,
  warmup: 2,
  async fn() {
    const { success } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", EMPTY_FILE.pathname],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    if (!success) throw new Error("deno run of an empty file failed");
  },
});
