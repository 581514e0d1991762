import assert from "node:assert/strict";
import {
  AuthenticationError,
  BrokenBarrierError,
  type DictProxy,
  EOFError,
  EventProxy,
  JoinableQueueProxy,
  ListProxy,
  LockProxy,
  Manager,
  ObjectProxy,
  Process,
  QueueEmptyError,
  QueueFullError,
  RemoteError,
} from "../mod.ts";
import { activeChildren, Pipe } from "../mod.ts";
import * as fx from "./fixtures/manager_fixtures.ts";
import {
  cleanup,
  isRunning,
  LineReader,
  runProgram,
  shmFilesOf,
  spawnDeno,
  SPAWNS,
  waitUntil,
} from "./fixtures/helpers.ts";
import { serve, SERVER_LIMITS, type ServerLimits, type ServerReady } from "../src/_manager_server.ts";
import type { FdChannel } from "../src/_fd_channel.ts";
import { connectChannel } from "../src/_manager_socket.ts";
import { objectCount } from "../src/manager.ts";
import { raceTimeout, TIMED_OUT } from "../src/_wait.ts";
import { close, connectSocket, listenSocket, socketPort } from "../native/mod.ts";

const module = new URL("./fixtures/manager_fixtures.ts", import.meta.url);

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The pid of the child started since `before` was taken: the manager's server (not the tracker). */
function serverPid(before: Set<number>): number {
  const isTracker = (pid: number) => {
    try {
      return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("_tracker_main.ts");
    } catch {
      return false;
    }
  };
  const pid = [...childPids()].find((pid) => !before.has(pid) && isRunning(pid) && !isTracker(pid));
  assert.ok(pid !== undefined, "the manager's server runs");
  return pid;
}
/** The pids of this process's children. */
function childPids(): Set<number> {
  // This test file's own children: under --parallel, other files' children share this pid.
  return new Set(activeChildren().map((p) => p.pid!));
}

Deno.test({
  name:
    "A child process changes a dict and a list through proxies passed as arguments, nested proxies included",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const d = await manager.dict<unknown>({ "from parent": "hello" });
    const l = await manager.list<number>([10]);
    const nested = await manager.list<string>();
    await d.set("nested", nested);
    const back = await d.get("nested");
    assert.ok(back instanceof ListProxy, "a proxy stored in a dict comes back as a proxy");
    const p = new Process({ target: fx.usesDictAndList, args: [d, l, 3], module });
    try {
      await p.start();
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
      assert.equal(await d.get("child 3"), 9);
      assert.equal(await d.get("child sum"), 13);
      assert.deepEqual(await l.toArray(), [10, 3]);
      assert.deepEqual(await nested.toArray(), ["child 3"]);
    } finally {
      await cleanup(p);
    }
  },
});

Deno.test({
  name:
    "Manager.connect() with a wrong authkey rejects with AuthenticationError; with the right one it shares the objects",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start({ authkey: new TextEncoder().encode("secret") });
    const address = manager.address as { path: string };
    await assert.rejects(
      Manager.connect({ address, authkey: new TextEncoder().encode("wrong") }),
      AuthenticationError,
    );
    const ns = await manager.namespace({ x: 1 });
    // A child that was given only the address and the key (and the namespace to report in).
    const p = new Process({ target: fx.connectsAndWrites, args: [address, manager.authkey, ns], module });
    try {
      await p.start();
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
      assert.equal(await ns.get("child pid"), p.pid);
      const made = await ns.get<DictProxy>("child dict");
      assert.deepEqual(await made.toObject(), { made: "by child" });
    } finally {
      await cleanup(p);
    }
  },
});

Deno.test({
  name: "An exception in the server reaches the caller as RemoteError with the remote name and message",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const d = await manager.dict();
    const l = await manager.list<unknown>([1, "a"]);
    const ns = await manager.namespace();
    const expect = async (p: Promise<unknown>, name: string, message: RegExp) => {
      const e = await p.then(() => null, (e) => e);
      assert.ok(e instanceof RemoteError, `expected a RemoteError, got ${e}`);
      assert.equal(e.remoteName, name);
      assert.match(e.message, message);
    };
    await expect(d.pop("missing"), "KeyError", /^KeyError: Cannot pop "missing": no such key$/);
    await expect(l.get(5), "IndexError", /index 5: the list has 2 items/);
    await expect(l.remove("zz"), "ValueError", /not in the list/);
    await expect(
      l.sort(),
      "TypeError",
      /^TypeError: Cannot compare a (number with a string|string with a number)/,
    );
    await expect(ns.get("nope"), "AttributeError", /no attribute "nope"/);
    assert.deepEqual(await l.toArray(), [1, "a"], "a failed sort changes nothing");
  },
});

