/** Thread: lifecycle, subclassing, every library object across threads, and threads + processes. */
import assert from "node:assert/strict";
import {
  activeThreads,
  Barrier,
  Condition,
  currentThread,
  EOFError,
  Event,
  JoinableQueue,
  Lock,
  Manager,
  Pipe,
  Process,
  Queue,
  RLock,
  Semaphore,
  SharedArray,
  SharedMemory,
  SimpleQueue,
  Thread,
  Value,
} from "../mod.ts";
import { cleanup, runProgram, SPAWNS, tempFile } from "./fixtures/helpers.ts";
import { raceTimeout } from "../src/_wait.ts";
import { _resourceNames } from "../src/_sync_block.ts";
import { existingShmFiles } from "./fixtures/helpers.ts";
import {
  closesItsCopy,
  consumes,
  countsUnderLock,
  describesItself,
  Doubler,
  echoesDouble,
  exits,
  holdsLock,
  holdsRLockTwice,
  holdsSpawnLock,
  identifies,
  leavesAThreadRunning,
  notifies,
  putsNumbers,
  returns,
  sendsAndEnds,
  setsEvent,
  setsKey,
  sleepsForever,
  startsAProcess,
  startsAThread,
  takesUnit,
  throws,
  throwsLater,
  triesLock,
  waitsAtBarrier,
  waitsFor,
  writesShared,
} from "./fixtures/thread_fixtures.ts";

const FIXTURES = new URL("./fixtures/thread_fixtures.ts", import.meta.url);

/** Ends whatever thread still runs: call it in `finally`. */
async function stop(...threads: Thread[]): Promise<void> {
  for (const t of threads) if (t.isAlive()) t.terminate();
  await Promise.all(threads.filter((t) => t.ident !== undefined).map((t) => t.join(5000)));
}

/** Starts a thread running `target(...args)` from the fixtures. */
async function started(
  target: (...a: never[]) => unknown,
  args: unknown[] = [],
  daemon = false,
): Promise<Thread> {
  const t = new Thread({ target: target as (...a: unknown[]) => unknown, args, daemon, module: FIXTURES });
  await t.start();
  return t;
}

Deno.test({
  name: "A thread whose target returns ends with exit code 0, and one whose target throws with 1",
  ...SPAWNS,
  async fn() {
    const ok = await started(returns);
    const bad = await started(throws);
    try {
      await ok.join(30_000);
      await bad.join(30_000);
      assert.equal(ok.exitCode, 0);
      assert.equal(bad.exitCode, 1);
      assert.equal(ok.isAlive(), false);
      assert.equal(bad.isAlive(), false);
    } finally {
      await stop(ok, bad);
    }
  },
});

Deno.test({
  name: "Deno.exit(n) in a thread ends only that thread, with exit code n",
  ...SPAWNS,
  async fn() {
    const t = await started(exits, [7]);
    try {
      await t.join(30_000);
      assert.equal(t.exitCode, 7);
      assert.equal(Deno.exitCode, 0);
    } finally {
      await stop(t);
    }
  },
});

Deno.test({
  name: "An error nobody catches in a thread ends it with exit code 1 and leaves this program running",
  ...SPAWNS,
  async fn() {
    const t = await started(throwsLater);
    try {
      await t.join(30_000);
      assert.equal(t.exitCode, 1);
      assert.equal(t.isAlive(), false);
    } finally {
      await stop(t);
    }
  },
});

Deno.test({
  name: "await using a Thread terminates it if it still runs and waits for it",
  ...SPAWNS,
  async fn() {
    let kept: Thread;
    {
      await using t = await started(sleepsForever);
      kept = t;
      assert.equal(t.isAlive(), true);
    }
    assert.equal(kept.isAlive(), false);
    assert.equal(kept.exitCode, -15);
  },
});

