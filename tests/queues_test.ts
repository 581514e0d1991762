import assert from "node:assert/strict";
import { JoinableQueue, Process, Queue, QueueEmptyError, QueueFullError, SimpleQueue } from "../mod.ts";
import * as fx from "./fixtures/ipc_fixtures.ts";
import * as qx from "./fixtures/queue_fixtures.ts";
import { cleanup, runProgram, shmLeftSince, SPAWNS, tempFile, waitUntil } from "./fixtures/helpers.ts";
import { raceTimeout, sleep, TIMED_OUT } from "../src/_wait.ts";

const module = new URL("./fixtures/ipc_fixtures.ts", import.meta.url);
const qmodule = new URL("./fixtures/queue_fixtures.ts", import.meta.url);

/**
 * What a test left of the queue resources this test file made in /dev/shm: control blocks and
 * slot semaphores (`/mp<pid>q…`) and item segments (`/mp<pid>b…`); the queue's locks are tested
 * with the locks. (Test files share a pid under --parallel: see `madeSince`.)
 */
const queueFilesLeft = () => shmLeftSince("q", "b");

type Item = { from: number; i: number; pad: string };

Deno.test("Queue keeps FIFO order and qsize()/empty()/full() are exact right after put() and get()", async () => {
  const left = queueFilesLeft();
  const q = new Queue<unknown>(3);
  try {
    assert.equal(q.empty(), true);
    await q.put(1);
    assert.equal(q.qsize(), 1);
    await q.put({ two: [2n] });
    q.putNowait("three");
    assert.equal(q.qsize(), 3);
    assert.equal(q.full(), true);
    assert.equal(await q.get(), 1);
    assert.equal(q.qsize(), 2);
    assert.deepEqual(q.getNowait(), { two: [2n] });
    assert.equal(await q.get(), "three");
    assert.equal(q.empty(), true);
    assert.equal(q.full(), false);
  } finally {
    q.close();
  }
  assert.deepEqual(left(), []);
});

Deno.test("Queue.put() and get() reject with QueueFullError / QueueEmptyError for block:false and after the timeout", async () => {
  const q = new Queue<number>(1);
  try {
    await assert.rejects(q.get({ block: false }), QueueEmptyError);
    await assert.rejects(q.get({ timeout: 0 }), QueueEmptyError);
    const t0 = performance.now();
    await assert.rejects(q.get({ timeout: 60 }), QueueEmptyError);
    assert.ok(performance.now() - t0 >= 50);
    assert.throws(() => q.getNowait(), QueueEmptyError);
    await q.put(1);
    await assert.rejects(q.put(2, { block: false, timeout: 1000 }), QueueFullError);
    await assert.rejects(q.put(2, { timeout: 30 }), QueueFullError);
    assert.throws(() => q.putNowait(2), QueueFullError);
    assert.equal(q.qsize(), 1);
    setTimeout(() => q.get(), 20);
    await q.put(3, { timeout: 5000 }); // room appears while it waits
    assert.equal(await q.get({ timeout: 5000 }), 3);
  } finally {
    q.close();
  }
});

