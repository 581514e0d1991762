/**
 * Pipes and queues within one process (no peer to wait for): what one message costs on each
 * side, and how much of it is serialization. The cross-process numbers, beside CPython and C,
 * are in bench/rows/ipc.ts (`deno task bench:compare`).
 *
 * @module
 */
import { Pipe, Queue } from "../mod.ts";
import { deserialize, serialize } from "../src/_reduction.ts";

const SMALL = { id: 1, name: "x" };

const [a, b] = Pipe();
Deno.bench({
  name: "Connection send + recv, small object",
  group: "message",
  async fn() {
    await a.send(SMALL);
    await b.recv();
  },
});

const q = new Queue<unknown>();
Deno.bench({
  name: "Queue put + get, small object",
  group: "message",
  async fn() {
    await q.put(SMALL);
    await q.joinThread(); // into the pipe, so that this process can get it back
    await q.get();
  },
});

const bytes = serialize(SMALL);
Deno.bench({
  name: "serialize + deserialize, small object (the floor of both)",
  group: "message",
  baseline: true,
  fn() {
    deserialize(serialize(SMALL));
  },
});

Deno.bench({
  name: "deserialize only, small object",
  group: "message",
  fn() {
    deserialize(bytes);
  },
});

const MIB = new Uint8Array(1 << 20);
Deno.bench({
  name: "Connection sendBytes + recvBytesInto, 1 MiB (one process: the socket buffer's size at a time)",
  group: "bytes",
  async fn() {
    const sent = a.sendBytes(MIB);
    await b.recvBytesInto(MIB);
    await sent;
  },
});

globalThis.addEventListener("unload", () => {
  a.close();
  b.close();
  q.close();
});
