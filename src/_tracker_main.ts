/**
 * The resource tracker process (see `_tracker.ts`). Reads "+kind name" / "-kind name" lines from
 * the fd given as its first argument until EOF, then unlinks every name still registered.
 *
 * @module
 */
import { read } from "../native/mod.ts";
import { type ResourceKind, unlinkResource } from "./_tracker.ts";

// Ctrl-C reaches the whole foreground process group; the tracker must outlive the others to clean up.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) Deno.addSignalListener(sig, () => {});

const fd = Number(Deno.args[0]);
const live = new Map<string, ResourceKind>();
const decoder = new TextDecoder();
const buf = new Uint8Array(65536);
let pending = "";
for (;;) {
  // Blocking the thread is right here: this process has nothing else to do.
  const n = read(fd, buf);
  if (n <= 0) break;
  pending += decoder.decode(buf.subarray(0, n), { stream: true });
  const lines = pending.split("\n");
  pending = lines.pop()!;
  for (const line of lines) {
    const kind = line.slice(1, 4) as ResourceKind;
    const name = line.slice(5);
    if (line[0] === "+") live.set(name, kind);
    else live.delete(name);
  }
}
for (const [name, kind] of live) {
  try {
    unlinkResource(kind, name);
  } catch (e) {
    console.error(`multiprocessing resource tracker: cannot unlink ${kind} ${name}: ${e}`);
  }
}
Deno.exit(0);
