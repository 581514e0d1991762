/**
 * The parent side of one child process (CPython: `popen_spawn_posix.py`): spawning it, telling
 * it who it is, hearing whether it found its target, and its exit status.
 *
 * The child's main module is a two-line data: URL: it imports `_child.ts`, then the target's
 * module through a literal `import()` (`importSource()` in `_import.ts`: statically analyzable,
 * so the child needs no read permission for it). Parent and child share a Unix socket pair, the control socket:
 *
 * - parent → child: one frame with who the child is and what to run ({@linkcode ChildHeader});
 * - child → parent: one frame saying whether the target was found (the handshake), then, for the
 *   library's own protocols (the Pool's), frames through {@linkcode Popen.channel};
 * - and, for as long as both live, the child's end reads EOF if the parent dies.
 *
 * The parent's end is a `node:net` Socket once the header is written: it closes by itself at EOF,
 * which comes once the child has ended (no other process holds the child's end: `_child.ts`
 * sets close-on-exec on everything it inherited).
 *
 * @module
 */
import type { Socket } from "node:net";
import {
  close,
  kill as sendSignal,
  setNonBlocking,
  signalNumber,
  socketpair,
  waitForChildExit,
  write,
} from "../native/mod.ts";
import { atExit, ExitPhase } from "./_exit.ts";
import { encodeFrame, onFrames } from "./_frames.ts";
import { importSource } from "./_import.ts";
import { type PackedError, unpackError } from "./_error_transport.ts";
import { handOver } from "./_resource.ts";
import { deserialize, serialize } from "./_reduction.ts";
import { spawnDeno } from "./_spawn.ts";
import { ProcessError } from "./errors.ts";

/** What the parent sends the child first (plain data). */
export interface ChildHeader {
  identity: number[];
  name: string;
  daemon: boolean;
  parent: { pid: number; name: string };
  trackerFd: number;
  /** Export name and source text of the target, when there is one. */
  target: { name: string; source: string } | null;
  /** Export name of the Process subclass, when it is one. */
  className: string | null;
  /** One of the library's own child entry points (see `_child.ts`), instead of `run()`. */
  builtin: string | null;
  module: string | null;
  /** `serialize()`d `{ args, fields }`, revived only once the child knows who it is. */
  body: Uint8Array;
}

/** What a child process is built from on its side (see `_child.ts`). */
export interface ChildInit {
  header: ChildHeader;
  target: ((...args: unknown[]) => unknown) | undefined;
  args: unknown[];
}

/** The control socket of a started child, for the library's own protocols (the Pool's). */
export interface ControlChannel {
  send(body: Uint8Array): void;
}

// node:net costs ~15 ms to load: only a parent loads it, once it starts a child.
let net: Promise<typeof import("node:net")> | undefined;
function loadNet(): Promise<typeof import("node:net")> {
  return net ??= import("node:net");
}

/** The children this process started that have not ended yet. */
const running = new Set<Popen>();
let exitHookInstalled = false;

/** The owners (the `Process` objects) of the children that have not ended yet. */
export function runningOwners<T>(): T[] {
  return [...running].map((p) => p.owner as T);
}

/** One spawned child, seen from its parent. */
export class Popen {
  /** The object this child belongs to (its `Process`), for `activeChildren()`. */
  readonly owner: unknown;
  readonly child: Deno.ChildProcess;
  /** The name it was started with. */
  readonly name: string;
  /** Whether it is a daemon: terminated when this program exits, not waited for. */
  readonly daemon: boolean;
  /** null until the child ended; then its exit code, or -N when signal N ended it. */
  exitCode: number | null = null;
  /** Settles when the child has ended, without keeping this program alive. */
  readonly exited: Promise<void>;
  /** Whether the child has received its whole header (until then it cannot run anything). */
  told = false;
  /** Settles once the child has found its target (or rejects with why it could not). */
  readonly started: Promise<void>;
  #socket: Socket | undefined;
  #onMessage: ((frame: Uint8Array) => void) | undefined;
  /** Frames that arrived after the handshake, before anyone took the channel. */
  #early: Uint8Array[] = [];

