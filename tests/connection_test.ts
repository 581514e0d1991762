import assert from "node:assert/strict";
import { BufferTooShortError, type Connection, EOFError, Pipe, Process, wait } from "../mod.ts";
import { write } from "../native/mod.ts";
import * as fx from "./fixtures/ipc_fixtures.ts";
import { cleanup, runProgram, SPAWNS } from "./fixtures/helpers.ts";

const module = new URL("./fixtures/ipc_fixtures.ts", import.meta.url);

function closeAll(...conns: Connection[]): void {
  for (const c of conns) c.close();
}

Deno.test("Connection.send() and recv() carry structured-clone values both ways on a duplex Pipe", async () => {
  const [a, b] = Pipe();
  try {
    const value = {
      n: 1,
      big: 2n ** 70n,
      list: [1, "two", null],
      map: new Map([["k", new Set([3])]]),
      when: new Date(5),
    };
    await a.send(value);
    assert.deepEqual(await b.recv(), value);
    await b.send("back");
    assert.equal(await a.recv(), "back");
    assert.equal(a.readable && a.writable && b.readable && b.writable, true);
    assert.equal(typeof a.fileno(), "number");
  } finally {
    closeAll(a, b);
  }
});

Deno.test("Connection messages keep their boundaries, an empty message included", async () => {
  const [a, b] = Pipe();
  try {
    await a.sendBytes(new Uint8Array([1, 2, 3]));
    await a.sendBytes(new Uint8Array(0));
    await a.sendBytes(new Uint16Array([0x0201, 0x0403]), 1, 2); // offset and size count bytes
    await a.sendBytes(new Uint8Array([9]).buffer);
    assert.deepEqual(await b.recvBytes(), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await b.recvBytes(), new Uint8Array(0));
    assert.deepEqual(await b.recvBytes(), new Uint8Array([2, 3]));
    assert.deepEqual(await b.recvBytes(), new Uint8Array([9]));
  } finally {
    closeAll(a, b);
  }
});

Deno.test("Connection carries a message larger than the socket buffer while both ends run in one process", async () => {
  const [a, b] = Pipe();
  try {
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
    const sent = a.sendBytes(big);
    const got = await b.recvBytes();
    await sent;
    assert.equal(got.length, big.length);
    assert.deepEqual(got, big);
  } finally {
    closeAll(a, b);
  }
});

Deno.test("Connection.poll() never consumes a message and honours its timeout", async () => {
  const [a, b] = Pipe();
  try {
    assert.equal(await b.poll(), false);
    const t0 = performance.now();
    assert.equal(await b.poll(50), false);
    assert.ok(performance.now() - t0 >= 40);
    setTimeout(() => a.send("later"), 20);
    assert.equal(await b.poll(5000), true);
    assert.equal(await b.poll(), true);
    assert.equal(await b.poll(10), true);
    assert.equal(await b.recv(), "later");
    assert.equal(await b.poll(), false);
  } finally {
    closeAll(a, b);
  }
});

Deno.test("Connection.poll() and wait() take timeouts in ms: a string or NaN is a TypeError; Infinity and 2^31 ms wait", async () => {
  const [a, b] = Pipe();
  try {
    await assert.rejects(b.poll("100" as unknown as number), TypeError);
    await assert.rejects(b.poll(NaN), TypeError);
    await assert.rejects(wait([b], "100" as unknown as number), TypeError);
    await assert.rejects(wait([b], NaN), TypeError);
    setTimeout(() => a.send("one"), 20);
    assert.equal(await b.poll(Infinity), true);
    assert.equal(await b.recv(), "one");
    setTimeout(() => a.send("two"), 20);
    assert.equal(await b.poll(2 ** 31), true);
    assert.equal(await b.recv(), "two");
    setTimeout(() => a.send("three"), 20);
    assert.deepEqual(await wait([b], Infinity), [b]);
    assert.equal(await b.recv(), "three");
    setTimeout(() => a.send("four"), 20);
    assert.deepEqual(await wait([b], 2 ** 31), [b]);
    assert.equal(await b.recv(), "four");
  } finally {
    closeAll(a, b);
  }
});

Deno.test({
  name:
    "Waits that sleep leave nothing behind: 4 000 sleeping receives on one connection keep the heap after GC flat",
  ...SPAWNS,
  async fn() {
    const out = await runProgram(new URL("./fixtures/connection_wait_program.ts", import.meta.url), {
      denoArgs: ["-A", "--v8-flags=--expose-gc"],
      timeoutMs: 120_000,
    });
    assert.equal(out.code, 0, out.stderr);
    const [first, last] = out.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(last.waits, 4000);
    // Before the fix every sleeping wait kept ~900 bytes until close(): +3.6 MB here.
    assert.ok(
      last.heapMB - first.heapMB < 1.5,
      `heap after GC grew from ${first.heapMB} to ${last.heapMB} MB`,
    );
  },
});