Deno.test({
  name: "Threads that start and end leave no fd behind (their own copies of passed fds included)",
  ...SPAWNS,
  async fn() {
    // In a program of its own: this process is shared with the test files running beside this one.
    const out = await runProgram(new URL("./fixtures/thread_fds_program.ts", import.meta.url));
    assert.equal(out.code, 0, out.stderr);
    const { before, after } = JSON.parse(out.stdout);
    assert.ok(after <= before, `${after - before} more fds than before 10 threads`);
  },
});

Deno.test({
  name: "join(timeout) returns while the thread runs, isAlive() says so, and join() returns once it ended",
  ...SPAWNS,
  async fn() {
    using go = new Event();
    const t = await started(waitsFor, [go]);
    try {
      assert.equal(t.exitCode, null);
      await t.join(50);
      assert.equal(t.isAlive(), true);
      assert.equal(t.exitCode, null);
      assert.deepEqual(activeThreads(), [t]);
      go.set();
      await t.join(30_000);
      assert.equal(t.isAlive(), false);
      assert.equal(t.exitCode, 0);
      assert.deepEqual(activeThreads(), []);
    } finally {
      await stop(t);
    }
  },
});

Deno.test({
  name: "terminate() ends a thread that would never end, with exit code -15",
  ...SPAWNS,
  async fn() {
    const t = await started(sleepsForever);
    try {
      assert.equal(t.isAlive(), true);
      t.terminate();
      assert.equal(t.isAlive(), false);
      await t.join(5000);
      assert.equal(t.exitCode, -15);
      t.terminate(); // idempotent
    } finally {
      await stop(t);
    }
  },
});

Deno.test({
  name: "Threads have idents unique in the program, defined from start(), and know who they are",
  ...SPAWNS,
  async fn() {
    using q = new Queue<
      { thread: { name: string; ident: number; daemon: boolean }; pid: number; processName: string }
    >();
    const threads = [0, 1, 2].map((i) =>
      new Thread({ target: identifies, args: [q], name: `who-${i}`, daemon: i === 2, module: FIXTURES })
    );
    try {
      assert.equal(threads[0].ident, undefined);
      for (const t of threads) await t.start();
      const idents = threads.map((t) => t.ident!);
      assert.equal(new Set([...idents, currentThread().ident]).size, 4);
      const seen = [];
      for (let i = 0; i < 3; i++) seen.push(await q.get({ timeout: 30_000 }));
      seen.sort((a, b) => a.thread.name.localeCompare(b.thread.name));
      assert.deepEqual(
        seen.map((s) => s.thread),
        threads.map((t, i) => ({ name: `who-${i}`, ident: t.ident, daemon: i === 2 })),
      );
      // A thread is in this process: same pid, same process name.
      for (const s of seen) assert.deepEqual([s.pid, s.processName], [Deno.pid, "MainProcess"]);
      assert.deepEqual(currentThread(), { name: "MainThread", ident: 1, daemon: false });
      for (const t of threads) await t.join(30_000);
    } finally {
      await stop(...threads);
    }
  },
});

Deno.test("new Thread names itself Thread-<n>, refuses bad options, and refuses to join or start twice", async () => {
  const a = new Thread({ target: returns });
  const b = new Thread({ target: returns });
  assert.match(a.name, /^Thread-\d+$/);
  assert.equal(Number(b.name.slice(7)), Number(a.name.slice(7)) + 1);
  assert.throws(() => new Thread({ target: 5 as unknown as () => void }), TypeError);
  assert.throws(() => new Thread({ args: 5 as unknown as [] }), TypeError);
  await assert.rejects(() => a.join(), /not started/);
  assert.throws(() => a.terminate(), /not started/);
  await assert.rejects(() => a.join("soon" as unknown as number), TypeError);
});

Deno.test({
  name: "start() twice throws, and daemon cannot change after start()",
  ...SPAWNS,
  async fn() {
    const t = await started(returns);
    try {
      assert.throws(() => t.start(), /only once/);
      assert.throws(() => t.daemon = true, /already started/);
      await t.join(30_000);
    } finally {
      await stop(t);
    }
  },
});

export function notExported(): void {}

