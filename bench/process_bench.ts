/**
 * Starting and joining a process that does nothing, beside the floor for any Deno child (a
 * `deno run` of an empty file). Few iterations: each one spawns a process.
 *
 * @module
 */
import { Process } from "../mod.ts";
import { empty } from "./rows/_targets.ts";

const TARGETS = new URL("./rows/_targets.ts", import.meta.url);
const EMPTY_FILE = new URL("./rows/_empty.ts", import.meta.url);

Deno.bench({
  name: "Process start+join (empty target)",
  group: "process",
  n: 20,
  warmup: 2,
  async fn() {
    const p = new Process({ target: empty, module: TARGETS });
    try {
      await p.start();
      await p.join();
    } finally {
      if (p.exitCode === null && p.pid !== undefined) {
        p.kill();
        await p.join(5000);
      }
      p.close();
    }
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
