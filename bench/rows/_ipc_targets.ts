/**
 * Process targets for the IPC benchmark rows (bench/rows/ipc.ts). A child imports this module and
 * looks its target up by name, so every target is exported and the module does nothing when
 * imported. (It imports mod.ts for real, not only its types: that registers how connections and
 * queues revive in the child.)
 *
 * @module
 */
import { type Connection, EOFError } from "../../mod.ts";

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