Deno.test({
  name: "Dict, list, namespace and value proxies behave as their Python counterparts",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const d = await manager.dict<number, unknown>([["a", 1], [2, 2]]);
    await d.set([1, 2], 12); // a structured key matches an equal one
    assert.equal(await d.get([1, 2]), 12);
    assert.equal(await d.get("zz"), undefined);
    assert.equal(await d.get("zz", 0), 0);
    assert.equal(await d.has(2), true);
    assert.equal(await d.size(), 3);
    assert.deepEqual(await d.keys(), ["a", 2, [1, 2]]);
    assert.equal(await d.setdefault("b", 5), 5);
    assert.equal(await d.setdefault("b", 6), 5);
    assert.equal(await d.pop("b"), 5);
    assert.equal(await d.pop("b", -1), -1);
    assert.equal(await d.delete("a"), true);
    assert.equal(await d.delete("a"), false);
    await d.update({ x: 7 });
    await d.update(new Map([["y", 8]]));
    assert.deepEqual(await d.entries(), [[2, 2], [[1, 2], 12], ["x", 7], ["y", 8]]);
    assert.deepEqual(await d.toObject(), { 2: 2, "1,2": 12, x: 7, y: 8 });
    await d.clear();
    assert.equal(await d.size(), 0);

    const l = await manager.list([3, 1, 2]);
    await l.append(5);
    await l.extend([4, 1]);
    await l.insert(0, 0);
    assert.deepEqual(await l.toArray(), [0, 3, 1, 2, 5, 4, 1]);
    assert.equal(await l.get(-1), 1);
    await l.set(-1, 6);
    assert.equal(await l.pop(), 6);
    assert.equal(await l.pop(0), 0);
    assert.equal(await l.count(1), 1);
    assert.equal(await l.index(2), 2);
    await l.remove(5);
    assert.deepEqual(await l.slice(1, 3), [1, 2]);
    await l.sort({ reverse: true });
    assert.deepEqual(await l.toArray(), [4, 3, 2, 1]);
    await l.reverse();
    assert.equal(await l.length(), 4);
    assert.deepEqual(await l.toArray(), [1, 2, 3, 4]);
    await l.clear();
    assert.deepEqual(await l.toArray(), []);

    const ns = await manager.namespace({ a: 1 });
    await ns.set("b", new Map([["k", 2n]]));
    assert.deepEqual(await ns.toObject(), { a: 1, b: new Map([["k", 2n]]) });
    await ns.delete("a");
    assert.deepEqual(Object.keys(await ns.toObject()), ["b"]);

    const v = await manager.value({ n: 1 });
    assert.deepEqual(await v.get(), { n: 1 });
    await v.set({ n: 2 });
    assert.deepEqual(await v.get(), { n: 2 });

    // A value that cannot travel throws from the call itself, before anything is sent.
    assert.throws(() => v.set((() => 1) as never), (e: Error) => e.name === "DataCloneError");
  },
});

Deno.test({
  name:
    "Manager queues: a child works through a joinable queue; timeouts, full queues and aborts give the native errors",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const tasks = await manager.joinableQueue<number | null>();
    const results = await manager.joinableQueue<number>();
    assert.ok(tasks instanceof JoinableQueueProxy);
    const p = new Process({ target: fx.doublesFromQueue, args: [tasks, results], module });
    try {
      await p.start();
      for (const x of [1, 2, 3, null]) await tasks.put(x);
      await tasks.join();
      assert.equal(await tasks.qsize(), 0);
      const got = [];
      for (let i = 0; i < 3; i++) got.push(await results.get({ timeout: 10_000 }));
      assert.deepEqual(got, [2, 4, 6]);
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
    } finally {
      await cleanup(p);
    }
    await assert.rejects(results.get({ timeout: 30 }), QueueEmptyError);
    await assert.rejects(results.getNowait(), QueueEmptyError);
    for (let i = 0; i < 3; i++) await results.taskDone();
    await assert.rejects(results.taskDone(), RangeError);

    const small = await manager.queue<string>(1);
    await small.putNowait("a");
    assert.equal(await small.full(), true);
    await assert.rejects(small.put("b", { block: false }), QueueFullError);
    await assert.rejects(small.put("b", { timeout: 30 }), QueueFullError);
    // An aborted wait rejects with the reason and takes nothing.
    const ctl = new AbortController();
    const empty = await manager.queue<string>();
    const waiting = empty.get({ signal: ctl.signal });
    setTimeout(() => ctl.abort(new Error("no longer needed")), 30);
    await assert.rejects(waiting, { message: "no longer needed" });
    await empty.put("later");
    assert.equal(await empty.get({ timeout: 10_000 }), "later");
    assert.equal(await small.get(), "a");
    small.close();
    assert.throws(() => small.put("c"), Deno.errors.BadResource);
  },
});

