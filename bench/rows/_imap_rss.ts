/**
 * Streams N items through Pool.imapUnordered in its own process and prints
 * `{ "perSecond": ..., "peakRssMB": ... }`: the peak RSS (VmHWM) is this process's alone.
 * Usage: deno run -A bench/rows/_imap_rss.ts <items> <chunksize>
 */
import { Pool } from "../../mod.ts";
import { identity } from "./_targets.ts";

function* items(n: number) {
  for (let i = 0; i < n; i++) yield i;
}

if (import.meta.main) {
  const n = Number(Deno.args[0]);
  const chunksize = Number(Deno.args[1]);
  const pool = new Pool({ processes: 2, module: new URL("./_targets.ts", import.meta.url) });
  await pool.apply(identity, [0]);
  const t0 = performance.now();
  let count = 0;
  for await (const _ of pool.imapUnordered(identity, items(n), { chunksize })) count++;
  const seconds = (performance.now() - t0) / 1000;
  await pool.terminate();
  if (count !== n) throw new Error(`expected ${n} results, got ${count}`);
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
  console.log(JSON.stringify({ perSecond: n / seconds, peakRssMB: hwm / 1024 }));
}
