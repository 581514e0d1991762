/**
 * The manager's server process (CPython: `managers.py`'s `Server`).
 *
 * It listens on a Unix socket or a TCP port, authenticates each connection (HMAC challenge both
 * ways), and keeps one table of shared objects keyed by id, counted by reference
 * (`_manager_table.ts`). A request names an object and a method; only the methods listed for
 * that object's type can be called. Each request runs on its own (a queue `get()` that waits
 * does not hold up the others), and its reply carries the request's id.
 *
 * Everything is served here, synchronization objects included (`_manager_sync.ts`): a client on
 * another machine uses them over its connection, and what a connection holds is given back when
 * it ends.
 *
 * @module
 */
import type { Connection } from "./connection.ts";
import { deserialize, serialize } from "./_reduction.ts";
import {
  answerChallenge,
  CANCELLED,
  decodeRequest,
  deliverChallenge,
  encodeReply,
  ERROR,
  type ManagerAddress,
  NATIVE_ERROR,
  OK,
  PENDING,
} from "./_manager_wire.ts";
import { listenSocket, socketPort } from "../native/mod.ts";
import { addressKey } from "./_manager_options.ts";
import { ServerLoop } from "./_manager_listen.ts";
import { socketAddress } from "./_manager_socket.ts";
import { FdChannel } from "./_fd_channel.ts";
import { AttributeError, native, nativeErrors, repr } from "./_manager_objects.ts";
import { packError } from "./_error_transport.ts";
import type { CallContext } from "./_manager_sync.ts";
import { type CustomTypeSpec, loadTypes, type TypeInfo, TYPES } from "./_manager_types.ts";
import { type Described, ObjectTable, type Session } from "./_manager_table.ts";
export type { CustomTypeSpec } from "./_manager_types.ts";
// Proxies stored inside shared objects revive here (as their classes: the two modules register
// them); the server counts them as references.
import { setLocalServer } from "./_manager_refs.ts";
import "./manager_proxies.ts";
import "./manager_sync.ts";

const NOTHING = new Uint8Array(0);

/** The reply of a call that threw `e`. */
function errorReply(id: number, e: unknown, signal: AbortSignal): Uint8Array<ArrayBuffer> {
  const err = e instanceof Error ? e : new Error(String(e));
  const kind = signal.aborted ? CANCELLED : nativeErrors.has(err) ? NATIVE_ERROR : ERROR;
  return encodeReply(id, kind, serialize(packError(err)));
}

/** What the server tells the process that started it, once (the address: a TCP port may be 0). */
export type ServerReady = { ok: true; address: ManagerAddress } | {
  ok: false;
  name: string;
  message: string;
};

/** How the server guards itself against connections that do not authenticate. */
export interface ServerLimits {
  /** A connection that has not proven it knows the authkey after this many ms is closed. */
  handshakeMs: number;
  /** At most this many connections may be authenticating at once; more are closed at once. */
  maxUnauthenticated: number;
}

/** The limits a manager's server runs with. */
export const SERVER_LIMITS: ServerLimits = { handshakeMs: 10_000, maxUnauthenticated: 64 };

/**
 * The server's main: runs until a client asks it to shut down, or SIGTERM/SIGINT. Nothing a
 * client does, authenticated or not, ends it: a failed write to a client that went away is that
 * client's loss, an accept() that fails (out of fds) is retried after a pause, a connection that
 * does not authenticate within `limits.handshakeMs` is closed, and at most
 * `limits.maxUnauthenticated` may try at once.
 */
