/**
 * The resource tracker process (see `_tracker.ts`). Reads "+kind name" / "-kind name" lines from
 * the fd given as its first argument until EOF, then unlinks every name still registered.
 *
 * A name is counted: "+" adds one, "-" takes one away (never below none). A name is tracked
 * before it is made (`makeTracked` in `_resource.ts`); when making it fails because another
 * realm of this tree holds the same name already, its "-" then takes back only its own "+".
 *
 * @module
 */
import { newSession, read } from "../native/mod.ts";
import { type ResourceKind, unlinkResource } from "./_tracker.ts";

// The tracker must outlive the processes it cleans up after. Signals sent to the program's whole
// process group (Ctrl-C, Ctrl-\, a supervisor's `kill -9 -PGID`) would end it with the rest:
// first of all, leave that group for a session of its own (a group signal in the few ms before
// this line still reaches it). The listeners cover signals sent to the tracker by pid; a SIGKILL
// of the tracker itself leaves its names in /dev/shm.
newSession();
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const) Deno.addSignalListener(sig, () => {});

const fd = Number(Deno.args[0]);
const live = new Map<string, { kind: ResourceKind; name: string; count: number }>();
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
    const key = line.slice(1); // kind and name: a semaphore and a block may share a name
    const entry = live.get(key);
    if (line[0] === "+") {
      if (entry) entry.count++;
      else live.set(key, { kind, name, count: 1 });
    } else if (entry && --entry.count <= 0) live.delete(key);
  }
}
for (const { kind, name } of live.values()) {
  try {
    unlinkResource(kind, name);
  } catch (e) {
    console.error(`multiprocessing resource tracker: cannot unlink ${kind} ${name}: ${e}`);
  }
}
Deno.exit(0);
