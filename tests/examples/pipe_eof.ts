/**
 * Two children write into one one-way Pipe; the parent reads until `recv()` throws EOFError,
 * which happens only once every copy of the write end is closed: the parent's (closed right
 * after starting the children) and each child's (closed when it is done, or when it exits).
 *
 * Run: deno task example:pipe_eof
 */
import { type Connection, EOFError, Pipe, Process } from "@mp/multiprocessing";

export async function writer(conn: Connection<string>, id: number): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await conn.send(`line ${i} from writer ${id}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  conn.close();
}

if (import.meta.main) {
  const [reader, writeEnd] = Pipe<string>({ duplex: false });
  const writers = [0, 1].map((id) => new Process({ target: writer, args: [writeEnd, id] }));
  for (const p of writers) await p.start();
  writeEnd.close(); // without this, recv() would wait forever: this process would hold a writer
  let lines = 0;
  try {
    for (;;) {
      console.log(await reader.recv());
      lines++;
    }
  } catch (e) {
    if (!(e instanceof EOFError)) throw e;
    console.log(`EOFError after ${lines} lines: every write end is closed`);
  }
  reader.close();
  for (const p of writers) await p.join();
  if (lines !== 6) Deno.exit(1);
}
