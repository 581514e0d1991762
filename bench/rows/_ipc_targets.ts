/**
 * Process targets for the IPC benchmark rows (bench/rows/ipc.ts). A child imports this module and
 * looks its target up by name, so every target is exported and the module does nothing when
 * imported. (It imports mod.ts for real, not only its types: that registers how connections and
 * queues revive in the child.)
 *
 * @module
 */
import { type Connection, EOFError, type Queue } from "../../mod.ts";

/** Echoes every message back until the end of the stream. */
export async function echo(conn: Connection): Promise<void> {
  try {
    for (;;) await conn.send(await conn.recv());
  } catch (e) {
    if (!(e instanceof EOFError)) throw e;
  } finally {
    conn.close();
  }
}

/** Peak resident memory of this process in MB (Linux: VmHWM), or its current RSS elsewhere. */
export function peakRssMb(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = Number(/^VmHWM:\s*(\d+)\s*kB/m.exec(status)?.[1]);
    if (Number.isFinite(kb)) return kb / 1024;
  } catch {
    // not Linux
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** Waits for a go, then puts `count` small objects and a final `null`. */
export async function produceSmall(q: Queue<unknown>, go: Connection, count: number): Promise<void> {
  await go.recv();
  go.close();
  for (let i = 0; i < count; i++) await q.put({ i, s: "hello" });
  await q.put(null);
  await q.joinThread();
}

/** Waits for a go, then sends `count` messages of `size` bytes. */
export async function sendBig(conn: Connection, count: number, size: number): Promise<void> {
  const buf = new Uint8Array(size).fill(1);
  await conn.recv();
  for (let i = 0; i < count; i++) await conn.sendBytes(buf);
  await conn.recv(); // the reader's "done"
  conn.close();
}

/** Puts `count` arrays of `size` bytes, then its own peak RSS in MB. */
export async function streamBig(q: Queue<unknown>, count: number, size: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const chunk = new Uint8Array(size);
    chunk[0] = i & 0xff;
    await q.put(chunk);
  }
  await q.put(peakRssMb());
  await q.joinThread();
}