Deno.test("Queue waits aborted by a signal reject with its reason and add or lose no item", async () => {
  const q = new Queue<string>(1);
  try {
    const reason = new Error("stop");
    const ac = new AbortController();
    setTimeout(() => ac.abort(reason), 20);
    await assert.rejects(q.get({ signal: ac.signal }), (e) => e === reason);
    await q.put("kept");
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(reason), 20);
    await assert.rejects(q.put("extra", { signal: ac2.signal }), (e) => e === reason);
    assert.equal(q.qsize(), 1);
    assert.equal(await q.get({ timeout: 10_000 }), "kept");
    assert.equal(q.empty(), true);
    await assert.rejects(q.get({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
    await assert.rejects(q.put("x", { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(q.qsize(), 0);
  } finally {
    q.close();
  }
});

Deno.test("Queue.put() of a value that cannot be serialized throws synchronously and the queue stays usable", async () => {
  const q = new Queue<unknown>();
  try {
    assert.throws(() => q.put(() => 1), (e: Error) => e.name === "DataCloneError");
    assert.throws(() => q.putNowait({ s: Symbol("x") }), (e: Error) => e.name === "DataCloneError");
    assert.equal(q.qsize(), 0);
    await q.put("ok");
    assert.equal(await q.get(), "ok");
  } finally {
    q.close();
  }
});

Deno.test("Queue carries items larger than a pipe write (through shared memory) in order with small ones", async () => {
  const left = queueFilesLeft();
  const q = new Queue<unknown>();
  try {
    const big = new Uint8Array(2 * 1024 * 1024).map((_, i) => i % 253);
    await q.put("a");
    await q.put(big);
    await q.put("x".repeat(5000));
    await q.put("b");
    assert.equal(await q.get(), "a");
    assert.deepEqual(await q.get(), big);
    assert.equal(await q.get(), "x".repeat(5000));
    assert.equal(await q.get(), "b");
  } finally {
    q.close();
  }
  assert.deepEqual(left(), []);
});

Deno.test("Queue returns byte arrays as structuredClone would: whole arrays as raw bytes, views with their offset", async () => {
  const q = new Queue<unknown>();
  try {
    const whole = new Uint8Array([1, 2, 3]);
    const view = new Uint8Array(new Uint8Array([9, 8, 7, 6]).buffer, 1, 2);
    class Bytes extends Uint8Array {}
    for (const x of [whole, view, new Bytes([5]), new Uint8Array(0), new Uint8Array(100_000).fill(4)]) {
      await q.put(x);
      const got = (await q.get()) as Uint8Array;
      const want = structuredClone(x);
      assert.equal(Object.getPrototypeOf(got), Object.getPrototypeOf(want));
      assert.equal(got.byteOffset, want.byteOffset);
      assert.equal(got.buffer.byteLength, want.buffer.byteLength);
      assert.deepEqual([...got], [...want]);
    }
    whole[0] = 100; // the queued copy is not the caller's array
    await q.put(whole);
    whole[0] = 1;
    assert.equal(((await q.get()) as Uint8Array)[0], 100);
  } finally {
    q.close();
  }
});

Deno.test("Queue put()/get() after close() throw BadResource, and close() is idempotent", async () => {
  const q = new Queue<number>();
  q.close();
  q.close();
  assert.throws(() => q.put(1), Deno.errors.BadResource);
  assert.throws(() => q.get(), Deno.errors.BadResource);
  assert.throws(() => q.putNowait(1), Deno.errors.BadResource);
  assert.throws(() => q.getNowait(), Deno.errors.BadResource);
  // Each call says what it was asked.
  assert.throws(() => q.qsize(), { name: "BadResource", message: "Cannot qsize: the queue is closed" });
  assert.throws(() => q.empty(), {
    name: "BadResource",
    message: "Cannot tell whether it is empty: the queue is closed",
  });
  assert.throws(() => q.full(), {
    name: "BadResource",
    message: "Cannot tell whether it is full: the queue is closed",
  });
  await q.joinThread();
});

Deno.test("Queue.close() rejects this process's waiting get() and put() with BadResource, then releases everything", async () => {
  const left = queueFilesLeft();
  const q = new Queue<number>(1);
  await q.put(1);
  const getter = new Queue<number>();
  const waitingGet = getter.get();
  const secondGet = getter.get({ timeout: 10_000 });
  const waitingPut = q.put(2);
  await new Promise((r) => setTimeout(r, 30));
  getter.close();
  q.close();
  await assert.rejects(waitingGet, Deno.errors.BadResource);
  await assert.rejects(secondGet, Deno.errors.BadResource);
  await assert.rejects(waitingPut, Deno.errors.BadResource);
  // Released once the put's last wait slice (50 ms) has ended: bounded, not timed.
  await waitUntil(() => left().length === 0, 10_000);
  assert.deepEqual(left(), []);
});

Deno.test("JoinableQueue.join() waits for every taskDone(), and one taskDone() too many is a RangeError", async () => {
  const q = new JoinableQueue<number>();
  try {
    await q.join(); // nothing put: at once
    await q.put(1);
    await q.put(2);
    let joined = false;
    const joining = q.join().then(() => joined = true);
    await q.get();
    q.taskDone();
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(joined, false);
    await q.get();
    q.taskDone();
    await joining;
    assert.equal(joined, true);
    assert.throws(() => q.taskDone(), RangeError);
  } finally {
    q.close();
  }
});

Deno.test("A subclass of JoinableQueue counts tasks as JoinableQueue does", async () => {
  class Jobs extends JoinableQueue<string> {}
  const q = new Jobs();
  try {
    await q.put("a");
    assert.equal(await q.get(), "a");
    let joined = false;
    const joining = q.join().then(() => joined = true);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(joined, false); // the item is not done yet
    q.taskDone();
    assert.equal(await raceTimeout(joining, 10_000), true);
    assert.throws(() => q.taskDone(), RangeError);
  } finally {
    q.close();
  }
});

Deno.test("SimpleQueue puts, gets and reports empty()", async () => {
  const q = new SimpleQueue<string>();
  try {
    assert.equal(q.empty(), true);
    await q.put("one");
    assert.equal(q.empty(), false);
    assert.equal(await q.get(), "one");
    assert.equal(q.empty(), true);
  } finally {
    q.close();
  }
});

Deno.test({
  name:
    "Queue delivers every item exactly once and in each producer's order, 3 producers to 4 consumers across processes",
  ...SPAWNS,
  async fn() {
    const PER = 2000;
    const q = new Queue<Item | null>(64);
    const out = new Queue<{ done: number; items: Item[] }>();
    const producers = [0, 1, 2].map((from) =>
      new Process({ target: fx.produce, args: [q, from, PER, from === 2 ? 6000 : 10], module })
    );
    const consumers = [0, 1, 2, 3].map((id) =>
      new Process({ target: fx.consume, args: [q, out, id], module })
    );
    try {
      await Promise.all([...producers, ...consumers].map((p) => p.start()));
      await Promise.all(producers.map((p) => p.join(60_000)));
      for (let i = 0; i < consumers.length; i++) await q.put(null);
      const seen = new Map<number, number[]>([[0, []], [1, []], [2, []]]);
      for (let i = 0; i < consumers.length; i++) {
        const { items } = await out.get({ timeout: 60_000 });
        const last = new Map<number, number>();
        for (const it of items) {
          assert.ok((last.get(it.from) ?? -1) < it.i, "a consumer saw one producer's items out of order");
          last.set(it.from, it.i);
          seen.get(it.from)!.push(it.i);
        }
      }
      for (const [from, is] of seen) {
        assert.equal(is.length, PER, `producer ${from}: ${is.length} items arrived`);
        assert.deepEqual([...is].sort((a, b) => a - b), [...Array(PER).keys()]);
      }
      await Promise.all(consumers.map((p) => p.join(10_000)));
      assert.deepEqual([...producers, ...consumers].map((p) => p.exitCode), [0, 0, 0, 0, 0, 0, 0]);
      assert.equal(q.empty(), true);
    } finally {
      q.close();
      out.close();
      await cleanup(...producers, ...consumers);
    }
  },
});

Deno.test({
  name:
    "Queue: a child that put far more than the pipe holds exits, and its parent's join() before reading does not deadlock",
  ...SPAWNS,
  async fn() {
    const q = new Queue<Item>();
    const small = new Process({ target: fx.produce, args: [q, 0, 20_000, 40], module });
    const big = new Process({ target: fx.produce, args: [q, 1, 20, 200_000], module });
    try {
      await small.start();
      await big.start();
      await small.join(30_000);
      await big.join(30_000);
      assert.equal(small.exitCode, 0, "the child did not end: join() would deadlock");
      assert.equal(big.exitCode, 0);
      assert.equal(q.qsize(), 20_020);
      const next = [0, 0];
      for (let n = 0; n < 20_020; n++) {
        const it = await q.get({ timeout: 10_000 });
        assert.equal(it.i, next[it.from]++);
      }
      assert.deepEqual(next, [20_000, 20]);
      assert.equal(q.empty(), true);
    } finally {
      q.close();
      await cleanup(small, big);
    }
  },
});

Deno.test({
  name: "JoinableQueue.join() returns once daemon consumers in children marked every item done",
  ...SPAWNS,
  async fn() {
    const q = new JoinableQueue<number>();
    const out = new Queue<number>();
    const workers = [0, 1].map(() => new Process({ target: fx.work, args: [q, out], module, daemon: true }));
    try {
      await Promise.all(workers.map((w) => w.start()));
      for (let i = 0; i < 50; i++) await q.put(i);
      await q.join();
      assert.equal(out.qsize(), 50);
      const squares: number[] = [];
      for (let i = 0; i < 50; i++) squares.push(await out.get({ timeout: 5000 }));
      assert.deepEqual(squares.sort((a, b) => a - b), [...Array(50).keys()].map((i) => i * i));
    } finally {
      for (const w of workers) if (w.isAlive()) w.terminate();
      q.close();
      out.close();
      await cleanup(...workers);
    }
  },
});

Deno.test({
  name:
    "Queue: a consumer killed while it waits in get() (holding the reader lock) does not block the others",
  ...SPAWNS,
  async fn() {
    const q = new Queue<string | null>();
    const out = new Queue<unknown>();
    const consumer = new Process({ target: fx.consume, args: [q, out, 0], module });
    try {
      await consumer.start();
      await new Promise((r) => setTimeout(r, 200)); // it now waits in get(), holding the reader lock
      consumer.kill();
      await consumer.join(5000);
      assert.equal(consumer.exitCode, -9);
      await q.put("after");
      assert.equal(await q.get({ timeout: 5000 }), "after");
    } finally {
      q.close();
      out.close();
      await cleanup(consumer);
    }
  },
});

Deno.test("Queue.get() and put() options that are not { block, timeout, signal } are a TypeError at the call", async () => {
  const q = new Queue<number>(1);
  try {
    // deno-lint-ignore no-explicit-any
    const anyQ = q as any;
    assert.throws(() => anyQ.get(5), TypeError);
    assert.throws(() => anyQ.get({ timeout: "100" }), TypeError);
    assert.throws(() => q.get({ timeout: NaN }), TypeError);
    assert.throws(() => anyQ.get({ block: "no" }), TypeError);
    assert.throws(() => anyQ.put(1, 5), TypeError);
    assert.throws(() => anyQ.put(1, { timeout: "100" }), TypeError);
    assert.equal(q.qsize(), 0, "a rejected put() added nothing");
    await q.put(1);
    assert.equal(await q.get({ timeout: 10_000 }), 1);
  } finally {
    q.close();
  }
});

Deno.test("Queue.get({ timeout: Infinity }) waits until an item comes, or until it is aborted", async () => {
  const q = new Queue<string>(1);
  try {
    const waiting = q.get({ timeout: Infinity });
    setTimeout(() => q.put("later"), 50);
    assert.equal(await raceTimeout(waiting, 10_000), "later");
    const ac = new AbortController();
    const aborted = q.get({ timeout: Infinity, signal: ac.signal });
    setTimeout(() => ac.abort(new Error("enough")), 50);
    await assert.rejects(aborted, /enough/);
    await q.put("full");
    const putting = q.put("second", { timeout: Infinity });
    setTimeout(() => q.get(), 50);
    assert.notEqual(await raceTimeout(putting, 10_000), TIMED_OUT);
    assert.equal(await q.get({ timeout: 10_000 }), "second");
  } finally {
    q.close();
  }
});

Deno.test({
  name:
    "Queue: 4 producers and 4 consumers across processes deliver 200 000 items exactly once, producers exiting at once",
  ...SPAWNS,
  async fn() {
    const PER = 50_000;
    const q = new Queue<[string, number] | null>();
    const out = new Queue<Uint32Array>();
    const producers = [0, 1, 2, 3].map((from) =>
      new Process({ target: qx.produceIds, args: [q, from, PER], module: qmodule })
    );
    const consumers = [0, 1, 2, 3].map(() =>
      new Process({ target: qx.consumeIds, args: [q, out], module: qmodule })
    );
    try {
      await Promise.all([...consumers, ...producers].map((p) => p.start()));
      await Promise.all(producers.map((p) => p.join(120_000)));
      assert.deepEqual(producers.map((p) => p.exitCode), [0, 0, 0, 0]);
      for (let i = 0; i < consumers.length; i++) await q.put(null);
      const seen = new Uint8Array(4 * PER);
      let total = 0;
      for (let i = 0; i < consumers.length; i++) {
        const ids = await out.get({ timeout: 120_000 });
        for (const id of ids) seen[id]++;
        total += ids.length;
      }
      assert.equal(total, 4 * PER, `${total} of ${4 * PER} items arrived`);
      assert.equal(seen.indexOf(0), -1, "an item never arrived");
      assert.ok(seen.every((n) => n === 1), "an item arrived twice");
      await Promise.all(consumers.map((p) => p.join(10_000)));
      assert.deepEqual(consumers.map((p) => p.exitCode), [0, 0, 0, 0]);
      assert.equal(q.empty(), true);
    } finally {
      q.close();
      out.close();
      await cleanup(...producers, ...consumers);
    }
  },
});

Deno.test({
  name:
    "Queue: a backlog of 1 000 000 items left at exit by two producers, one after the other, reaches a consumer that starts after both ended",
  ...SPAWNS,
  async fn() {
    const N = 1_000_000;
    const q = new Queue<number>();
    const out = new Queue<{ inOrder: number; emptyAfter: boolean }>();
    // The second producer's hand-over takes in the first one's 500 000 items, still unread.
    const producers = [0, 1].map((k) =>
      new Process({ target: qx.putNumbers, args: [q, N / 2, k * N / 2], module: qmodule })
    );
    const consumer = new Process({ target: qx.getNumbers, args: [q, out, N], module: qmodule });
    try {
      for (const p of producers) {
        await p.start();
        await p.join(120_000);
        assert.equal(p.exitCode, 0, "a producer did not end");
      }
      assert.equal(q.qsize(), N);
      await consumer.start();
      const report = await out.get({ timeout: 120_000 });
      assert.deepEqual(report, { inOrder: N, emptyAfter: true });
      await consumer.join(10_000);
      assert.equal(consumer.exitCode, 0);
    } finally {
      q.close();
      out.close();
      await cleanup(...producers, consumer);
    }
  },
});

Deno.test({
  name: "Queue: a process that calls Deno.exit() while its own get() waits still hands over the items it put",
  ...SPAWNS,
  async fn() {
    const N = 100_000;
    const q = new Queue<number>();
    const p = new Process({ target: qx.exitWhileGetting, args: [q, N], module: qmodule });
    try {
      await p.start();
      await p.join(60_000);
      assert.equal(p.exitCode, 0, "the process did not end by its Deno.exit(0)");
      assert.equal(q.qsize(), N);
      await getsNumbers(q, N);
      assert.equal(q.empty(), true);
    } finally {
      q.close();
      await cleanup(p);
    }
  },
});

/** Gets `count` items, asserting they are 0 … count - 1 in order; runs `pause` every 1000 items. */
async function getsNumbers(q: Queue<number>, count: number, pause?: () => Promise<void>): Promise<void> {
  for (let i = 0; i < count; i++) {
    const x = await q.get({ timeout: 10_000 });
    if (x !== i) assert.equal(x, i, `item ${i}`);
    if (pause && i % 1000 === 999) await pause();
  }
}

/** A backlog of about 1 MB of numbers: sixteen times what a pipe holds (64 KiB). */
const BACKLOG = 100_000;

/**
 * Starts a child that puts the numbers 0 … BACKLOG - 1 at once on a fresh queue `q`
 * (`qx.putBacklog`), waits until it said "accepted" on `ctl` (nothing was read yet: its drain waits
 * for room in the full pipe), runs `fn`, and cleans up.
 */
async function withBacklog(
  untilDrained: boolean,
  fn: (q: Queue<number>, ctl: Queue<string>, p: Process) => Promise<void>,
): Promise<void> {
  const q = new Queue<number>();
  const ctl = new Queue<string>();
  const p = new Process({ target: qx.putBacklog, args: [q, ctl, BACKLOG, untilDrained], module: qmodule });
  try {
    await p.start();
    assert.equal(await ctl.get({ timeout: 30_000 }), "accepted");
    await fn(q, ctl, p);
  } finally {
    q.close();
    ctl.close();
    await cleanup(p);
  }
}

Deno.test({
  name:
    "Queue: a producer whose backlog exceeds the pipe drains all of it, in order, into a slow consumer while the producer's event loop keeps running",
  ...SPAWNS,
  fn: () =>
    withBacklog(true, async (q, ctl, p) => {
      // A slow consumer: it pauses every 1000 items, so the pipe runs full again.
      await getsNumbers(q, BACKLOG, () => sleep(2));
      assert.equal(await ctl.get({ timeout: 30_000 }), "drained");
      await p.join(30_000);
      assert.equal(p.exitCode, 0);
      assert.equal(q.empty(), true);
    }),
});

Deno.test({
  name:
    "Queue: a child process that returns while its drain waits for room in a full pipe hands every item over",
  ...SPAWNS,
  fn: () =>
    withBacklog(false, async (q, _ctl, p) => {
      await p.join(30_000);
      assert.equal(p.exitCode, 0);
      assert.equal(q.qsize(), BACKLOG);
      await getsNumbers(q, BACKLOG);
      assert.equal(q.empty(), true);
    }),
});

Deno.test({
  name:
    "A program whose queue's drain waits for room in a full pipe ends by itself, and its exit hands every item over in order",
  ...SPAWNS,
  async fn() {
    // A wait that kept the program alive would keep it alive for good: nobody reads.
    const out = await runProgram(new URL("./fixtures/queue_exit_program.ts", import.meta.url), {
      args: [`${BACKLOG}`],
      timeoutMs: 60_000,
    });
    assert.equal(out.code, 0, `the program did not end by itself:\n${out.stderr}`);
    assert.equal(out.stderr, "");
    assert.deepEqual(JSON.parse(out.stdout), { inOrder: BACKLOG, emptyAfter: true });
  },
});

/** The items of the reader fault-injection test: 200 of ~500 bytes (25 chunks), the 4th big. */
function crashItems(): string[] {
  return Array.from({ length: 200 }, (_, i) => `${i}:`.padEnd(i === 3 ? 10_000 : 480, "x"));
}

Deno.test({
  name:
    "Queue: a reader SIGKILLed at each step of get() loses nothing it had not taken, duplicates nothing, leaks no place, and later gets work",
  ...SPAWNS,
  async fn() {
    const items = crashItems();
    // [step, nth time the step is reached, the item the dying reader had taken (lost with it)]
    const cases: [string, number, number | null][] = [
      ["read-begun", 1, null],
      ["read-done", 1, null],
      ["read-begun", 2, null],
      ["read-done", 2, null],
      ["take", 1, 0],
      ["take", 5, 5],
      ["segment-begun", 1, null],
      ["segment-take", 1, 3],
    ];
    for (const [step, nth, lost] of cases) {
      const what = `killed at ${step} #${nth}`;
      const q = new Queue<string>(items.length);
      using log = tempFile();
      const reader = new Process({
        target: qx.crashingConsumer,
        args: [q, log.path, step, nth],
        module: qmodule,
      });
      try {
        for (const x of items) q.putNowait(x);
        await reader.start();
        await reader.join(30_000);
        assert.equal(reader.exitCode, -9, `${what}: the reader was not killed there`);
        const got = Deno.readTextFileSync(log.path).split("\n").filter((x) => x !== "");
        const taken = got.length + (lost === null ? 0 : 1);
        assert.equal(q.qsize(), items.length - taken, `${what}: qsize() after the kill`);
        while (got.length + (lost === null ? 0 : 1) < items.length) {
          got.push(await q.get({ timeout: 10_000 }));
        }
        const want = items.filter((_, i) => i !== lost);
        assert.equal(got.length, want.length, `${what}: item count`);
        assert.ok(got.every((x, i) => x === want[i]), `${what}: items lost, repeated or out of order`);
        assert.throws(() => q.getNowait(), QueueEmptyError, `${what}: an item was left`);
        assert.equal(q.qsize(), 0, `${what}: a place leaked`);
        for (let i = 0; i < items.length; i++) q.putNowait(`again ${i}`);
        assert.equal(q.full(), true);
        assert.equal(await q.get({ timeout: 5000 }), "again 0", `${what}: a later get()`);
      } finally {
        q.close();
        await cleanup(reader);
      }
    }
  },
});

Deno.test({
  name:
    "Queue: a producer SIGKILLed with accepted items still in its buffer gives their places back, and what reached the pipe is delivered",
  ...SPAWNS,
  async fn() {
    // Queue(5): two items accepted, the third's place taken, then SIGKILL before any flush.
    const q = new Queue<number | string>(5);
    const p1 = new Process({ target: qx.crashingProducer, args: [q, "put", 3, 5], module: qmodule });
    // Unbounded: 3 000 small items; full chunks went into the pipe at once, the last part did not.
    const q2 = new Queue<number>();
    const p2 = new Process({ target: qx.crashingProducer, args: [q2, "put", 3000, 3000], module: qmodule });
    const q3 = new Queue<number>(100);
    const p3 = new Process({ target: qx.crashingProducer, args: [q3, "write", 1, 100], module: qmodule });
    try {
      await p1.start();
      await p1.join(30_000);
      assert.equal(p1.exitCode, -9);
      assert.equal(q.qsize(), 0, "the dead producer's places were not given back");
      assert.equal(q.full(), false);
      for (let i = 0; i < 5; i++) q.putNowait(`mine ${i}`);
      assert.throws(() => q.putNowait("sixth"), QueueFullError);
      for (let i = 0; i < 5; i++) assert.equal(await q.get({ timeout: 5000 }), `mine ${i}`);

      await p2.start();
      await p2.join(30_000);
      assert.equal(p2.exitCode, -9);
      const inPipe = q2.qsize();
      assert.ok(inPipe > 0 && inPipe < 3000, `${inPipe} items counted`);
      for (let i = 0; i < inPipe; i++) assert.equal(await q2.get({ timeout: 5000 }), i);
      assert.throws(() => q2.getNowait(), QueueEmptyError);
      assert.equal(q2.qsize(), 0);

      // Killed right after a chunk went into the pipe, before its record said so: the items are
      // delivered, and once the queue has run empty its count is exact again.
      await p3.start();
      await p3.join(30_000);
      assert.equal(p3.exitCode, -9);
      for (let i = 0; i < 100; i++) assert.equal(await q3.get({ timeout: 5000 }), i);
      assert.throws(() => q3.getNowait(), QueueEmptyError);
      assert.equal(q3.qsize(), 0);
      for (let i = 0; i < 100; i++) q3.putNowait(i);
      assert.equal(q3.full(), true);
      assert.throws(() => q3.putNowait(100), QueueFullError);
    } finally {
      q.close();
      q2.close();
      q3.close();
      await cleanup(p1, p2, p3);
    }
  },
});

Deno.test({
  name: "JoinableQueue.join() returns when the only unfinished tasks were lost with a SIGKILLed producer",
  ...SPAWNS,
  async fn() {
    const q = new JoinableQueue<number>();
    const p = new Process({ target: qx.crashingProducer, args: [q, "put", 3, 5], module: qmodule });
    try {
      await p.start();
      await p.join(30_000);
      assert.equal(p.exitCode, -9);
      assert.notEqual(await raceTimeout(q.join(), 10_000), TIMED_OUT, "join() still waits for lost tasks");
      assert.equal(q.qsize(), 0);
    } finally {
      q.close();
      await cleanup(p);
    }
  },
});

Deno.test("Queues print their kind, item count and bound; a closed queue prints as closed", async () => {
  const q = new Queue<number>(10);
  const j = new JoinableQueue<number>();
  const s = new SimpleQueue<number>();
  try {
    await q.put(1);
    await q.put(2);
    await s.put(3);
    assert.equal(Deno.inspect(q), "Queue(qsize=2, maxsize=10)");
    assert.equal(Deno.inspect(j), "JoinableQueue(qsize=0)");
    assert.equal(Deno.inspect(s), "SimpleQueue(qsize=1)");
  } finally {
    q.close();
    j.close();
    s.close();
  }
  assert.equal(Deno.inspect(q), "Queue(closed)");
});

Deno.test({
  name: "A queue closed right after start(), before it resolved, still works in the child",
  ...SPAWNS,
  fn: async () => {
    const left = queueFilesLeft();
    const q = new Queue<string>();
    const out = new Queue<string>();
    let p: Process | undefined;
    try {
      await q.put("before close");
      p = new Process({ target: qx.relaysOne, args: [q, out], module: qmodule });
      const started = p.start();
      // Before the child opened the queue's names (its locks, its control block): they stay until it has.
      q.close();
      await started;
      assert.equal(await out.get({ timeout: 10_000 }), "before close");
      await p.join(10_000);
      assert.equal(p.exitCode, 0);
    } finally {
      q.close();
      out.close();
      await cleanup(p);
    }
    assert.deepEqual(left(), []);
  },
});
