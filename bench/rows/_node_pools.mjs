// Baselines of bench/rows/thread_pool.ts, run under Node (their home) from bench/npm/node_modules:
//   node _node_pools.mjs <piscina|workerpool> <apply|map> <count>
// prints one number: µs per apply round trip, or ms for `count` tasks submitted at once (neither
// library has a map: one task per item, as a user of either writes it).
import { createRequire } from "node:module";
const require = createRequire(new URL("../npm/package.json", import.meta.url));
const [lib, mode, countText] = process.argv.slice(2);
const count = Number(countText);
const task = new URL("./_node_task.cjs", import.meta.url);

let run, destroy;
if (lib === "piscina") {
  const { Piscina } = require("piscina");
  const pool = new Piscina({
    filename: task.href,
    minThreads: 2,
    maxThreads: 2,
  });
  run = (x) => pool.run(x);
  destroy = () => pool.destroy();
} else {
  const workerpool = require("workerpool");
  const pool = workerpool.pool(task.pathname, {
    minWorkers: 2,
    maxWorkers: 2,
    workerType: "thread",
  });
  run = (x) => pool.exec("identity", [x]);
  destroy = () => pool.terminate();
}
await Promise.all([run(0), run(1)]); // both threads have started
let result;
if (mode === "apply") {
  for (let i = 0; i < 200; i++) await run(i); // warm
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await run(i);
  result = (performance.now() - t0) * 1000 / count;
} else {
  const xs = Array.from({ length: count }, (_, i) => i);
  await Promise.all(xs.slice(0, 20_000).map(run)); // warm (the whole input again takes minutes)
  const t0 = performance.now();
  await Promise.all(xs.map(run));
  result = performance.now() - t0;
}
await destroy();
console.log(result);