Deno.test({
  name: "A target that its module does not export fails start() with a TypeError saying to export it",
  ...SPAWNS,
  async fn() {
    const local = () => {};
    const t = new Thread({ target: local, name: "lost", module: FIXTURES });
    await assert.rejects(
      () => t.start(),
      (e: Error) =>
        e instanceof TypeError && /Cannot start thread "lost"/.test(e.message) &&
        /is not exported from .*thread_fixtures\.ts/.test(e.message) &&
        /The thread imports its function by name, so bound methods, closures and inline functions cannot be used/
          .test(e.message),
    );
    await t.join(30_000);
    assert.equal(t.exitCode, 1);
  },
});

Deno.test({
  name: "A target module that throws while it loads fails start() with that error",
  ...SPAWNS,
  async fn() {
    const t = new Thread({
      target: returns,
      module: new URL("./fixtures/throws_on_import.ts", import.meta.url),
    });
    await assert.rejects(
      () => t.start(),
      (e: Error) =>
        e.name === "BrokenModuleError" &&
        /^the thread was importing file:.*throws_on_import\.ts \(to find its target\) when it failed: broken on purpose\. .*import\.meta\.main/
          .test(e.message),
    );
    await t.join(30_000);
    assert.equal(t.exitCode, 1);
  },
});

/** A subclass that its module does not export. */
class Hidden extends Thread {
  override run(): void {}
}

Deno.test({
  name:
    "A Thread subclass's fields travel and its run() runs in the thread; an unexported subclass is a TypeError",
  ...SPAWNS,
  async fn() {
    using out = new Queue();
    const d = new Doubler(21, out);
    const hidden = new Hidden({ module: FIXTURES });
    try {
      await d.start();
      assert.deepEqual(await out.get({ timeout: 30_000 }), { result: 42, name: "doubler", isThread: true });
      await d.join(30_000);
      assert.equal(d.exitCode, 0);
      await assert.rejects(
        () => hidden.start(),
        (e: Error) => e instanceof TypeError && /class Hidden/.test(e.message),
      );
    } finally {
      await stop(d, hidden);
    }
  },
});

Deno.test({
  name:
    "A Lock held by a thread excludes the main thread and a child process; RLock re-enters only in its holder",
  ...SPAWNS,
  async fn() {
    using lock = new Lock();
    using rlock = new RLock();
    using holding = new Event();
    using release = new Event();
    using rholding = new Event();
    using q = new Queue<boolean>();
    const holder = await started(holdsLock, [lock, holding, release]);
    const rholder = await started(holdsRLockTwice, [rlock, rholding, release]);
    let child: Process | undefined;
    try {
      assert.equal(await holding.wait(30_000), true);
      assert.equal(await rholding.wait(30_000), true);
      assert.equal(await lock.acquire({ block: false }), false);
      assert.equal(await rlock.acquire({ block: false }), false);
      // Another thread: neither.
      const other = await started(triesLock, [lock, q]);
      assert.equal(await q.get({ timeout: 30_000 }), false);
      await other.join(30_000);
      const rother = await started(triesLock, [rlock, q]);
      assert.equal(await q.get({ timeout: 30_000 }), false);
      await rother.join(30_000);
      // A process: neither.
      child = new Process({ target: triesLock, args: [lock, q], module: FIXTURES });
      await child.start();
      assert.equal(await q.get({ timeout: 30_000 }), false);
      await child.join(30_000);
      release.set();
      await holder.join(30_000);
      await rholder.join(30_000);
      assert.equal(await lock.acquire({ timeout: 5000 }), true);
      lock.release();
      assert.equal(await rlock.acquire({ timeout: 5000 }), true);
      rlock.release();
    } finally {
      release.set();
      await stop(holder, rholder);
      await cleanup(child);
    }
  },
});

