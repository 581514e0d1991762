/**
 * Streams `count` arrays of `size` bytes from a child to this process through a Queue of maxsize
 * `maxsize`, then prints the larger peak RSS (MB) of the two processes. Run as its own program
 * (by bench/rows/ipc.ts) so that its peak is not the benchmark harness's.
 *
 * Usage: deno run -A bench/rows/_ipc_stream.ts [count] [size] [maxsize]
 *
 * @module
 */
import { Process, Queue } from "../../mod.ts";
import { peakRssMb, streamBig } from "./_ipc_targets.ts";

if (import.meta.main) {
  const [count = 1024, size = 2 ** 20, maxsize = 16] = Deno.args.map(Number);
  const q = new Queue<unknown>(maxsize);
  const child = new Process({
    target: streamBig,
    args: [q, count, size],
    module: new URL("./_ipc_targets.ts", import.meta.url),
  });
  await child.start();
  const t0 = performance.now();
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const chunk = (await q.get()) as Uint8Array;
    if (chunk.length !== size || chunk[0] !== (i & 0xff)) throw new Error(`chunk ${i} is wrong`);
    bytes += chunk.length;
  }
  const seconds = (performance.now() - t0) / 1000;
  const childPeak = (await q.get()) as number;
  await child.join();
  q.close();
  const parentPeak = peakRssMb();
  console.error(
    `streamed ${(bytes / 2 ** 30).toFixed(2)} GiB at ${(bytes / seconds / 1e9).toFixed(2)} GB/s; ` +
      `peak RSS: parent ${parentPeak.toFixed(0)} MB, child ${childPeak.toFixed(0)} MB`,
  );
  console.log(Math.max(parentPeak, childPeak).toFixed(1));
}
