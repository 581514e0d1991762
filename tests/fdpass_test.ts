/**
 * Connections and queues inside messages: through a Queue, a Connection, a Pool task and a
 * Manager dict, to processes that did not get them as Process arguments; the EOF rule for an end
 * in flight; no fd left behind (counted in /proc/PID/fd); Deno resources refused.
 */
import assert from "node:assert/strict";
import {
  type Connection,
  EOFError,
  Event,
  Manager,
  Pipe,
  Pool,
  Process,
  Queue,
  SimpleQueue,
  Thread,
} from "../mod.ts";
import { heldCount } from "../src/_fd_sharer.ts";
import { deserialize, serialize } from "../src/_reduction.ts";
import * as fx from "./fixtures/fdpass_fixtures.ts";
import { cleanup, SPAWNS, waitUntil } from "./fixtures/helpers.ts";

const module = new URL("./fixtures/fdpass_fixtures.ts", import.meta.url);

Deno.test({
  name:
    "A Connection put on a Queue reaches a child that sends on it, and its peer sees EOF once the child closes it",
  ...SPAWNS,
  async fn() {
    const q = new Queue<Connection<string>>();
    const [a, b] = Pipe<string>();
    const p = new Process({ target: fx.sendOnReceived, args: [q, "hello through a queue"], module });
    try {
      await p.start();
      await q.put(b);
      b.close(); // the end in flight stays open: the message holds it
      assert.equal(await a.recv(), "hello through a queue");
      await assert.rejects(a.recv(), EOFError);
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
      // The sharer's thread lets go of its copy right after the hand-over.
      assert.equal(await waitUntil(() => heldCount() === 0, 10_000), true);
    } finally {
      await cleanup(p);
      a.close();
      q.close();
    }
  },
});

Deno.test({
  name: "A Queue sent inside a Pipe message is used by the child that received it",
  ...SPAWNS,
  async fn() {
    const [mine, theirs] = Pipe<{ queue: Queue<string> }>();
    const q = new Queue<string>();
    const p = new Process({ target: fx.putOnReceivedQueue, args: [theirs, "put by the receiver"], module });
    try {
      await p.start();
      theirs.close();
      await mine.send({ queue: q });
      assert.equal(await q.get({ timeout: 20_000 }), "put by the receiver");
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
    } finally {
      await cleanup(p);
      mine.close();
      q.close();
    }
  },
});

Deno.test("A SimpleQueue and a one-way Pipe travel inside a message within one process, and work", async () => {
  const [a, b] = Pipe();
  const [r, w] = Pipe<string>({ duplex: false });
  const sq = new SimpleQueue<number>();
  try {
    await a.send([w, sq]);
    const [w2, sq2] = await b.recv() as [Connection<string>, SimpleQueue<number>];
    await w2.send("one way");
    assert.equal(await r.recv(), "one way");
    await sq2.put(7);
    assert.equal(await sq.get(), 7);
    w.close();
    w2.close();
    await assert.rejects(r.recv(), EOFError);
    sq2.close();
    assert.equal(heldCount(), 0);
  } finally {
    for (const c of [a, b, r, w]) c.close();
    sq.close();
  }
});

Deno.test({
  name:
    "An end in flight counts as open until received: no EOF while it waits in a queue, EOF once the receiver closes it",
  ...SPAWNS,
  async fn() {
    const q = new Queue<Connection>();
    const got = new Event();
    const [a, b] = Pipe();
    await q.put(b);
    b.close();
    const p = new Process({ target: fx.takeAndHang, args: [q, got], module });
    try {
      assert.equal(await a.poll(50), false, "no EOF while the end waits in the queue");
      await p.start();
      assert.equal(await got.wait(20_000), true);
      assert.equal(
        await waitUntil(() => heldCount() === 0, 10_000),
        true,
        "the sender let go of its copy once the child had it",
      );
      assert.equal(await a.poll(0), false, "the child holds the end: still open");
      p.kill(); // a receiver that dies closes what it received
      await p.join(20_000);
      await assert.rejects(a.recv(), EOFError);
    } finally {
      await cleanup(p);
      a.close();
      q.close();
    }
  },
});

Deno.test({
  name:
    "An end put by a sender that exits at once is gone with it: its peer sees EOF, and the message says the end was lost",
  ...SPAWNS,
  async fn() {
    const q = new Queue<Connection>();
    const [a, b] = Pipe();
    const p = new Process({ target: fx.putAndExit, args: [q, b], module });
    try {
      await p.start();
      b.close();
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
      await assert.rejects(a.recv(), EOFError);
      await assert.rejects(q.get({ timeout: 20_000 }), (e: Error) => {
        assert.ok(e instanceof Deno.errors.NotFound, String(e));
        assert.match(e.message, /ended before the message was received/);
        return true;
      });
    } finally {
      await cleanup(p);
      a.close();
      q.close();
    }
  },
});