Deno.test({
  name: "A Lock makes a shared counter exact when two threads and two processes increment it at once",
  ...SPAWNS,
  async fn() {
    const N = 300;
    using lock = new Lock();
    using counter = new Value("i32", 0, { lock: false });
    const threads = [0, 1].map(() =>
      new Thread({ target: countsUnderLock, args: [lock, counter, N], module: FIXTURES })
    );
    const procs = [0, 1].map(() =>
      new Process({ target: countsUnderLock, args: [lock, counter, N], module: FIXTURES })
    );
    try {
      await Promise.all([...threads, ...procs].map((w) => w.start()));
      for (const w of [...threads, ...procs]) await w.join(60_000);
      assert.deepEqual([...threads, ...procs].map((w) => w.exitCode), [0, 0, 0, 0]);
      assert.equal(counter.value, 4 * N);
    } finally {
      await stop(...threads);
      await cleanup(...procs);
    }
  },
});

Deno.test({
  name: "Semaphore, Event, Condition and Barrier work between the main thread and a thread",
  ...SPAWNS,
  async fn() {
    using sem = new Semaphore(2);
    using done = new Event();
    using cond = new Condition();
    using flag = new Value("i32", 0);
    using barrier = new Barrier(2);
    using q = new Queue<number>();
    const threads: Thread[] = [];
    try {
      threads.push(await started(takesUnit, [sem, done]));
      assert.equal(await done.wait(30_000), true);
      assert.equal(sem.getValue(), 1);

      await cond.acquire();
      threads.push(await started(notifies, [cond, flag]));
      assert.equal(await cond.waitFor(() => flag.value === 1, 30_000), true);
      cond.release();

      threads.push(await started(waitsAtBarrier, [barrier, q]));
      const mine = await barrier.wait(30_000);
      const theirs = await q.get({ timeout: 30_000 });
      assert.deepEqual([mine, theirs].sort(), [0, 1]);
      for (const t of threads) await t.join(30_000);
      assert.deepEqual(threads.map((t) => t.exitCode), [0, 0, 0]);
    } finally {
      await stop(...threads);
    }
  },
});

Deno.test({
  name:
    "Queue, SimpleQueue and JoinableQueue carry items between threads, and a thread's items are all there after join()",
  ...SPAWNS,
  async fn() {
    using q = new Queue<number>();
    using sq = new SimpleQueue<number>();
    using jq = new JoinableQueue<number>();
    using out = new Queue<number>();
    const threads: Thread[] = [];
    try {
      threads.push(await started(putsNumbers, [q, 500]));
      await threads[0].join(30_000);
      // Joined: every item it put is in the queue.
      const got = [];
      for (let i = 0; i < 500; i++) got.push(q.getNowait());
      assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i));

      threads.push(await started(putsNumbers, [sq, 3]));
      assert.deepEqual([await sq.get(), await sq.get(), await sq.get()], [0, 1, 2]);

      threads.push(await started(consumes, [jq, out, 4]));
      for (const n of [1, 2, 3, 4]) await jq.put(n);
      await jq.join();
      assert.equal(await out.get({ timeout: 30_000 }), 10);
      for (const t of threads) await t.join(30_000);
      assert.deepEqual(threads.map((t) => t.exitCode), [0, 0, 0]);
    } finally {
      await stop(...threads);
    }
  },
});

Deno.test({
  name:
    "A Pipe connection works in a thread, and the reader sees EOF once the thread's copy of the writer is gone",
  ...SPAWNS,
  async fn() {
    const [mine, theirs] = Pipe<number | null>();
    const [reader, writer] = Pipe<string>({ duplex: false });
    const threads: Thread[] = [];
    try {
      threads.push(await started(echoesDouble, [theirs]));
      // This program's copy is its own: closing it leaves the thread's working.
      theirs.close();
      await mine.send(21);
      assert.equal(await mine.recv(), 42);
      await mine.send(null);

      threads.push(await started(sendsAndEnds, [writer, 3]));
      writer.close();
      assert.deepEqual([await reader.recv(), await reader.recv(), await reader.recv()], ["m0", "m1", "m2"]);
      await assert.rejects(() => reader.recv(), EOFError);

      // A thread that closes its copy leaves this program's open.
      const [a, b] = Pipe<string>();
      try {
        threads.push(await started(closesItsCopy, [b]));
        await threads[2].join(30_000);
        await b.send("still open");
        assert.equal(await a.recv(), "still open");
      } finally {
        a.close();
        b.close();
      }
      for (const t of threads) await t.join(30_000);
      assert.deepEqual(threads.map((t) => t.exitCode), [0, 0, 0]);
    } finally {
      await stop(...threads);
      for (const c of [mine, theirs, reader, writer]) c.close();
    }
  },
});

