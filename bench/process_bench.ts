/**
 * Starting and joining a process that does nothing, beside the floor for any Deno child (a
 * `deno run` of an empty file). Few iterations: each one spawns a process.
 *
 * @module
 */
import { denoRunEmpty, startJoinOnce } from "./rows/process.ts";

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
    await denoRunEmpty();
  },
});
