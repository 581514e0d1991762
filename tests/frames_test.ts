/**
 * The one frame format (`src/_frames.ts`) and its users: the long header form, every reader style,
 * and one error (`Deno.errors.UnexpectedEof`) for a stream cut in the middle of a frame on every
 * channel. The long form is tested with a lowered threshold (`setLongFrom`), not with 4 GiB.
 */
import assert from "node:assert/strict";
import { Pipe, Process, Queue } from "../mod.ts";
import { close, pipe, read, setNonBlocking, socketpair, write } from "../native/mod.ts";
import { FdChannel } from "../src/_fd_channel.ts";
import {
  cutMidFrame,
  encodeFrame,
  FrameBuffer,
  FrameDecoder,
  frameLength,
  headAt,
  onFrames,
  readFrameSync,
  setLongFrom,
  sizeAt,
  writeFrameSync,
} from "../src/_frames.ts";
import * as fx from "./fixtures/ipc_fixtures.ts";
import { connectChannel } from "../src/_manager_socket.ts";
import { cleanup, SPAWNS } from "./fixtures/helpers.ts";

const module = new URL("./fixtures/ipc_fixtures.ts", import.meta.url);

/** Runs `fn` with bodies of `size` bytes and more taking the long header. */
async function withLongFrom<R>(size: number, fn: () => R | Promise<R>): Promise<R> {
  const before = setLongFrom(size);
  try {
    return await fn();
  } finally {
    setLongFrom(before);
  }
}

function bytes(n: number, seed = 0): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 7 + seed) % 251);
}