Deno.test({
  name:
    "A lock and an event made by a manager are shared with a child; semaphore, barrier and condition work through the server",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const lock = await manager.lock();
    const event = await manager.event();
    assert.ok(lock instanceof LockProxy && event instanceof EventProxy);
    assert.equal(await lock.acquire(), true);
    assert.equal(await lock.locked(), true);
    const p = new Process({ target: fx.seesLockAndSetsEvent, args: [lock, event], module });
    try {
      await p.start();
      assert.equal(await event.wait(20_000), true);
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
    } finally {
      await lock.release();
      await cleanup(p);
    }
    assert.equal(await lock.locked(), false);
    await assert.rejects(lock.release(), RangeError);
    const sem = await manager.boundedSemaphore(2);
    assert.equal(await sem.getValue(), 2);
    assert.equal(await sem.acquire(), true);
    assert.equal(await sem.getValue(), 1);
    await sem.release();
    await assert.rejects(sem.release(), RangeError);
    const barrier = await manager.barrier(1);
    assert.equal(barrier.parties, 1);
    assert.equal(await barrier.wait(10_000), 0);
    const two = await manager.barrier(2);
    await assert.rejects(two.wait(20), BrokenBarrierError);
    assert.equal(await two.broken, true);
    await two.reset();
    assert.equal(await two.broken, false);
    const cond = await manager.condition();
    await assert.rejects(cond.wait(10), /not held/);
    await cond.acquire();
    assert.equal(await cond.wait(10), false);
    await cond.release();
    const rlock = await manager.rlock();
    {
      await using _ = await rlock.hold();
      assert.equal(await rlock.acquire({ timeout: 0 }), true, "reentrant in the process that holds it");
      await rlock.release();
    }
    assert.equal(await rlock.locked(), false);
  },
});

Deno.test({
  name: "A condition of a manager wakes a waiter in a child when the parent notifies",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const cond = await manager.condition(await manager.lock());
    const ns = await manager.namespace({ ready: false, waiting: false, woken: false });
    const p = new Process({ target: fx.waitsOnCondition, args: [cond, ns], module });
    try {
      await p.start();
      // The child sets "waiting" while it holds the lock, then waits (releasing it): once we
      // can take the lock and see "waiting", the child is inside wait().
      assert.ok(
        await waitUntil(async () => {
          await using _ = await cond.hold({ timeout: 10_000 });
          if (!(await ns.get("waiting"))) return false;
          await ns.set("ready", true);
          await cond.notifyAll();
          return true;
        }, 10_000),
      );
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
      assert.equal(await ns.get("woken"), true);
    } finally {
      await cleanup(p);
    }
  },
});

Deno.test({
  name: "Manager.shutdown() stops the server and leaves no socket file, /dev/shm entry or process behind",
  ...SPAWNS,
  async fn() {
    const before = childPids();
    const manager = await Manager.start();
    const path = (manager.address as { path: string }).path;
    const pid = serverPid(before);
    try {
      const d = await manager.dict({ a: 1 });
      await manager.lock();
      await manager.event();
      assert.ok(exists(path));
      assert.deepEqual(
        shmFilesOf(pid),
        [],
        "a manager's lock and event live in the server, not in /dev/shm",
      );
      await manager.shutdown();
      await manager.shutdown(); // idempotent
      assert.equal(isRunning(pid), false);
      assert.equal(exists(path), false);
      assert.equal(exists(path.slice(0, path.lastIndexOf("/"))), false, "the temporary directory is gone");
      assert.deepEqual(shmFilesOf(pid), []);
      await assert.rejects(
        d.get("a"),
        (e: Error) => e instanceof EOFError || e instanceof Deno.errors.NotFound,
      );
      await assert.rejects(manager.dict(), /the manager has been shut down/);
    } finally {
      await manager.shutdown();
      if (isRunning(pid)) Deno.kill(pid, "SIGKILL");
    }
  },
});