Deno.test({
  name: "Value, SharedArray and SharedMemory written in a thread are read here",
  ...SPAWNS,
  async fn() {
    using value = new Value("i32", 0);
    using array = new SharedArray("f64", 3);
    const shm = new SharedMemory({ create: true, size: 64 });
    let t: Thread | undefined;
    try {
      t = await started(writesShared, [value, array, shm]);
      await t.join(30_000);
      assert.equal(t.exitCode, 0);
      assert.equal(value.value, 42);
      assert.deepEqual([...array.array], [1, 2, 3]);
      assert.equal(new TextDecoder().decode(shm.buf.subarray(0, 13)), "from a thread");
    } finally {
      if (t) await stop(t);
      shm.close();
      shm.unlink();
    }
  },
});

Deno.test({
  name: "A manager's dict proxy passed to a thread works there",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const d = await manager.dict<number>({ here: 1 });
    const t = await started(setsKey, [d]);
    try {
      await t.join(30_000);
      assert.equal(t.exitCode, 0);
      assert.deepEqual(await d.toObject(), { here: 1, fromThread: 7 });
    } finally {
      await stop(t);
    }
  },
});

Deno.test({
  name: "A thread started by a thread works, and its parent thread waits for it",
  ...SPAWNS,
  async fn() {
    using q = new Queue<{ thread: { name: string; ident: number } }>();
    const t = await started(startsAThread, [q]);
    try {
      const { thread } = await q.get({ timeout: 30_000 });
      assert.match(thread.name, /^Thread-\d+$/);
      assert.notEqual(thread.ident, t.ident);
      assert.notEqual(thread.ident, 1);
      await t.join(30_000);
      assert.equal(t.exitCode, 0);
    } finally {
      await stop(t);
    }
  },
});

Deno.test({
  name: "A thread starts a child process (its flags found from the program's main module) and joins it",
  ...SPAWNS,
  async fn() {
    using q = new Queue<{ pid: number; processName: string; thread: { name: string } } | number>();
    const t = await started(startsAProcess, [q]);
    try {
      const who = await q.get({ timeout: 30_000 }) as {
        pid: number;
        processName: string;
        thread: { name: string };
      };
      assert.notEqual(who.pid, Deno.pid);
      assert.match(who.processName, /^Process-\d+$/);
      assert.equal(who.thread.name, "MainThread");
      assert.equal(await q.get({ timeout: 30_000 }), 0);
      await t.join(30_000);
      assert.equal(t.exitCode, 0);
    } finally {
      await stop(t);
    }
  },
});

Deno.test({
  name: "A process starts only once another thread of this program has let go of the spawn lock",
  ...SPAWNS,
  async fn() {
    // The thread holds the lock until a thread waits for it: without the lock, start() would
    // spawn at once, while the thread still holds it (and its child could inherit fds meant for
    // a child of the thread). (A spawn of another test file of this process may be the waiter
    // that lets the thread go even before start(): so nothing is asserted before it.)
    using holding = new Event();
    using lettingGo = new Event();
    const t = await started(holdsSpawnLock, [holding, lettingGo]);
    const p = new Process({ target: returns, module: FIXTURES });
    try {
      assert.equal(await holding.wait(30_000), true);
      await p.start();
      assert.equal(
        lettingGo.isSet(),
        true,
        "the process was spawned while another thread held the spawn lock",
      );
      await p.join(30_000);
      assert.equal(p.exitCode, 0);
      await t.join(30_000);
      assert.equal(t.exitCode, 0);
    } finally {
      await cleanup(p);
      await stop(t);
    }
  },
});