/** The frames a FrameDecoder yields for `stream` pushed in chunks of `chunk` bytes. */
function decodeInChunks(stream: Uint8Array, chunk: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const d = new FrameDecoder("The test stream", (body) => out.push(body));
  for (let at = 0; at < stream.length; at += chunk) d.push(stream.subarray(at, at + chunk));
  d.end();
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A non-blocking read of `stream` in pieces of at most `chunk` bytes (0 at its end). */
function chunkedRead(stream: Uint8Array, chunk: number): (buf: Uint8Array) => number {
  let at = 0;
  return (buf) => {
    const n = Math.min(chunk, buf.length, stream.length - at);
    buf.set(stream.subarray(at, at + n));
    at += n;
    return n;
  };
}

/** The next frame of `b`, filling it with `read` as needed; null at the end between frames. */
function nextFrame(b: FrameBuffer, read: (buf: Uint8Array) => number, max?: number): Uint8Array | null {
  for (;;) {
    const frame = b.take(max);
    if (frame) return frame;
    if (b.fill(read) === null) {
      const cut = b.cut("The manager connection");
      if (cut) throw cut;
      return null;
    }
  }
}

Deno.test("A frame header is 4 bytes below the long threshold and 0xFFFFFFFF plus a u64 from it on", async () => {
  await withLongFrom(8, () => {
    const short = encodeFrame(bytes(7));
    const long = encodeFrame(bytes(8));
    assert.deepEqual([short.length, long.length], [4 + 7, 12 + 8]);
    const sv = new DataView(short.buffer);
    const lv = new DataView(long.buffer);
    assert.deepEqual([sv.getUint32(0, true), headAt(sv, 0), sizeAt(sv, 0)], [7, 4, 7]);
    assert.deepEqual([lv.getUint32(0, true), lv.getBigUint64(4, true)], [0xffff_ffff, 8n]);
    assert.deepEqual([headAt(lv, 0), sizeAt(lv, 0)], [12, 8]);
    assert.deepEqual(long.subarray(12), bytes(8));
    // frameLength says how far to fill: the header so far known, then the whole frame.
    assert.deepEqual([2, 4, 11, 20].map((end) => frameLength(lv, 0, end)), [4, 12, 12, 20]);
  });
});

Deno.test("FrameDecoder yields the same frames however the stream is cut into chunks, long and empty ones included", async () => {
  await withLongFrom(300, () => {
    const bodies = [bytes(0), bytes(1), bytes(299), bytes(300, 1), bytes(0), bytes(70_000, 2), bytes(5)];
    const stream = concat(bodies.map(encodeFrame));
    for (const chunk of [1, 3, 4, 5, 11, 12, 13, 4096, stream.length]) {
      assert.deepEqual(decodeInChunks(stream, chunk), bodies, `chunks of ${chunk} bytes`);
    }
  });
});

Deno.test("FrameBuffer reads frames through a buffer, long ones included, and refuses one over its limit", async () => {
  await withLongFrom(300, () => {
    const bodies = [bytes(3), bytes(0), bytes(100_000, 1), bytes(400, 2)];
    const stream = concat(bodies.map(encodeFrame));
    for (const chunk of [1, 7, 65_536, stream.length]) {
      const b = new FrameBuffer();
      const read = chunkedRead(stream, chunk);
      for (const body of bodies) assert.deepEqual(nextFrame(b, read)?.slice(), body);
      assert.equal(nextFrame(b, read), null);
    }
    assert.throws(() => nextFrame(new FrameBuffer(), chunkedRead(stream, 5), 2), RangeError);
  });
});

Deno.test("FdChannel.readFrame() over a socket returns frames however they arrive in pieces, refuses one over its limit, and names the channel when cut mid-frame", async () => {
  await withLongFrom(300, async () => {
    const bodies = [bytes(3), bytes(0), bytes(20_000, 1), bytes(400, 2)];
    const stream = concat(bodies.map(encodeFrame));
    for (const chunk of [1, 1000, stream.length]) {
      const [mine, theirs] = socketpair();
      const ch = new FdChannel(mine, { buffered: true, name: "The test socket" });
      setNonBlocking(theirs, true); // one thread writes and reads: a full socket must not block it
      try {
        const writing = (async () => {
          for (let at = 0, writes = 0; at < stream.length; writes++) {
            const n = write(theirs, stream.slice(at, at + chunk)); // -1: the socket is full for now
            if (n > 0) at += n;
            // A turn of the event loop now and then (and whenever the socket is full).
            if (n <= 0 || writes % 64 === 0) await new Promise((r) => setTimeout(r, 0));
          }
          close(theirs);
        })();
        for (const body of bodies) {
          assert.deepEqual((await ch.readFrame())?.slice(), body, `chunks of ${chunk}`);
        }
        assert.equal(await ch.readFrame(), null);
        await writing;
      } finally {
        ch.close();
      }
    }
    for (const cut of [false, true]) {
      const [mine, theirs] = socketpair();
      const ch = new FdChannel(mine, { buffered: true, name: "The test socket" });
      try {
        if (!cut) {
          write(theirs, encodeFrame(bytes(10)) as Uint8Array<ArrayBuffer>);
          await assert.rejects(ch.readFrame(9), RangeError);
        } else {
          write(theirs, encodeFrame(bytes(10)).slice(0, 7));
          close(theirs);
          await assert.rejects(
            ch.readFrame(),
            (e) => e instanceof Deno.errors.UnexpectedEof && /^The test socket/.test(e.message),
          );
        }
      } finally {
        ch.close();
        if (!cut) close(theirs);
      }
    }
  });
});

Deno.test("A stream cut in the middle of a frame is UnexpectedEof naming the channel, in every reader style", () => {
  const frame = encodeFrame(bytes(10));
  for (const cut of [2, 4 + 3]) {
    const part = frame.subarray(0, cut);
    // Pushed chunks.
    const d = new FrameDecoder("The test stream", () => assert.fail("no frame is whole"));
    d.push(part);
    assert.throws(
      () => d.end(),
      (e) => e instanceof Deno.errors.UnexpectedEof && /^The test stream/.test(e.message),
    );
    // Buffered pull.
    assert.throws(
      () => nextFrame(new FrameBuffer(), chunkedRead(part, 1)),
      (e) => e instanceof Deno.errors.UnexpectedEof && /manager/.test(e.message),
    );
    // Blocking fd.
    const [rfd, wfd] = pipe();
    try {
      write(wfd, part as Uint8Array<ArrayBuffer>);
      close(wfd);
      assert.throws(
        () => readFrameSync(rfd),
        (e) =>
          e instanceof Deno.errors.UnexpectedEof && /control channel/.test(e.message) &&
          /10 bytes|header/.test(e.message),
      );
    } finally {
      close(rfd);
    }
  }
  // Between frames, the end is a clean end.
  const [rfd, wfd] = pipe();
  writeFrameSync(wfd, bytes(3));
  close(wfd);
  assert.deepEqual(readFrameSync(rfd), bytes(3));
  assert.equal(readFrameSync(rfd), null);
  close(rfd);
  assert.match(
    cutMidFrame("X", 3, 10).message,
    /^X ended in the middle of a message \(3 of its 10 bytes arrived\)/,
  );
});

Deno.test("A Connection cut in the middle of a header or a body rejects with UnexpectedEof; at a boundary with EOFError", async () => {
  for (const cut of [0, 3, 4 + 5]) {
    const [r, w] = Pipe({ duplex: false });
    try {
      const frame = encodeFrame(bytes(10));
      write(w.fileno(), concat([encodeFrame(bytes(1)), frame.subarray(0, cut)]) as Uint8Array<ArrayBuffer>);
      w.close();
      assert.deepEqual(await r.recvBytes(), bytes(1));
      if (cut === 0) await assert.rejects(r.recvBytes(), (e) => (e as Error).name === "EOFError");
      else {
        await assert.rejects(
          r.recvBytes(),
          (e) =>
            e instanceof Deno.errors.UnexpectedEof && /^The connection ended in the middle/.test(e.message),
        );
      }
    } finally {
      r.close();
      w.close();
    }
  }
});

Deno.test("The parent's control socket that ends in the middle of a frame is destroyed with UnexpectedEof", async () => {
  const { Socket } = await import("node:net");
  const [mine, theirs] = socketpair();
  const socket = new Socket({ fd: mine, readable: true, writable: true });
  const frames: Uint8Array[] = [];
  try {
    const failed = new Promise<unknown>((resolve) => socket.on("error", resolve));
    onFrames(socket, (body) => frames.push(body));
    write(
      theirs,
      concat([encodeFrame(bytes(2)), encodeFrame(bytes(50)).subarray(0, 20)]) as Uint8Array<ArrayBuffer>,
    );
    close(theirs);
    const error = await failed;
    assert.ok(error instanceof Deno.errors.UnexpectedEof, String(error));
    assert.match(error.message, /^The control channel ended in the middle of a message \(16 of its 50 bytes/);
    assert.deepEqual(frames, [bytes(2)]);
  } finally {
    socket.destroy();
  }
});

Deno.test("A manager connection cut in the middle of a frame is UnexpectedEof; at a boundary it ends with null", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s`;
  const listener = Deno.listen({ transport: "unix", path });
  try {
    for (
      const [bytes, cut] of [[[100, 0, 0, 0, 1, 2], true], [[1, 0], true], [[1, 0, 0, 0, 7], false]] as const
    ) {
      const connecting = connectChannel({ path });
      const server = await listener.accept();
      const ch = await connecting;
      try {
        await server.write(new Uint8Array(bytes));
        server.close();
        if (cut) await assert.rejects(ch.readFrame(), Deno.errors.UnexpectedEof);
        else {
          assert.deepEqual(await ch.readFrame(), new Uint8Array([7]));
          assert.equal(await ch.readFrame(), null);
        }
      } finally {
        ch.close();
      }
    }
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A Connection sends and receives long-form frames, small and larger than one copy", async () => {
  await withLongFrom(100, async () => {
    const [r, w] = Pipe({ duplex: false });
    try {
      await w.sendBytes(bytes(150));
      const head = new Uint8Array(12);
      assert.equal(read(r.fileno(), head), 12);
      const view = new DataView(head.buffer);
      assert.deepEqual([view.getUint32(0, true), view.getBigUint64(4, true)], [0xffff_ffff, 150n]);
      const body = new Uint8Array(150);
      assert.equal(read(r.fileno(), body), 150);
      assert.deepEqual(body, bytes(150));
      const [a, b] = Pipe();
      try {
        const big = bytes(300_000, 3);
        const sent = a.sendBytes(big);
        assert.deepEqual(await b.recvBytes(), big);
        await sent;
        await a.send({ x: "y".repeat(200) });
        assert.deepEqual(await b.recv(), { x: "y".repeat(200) });
      } finally {
        a.close();
        b.close();
      }
    } finally {
      r.close();
      w.close();
    }
  });
});

Deno.test("A Queue carries an item whose frame takes the long header, through its segment, in order", async () => {
  // Above PIPE_BUF, so items in the pipe keep the short header; a big item's segment gets the long one.
  await withLongFrom(8192, async () => {
    const q = new Queue<unknown>();
    try {
      const big = bytes(20_000, 4);
      await q.put("a");
      await q.put(big);
      await q.put({ n: 1 });
      assert.equal(await q.get(), "a");
      assert.deepEqual(await q.get(), big);
      assert.deepEqual(await q.get(), { n: 1 });
    } finally {
      q.close();
    }
  });
});

Deno.test({
  name: "A child reads a control-channel header frame sent in the long form",
  ...SPAWNS,
  async fn() {
    await withLongFrom(64, async () => {
      const [mine, theirs] = Pipe();
      const p = new Process({ target: fx.echo, args: [theirs], module });
      try {
        await p.start();
        theirs.close();
        await mine.send("z".repeat(1000));
        assert.equal(await mine.recv(), "z".repeat(1000));
        mine.close();
        await p.join(10_000);
        assert.equal(p.exitCode, 0);
      } finally {
        mine.close();
        await cleanup(p);
      }
    });
  },
});
