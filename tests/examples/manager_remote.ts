/**
 * Two separate programs share a job queue, a results dict and a counter through a manager on
 * TCP (127.0.0.1), finding them by name; a manager lock guards the counter's read-modify-write.
 * Python's "Using a remote manager":
 *
 *     class QueueManager(BaseManager): pass
 *     QueueManager.register("get_queue", callable=lambda: queue)   # in the server
 *     m = QueueManager(address=("127.0.0.1", 50000), authkey=b"abracadabra")
 *     ...
 *     QueueManager.register("get_queue")                            # in a client program
 *     m.connect(); q = m.get_queue()
 *
 * Here the runner starts the manager and publishes the objects; each worker is its own program
 * (`deno run ... manager_remote.ts worker`) that reads the address and authkey from its stdin
 * (never from its command line or environment) and looks the objects up by name.
 *
 * Run: deno task example:manager_remote
 */
import {
  type DictProxy,
  type LockProxy,
  Manager,
  type QueueProxy,
  type ValueProxy,
} from "@mp/multiprocessing";

async function worker(): Promise<void> {
  const { address, authkey } = JSON.parse(await new Response(Deno.stdin.readable).text());
  const manager = await Manager.connect({ address, authkey: new Uint8Array(authkey) });
  const jobs = await manager.lookup<QueueProxy<number | null>>("jobs");
  const results = await manager.lookup<DictProxy<number>>("results");
  const done = await manager.lookup<ValueProxy<number>>("done");
  const lock = await manager.lookup<LockProxy>("lock");
  for (;;) {
    const n = await jobs.get();
    if (n === null) break;
    await results.set(`${n}`, n * n);
    await using _ = await lock.hold(); // without it two workers could both read 3 and write 4
    await done.set(await done.get() + 1);
  }
}

async function runner(): Promise<void> {
  await using manager = await Manager.start({ address: { hostname: "127.0.0.1", port: 0 } });
  const jobs = await manager.queue<number | null>();
  await manager.publish("jobs", jobs);
  await manager.publish("results", await manager.dict<number>());
  await manager.publish("done", await manager.value(0));
  await manager.publish("lock", await manager.lock());
  console.log(`published: ${(await manager.names()).sort().join(", ")}`);

  const secret = JSON.stringify({ address: manager.address, authkey: [...manager.authkey] });
  const programs = [1, 2].map(() => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", import.meta.filename!, "worker"],
      stdin: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    w.write(new TextEncoder().encode(secret)).then(() => w.close());
    return child;
  });
  for (let n = 1; n <= 10; n++) await jobs.put(n);
  for (const _ of programs) await jobs.put(null); // one "stop" per worker
  const codes = await Promise.all(programs.map(async (p) => (await p.status).code));
  console.log(`worker programs exited with ${codes.join(" and ")}`);

  const results = await manager.lookup<DictProxy<number>>("results");
  const squares = (await results.entries()).sort((a, b) => Number(a[0]) - Number(b[0]));
  console.log(`squares: ${squares.map(([n, sq]) => `${n}→${sq}`).join(" ")}`);
  console.log(
    `jobs counted under the lock: ${await (await manager.lookup<ValueProxy<number>>("done")).get()}`,
  );
}

if (import.meta.main) {
  if (Deno.args[0] === "worker") await worker();
  else await runner();
}