Deno.test({
  name: "The sender holds one fd per end in flight, and none once the receiver took it (/proc/PID/fd)",
  ...SPAWNS,
  async fn() {
    const q = new Queue<Connection>();
    const taken = new Event();
    const again = new Event();
    const [report, theirs] = Pipe<{ before: number; inFlight: number; after: number }>();
    const p = new Process({ target: fx.countWhileSharing, args: [q, taken, again, theirs], module });
    try {
      await p.start();
      theirs.close();
      (await q.get({ timeout: 20_000 })).close();
      again.set();
      (await q.get({ timeout: 20_000 })).close();
      taken.set();
      const counts = await report.recv();
      assert.equal(counts.inFlight, counts.before + 1, "one duplicate while in flight");
      assert.equal(counts.after, counts.before, "no duplicate once received");
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
    } finally {
      await cleanup(p);
      report.close();
      q.close();
    }
  },
});

Deno.test({
  name: "A Connection travels inside a Pool task's arguments and inside its result",
  ...SPAWNS,
  async fn() {
    const pool = new Pool({ processes: 1, module });
    const [a, b] = Pipe<string>();
    try {
      const back = await pool.apply(fx.poolSendsAndReturns, [b, "from the pool"]) as Connection<string>;
      b.close();
      assert.equal(await a.recv(), "from the pool");
      assert.equal(await back.recv(), "from the pool, back");
      await assert.rejects(back.recv(), EOFError);
      back.close();
    } finally {
      a.close();
      pool.terminate();
      await pool.join();
    }
  },
});

Deno.test({
  name: "A Connection stored in a Manager dict reaches another process that reads it from the dict",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const d = await manager.dict<unknown>();
    const [a, b] = Pipe<string>();
    const p = new Process({ target: fx.sendThroughDict, args: [d, "conn", "through the manager"], module });
    try {
      await d.set("conn", b);
      b.close();
      await p.start();
      assert.equal(await a.recv(), "through the manager");
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
      await d.delete("conn");
    } finally {
      await cleanup(p);
      a.close();
    }
  },
});

Deno.test("Deno resources cannot travel: the sending call throws a TypeError that names them", async () => {
  const [a, b] = Pipe();
  const q = new Queue();
  const file = await Deno.open(new URL(import.meta.url).pathname);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(
      async () => await a.send({ file }),
      (e: Error) => e instanceof TypeError && /Deno\.FsFile/.test(e.message),
    );
    await assert.rejects(
      async () => await q.put([listener]),
      (e: Error) => e instanceof TypeError && /Deno\.\w*Listener/.test(e.message),
    );
    assert.equal(await b.poll(0), false, "nothing was sent");
    assert.equal(heldCount(), 0);
  } finally {
    file.close();
    listener.close();
    a.close();
    b.close();
    q.close();
  }
});

Deno.test("A message that fails to serialize after a Connection in it keeps no copy of that Connection's fd", async () => {
  const [a, b] = Pipe();
  const [c, d] = Pipe();
  try {
    assert.throws(() => a.send([c, { f() {} }]), (e: Error) => e.name === "DataCloneError");
    assert.equal(heldCount(), 0);
    d.close();
    c.close();
    await a.send("still fine");
    assert.equal(await b.recv(), "still fine");
  } finally {
    for (const x of [a, b, c, d]) x.close();
  }
});

Deno.test({
  name:
    "A thread hands a Connection to this program through a Queue; one that ended before it was received says the end was lost",
  ...SPAWNS,
  async fn() {
    const q = new Queue<Connection>();
    const taken = new Event();
    const waits = new Thread({ target: fx.putPeerAndEnd, args: [q, "from a thread", taken, true], module });
    const quits = new Thread({ target: fx.putPeerAndEnd, args: [q, "lost", taken, false], module });
    try {
      await waits.start();
      const c = await q.get({ timeout: 20_000 });
      taken.set();
      assert.equal(await c.recv(), "from a thread");
      await assert.rejects(c.recv(), EOFError);
      c.close();
      await waits.join(20_000);
      assert.equal(waits.exitCode, 0);
      await quits.start();
      await quits.join(20_000);
      assert.equal(quits.exitCode, 0);
      await assert.rejects(q.get({ timeout: 20_000 }), Deno.errors.NotFound);
    } finally {
      q.close();
    }
  },
});

Deno.test({
  name: "A Connection in a Pool's initargs reaches every worker's initializer",
  ...SPAWNS,
  async fn() {
    const [a, b] = Pipe<string>();
    const pool = new Pool({ processes: 1, initializer: fx.keepConnection, initargs: [b], module });
    try {
      assert.equal(await pool.apply(fx.sendOnKept, ["from the initializer's connection"]), true);
      assert.equal(await a.recv(), "from the initializer's connection");
    } finally {
      pool.terminate();
      await pool.join();
      b.close();
      a.close();
    }
  },
});

Deno.test("A message holding a Connection can be received once: reviving the same bytes again says it was already received", async () => {
  const [a, b] = Pipe();
  try {
    const bytes = serialize({ conn: b });
    const first = deserialize(bytes) as { conn: Connection };
    assert.throws(
      () => deserialize(bytes),
      (e: Error) => e instanceof Deno.errors.NotFound && /already received/.test(e.message),
    );
    await a.send("to the revived end");
    assert.equal(await first.conn.recv(), "to the revived end");
    first.conn.close();
    assert.equal(heldCount(), 0);
  } finally {
    a.close();
    b.close();
  }
});