Deno.test("Connection.recvBytes(maxLength) rejects a longer message with RangeError and leaves it unread", async () => {
  const [a, b] = Pipe();
  try {
    await a.sendBytes(new Uint8Array(10));
    await assert.rejects(b.recvBytes(9), RangeError);
    assert.equal((await b.recvBytes(10)).length, 10);
    await assert.rejects(b.recvBytes(-1), RangeError);
  } finally {
    closeAll(a, b);
  }
});

Deno.test("Connection.recvBytesInto() fills the buffer at an offset, or rejects with BufferTooShortError carrying the message", async () => {
  const [a, b] = Pipe();
  try {
    await a.sendBytes(new Uint8Array([7, 8, 9]));
    const buf = new Uint8Array(5);
    assert.equal(await b.recvBytesInto(buf, 2), 3);
    assert.deepEqual(buf, new Uint8Array([0, 0, 7, 8, 9]));
    await a.sendBytes(new Uint8Array([1, 2, 3, 4]));
    const err = await b.recvBytesInto(new Uint8Array(8), 6).catch((e) => e);
    assert.ok(err instanceof BufferTooShortError);
    assert.deepEqual(err.data, new Uint8Array([1, 2, 3, 4]));
    await assert.rejects(b.recvBytesInto(buf, 6), RangeError);
    await a.send("next"); // the short buffer consumed the message: the next one comes next
    assert.equal(await b.recv(), "next");
  } finally {
    closeAll(a, b);
  }
});

Deno.test("Connection.sendBytes() rejects an offset or size outside the buffer with RangeError", () => {
  const [a, b] = Pipe();
  try {
    const buf = new Uint8Array(4);
    assert.throws(() => a.sendBytes(buf, -1), RangeError);
    assert.throws(() => a.sendBytes(buf, 5), RangeError);
    assert.throws(() => a.sendBytes(buf, 1, 4), RangeError);
    assert.throws(() => a.sendBytes(buf, 0, -1), RangeError);
    assert.throws(() => a.sendBytes("text" as unknown as Uint8Array), TypeError);
  } finally {
    closeAll(a, b);
  }
});

Deno.test("Connection.send() of a value that cannot travel throws DataCloneError and the connection stays usable", async () => {
  const [a, b] = Pipe();
  const [c, d] = Pipe();
  try {
    assert.throws(() => a.send({ f() {} }), (e: Error) => e.name === "DataCloneError");
    assert.throws(() => a.send(Symbol("s") as unknown), (e: Error) => e.name === "DataCloneError");
    // A Deno resource cannot travel (a connection can: tests/fdpass_test.ts).
    assert.throws(() => a.send({ stdin: Deno.stdin }), TypeError);
    await a.send("fine");
    assert.equal(await b.recv(), "fine");
    assert.equal(await b.poll(), false);
  } finally {
    closeAll(a, b, c, d);
  }
});

Deno.test("Connection use after close(), and of the wrong end of a one-way pipe, throws BadResource", async () => {
  const [r, w] = Pipe({ duplex: false });
  assert.equal(r.readable, true);
  assert.equal(r.writable, false);
  assert.equal(w.readable, false);
  assert.equal(w.writable, true);
  assert.throws(() => r.send(1), Deno.errors.BadResource);
  assert.throws(() => r.sendBytes(new Uint8Array(1)), Deno.errors.BadResource);
  await assert.rejects(w.recv(), Deno.errors.BadResource);
  await assert.rejects(w.recvBytes(), Deno.errors.BadResource);
  await assert.rejects(w.poll(), Deno.errors.BadResource);
  await w.send("one-way");
  assert.equal(await r.recv(), "one-way");
  const pending = r.recv();
  r.close();
  r.close(); // idempotent
  await assert.rejects(pending, Deno.errors.BadResource);
  w.close();
  assert.equal(r.closed && w.closed, true);
  assert.throws(() => w.send(1), Deno.errors.BadResource);
  await assert.rejects(r.recv(), Deno.errors.BadResource);
  assert.throws(() => r.fileno(), Deno.errors.BadResource);
});

Deno.test("Connection reads the 64-bit length form of a frame", async () => {
  const [r, w] = Pipe({ duplex: false });
  try {
    const frame = new Uint8Array(12 + 3);
    const view = new DataView(frame.buffer);
    view.setUint32(0, 0xffff_ffff, true);
    view.setBigUint64(4, 3n, true);
    frame.set([4, 5, 6], 12);
    write(w.fileno(), frame);
    assert.deepEqual(await r.recvBytes(), new Uint8Array([4, 5, 6]));
  } finally {
    closeAll(r, w);
  }
});

