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
import { type Child, childEnded, childStarted, type Joinable } from "./_children.ts";
import { encodeFrame, onFrames } from "./_frames.ts";
import { importSource } from "./_import.ts";
import { type PackedError, unpackError } from "./_error_transport.ts";
import { handOver } from "./_resource.ts";
import { deserialize, serialize } from "./_reduction.ts";
import { spawnDeno } from "./_spawn.ts";
import { ProcessError } from "./errors.ts";

/** What a child process or a thread runs, as its parent tells it (plain data). */
export interface RunSpec {
  /** Export name and source text of the target, when there is one. */
  target: { name: string; source: string } | null;
  /** Export name of the `Process` or `Thread` subclass, when it is one. */
  className: string | null;
  /** One of the library's own entry points (`"pool-worker"`), instead of `run()`. */
  builtin: string | null;
  /** The module that exports the target or subclass. */
  module: string | null;
  /** `serialize()`d `{ args, fields }`, revived only once the child knows who it is. */
  body: Uint8Array;
}

/** What the parent sends the child first (plain data). */
export interface ChildHeader extends RunSpec {
  identity: number[];
  name: string;
  daemon: boolean;
  parent: { pid: number; name: string };
  trackerFd: number;
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

/**
 * The frames a child sends on its control channel: kept until someone takes the channel
 * (`channel()` of `Popen` and `ThreadWorker`), then handed to it as they come.
 */
export class Inbox {
  #onMessage: ((frame: Uint8Array) => void) | undefined;
  #early: Uint8Array[] = [];

  /** One frame from the child. */
  push(frame: Uint8Array): void {
    if (this.#onMessage) this.#onMessage(frame);
    else this.#early.push(frame);
  }

  /** From now on frames go to `onMessage`; those that came before follow in a microtask. */
  take(onMessage: (frame: Uint8Array) => void): void {
    this.#onMessage = onMessage;
    const early = this.#early.splice(0);
    if (early.length) queueMicrotask(() => early.forEach(onMessage));
  }

  /** Drops what came and what will come (the child has ended). */
  clear(): void {
    this.#onMessage = undefined;
    this.#early = [];
  }
}

// node:net costs ~15 ms to load: only a parent loads it, once it starts a child.
let net: Promise<typeof import("node:net")> | undefined;
function loadNet(): Promise<typeof import("node:net")> {
  return net ??= import("node:net");
}

/** One spawned child, seen from its parent; running until it has ended (`_children.ts`). */
export class Popen implements Child, Joinable {
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
  /** The frames that arrive after the handshake. */
  #inbox = new Inbox();
  /** How many `ref()`s are not undone yet. */
  #refs = 0;

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
    childStarted(this);
    if (header.daemon) child.unref();
    // The control socket is not destroyed here: the child's last frames (its "found the target"
    // reply above all) may still be unread in it. It closes by itself at EOF, which comes once
    // the child has ended (no other process holds the child's end: see `_child.ts`).
    this.exited = child.status.then((status) => {
      this.exitCode = status.signal ? -(signalNumber(status.signal) ?? 0) : status.code;
      childEnded(this);
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
        this.#inbox.push(frame);
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

  /** Keeps this program alive while the child runs (for someone joining a daemon child). */
  ref(): void {
    if (this.#refs++ === 0 && this.daemon) this.child.ref();
  }

  /** Undoes one {@linkcode Popen.ref}. */
  unref(): void {
    if (--this.#refs === 0 && this.daemon) this.child.unref();
  }

  /**
   * Blocks this thread until the child has ended, leaving its exit status for Deno to collect (at
   * exit: as Python at `sys.exit()`, the program ends only once its non-daemon children have).
   * A child that never got its whole header would wait for the rest forever (nothing sends it
   * now): it has run nothing, and is killed, with a message.
   */
  joinAtExit(): void {
    if (!this.told) {
      console.error(`${this.name} did not run: the program ended before its arguments were sent to it`);
      sendSignal(this.child.pid, "SIGKILL");
    }
    waitForChildExit(this.child.pid);
  }

  /** Sends SIGTERM (at exit, to a daemon child: it ends with its parent). */
  terminate(): void {
    try {
      sendSignal(this.child.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }

  /**
   * Takes over the control socket once the handshake is done: frames the child sends arrive in
   * `onMessage`.
   */
  channel(onMessage: (frame: Uint8Array) => void): ControlChannel {
    this.#inbox.take(onMessage);
    const socket = this.#socket!;
    return { send: (body) => void socket.write(encodeFrame(body)) };
  }
}

function childEntry(module: string | undefined): string {
  const child = new URL("./_child.ts", import.meta.url).href;
  const load = module ? importSource(module) : "null";
  // Escaped only where a URL needs it (not every "/"), so that `ps` shows a readable line.
  const source = `import{main}from${JSON.stringify(child)};await main(${load});`;
  return `data:application/javascript,${source.replace(/[^\x21-\x7e]|[%#?]/g, encodeURIComponent)}`;
}
