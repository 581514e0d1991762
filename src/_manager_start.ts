/**
 * Starting a manager's server process (CPython: `BaseManager.start()`): a daemon child running
 * `_manager_server.ts`'s `serve`, which says over a pipe where it listens (a TCP port may be 0)
 * or why it could not.
 *
 * @module
 */
import { Pipe } from "./pipe.ts";
import { Process } from "./process.ts";
import { EOFError, ProcessError } from "./errors.ts";
import type { ManagerAddress } from "./_manager_wire.ts";
import type { ServerReady } from "./_manager_server.ts";
import type { CustomTypeSpec } from "./_manager_types.ts";
import { listenError, removeDir, STOP_TIMEOUT_MS } from "./_manager_options.ts";

const SERVER_MODULE = new URL("./_manager_server.ts", import.meta.url);
/** How long the server may take to start listening. */
const START_TIMEOUT_MS = 30_000;

/**
 * Starts the server listening on `address`. Resolves with its process and the address it is
 * bound to; on failure nothing is left running and `tempDir` (the socket's directory) is removed.
 */
export async function startServer(
  address: ManagerAddress,
  authkey: Uint8Array,
  types: Record<string, CustomTypeSpec>,
  tempDir: string | undefined,
): Promise<{ process: Process; address: ManagerAddress }> {
  const [reader, writer] = Pipe<ServerReady>({ duplex: false });
  const { serve } = await import("./_manager_server.ts");
  const process = new Process({
    target: serve,
    args: [writer, address, authkey, undefined, types],
    module: SERVER_MODULE,
    daemon: true,
    name: "Manager",
  });
  try {
    await process.start();
    writer.close(); // the server has its own copy: its exit means EOF here
    if (!(await reader.poll(START_TIMEOUT_MS))) {
      throw new ProcessError(`The manager's server did not start listening within ${START_TIMEOUT_MS} ms`);
    }
    let ready: ServerReady;
    try {
      ready = await reader.recv();
    } catch (e) {
      if (!(e instanceof EOFError)) throw e;
      await process.join(STOP_TIMEOUT_MS);
      throw new ProcessError(
        `The manager's server exited (code ${process.exitCode}) before it listened; its stderr says why`,
      );
    }
    if (!ready.ok) throw listenError(ready);
    return { process, address: ready.address };
  } catch (e) {
    if (process.isAlive()) process.kill();
    await process.join(STOP_TIMEOUT_MS);
    if (tempDir) removeDir(tempDir);
    throw e;
  } finally {
    writer.close();
    reader.close();
  }
}