Deno.test({
  name: "Connection round-trips values with a child echoing them, and the child ends at EOF",
  ...SPAWNS,
  async fn() {
    const [mine, theirs] = Pipe();
    const p = new Process({ target: fx.echo, args: [theirs], module });
    try {
      await p.start();
      theirs.close(); // the child holds the only other copy now
      for (const v of [1, "two", { three: [3] }, new Uint8Array(100_000).fill(1)]) {
        await mine.send(v);
        assert.deepEqual(await mine.recv(), v);
      }
      mine.close(); // the child reads EOF and ends
      await p.join(10_000);
      assert.equal(p.exitCode, 0);
    } finally {
      mine.close();
      await cleanup(p);
    }
  },
});

Deno.test({
  name: "Connection.recv() throws EOFError only once every copy of the write end is closed in every process",
  ...SPAWNS,
  async fn() {
    const [r, w] = Pipe({ duplex: false });
    // A child that was not given the pipe must not hold a copy of its write end.
    const bystander = new Process({ target: fx.sleeps, args: [20_000], module });
    const writer = new Process({ target: fx.sendAll, args: [w, ["a", "b"], 300], module });
    try {
      await bystander.start();
      await writer.start();
      w.close(); // the writer child still holds its copy, and sends after 300 ms
      assert.equal(await r.recv(), "a");
      assert.equal(await r.recv(), "b");
      await assert.rejects(r.recv(), EOFError);
      await assert.rejects(r.recv(), EOFError);
      assert.equal(await r.poll(), true); // the end of the stream is something to read
      assert.equal(bystander.isAlive(), true);
    } finally {
      r.close();
      w.close();
      await cleanup(bystander, writer);
    }
  },
});

Deno.test({
  name: "Connection.recv() of a stream that ends in the middle of a message is UnexpectedEof, not EOFError",
  ...SPAWNS,
  async fn() {
    const [r, w] = Pipe({ duplex: false });
    const p = new Process({ target: fx.partialFrame, args: [w], module });
    try {
      await p.start();
      w.close();
      await assert.rejects(r.recv(), Deno.errors.UnexpectedEof);
    } finally {
      r.close();
      w.close();
      await cleanup(p);
    }
  },
});

Deno.test({
  name: "wait() resolves to the connections with data and the processes that ended, or [] after the timeout",
  ...SPAWNS,
  async fn() {
    const [a1, a2] = Pipe();
    const [b1, b2] = Pipe();
    const p = new Process({ target: fx.sleeps, args: [200], module });
    try {
      assert.deepEqual(await wait([a1, b1], 30), []);
      await b2.send("x");
      assert.deepEqual(await wait([a1, b1]), [b1]);
      assert.equal(await b1.recv(), "x"); // wait() consumed nothing
      await p.start();
      const ready = await wait([a1, p], 10_000);
      assert.deepEqual(ready, [p]);
      assert.equal(p.exitCode, 0);
      setTimeout(() => a2.send("y"), 30);
      assert.deepEqual(await wait([a1, b1], 10_000), [a1]);
      await assert.rejects(wait([a2, b1.closed ? a1 : (b1.close(), b1)]), Deno.errors.BadResource);
    } finally {
      closeAll(a1, a2, b1, b2);
      await cleanup(p);
    }
  },
});

Deno.test({
  name:
    "Connection reads are exact: an end passed to a child after the parent received from it continues with the next message",
  ...SPAWNS,
  async fn() {
    const [mine, theirs] = Pipe();
    const p = new Process({ target: fx.echo, args: [theirs], module });
    try {
      await mine.send("first");
      await mine.send("second");
      assert.equal(await theirs.recv(), "first"); // read here; "second" must stay for the child
      await p.start();
      theirs.close();
      assert.equal(await mine.recv(), "second");
      await mine.send("third");
      assert.equal(await mine.recv(), "third");
      mine.close();
      await p.join(10_000);
      assert.equal(p.exitCode, 0);
    } finally {
      mine.close();
      theirs.close();
      await cleanup(p);
    }
  },
});

Deno.test("A Connection prints its fd and which ways it works; a closed one prints as closed", () => {
  const [a, b] = Pipe();
  const [r, w] = Pipe({ duplex: false });
  try {
    assert.equal(Deno.inspect(a), `Connection(fd=${a.fileno()}, readable, writable)`);
    assert.equal(Deno.inspect(r), `Connection(fd=${r.fileno()}, readable)`);
    assert.equal(Deno.inspect(w), `Connection(fd=${w.fileno()}, writable)`);
  } finally {
    for (const c of [a, b, r, w]) c.close();
  }
  assert.equal(Deno.inspect(a), "Connection(closed)");
});

Deno.test({
  name:
    "A program whose wait() returned for a connection ends at once, without waiting for a daemon process it watched too",
  ...SPAWNS,
  async fn() {
    // The daemon runs for 30 s; the program is killed after 20 s (code 137) if it waits for it.
    const out = await runProgram(new URL("./fixtures/wait_daemon_program.ts", import.meta.url), {
      timeoutMs: 20_000,
    });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout.trim()), { ready: 1, connection: true });
  },
});
