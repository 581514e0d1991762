/**
 * A child echoes whatever comes down a duplex Pipe, upper-casing strings, until the parent
 * closes its end. Python's classic:
 *
 *     def child(conn):
 *         while True: conn.send(conn.recv())
 *
 * Run: deno task example:pipe_echo
 */
import { type Connection, EOFError, Pipe, Process } from "@mp/multiprocessing";

export async function echo(conn: Connection<unknown>): Promise<void> {
  try {
    for (;;) {
      const msg = await conn.recv();
      await conn.send(typeof msg === "string" ? msg.toUpperCase() : msg);
    }
  } catch (e) {
    if (!(e instanceof EOFError)) throw e; // the parent closed its end: done
  } finally {
    conn.close();
  }
}

if (import.meta.main) {
  const [parentEnd, childEnd] = Pipe();
  const p = new Process({ target: echo, args: [childEnd] });
  await p.start();
  childEnd.close(); // the child has its own copy now
  for (const msg of ["hello", [1, 2, 3], { nested: new Map([["k", "v"]]) }]) {
    await parentEnd.send(msg);
    console.log("sent", msg, "got back", await parentEnd.recv());
  }
  parentEnd.close();
  await p.join();
  console.log(`child exited with ${p.exitCode}`);
}