Deno.test({
  name: "A manager listens on TCP (port 0 picks a free one) and refuses a wrong key there too",
  ...SPAWNS,
  async fn() {
    const authkey = crypto.getRandomValues(new Uint8Array(16));
    await using manager = await Manager.start({ address: { hostname: "127.0.0.1", port: 0 }, authkey });
    const address = manager.address as { hostname: string; port: number };
    assert.equal(address.hostname, "127.0.0.1");
    assert.ok(address.port > 0);
    await assert.rejects(Manager.connect({ address, authkey: new Uint8Array(16) }), AuthenticationError);
    const other = await Manager.connect({ address, authkey });
    const v = await other.value(41);
    await v.set(42);
    assert.equal(await v.get(), 42);
  },
});

/** The number of sockets process `pid` has open. */
function socketCount(pid: number): number {
  let n = 0;
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`).startsWith("socket:")) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** A raw connection to a Unix socket, speaking frames but no authkey. */
function rawClient(path: string): Promise<FdChannel> {
  return connectChannel({ path });
}

/**
 * Starts a manager's server with its own `limits`, as `Manager.start()` does, listening in a
 * fresh temporary directory; `stop()` shuts it down and removes the directory.
 */
async function startServer(limits: ServerLimits) {
  const dir = Deno.makeTempDirSync({ prefix: "mp-test-" });
  const address = { path: `${dir}/socket` };
  const authkey = crypto.getRandomValues(new Uint8Array(32));
  const [reader, writer] = Pipe<ServerReady>({ duplex: false });
  const process = new Process({
    target: serve,
    args: [writer, address, authkey, limits],
    module: new URL("../src/_manager_server.ts", import.meta.url),
    daemon: true,
  });
  try {
    await process.start();
    writer.close();
    assert.equal(await reader.poll(20_000), true, "the server started listening");
    assert.equal((await reader.recv()).ok, true);
  } catch (e) {
    await cleanup(process);
    Deno.removeSync(dir, { recursive: true });
    throw e;
  } finally {
    writer.close();
    reader.close();
  }
  return {
    address,
    authkey,
    process,
    async stop() {
      await cleanup(process);
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

Deno.test({
  name:
    "A client that sends 32 wrong bytes and hangs up before the verdict does not end the manager's server",
  ...SPAWNS,
  async fn() {
    const before = childPids();
    await using manager = await Manager.start();
    const path = (manager.address as { path: string }).path;
    const pid = serverPid(before);
    const d = await manager.dict({ a: 1 });
    const sockets = socketCount(pid);
    for (let i = 0; i < 3; i++) {
      const ch = await rawClient(path);
      assert.ok(await ch.readFrame(), "the server sends its challenge");
      await ch.write(new Uint8Array(32));
      ch.close();
      // The server has answered (or failed to) once it has closed its end.
      const closed = await waitUntil(() => !isRunning(pid) || socketCount(pid) <= sockets, 20_000);
      assert.ok(closed, `the server still has ${socketCount(pid)} sockets open, ${sockets} before`);
    }
    assert.equal(isRunning(pid), true, "the server still runs");
    assert.equal(await d.get("a"), 1);
    await d.set("b", 2);
    assert.deepEqual(await d.toObject(), { a: 1, b: 2 });
  },
});

Deno.test({
  name: "The SIGKILL of a child blocked in a queue proxy's get() does not end the manager's server",
  ...SPAWNS,
  async fn() {
    const before = childPids();
    await using manager = await Manager.start();
    const pid = serverPid(before);
    const q = await manager.joinableQueue<string>();
    const ns = await manager.namespace({ waiting: 0 });
    const sockets = socketCount(pid);
    const p = new Process({ target: fx.waitsInGet, args: [q, ns], module });
    try {
      await p.start();
      for (let i = 0; i < 500 && await ns.get("waiting") !== p.pid; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(await ns.get("waiting"), p.pid, "the child waits in get()");
      p.kill();
      await p.join(10_000);
      const closed = await waitUntil(() => !isRunning(pid) || socketCount(pid) <= sockets, 20_000);
      assert.ok(closed, `the server still has ${socketCount(pid)} sockets open, ${sockets} before`);
      assert.equal(isRunning(pid), true, "the server still runs");
      await q.put("after");
      assert.equal(await q.get({ timeout: 5000 }), "after", "the killed child's get took nothing");
      assert.equal(await q.qsize(), 0);
    } finally {
      await cleanup(p);
    }
  },
});

Deno.test({
  name:
    "The server closes a connection that does not authenticate within its deadline, refuses those over its cap, and serves the others",
  ...SPAWNS,
  async fn() {
    // The deadline only has to outlast the four connections below (milliseconds; seconds on a
    // loaded machine): were the first silent one closed before the fourth came, that one would
    // be within the cap.
    const server = await startServer({ handshakeMs: 5000, maxUnauthenticated: 3 });
    try {
      const { address, authkey } = server;
      const manager = await Manager.connect({ address, authkey });
      const silent = [];
      for (let i = 0; i < 3; i++) {
        const ch = await rawClient(address.path);
        assert.ok(await ch.readFrame(), "a connection within the cap gets a challenge");
        silent.push(ch);
      }
      const over = await rawClient(address.path);
      assert.equal(
        await over.readFrame().catch(() => null),
        null,
        "the fourth is closed without a challenge",
      );
      over.close();
      const v = await manager.value(1); // the authenticated client is served meanwhile
      for (const ch of silent) {
        const end = await raceTimeout(ch.readFrame().catch(() => null), 20_000);
        assert.equal(end, null, "a connection that stays silent is closed at the deadline");
        ch.close();
      }
      const other = await Manager.connect({ address, authkey, timeout: 20_000 });
      assert.equal(await v.get(), 1);
      await (await other.value(2)).set(3);
      await manager.shutdown();
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "The server keeps accepting after accept() fails for want of file descriptors (EMFILE)",
  ...SPAWNS,
  async fn() {
    const server = await startServer(SERVER_LIMITS);
    const raw: FdChannel[] = [];
    try {
      const { address, authkey } = server;
      const pid = server.process.pid!;
      const open = [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
      // Room for about two more connections, then accept() fails with EMFILE.
      const limit = new Deno.Command("prlimit", { args: [`--pid=${pid}`, `--nofile=${open + 2}:`] });
      assert.equal((await limit.output()).code, 0, "prlimit set the server's fd limit");
      // Twenty connections: the server runs out of fds, and its accept() fails for some of them.
      for (let i = 0; i < 20; i++) raw.push(await rawClient(address.path));
      const challenged = await Promise.all(
        raw.map((ch) => raceTimeout(ch.readFrame().catch(() => null), 500)),
      );
      assert.ok(challenged.filter((c) => c instanceof Uint8Array).length < 20, "some were not accepted");
      for (const ch of raw) ch.close();
      // Once they are gone the server has fds again: a new client is served.
      const manager = await raceTimeout(Manager.connect({ address, authkey, timeout: 20_000 }), 25_000);
      assert.ok(manager !== TIMED_OUT, "a client after EMFILE is answered");
      assert.equal(await (await manager.value("after EMFILE")).get(), "after EMFILE");
      await manager.shutdown();
    } finally {
      for (const ch of raw) ch.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "Manager.connect() to a socket that never answers rejects with TimedOut after its timeout",
  ...SPAWNS,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "mp-test-" });
    const listener = Deno.listen({ transport: "unix", path: `${dir}/socket` });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn); // accepts, never answers
    })().catch(() => {});
    try {
      const connecting = Manager.connect({
        address: { path: `${dir}/socket` },
        authkey: new Uint8Array(8),
        timeout: 200,
      });
      const result = await raceTimeout(connecting.then(() => "connected", (e) => e), 20_000);
      assert.ok(result instanceof Deno.errors.TimedOut, `expected TimedOut, got ${String(result)}`);
      assert.match(result.message, /no answer to the handshake within 200 ms/);
      await assert.rejects(
        Manager.connect({
          address: { path: `${dir}/socket` },
          authkey: new Uint8Array(8),
          timeout: "1" as never,
        }),
        TypeError,
      );
    } finally {
      listener.close();
      await accepting;
      for (const c of held) c.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "An empty authkey is a RangeError at the call of Manager.start() and Manager.connect(), and no server starts",
  ...SPAWNS,
  async fn() {
    // activeChildren() is this test file's own (under --parallel, other files' children share the pid).
    const before = new Set(activeChildren());
    await assert.rejects(Manager.start({ authkey: new Uint8Array(0) }), RangeError);
    await assert.rejects(
      Manager.connect({ address: { path: "/nonexistent" }, authkey: new Uint8Array(0) }),
      RangeError,
    );
    assert.deepEqual(activeChildren().filter((p) => !before.has(p)), []);
  },
});

Deno.test({
  name:
    "Queue proxies take timeouts in ms: a string, NaN or a number as options is a TypeError at the call; Infinity and 2^31 ms wait",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const q = await manager.joinableQueue<string>();
    assert.throws(() => q.get({ timeout: "100" as never }), TypeError);
    assert.throws(() => q.get({ timeout: NaN }), TypeError);
    assert.throws(() => q.get(5 as never), TypeError);
    assert.throws(() => q.put("x", { timeout: "1" as never }), TypeError);
    assert.throws(() => q.join(5 as never), TypeError);
    assert.throws(() => manager.barrier(2, { timeout: "1" as never }), TypeError);
    assert.equal(await q.qsize(), 0, "nothing was put");
    for (const timeout of [Infinity, 2 ** 31, 2 ** 40]) {
      const got = q.get({ timeout });
      await q.put(`for ${timeout}`);
      assert.equal(await got, `for ${timeout}`);
    }
    // A wait with a long timeout still ends at its signal.
    const ctl = new AbortController();
    const waiting = q.get({ timeout: 2 ** 31, signal: ctl.signal });
    ctl.abort(new Error("stop"));
    await assert.rejects(waiting, { message: "stop" });
  },
});

for (const end of ["throw", "SIGKILL", "SIGTERM", "SIGHUP", "SIGINT"]) {
  Deno.test({
    name: `A program with a manager that ends by ${
      end === "throw" ? "an uncaught error" : end
    } leaves no mp-manager-* directory and no server behind`,
    ...SPAWNS,
    async fn() {
      const out = await runProgram(new URL("./fixtures/manager_program.ts", import.meta.url), {
        env: { MP_END: end },
      });
      const { dir, server } = JSON.parse(out.stdout.split("\n")[0]);
      try {
        assert.match(dir, /\/mp-manager-[^/]+$/);
        assert.ok(await waitUntil(() => !isRunning(server), 10_000), "the server ended");
        assert.ok(await waitUntil(() => !exists(dir), 10_000), `${dir} is left`);
      } finally {
        if (isRunning(server)) Deno.kill(server, "SIGKILL");
      }
    },
  });
}

Deno.test({
  name:
    "When the manager's server dies, every pending and later call on its proxies rejects promptly with an error that says so",
  ...SPAWNS,
  async fn() {
    const before = childPids();
    const manager = await Manager.start();
    const pid = serverPid(before);
    try {
      const q = await manager.queue<string>();
      const d = await manager.dict({ a: 1 });
      const pending = [q.get(), q.get({ timeout: 2 ** 40 })].map((p) =>
        raceTimeout(p.then(() => "resolved", (e) => e), 20_000)
      );
      await d.set("b", 2); // the gets have reached the server
      Deno.kill(pid, "SIGKILL");
      for (const result of await Promise.all(pending)) {
        assert.ok(result instanceof EOFError, `a pending call got ${String(result)}`);
        assert.match(result.message, /has shut down or died/);
      }
      for (const later of [() => d.get("a"), () => q.put("x"), () => manager.list()]) {
        const result = await raceTimeout(later().then(() => "resolved", (e) => e), 20_000);
        assert.ok(result instanceof Error, `a later call got ${String(result)}`);
        assert.match(result.message, /Cannot connect to the manager at .*is it running\?/);
      }
    } finally {
      if (isRunning(pid)) Deno.kill(pid, "SIGKILL");
      await manager.shutdown();
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Objects by name, across separately started programs; remote locks; reference counting.

const clientProgram = new URL("./fixtures/manager_client_program.ts", import.meta.url);

/**
 * Starts tests/fixtures/manager_client_program.ts with `order` (address, authkey, action) on its
 * stdin, so the key is in no command line or environment. `line()` reads its next stdout line
 * (bounded); `stop()` kills it if needed and waits.
 */
function startClient(manager: Manager, order: Record<string, unknown>, denoArgs: string[] = []) {
  const child = spawnDeno(["run", "-A", ...denoArgs, clientProgram.pathname], {
    stdin: "piped",
    stderr: "inherit",
  });
  const writer = child.stdin.getWriter();
  const sent = writer.write(new TextEncoder().encode(
    JSON.stringify({ address: manager.address, authkey: [...manager.authkey], ...order }) + "\n",
  )).then(() => writer.close());
  const lines = new LineReader(child.stdout, "the client program");
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return {
    child,
    line: (ms = 30_000): Promise<string> => lines.next(ms),
    async stop(): Promise<Deno.CommandStatus> {
      await sent.catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      const status = await child.status;
      clearTimeout(killer);
      await lines.cancel();
      return status;
    },
  };
}

for (const transport of ["Unix socket", "TCP"] as const) {
  Deno.test({
    name:
      `A separately started program reaches a queue and a dict published by name over a ${transport}; a missing name is NotFound`,
    ...SPAWNS,
    async fn() {
      await using manager = await Manager.start(
        transport === "TCP" ? { address: { hostname: "127.0.0.1", port: 0 } } : {},
      );
      const jobs = await manager.queue<number | null>();
      const results = await manager.dict<number>();
      await manager.publish("jobs", jobs);
      await manager.publish("results", results);
      assert.deepEqual((await manager.names()).sort(), ["jobs", "results"]);
      await assert.rejects(manager.lookup("missing"), Deno.errors.NotFound);
      for (const n of [1, 2, 3, 4]) await jobs.put(n);
      await jobs.put(null);
      const client = startClient(manager, { action: "work" });
      try {
        assert.equal(await client.line(), JSON.stringify(["jobs", "results"]));
        assert.equal(await client.line(), "NotFound");
        assert.deepEqual(await results.toObject(), { 1: 1, 2: 4, 3: 9, 4: 16 });
        // The same object, by name, from this program too.
        const again = await manager.lookup<typeof results>("results");
        assert.equal(await again.get("3"), 9);
      } finally {
        await client.stop();
      }
      // A wrong key never reaches a name.
      await assert.rejects(
        Manager.connect({ address: manager.address, authkey: new TextEncoder().encode("wrong") }),
        AuthenticationError,
      );
    },
  });
}

Deno.test({
  name: "A manager lock held by a client program that is killed with SIGKILL is released for the others",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start({ address: { hostname: "127.0.0.1", port: 0 } });
    const lock = await manager.lock();
    await manager.publish("lock", lock);
    const client = startClient(manager, { action: "hold" });
    try {
      assert.equal(await client.line(), "held");
      assert.equal(await lock.acquire({ timeout: 0 }), false, "the client holds it");
      client.child.kill("SIGKILL");
      assert.equal(
        await lock.acquire({ timeout: 20_000 }),
        true,
        "released when the client's connection ended",
      );
      await lock.release();
    } finally {
      await client.stop();
    }
  },
});

Deno.test({
  name:
    "The server frees an object when its last proxy is closed, collected, or its client's connection ends; a published one stays",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const base = await objectCount(manager);
    // Closed explicitly.
    for (let i = 0; i < 2000; i++) {
      using d = await manager.dict({ i });
      await d.set("x", i);
    }
    assert.equal(await objectCount(manager), base);
    // Published: stays after its proxy is closed, and can be looked up.
    const kept = await manager.dict({ kept: true });
    await manager.publish("kept", kept);
    kept.close();
    assert.throws(() => kept.get("kept"), Deno.errors.BadResource);
    const back = await manager.lookup<typeof kept>("kept");
    assert.equal(await back.get("kept"), true);
    back.close();
    assert.equal(await objectCount(manager), base + 1);
    // A proxy stored in a dict keeps its object while the dict lives.
    const outer = await manager.dict<unknown>();
    const inner = await manager.list([1]);
    await outer.set("inner", inner);
    inner.close();
    const innerAgain = await outer.get("inner") as ListProxy<number>;
    assert.deepEqual(await innerAgain.toArray(), [1]);
    innerAgain.close();
    outer.close();
    // Collected without close(), and left open by a program that is then killed.
    const client = startClient(manager, { action: "churn", n: 200 }, ["--v8-flags=--expose-gc"]);
    try {
      assert.equal(await client.line(), "done");
      // What the collector freed is gone; what is left open stays while the program runs.
      // (base + 1 published + 200 open, + the list until the server's collector frees it)
      assert.ok(
        await waitUntil(async () => await objectCount(manager) <= base + 202, 10_000),
        `count: ${await objectCount(manager)}, base ${base}`,
      );
      assert.ok(await objectCount(manager) >= base + 201, "the open ones stay");
      client.child.kill("SIGKILL");
      // The program's connection ended: its 200 open dicts are freed. The dict that held the list
      // is closed, so the list goes when the server collects the revived proxy inside it: only
      // the published dict, and at most that list, remain.
      assert.ok(
        await waitUntil(async () => await objectCount(manager) <= base + 2, 10_000),
        `count: ${await objectCount(manager)}, base ${base}`,
      );
    } finally {
      await client.stop();
    }
  },
});

Deno.test({
  name:
    "A custom type registered with Manager.start() is made by any client, its exposed methods return promises, others are refused",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start({
      types: {
        Counter: { module, export: "Counter", exposed: ["inc", "get", "later"] },
        Limited: { module: module.pathname, export: "Counter", exposed: ["inc"] },
        Everything: { module: module.href, export: "Counter" },
      },
    });
    const c = await manager.create<fx.Counter>("Counter", 5);
    assert.ok(c instanceof ObjectProxy);
    assert.equal(await c.inc(2), 7);
    assert.equal(await c.later(), 7, "an async method's result");
    assert.equal("_secret" in c, false);
    const limited = await manager.create<fx.Counter>("Limited");
    assert.equal("later" in limited, false, "only the listed methods");
    const all = await manager.create<fx.Counter>("Everything");
    assert.deepEqual(["inc", "get", "later", "_secret"].map((m) => m in all), [true, true, true, false]);
    const p = new Process({ target: fx.incrementsCounter, args: [c, 3], module });
    try {
      await p.start();
      await p.join(20_000);
      assert.equal(p.exitCode, 0);
    } finally {
      await cleanup(p);
    }
    assert.equal(await c.get(), 10);
    await manager.publish("counter", c);
    const other = await Manager.connect({ address: manager.address, authkey: manager.authkey });
    const same = await other.lookup<typeof c>("counter");
    assert.equal(await same.inc(), 11);
    await assert.rejects(manager.create("Nope"), TypeError);
    await assert.rejects(
      Manager.start({ types: { dict: { module, export: "Counter" } } }),
      /built-in type/,
    );
  },
});

Deno.test("Every built-in proxy class has exactly the methods its server type allows", async () => {
  const { TYPES } = await import("../src/_manager_types.ts");
  const mod = await import("../mod.ts");
  const classes: Record<string, { prototype: object }> = {
    dict: mod.DictProxy,
    list: mod.ListProxy,
    namespace: mod.NamespaceProxy,
    value: mod.ValueProxy,
    queue: mod.QueueProxy,
    joinableQueue: mod.JoinableQueueProxy,
    lock: mod.LockProxy,
    rlock: mod.RLockProxy,
    semaphore: mod.SemaphoreProxy,
    boundedSemaphore: mod.BoundedSemaphoreProxy,
    condition: mod.ConditionProxy,
    event: mod.EventProxy,
    barrier: mod.BarrierProxy,
  };
  // Methods that are the proxy's own (no round trip) or built on the server's.
  const local = new Set(["constructor", "close", "hold", "waitFor", "joinThread", "cancelJoinThread"]);
  assert.deepEqual(Object.keys(classes).sort(), Object.keys(TYPES).sort());
  for (const [type, cls] of Object.entries(classes)) {
    const names = new Set<string>();
    for (let p = cls.prototype; p !== mod.BaseProxy.prototype; p = Object.getPrototypeOf(p)) {
      for (const n of Object.getOwnPropertyNames(p)) if (!local.has(n)) names.add(n);
    }
    if (type === "barrier") names.delete("parties"); // known at creation: a local getter
    if (type === "condition") names.delete("lock"); // a local getter: a proxy to its lock
    assert.deepEqual([...names].sort(), [...TYPES[type].methods].filter((m) => m !== "parties").sort(), type);
  }
});

/**
 * The sockets that this process holds open and that connect, or are connected, to port `port` of
 * 127.0.0.1, as "inode state" (from /proc/net/tcp: state 01 is established, 02 connecting).
 */
function socketsTo(port: number): string[] {
  const mine = new Set<string>();
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      const inode = Deno.readLinkSync(`/proc/self/fd/${e.name}`).match(/^socket:\[(\d+)\]$/)?.[1];
      if (inode) mine.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  // sl, local address, remote address, state, queues, timer, retransmits, uid, timeout, inode
  return Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => f[2] === remote && mine.has(f[9])).map((f) => `${f[9]} ${f[3]}`);
}

Deno.test({
  name:
    "Manager.connect() that times out while the TCP connect is still in progress closes the socket it was connecting",
  ...SPAWNS,
  async fn() {
    // A listener that never accepts, with its one-place backlog taken: Linux drops the next SYN,
    // so a connect stays in progress (for minutes of retries).
    const listener = listenSocket({ ip: new Uint8Array([127, 0, 0, 1]), port: 0 }, 0);
    const port = socketPort(listener);
    const first = connectSocket({ ip: new Uint8Array([127, 0, 0, 1]), port }).fd;
    try {
      // Not a count of this process's fds: the test files running beside this one share them.
      const settled = await waitUntil(() => socketsTo(port)[0]?.endsWith(" 01") ?? false, 10_000);
      assert.ok(settled, `the first connection settles in the backlog: ${socketsTo(port)}`);
      const before = socketsTo(port);
      await assert.rejects(
        Manager.connect({
          address: { hostname: "127.0.0.1", port },
          authkey: new Uint8Array(32),
          timeout: 200,
        }),
        Deno.errors.TimedOut,
      );
      const closed = await waitUntil(() => socketsTo(port).length === before.length, 10_000);
      assert.ok(closed, `sockets of this process to the port: ${socketsTo(port)}, before: ${before}`);
    } finally {
      close(first);
      close(listener);
    }
  },
});