  /**
   * Spawns the child at once and sends it `header`; it counts as running until it has ended.
   *
   * @param entryModule The module the child imports to find its target or class, if any.
   * @param fds fds of the args, which the child inherits under the same numbers.
   */
  constructor(owner: unknown, header: ChildHeader, entryModule: string | undefined, fds: number[]) {
    this.owner = owner;
    this.name = header.name;
    this.daemon = header.daemon;
    const [mine, theirs] = socketpair();
    // The names in the args (a lock, a queue) stay until the child has opened them (`_resource.ts`).
    const handedOver = handOver();
    let child: Deno.ChildProcess;
    try {
      child = spawnDeno({
        // The name last, for `ps` and /proc/<pid>/cmdline to say which process this is.
        args: [childEntry(entryModule), String(theirs), header.name],
        fds: [theirs, header.trackerFd, ...fds],
      });
    } catch (e) {
      close(mine);
      handedOver();
      throw e;
    } finally {
      close(theirs);
    }
    this.child = child;
    running.add(this);
    installExitHook();
    if (header.daemon) child.unref();
    // The control socket is not destroyed here: the child's last frames (its "found the target"
    // reply above all) may still be unread in it. It closes by itself at EOF, which comes once
    // the child has ended (no other process holds the child's end: see `_child.ts`).
    this.exited = child.status.then((status) => {
      this.exitCode = status.signal ? -(signalNumber(status.signal) ?? 0) : status.code;
      running.delete(this);
    });
    // The header goes out now, as far as the socket's buffer takes it (all of it, unless the args
    // are large): a program that calls Deno.exit() right after start() still runs the child, as
    // Python's does. The rest, if any, follows through the event loop.
    const frame = encodeFrame(serialize(header)) as Uint8Array<ArrayBuffer>;
    setNonBlocking(mine, true);
    const sent = Math.max(0, write(mine, frame));
    this.told = sent === frame.length;
    // (`finally`: a new promise, so a failure nobody handles is still reported by the caller.)
    this.started = this.#handshake(mine, frame.subarray(sent)).finally(handedOver);
  }

  /** `rest`: what the child has still to receive of its header. */
  async #handshake(fd: number, rest: Uint8Array): Promise<void> {
    const { Socket } = await loadNet();
    const socket = new Socket({ fd, readable: true, writable: true });
    this.#socket = socket;
    socket.on("error", () => {}); // a child that dies resets the socket; its exit code tells why
    let handshake: { resolve(): void; reject(e: unknown): void } | undefined;
    const done = new Promise<void>((resolve, reject) => handshake = { resolve, reject });
    onFrames(socket, (frame) => {
      if (!handshake) {
        if (this.#onMessage) this.#onMessage(frame);
        else this.#early.push(frame);
        return;
      }
      const reply = deserialize(frame) as { ok: true } | { ok: false; error: PackedError };
      if (reply.ok) handshake.resolve();
      else handshake.reject(unpackError(reply.error));
      handshake = undefined;
    });
    // A child that ended without answering: decide only once its socket is read to the end (the
    // answer may be there, behind the exit status, which often arrives first) and its exit code
    // is known.
    const drained = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    Promise.all([drained, this.exited]).then(() =>
      handshake?.reject(
        new ProcessError(
          `${this.name} exited with code ${this.exitCode} before it could run its target (its stderr says why)`,
        ),
      )
    );
    if (rest.length > 0) socket.write(rest, () => void (this.told = true));
    // Ref'd until the child answers, so that awaiting start() keeps this program running even
    // for a daemon child; after that only a non-daemon child does.
    try {
      await done;
    } finally {
      socket.unref();
    }
  }

  /**
   * Takes over the control socket once the handshake is done: frames the child sends arrive in
   * `onMessage`.
   */
  channel(onMessage: (frame: Uint8Array) => void): ControlChannel {
    this.#onMessage = onMessage;
    const early = this.#early.splice(0);
    if (early.length) queueMicrotask(() => early.forEach(onMessage));
    const socket = this.#socket!;
    return { send: (body) => void socket.write(encodeFrame(body)) };
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // As Python at sys.exit() or after an uncaught exception: the program ends only once its
  // non-daemon children have. At a normal end there are none left (each kept the event loop
  // alive); after Deno.exit() or an uncaught error they may still run. The hook is synchronous,
  // so it blocks the thread, leaving each exit status for Deno to collect. (Signals that end this
  // process without running code, SIGKILL or an unhandled SIGTERM/SIGINT, end the children too:
  // each asked for SIGKILL at its parent's death.)
  atExit(ExitPhase.joinChildren, () => {
    for (const p of running) {
      if (p.daemon) continue;
      if (!p.told) {
        // It still waits for the rest of its header, which nothing will send now: it has run
        // nothing, and would wait forever.
        console.error(`${p.name} did not run: the program ended before its arguments were sent to it`);
        sendSignal(p.child.pid, "SIGKILL");
      }
      waitForChildExit(p.child.pid);
    }
  }, { needed: () => [...running].some((p) => !p.daemon) });
  // Daemon children end with their parent (non-daemon ones kept the parent alive until now).
  atExit(ExitPhase.daemons, () => {
    for (const p of running) {
      if (p.daemon) {
        try {
          sendSignal(p.child.pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
    }
  });
}

function childEntry(module: string | undefined): string {
  const child = new URL("./_child.ts", import.meta.url).href;
  const load = module ? importSource(module) : "null";
  // Escaped only where a URL needs it (not every "/"), so that `ps` shows a readable line.
  const source = `import{main}from${JSON.stringify(child)};await main(${load});`;
  return `data:application/javascript,${source.replace(/[^\x21-\x7e]|[%#?]/g, encodeURIComponent)}`;
}