export async function serve(
  ready: Connection<ServerReady>,
  address: ManagerAddress,
  authkey: Uint8Array,
  limits: ServerLimits = SERVER_LIMITS,
  customTypes: Record<string, CustomTypeSpec> = {},
): Promise<void> {
  // The last line of defence: a rejection nobody handled is a bug in this file, and it must cost
  // one request, not every dict, list and queue of every client.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    console.error("multiprocessing manager: unhandled rejection (the server keeps running):", e.reason);
  });
  let listener: number;
  let types: Record<string, TypeInfo>;
  try {
    types = { ...TYPES, ...await loadTypes(customTypes) };
    listener = listenSocket(await socketAddress(address));
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    await ready.send({ ok: false, name: err.name, message: err.message });
    ready.close();
    return;
  }
  const bound: ManagerAddress = "path" in address
    ? address
    : { hostname: address.hostname, port: socketPort(listener) };
  const where = addressKey(bound);

  const table = new ObjectTable();
  // Proxies to this manager revived here (nested in stored values) hold their objects too.
  setLocalServer(bound, authkey, { incref: (id) => table.incref(id), decref: (id) => table.decref(id) });
  const channels = new Set<FdChannel>();
  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((r) => stopped = r);

  const stop = () => {
    if (stopping) return;
    stopping = true;
    loop.stop();
    for (const ch of channels) ch.close();
    if ("path" in bound) {
      try {
        Deno.removeSync(bound.path);
      } catch { /* gone */ }
    }
    for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.removeSignalListener(sig, stop);
    stopped();
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, stop);

  const find = (id: unknown) => typeof id === "number" ? table.get(id)?.impl : undefined;

  const manage = (method: string, args: unknown[], session: Session): unknown => {
    switch (method) {
      case "create": {
        const [type, ...rest] = args as [string, ...unknown[]];
        const t = Object.hasOwn(types, type) ? types[type] : undefined;
        if (!t) {
          throw native(
            new TypeError(
              `The manager cannot make a ${
                repr(type)
              }: no such type (custom types are given to Manager.start())`,
            ),
          );
        }
        const impl = t.make(rest, find);
        return table.add(session, {
          type,
          impl,
          methods: t.methods,
          extra: t.extra?.(impl, rest),
          holds: t.holds?.(rest),
        });
      }
      case "incref":
        for (const id of args as number[]) table.hold(session, id);
        return null;
      case "decref":
        for (const id of args as number[]) table.unhold(session, id);
        return null;
      case "publish": {
        const [name, id] = args as [unknown, number];
        if (typeof name !== "string" || name === "") {
          throw native(new TypeError(`Invalid name: ${repr(name)}: expected a non-empty string`));
        }
        table.publish(name, id);
        return null;
      }
      case "unpublish":
        return table.unpublish(String(args[0]));
      case "lookup": {
        const found: Described | undefined = table.lookup(session, args[0] as string);
        if (!found) {
          throw native(
            new Deno.errors.NotFound(`The manager at ${where} has no object named ${repr(args[0])}`),
          );
        }
        return found;
      }
      case "names":
        return table.names();
      case "count":
        return table.size;
      case "shutdown":
        setTimeout(stop, 0); // after the reply has gone out
        return null;
    }
    throw new AttributeError(`The manager has no method ${repr(method)}`);
  };

  const call = (objectId: number, method: string, args: unknown[], session: Session, signal: AbortSignal) => {
    if (objectId === 0) return manage(method, args, session);
    const entry = table.get(objectId);
    if (!entry) {
      throw new ReferenceError(
        `The manager at ${where} has no object ${objectId} (freed: every proxy to it was closed)`,
      );
    }
    if (!entry.methods.has(method)) {
      throw new AttributeError(`A ${entry.type} proxy has no method ${repr(method)}`);
    }
    const t = types[entry.type];
    if (t.ctx) args = [...args, { owner: session, signal } satisfies CallContext];
    else if (t.waits?.has(method)) args = [...args, signal];
    return (entry.impl as Record<string, (...a: unknown[]) => unknown>)[method](...args);
  };

  let unauthenticated = 0;
  const serveConnection = async (fd: number) => {
    // Buffered reads, waits through the one poll loop.
    const ch = new FdChannel(fd, { buffered: true, ready: loop.ready, name: "The client's connection" });
    if (unauthenticated >= limits.maxUnauthenticated || stopping) {
      ch.close();
      return;
    }
    unauthenticated++;
    loop.busy++;
    channels.add(ch);
    const session: Session = { refs: new Set(), holding: new Set(), gone: false };
    const inflight = new Map<number, AbortController>();
    // end(), not a bare close(): the loop forgets the fd before it closes, so a client accepted
    // meanwhile under the same fd number keeps its waits.
    const tooSlow = setTimeout(() => end(), limits.handshakeMs);
    const end = () => {
      if (session.gone) return;
      session.gone = true;
      for (const ctl of inflight.values()) ctl.abort();
      for (const h of [...session.holding]) h.drop(session);
      table.drop(session);
      channels.delete(ch);
      loop.forget(fd);
      ch.close();
    };
    let proven = false;
    try {
      await deliverChallenge(ch, authkey, "the client");
      // It knows the authkey: no longer one of the unauthenticated (before it is told so).
      proven = true;
      unauthenticated--;
      await answerChallenge(ch, authkey, "the client");
    } catch {
      // A client that failed authentication or went away: nothing to do but forget it.
      return end();
    } finally {
      clearTimeout(tooSlow);
      if (!proven) unauthenticated--;
      loop.busy--;
    }
    const reply = (frame: Uint8Array<ArrayBuffer>) => {
      try {
        ch.send(frame);
      } catch {
        end(); // the client went away
      }
    };
    // Every request that has come, answered at once (a call that waits: when it is done).
    const handle = (frame: Uint8Array) => {
      const { id, objectId, method, args: argBytes } = decodeRequest(frame);
      if (method === "cancel" && objectId === 0) {
        inflight.get((deserialize(argBytes) as number[])[0])?.abort();
        return;
      }
      const ctl = new AbortController();
      // Revived now: the bytes are valid only until the next read.
      let result: unknown;
      try {
        result = call(objectId, method, deserialize(argBytes) as unknown[], session, ctl.signal);
      } catch (e) {
        return reply(errorReply(id, e, ctl.signal));
      }
      if (!(result instanceof Promise)) {
        // Answered in the same tick: most calls.
        let frame: Uint8Array<ArrayBuffer>;
        try {
          frame = encodeReply(id, OK, serialize(result));
        } catch (e) {
          frame = errorReply(id, e, ctl.signal);
        }
        return reply(frame);
      }
      reply(encodeReply(id, PENDING, NOTHING));
      inflight.set(id, ctl);
      loop.busy++;
      result.then((value) => encodeReply(id, OK, serialize(value))).catch((e) =>
        errorReply(id, e, ctl.signal)
      )
        .then((frame) => {
          loop.busy--;
          inflight.delete(id);
          if (!session.gone) reply(frame);
        });
    };
    const onReadable = () => {
      try {
        for (;;) {
          const got = ch.fill();
          if (got === null) return end();
          let frame;
          while (!session.gone && (frame = ch.takeFrame()) !== null) handle(frame);
          if (!got || ch.drained || session.gone) return;
        }
      } catch {
        end(); // the connection broke
      }
    };
    loop.serve(fd, onReadable);
    onReadable(); // what came with the handshake's last frame
  };

  const loop = new ServerLoop(listener, (fd) => void serveConnection(fd));
  loop.run().catch((e) => {
    console.error("multiprocessing manager: the server's loop failed:", e);
    stop();
  });

  await ready.send({ ok: true, address: bound });
  ready.close();
  await done;
}