Deno.test({
  name: "A program ends while a daemon thread runs, and waits for a non-daemon thread",
  ...SPAWNS,
  async fn() {
    const program = new URL("./fixtures/thread_program.ts", import.meta.url);
    const daemon = await runProgram(program, { env: { THREAD_DAEMON: "1" } });
    assert.equal(daemon.code, 0, daemon.stderr);
    assert.equal(daemon.stdout, "main done\n");
    const nonDaemon = await runProgram(program, { env: { THREAD_DAEMON: "0" } });
    assert.equal(nonDaemon.code, 0, nonDaemon.stderr);
    assert.equal(nonDaemon.stdout, "main done\nthread done\n");
  },
});

Deno.test({
  name: "A child process whose target returns while its non-daemon thread runs waits for that thread",
  ...SPAWNS,
  async fn() {
    using result = tempFile();
    const p = new Process({ target: leavesAThreadRunning, args: [result.path], module: FIXTURES });
    try {
      await p.start();
      await p.join(30_000);
      assert.equal(p.exitCode, 0);
      assert.equal(Deno.readTextFileSync(result.path), "done", "the thread was ended with its process");
    } finally {
      await cleanup(p);
    }
  },
});

Deno.test({
  name: "A program that exits while its non-daemon thread dies of an uncaught error ends, after the thread",
  ...SPAWNS,
  async fn() {
    const program = new URL("./fixtures/thread_program.ts", import.meta.url);
    // The thread's target waits 30 s after its error: the program must not wait that long (the
    // thread ends at its error), nor forever (runProgram kills it after 20 s: code 137).
    const out = await runProgram(program, { env: { THREAD_DAEMON: "throws" }, timeoutMs: 20_000 });
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stderr,
      /^error: Uncaught \(in worker "Thread-1 \[mp-thread 2\]"\) Error: late boom from a thread/m,
    );
  },
});

Deno.test({
  name: "A Thread prints its name, ident and state; currentThread() prints itself, here and in a thread",
  ...SPAWNS,
  async fn() {
    assert.equal(Deno.inspect(currentThread()), `Thread(name="MainThread", ident=1, current)`);
    const q = new Queue<string>();
    const t = new Thread({ target: describesItself, args: [q], name: "printed", module: FIXTURES });
    try {
      assert.equal(Deno.inspect(t), `Thread(name="printed", initial)`);
      await t.start();
      const inThread = await q.get({ timeout: 30_000 });
      assert.equal(inThread, `Thread(name="printed", ident=${t.ident}, current)`);
      await t.join(30_000);
      assert.equal(Deno.inspect(t), `Thread(name="printed", ident=${t.ident}, exitCode=0, stopped)`);
    } finally {
      await t.join(30_000);
      q.close();
    }
  },
});

Deno.test({
  name: "A thread terminated right after start() never runs its target, and its start() rejects",
  ...SPAWNS,
  async fn() {
    using ran = new Event();
    const t = new Thread({ target: setsEvent, args: [ran] });
    const started = t.start();
    t.terminate();
    const outcome = await raceTimeout(started.then(() => "resolved", (e: Error) => e), 10_000);
    assert.ok(outcome instanceof Error, `start() should reject, got ${String(outcome)}`);
    assert.match(outcome.message, /terminated before it could run its target/);
    assert.equal(t.exitCode, -15);
    // Give a thread that escaped termination ample time to run its target.
    assert.equal(await ran.wait(1000), false);
  },
});

Deno.test({
  name: "A Lock closed right after a thread's start(), before it resolved, still reaches the thread",
  ...SPAWNS,
  async fn() {
    const lock = new Lock();
    const names = _resourceNames(lock);
    using counter = new Value("i32", 0, { lock: false });
    const t = new Thread({ target: countsUnderLock, args: [lock, counter, 5], module: FIXTURES });
    try {
      const started = t.start();
      lock.close();
      await started;
      assert.deepEqual(existingShmFiles(names), [], "removed once the thread has opened it");
      await t.join(30_000);
      assert.equal(t.exitCode, 0);
      assert.equal(counter.value, 5);
    } finally {
      lock.close();
      t.terminate();
    }
  },
});
