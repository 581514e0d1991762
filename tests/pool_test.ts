import assert from "node:assert/strict";
import {
  activeChildren,
  activeThreads,
  AsyncResult,
  Barrier,
  BrokenBarrierError,
  currentThread,
  Event,
  Lock,
  Pool,
  Process,
  Queue,
  ThreadPool,
  WorkerDiedError,
} from "../mod.ts";
import { triesLock } from "./fixtures/thread_fixtures.ts";
import { poolTestHooks } from "../src/_pool_slot.ts";
import { AHEAD } from "../src/_pool_stream.ts";
import * as fx from "./fixtures/pool_fixtures.ts";
import { cleanup, isRunning, runProgram, SPAWNS, waitUntil } from "./fixtures/helpers.ts";

// The task functions are exported from the fixtures module, not from this one (the default).
const module = new URL("./fixtures/pool_fixtures.ts", import.meta.url);

/** Runs `fn` with a fresh pool that is always terminated afterwards. */
async function withPool(
  P: typeof Pool,
  options: { processes?: number; maxTasksPerChild?: number } | number,
  fn: (pool: Pool) => Promise<void>,
) {
  const opts = typeof options === "number" ? { processes: options } : options;
  const pool = new P({ ...opts, module });
  try {
    await fn(pool);
  } finally {
    await pool.terminate();
  }
}

/** The workers of the pools of this file now running: processes for Pool, threads for ThreadPool. */
function workersOf(P: typeof Pool): { id: number; kill(): void }[] {
  if (P === Pool) {
    return activeChildren().filter((p) => p.name.startsWith("PoolWorker")).map((p) => ({
      id: p.pid!,
      kill: () => p.kill(),
    }));
  }
  return activeThreads().filter((t) => t.name.startsWith("ThreadPoolWorker")).map((t) => ({
    id: t.ident!,
    kill: () => t.terminate(),
  }));
}

/** Whether the worker with this pid (Pool) or thread ident (ThreadPool) still runs. */
function isWorkerRunning(P: typeof Pool, id: number): boolean {
  return P === Pool ? isRunning(id) : activeThreads().some((t) => t.ident === id);
}

/** Registers a test of the pool's behaviour twice: for Pool (processes) and ThreadPool (threads). */
function bothPools(name: string, fn: (P: typeof Pool) => Promise<void>) {
  for (const P of [Pool, ThreadPool]) Deno.test({ name: `${P.name}: ${name}`, ...SPAWNS, fn: () => fn(P) });
}

bothPools(
  "Pool.apply, map, starmap and their async forms return the results in order",
  async (P) => {
    await withPool(P, 2, async (pool) => {
      assert.equal(await pool.apply(fx.square, [7]), 49);
      assert.equal(await pool.apply(fx.slowSquare, [8]), 64);
      const xs = Array.from({ length: 100 }, (_, i) => i);
      assert.deepEqual(await pool.map(fx.square, xs), xs.map((x) => x * x));
      assert.deepEqual(await pool.map(fx.slowSquare, xs, { chunksize: 7 }), xs.map((x) => x * x));
      assert.deepEqual(await pool.map(fx.square, []), []);
      assert.deepEqual(await pool.starmap(fx.add, [[1, 2], [3, 4], [5, 6]]), [3, 7, 11]);
      async function* asyncItems() {
        yield 2;
        yield 3;
      }
      assert.deepEqual(await pool.map(fx.square, asyncItems()), [4, 9]);

      const seen: unknown[] = [];
      const r1 = pool.applyAsync(fx.add, [2, 3], { callback: (v) => seen.push(["apply", v]) });
      const r2 = pool.mapAsync(fx.square, [1, 2, 3], { callback: (v) => seen.push(["map", v]) });
      const r3 = pool.starmapAsync(fx.add, [[1, 1]], { callback: (v) => seen.push(["starmap", v]) });
      const r4 = pool.applyAsync(fx.failsOn3, [3], {
        errorCallback: (e) => seen.push(["error", (e as Error).message]),
      });
      assert.ok(r1 instanceof AsyncResult);
      assert.equal(await r1.get(10_000), 5);
      assert.deepEqual(await r2.get(10_000), [1, 4, 9]);
      assert.deepEqual(await r3.get(10_000), [2]);
      await r4.wait(10_000);
      assert.equal(r4.ready(), true);
      assert.equal(r4.successful(), false);
      assert.equal(r1.successful(), true);
      assert.deepEqual(
        seen.sort((a, b) => String(a).localeCompare(String(b))),
        [["apply", 5], ["error", "three is not allowed"], ["map", [1, 4, 9]], ["starmap", [2]]],
      );
    });
  },
);

bothPools(
  "A task's error of a class its module exports arrives as that class, with its fields and the worker's stack",
  async (P) => {
    await withPool(P, 1, async (pool) => {
      const before = fx.QuotaError.constructed;
      const e = await pool.apply(fx.throwsQuota, ["ada"]).then(() => null, (e) => e);
      assert.ok(e instanceof fx.QuotaError, String(e));
      assert.ok(e instanceof Error);
      assert.equal(e.name, "QuotaError");
      assert.equal(e.message, "ada is over the quota of 10");
      assert.equal(e.user, "ada");
      assert.equal(e.limit, 10);
      assert.equal(e.describe(), "ada/10");
      // The stack is the worker's: it was thrown there, in throwsQuota.
      assert.match(e.stack!, /^QuotaError: ada is over the quota of 10\n/);
      assert.match(e.stack!, /at throwsQuota \(file:.*pool_fixtures\.ts:\d+:\d+\)/);
      // Revived, not constructed again in this process.
      assert.equal(fx.QuotaError.constructed, before);
      // Another exported class arrives as itself too.
      const t = await pool.apply(fx.throwsCustom).then(() => null, (e) => e);
      assert.ok(t instanceof fx.TaskError, String(t));
      // So do this library's error classes and Deno's.
      const b = await pool.apply(fx.throwsLibraryError).then(() => null, (e) => e);
      assert.ok(b instanceof BrokenBarrierError, String(b));
      assert.equal(b.message, "broken in a task");
      const n = await pool.apply(fx.throwsDenoError).then(() => null, (e) => e);
      assert.ok(n instanceof Deno.errors.NotFound, String(n));
      assert.equal(n.message, "no such thing");
    });
  },
);

bothPools(
  "A task's error keeps its cause (revived as its class too), and a DOMException arrives as an Error with its name",
  async (P) => {
    await withPool(P, 1, async (pool) => {
      const e = await pool.apply(fx.throwsWithCause).then(() => null, (e) => e as Error);
      assert.equal(e?.message, "outer");
      assert.ok(e?.cause instanceof fx.QuotaError, String(e?.cause));
      assert.equal(e.cause.user, "bob");
      const d = await pool.apply(fx.throwsDomException).then(() => null, (e) => e as Error);
      assert.ok(d instanceof Error, String(d));
      assert.equal(d.name, "AbortError");
      assert.equal(d.message, "gave up");
      // The worker lives on.
      assert.equal(await pool.apply(fx.square, [4]), 16);
    });
  },
);

bothPools(
  "A task's error whose class is not exported, or whose name is a non-error export, arrives as an Error with its name and fields",
  async (P) => {
    await withPool(P, 1, async (pool) => {
      const hidden = await pool.apply(fx.throwsUnexported).then(
        () => null,
        (e) => e as Error & { code: number },
      );
      assert.ok(hidden instanceof Error, String(hidden));
      assert.equal(Object.getPrototypeOf(hidden), Error.prototype);
      assert.equal(hidden.name, "HiddenError");
      assert.equal(hidden.message, "not exported");
      assert.equal(hidden.code, 7);
      assert.match(hidden.stack!, /at throwsUnexported/);
      const shadowed = await pool.apply(fx.throwsShadowed).then(() => null, (e) => e);
      assert.equal(Object.getPrototypeOf(shadowed), Error.prototype);
      assert.equal(shadowed.name, "ShadowError");
      assert.equal(shadowed.message, "shadowed");
      assert.equal(fx.ShadowError(), "a function, not an error class");
    });
  },
);

bothPools(
  "A task's error keeps its name, message, fields and the remote stack",
  async (P) => {
    await withPool(P, 1, async (pool) => {
      const e1 = await pool.map(fx.failsOn3, [1, 2, 3, 4]).then(
        () => null,
        (e) => e as RangeError & { code: string; stack: string },
      );
      assert.ok(e1 instanceof RangeError, String(e1));
      assert.equal(e1.message, "three is not allowed");
      assert.equal(e1.code, "E_THREE");
      assert.match(e1.stack, /at failsOn3 \(file:.*pool_fixtures\.ts:\d+:\d+\)/);
      const e2 = await pool.apply(fx.throwsCustom).then(() => null, (e) => e);
      assert.equal(e2.name, "TaskError");
      assert.equal(e2.message, "custom failure");
      assert.match(e2.stack, /at throwsCustom/);
      // A result that cannot travel fails its task; the worker lives on.
      const e3 = await pool.apply(fx.returnsFunction).then(() => null, (e) => e);
      assert.ok(e3 instanceof TypeError);
      assert.match(e3.message, /Cannot send the result of task returnsFunction back/);
      // A function that is not exported from the pool's module fails its task by name.
      const e4 = await pool.apply(function notThere() {}).then(() => null, (e) => e);
      assert.match(e4.message, /function "notThere", is not exported from .*pool_fixtures\.ts/);
      assert.equal(await pool.apply(fx.square, [3]), 9);
      // An argument that cannot travel throws at the call, synchronously.
      assert.throws(
        () => pool.applyAsync(fx.add, [(() => 1) as never, 2]),
        (e: Error) => e.name === "DataCloneError",
      );
      await assert.rejects(
        pool.apply(fx.add, [(() => 1) as never, 2]),
        (e: Error) => e.name === "DataCloneError",
      );
    });
  },
);

bothPools(
  "A worker that dies mid-task fails exactly that task with WorkerDiedError and is replaced",
  async (P) => {
    // A process is killed by a signal; a thread by an error nobody catches (it cannot SIGKILL
    // the process it shares), which ends it with exit code 1.
    const [crash, crashCode] = P === Pool ? [fx.killsItself, -9] : [fx.crashesLater, 1];
    await withPool(P, 2, async (pool) => {
      await pool.map(fx.square, [1, 2, 3, 4], { chunksize: 1 }); // both workers have started
      const before = new Set(workersOf(P).map((w) => w.id));
      assert.equal(before.size, 2);
      const others = Array.from({ length: 6 }, (_, i) => pool.applyAsync(fx.slowSquare, [i]));
      const exited = pool.applyAsync(fx.exits, [3]);
      const killed = pool.applyAsync(crash);
      const more = pool.map(fx.slowSquare, [10, 11, 12], { chunksize: 1 });
      more.catch(() => {}); // awaited below; a failed assertion before then must not make it unhandled
      const e1 = await exited.get(20_000).then(() => null, (e) => e);
      const e2 = await killed.get(20_000).then(() => null, (e) => e);
      assert.ok(e1 instanceof WorkerDiedError);
      assert.equal(e1.exitCode, 3);
      assert.ok(before.has(e1.pid), `${e1.pid} was not one of the workers ${[...before]}`);
      assert.ok(e2 instanceof WorkerDiedError);
      assert.equal(e2.exitCode, crashCode);
      assert.deepEqual(await Promise.all(others.map((r) => r.get(20_000))), [0, 1, 4, 9, 16, 25]);
      assert.deepEqual(await more, [100, 121, 144]);
      // Replaced: the pool still has (at most) two workers, none of them dead, and serves.
      const after = new Set(
        await pool.map(fx.slowSquare, [1, 2, 3, 4, 5, 6], { chunksize: 1 }).then(() =>
          pool.map(fx.pid, [1, 2, 3, 4], { chunksize: 1 })
        ),
      );
      assert.ok(after.size >= 1 && after.size <= 2);
      assert.ok(![...after].includes(e1.pid) && ![...after].includes(e2.pid));
    });
  },
);

bothPools(
  "A task past its timeout or abort signal fails with TimedOut or the reason, and the pool goes on",
  async (P) => {
    await withPool(P, 1, async (pool) => {
      const late = await pool.apply(fx.sleeps, [30_000], { timeout: 100 }).then(() => null, (e) => e);
      assert.ok(late instanceof Deno.errors.TimedOut, String(late));
      const ac = new AbortController();
      const aborted = pool.apply(fx.sleeps, [30_000], { signal: ac.signal });
      setTimeout(() => ac.abort(new Error("no longer needed")), 50);
      await assert.rejects(aborted, /no longer needed/);
      assert.equal(await pool.apply(fx.sleeps, [10], { timeout: 20_000 }), 10);
      assert.equal(await pool.apply(fx.square, [12]), 144);
      // Not ready until the test says so (a task of 300 ms could be done by then on a slow machine).
      using release = new Event();
      const slow = pool.applyAsync(fx.squareOnceSet, [9, release]);
      await assert.rejects(slow.get(10), Deno.errors.TimedOut);
      assert.equal(slow.ready(), false);
      assert.throws(() => slow.successful(), /not ready/);
      release.set();
      assert.equal(await slow.get(20_000), 81);
    });
  },
);

bothPools(
  "imap streams lazily and in order; imapUnordered yields every result",
  async (P) => {
    await withPool(P, 2, async (pool) => {
      let pulled = 0;
      function* endless() {
        for (let i = 0;; i++) {
          pulled++;
          yield i;
        }
      }
      const got: number[] = [];
      for await (const r of pool.imap(fx.square, endless(), { chunksize: 3 })) {
        got.push(r);
        if (got.length === 20) break;
      }
      assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i * i));
      assert.ok(pulled < 100, `imap read ${pulled} items for 20 results`);

      const unordered: number[] = [];
      for await (const r of pool.imapUnordered(fx.slowSquare, [5, 4, 3, 2, 1, 0])) unordered.push(r);
      assert.deepEqual(unordered.sort((a, b) => a - b), [0, 1, 4, 9, 16, 25]);
    });
  },
);

bothPools(
  "imap reads no more of its input than its window while the first task still runs",
  async (P) => {
    // The first task waits for an event, the others are quick: an imap that counted only the
    // tasks running (not the results waiting behind the first) read the input as fast as the
    // second worker went (seen as 400 items read for 20 results, with both cores busy).
    using barrier = new Barrier(2);
    using event = new Event();
    const pool = new P({ processes: 2, initializer: fx.share, initargs: [{ barrier, event }], module });
    try {
      // Both workers run (they met at the barrier): the second is there to take the quick tasks.
      await pool.map(P === Pool ? fx.meetsToStart : fx.threadMeetsToStart, [0, 1], { chunksize: 1 });
      let pulled = 0;
      // Not endless: an unbounded imap must fail this test, not hang it.
      const many = function* () {
        for (let i = 0; i < 100_000; i++) {
          pulled++;
          yield i;
        }
      };
      const it = pool.imap(fx.squareZeroLast, many());
      const first = it.next();
      // At most AHEAD windows of 2 * processes + 1 chunks. Unbounded, the second worker takes
      // hundreds of tasks meanwhile: a pause can only miss that, never fail a bounded imap.
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(pulled <= AHEAD * 5, `imap read ${pulled} items while its first task ran`);
      event.set();
      assert.deepEqual(await first, { done: false, value: 0 });
      const next = [];
      for (let i = 0; i < 10; i++) next.push((await it.next()).value);
      assert.deepEqual(next, Array.from({ length: 10 }, (_, i) => (i + 1) ** 2));
      await it.return?.();
    } finally {
      await pool.terminate();
    }
  },
);

bothPools(
  "An input that throws part-way: map rejects with it, imap yields what came before then throws it",
  async (P) => {
    await withPool(P, 2, async (pool) => {
      function* breaks() {
        yield 1;
        yield 2;
        throw new Error("input broke");
      }
      await assert.rejects(pool.map(fx.square, breaks()), /input broke/);
      const got: number[] = [];
      await assert.rejects(async () => {
        for await (const r of pool.imap(fx.square, breaks())) got.push(r);
      }, /input broke/);
      assert.deepEqual(got, [1, 4]);
      assert.equal(await pool.apply(fx.square, [5]), 25);
    });
  },
);

bothPools(
  "Pool initializer runs in every worker; maxTasksPerChild replaces workers",
  async (P) => {
    const pool = new P({ processes: 2, initializer: fx.setGreeting, initargs: ["hi"], module });
    try {
      assert.deepEqual(await pool.map(fx.getGreeting, [1, 2, 3, 4], { chunksize: 1 }), [
        "hi",
        "hi",
        "hi",
        "hi",
      ]);
    } finally {
      await pool.terminate();
    }
    await withPool(P, { processes: 1, maxTasksPerChild: 1 }, async (pool) => {
      const pids = [];
      for (let i = 0; i < 3; i++) pids.push(await pool.apply(fx.pid));
      assert.equal(new Set(pids).size, 3);
    });
  },
);

bothPools(
  "A failing initializer fails the tasks with its error instead of respawning forever",
  async (P) => {
    const pool = new P({ processes: 1, initializer: fx.initializerThrows, module });
    try {
      await assert.rejects(
        pool.apply(fx.square, [2]),
        /a pool worker could not start: initializer failed on purpose/,
      );
      await assert.rejects(pool.apply(fx.square, [3]), /could not start/);
    } finally {
      await pool.terminate();
    }
  },
);

bothPools(
  "Pool refuses bad input and misuse with the right errors",
  async (P) => {
    assert.throws(() => new P(0), RangeError);
    assert.throws(() => new P(-2), RangeError);
    assert.throws(() => new P({ processes: 1.5 }), RangeError);
    assert.throws(() => new P({ initializer: 5 as never }), TypeError);
    assert.throws(() => new P({ maxTasksPerChild: 0 }), RangeError);
    const pool = new P({ processes: 1, module });
    try {
      await assert.rejects(pool.join(), /close\(\) or terminate\(\) it first/);
      // Methods that return a promise reject; the others throw at the call.
      await assert.rejects(pool.map(fx.square, [1], { chunksize: 0 }), RangeError);
      assert.throws(() => pool.imap(fx.square, [1], { chunksize: -1 }), RangeError);
      assert.throws(() => pool.mapAsync(fx.square, [1], { chunksize: 1.5 }), RangeError);
      pool.close();
      await assert.rejects(pool.apply(fx.square, [1]), /pool is closed/);
      await assert.rejects(pool.map(fx.square, [1]), /pool is closed/);
      assert.throws(() => pool.applyAsync(fx.square, [1]), /pool is closed/);
      await pool.join();
    } finally {
      await pool.terminate();
    }
  },
);

bothPools(
  "Pool.terminate() rejects every pending result; close() lets submitted work finish",
  async (P) => {
    const pool = new P({ processes: 1, module });
    const pending = [pool.applyAsync(fx.sleeps, [30_000]), pool.applyAsync(fx.square, [2])];
    await new Promise((r) => setTimeout(r, 200));
    await pool.terminate();
    for (const r of pending) await assert.rejects(r.get(1000), /pool was terminated/);

    const pool2 = new P({ processes: 2, module });
    const results = pool2.mapAsync(fx.slowSquare, [1, 2, 3]);
    pool2.close();
    await pool2.join();
    assert.deepEqual(await results.get(0), [1, 4, 9]);

    // `await using` closes, then joins: submitted work finishes, then the workers are gone.
    let later: AsyncResult<number[]>;
    let workers: number[];
    {
      await using pool3 = new P({ processes: 2, module });
      workers = await pool3.map(fx.pid, [1, 2, 3, 4], { chunksize: 1 });
      later = pool3.mapAsync(fx.slowSquare, [5, 6]);
    }
    assert.deepEqual(await later.get(0), [25, 36]);
    assert.ok(!workers.some((id) => isWorkerRunning(P, id)));
  },
);

Deno.test({
  name: "A program that never closes its pool still exits and leaves no worker",
  ...SPAWNS,
  async fn() {
    const out = await runProgram(new URL("./fixtures/unclosed_pool_program.ts", import.meta.url));
    assert.equal(out.code, 0, out.stderr);
    const { result, workers } = JSON.parse(out.stdout);
    assert.equal(result, 42);
    assert.ok(workers.length === 4);
    assert.ok(await waitUntil(() => !workers.some(isRunning), 10_000), "a pool worker outlived its program");
  },
});

Deno.test({
  name:
    "A child whose module starts a pool at top level fails with advice instead of starting processes forever",
  ...SPAWNS,
  async fn() {
    const out = await runProgram(new URL("./fixtures/unclosed_pool_program.ts", import.meta.url), {
      env: { MP_TEST_UNGUARDED: "1" },
    });
    assert.equal(out.code, 1);
    assert.match(
      out.stderr,
      /a pool worker could not start: Cannot start PoolWorker-\d+:1: this child process is still importing .*unclosed_pool_program\.ts.*if \(import\.meta\.main\)/,
    );
  },
});

bothPools(
  "An imap left unfinished, or failing on an input that cannot travel, does not stop close() and join()",
  async (P) => {
    const pool = new P({ processes: 2, module });
    function* endless() {
      for (let i = 0;; i++) yield i;
    }
    try {
      const it = pool.imap(fx.square, endless());
      assert.deepEqual(await it.next(), { done: false, value: 0 });
      const bad = pool.imap(fx.square, [1, (() => 2) as unknown as number]);
      await assert.rejects(bad.next(), (e: Error) => e.name === "DataCloneError");
      pool.close();
      const joined = await Promise.race([
        pool.join().then(() => true),
        new Promise((r) => setTimeout(() => r(false), 10_000)),
      ]);
      assert.equal(joined, true, "join() hung");
    } finally {
      await pool.terminate();
    }
  },
);

bothPools(
  "Concurrent next() calls on an imap each get their own result, in order",
  async (P) => {
    await withPool(P, 2, async (pool) => {
      const it = pool.imap(fx.square, [1, 2, 3, 4, 5, 6]);
      const steps = await Promise.all(Array.from({ length: 7 }, () => it.next()));
      assert.deepEqual(steps.map((s) => s.done ? "done" : s.value), [1, 4, 9, 16, 25, 36, "done"]);
    });
  },
);

bothPools(
  "terminate() while a map is still reading its input rejects that map instead of leaving it pending",
  async (P) => {
    const pool = new P({ processes: 1, module });
    async function* slowInput() {
      yield 1;
      await new Promise((r) => setTimeout(r, 300));
      yield 2;
    }
    // The rejection handler is attached at once: on a loaded machine the input may end (and the
    // map reject) while terminate() is still being awaited.
    const rejected = assert.rejects(pool.map(fx.square, slowInput()), /pool was terminated/);
    await new Promise((r) => setTimeout(r, 50));
    await pool.terminate();
    await rejected;
  },
);

bothPools(
  "After close(), an imap still being read keeps running on workers that retire after each task",
  async (P) => {
    const pool = new P({ processes: 1, maxTasksPerChild: 1, module });
    try {
      const it = pool.imap(fx.square, [1, 2, 3, 4, 5]);
      const first = await it.next();
      pool.close();
      const rest: number[] = [];
      for await (const r of it) rest.push(r);
      assert.deepEqual([first.value, ...rest], [1, 4, 9, 16, 25]);
      await pool.join();
    } finally {
      await pool.terminate();
    }
  },
);

bothPools(
  "A worker killed while starting is replaced; the pool serves",
  async (P) => {
    await withPool(P, 2, async (pool) => {
      const starting = workersOf(P);
      assert.equal(starting.length, 2);
      starting[0].kill();
      assert.deepEqual(await pool.map(fx.square, [1, 2, 3], { chunksize: 1 }), [1, 4, 9]);
      assert.equal(await pool.apply(fx.square, [4]), 16);
    });
  },
);

bothPools(
  "N long tasks on a Pool(N) run at once, in N distinct workers",
  async (P) => {
    // Each task waits at a Barrier(3) until all three have arrived: only three workers running
    // them at the same time can finish (else the barrier breaks after 20 s and the map fails).
    using barrier = new Barrier(3);
    const pool = new P({ processes: 3, initializer: fx.share, initargs: [{ barrier }], module });
    try {
      const pids = await pool.map(P === Pool ? fx.meet : fx.threadMeet, [0, 1, 2], { chunksize: 1 });
      assert.equal(new Set(pids).size, 3);
    } finally {
      await pool.terminate();
    }
  },
);

bothPools(
  "An idle worker takes a task queued behind a busy one",
  async (P) => {
    // Functions of their own per pool class: the scheduler's estimates are per function.
    const [waitsForEvent, setsEvent] = P === Pool
      ? [fx.waitsForEvent, fx.setsEvent]
      : [fx.threadWaitsForEvent, fx.threadSetsEvent];
    // The first task waits for an event that only the second one sets: the second must not wait
    // behind the first on the same worker while the other worker is idle or starting.
    using event = new Event();
    const pool = new P({ processes: 2, initializer: fx.share, initargs: [{ event }], module });
    try {
      const waiting = pool.applyAsync(waitsForEvent);
      const setter = pool.applyAsync(setsEvent);
      assert.equal(await waiting.get(30_000), true, "the second task ran only after the first gave up");
      assert.equal(typeof await setter.get(30_000), "number");
      // Warm now, and with short tasks known: the same holds.
      event.clear();
      await pool.map(fx.square, Array.from({ length: 100 }, (_, i) => i), { chunksize: 1 });
      const again = pool.applyAsync(waitsForEvent);
      const setter2 = pool.applyAsync(setsEvent);
      assert.equal(await again.get(30_000), true);
      await setter2.get(30_000);
    } finally {
      await pool.terminate();
    }
  },
);

bothPools(
  "200 000 one-item tasks all complete, through map and applyAsync",
  async (P) => {
    await withPool(P, 2, async (pool) => {
      const xs = Array.from({ length: 200_000 }, (_, i) => i);
      const squares = await pool.map(fx.square, xs, { chunksize: 1 });
      assert.equal(squares.length, xs.length);
      assert.ok(squares.every((v, i) => v === i * i));
      const rs = xs.slice(0, 20_000).map((x) => pool.applyAsync(fx.add, [x, 1]));
      let sum = 0;
      for (const r of rs) sum += await r.get();
      assert.equal(sum, (20_000 * 20_001) / 2);
    });
  },
);

bothPools(
  "A queued task's timeout counts from when it starts running, not from when it was submitted",
  async (P) => {
    await withPool(P, 1, async (pool) => {
      const first = pool.applyAsync(fx.sleeps, [1500]);
      // Submitted now, it waits ~1.5 s for the only worker; its 1 s only starts after that.
      assert.equal(await pool.apply(fx.square, [5], { timeout: 1000 }), 25);
      assert.equal(await first.get(20_000), 1500);
    });
  },
);

bothPools(
  "Timeouts follow the one rule: Infinity waits, a timeout that is not a number is a TypeError",
  async (P) => {
    await withPool(P, 1, async (pool) => {
      const r = pool.applyAsync(fx.sleeps, [50], { timeout: Infinity });
      assert.equal(await r.get(Infinity), 50);
      await r.wait(Infinity);
      await assert.rejects(r.get("100" as never), TypeError);
      await assert.rejects(r.wait(Number.NaN), TypeError);
      assert.throws(() => pool.applyAsync(fx.square, [1], { timeout: "5" as never }), TypeError);
      // A deadline beyond what setTimeout can hold (2^31 ms) does not fire at once.
      assert.equal(await pool.apply(fx.sleeps, [20], { timeout: 2 ** 32 }), 20);
      const pending = pool.applyAsync(fx.sleeps, [300]);
      await assert.rejects(pending.get(0), Deno.errors.TimedOut);
      assert.equal(await pending.get(20_000), 300);
    });
  },
);

bothPools(
  "imap and imapUnordered yield every other task's result after a task fails or its worker dies",
  async (P) => {
    await withPool(P, 2, async (pool) => {
      const drain = async (it: AsyncIterableIterator<number>) => {
        const got: (number | string)[] = [];
        for (let i = 0; i < 20; i++) { // bounded: 8 items, 8 results or errors, then done
          try {
            const step = await it.next();
            if (step.done) break;
            got.push(step.value);
          } catch (e) {
            got.push(e instanceof WorkerDiedError ? "died" : (e as Error).message);
          }
        }
        return got;
      };
      const xs = [1, 2, 3, 4, 5, 6, 7, 8];
      assert.deepEqual(await drain(pool.imap(fx.diesOn3, xs)), [10, 20, "died", 40, 50, 60, 70, 80]);
      const unordered = await drain(pool.imapUnordered(fx.failsOn3, xs));
      assert.deepEqual(
        unordered.sort((a, b) => String(a).localeCompare(String(b))),
        [1, 2, 4, 5, 6, 7, 8, "three is not allowed"],
      );
    });
  },
);

Deno.test({
  name: "A Pool whose constructor fails part-way stops the workers it started and leaves no process",
  ...SPAWNS,
  async fn() {
    let calls = 0;
    let started: number[] = [];
    poolTestHooks.beforeSpawn = () => {
      if (++calls < 3) return;
      started = activeChildren().filter((p) => p.name.startsWith("PoolWorker")).map((p) => p.pid!);
      throw new Error("simulated: Resource temporarily unavailable (os error 11)");
    };
    try {
      assert.throws(
        () => new Pool({ processes: 4, module }),
        /Cannot start the pool: started 2 of 4 worker processes, then: simulated: Resource temporarily/,
      );
    } finally {
      poolTestHooks.beforeSpawn = undefined;
    }
    assert.equal(started.length, 2);
    assert.ok(await waitUntil(() => !started.some(isRunning), 10_000), "a started worker still runs");
    assert.ok(
      await waitUntil(() => !activeChildren().some((p) => p.name.startsWith("PoolWorker")), 10_000),
      "the pool started new workers after its constructor failed",
    );
  },
});

Deno.test({
  name:
    "A ThreadPool is a Pool whose tasks run in its own distinct threads of this process, which end by themselves after close()",
  ...SPAWNS,
  async fn() {
    // A Barrier(3) met by three tasks at once: they run in three workers at the same time.
    using barrier = new Barrier(3);
    const pool = new ThreadPool({ processes: 3, initializer: fx.share, initargs: [{ barrier }], module });
    try {
      assert.ok(pool instanceof Pool);
      const idents = await pool.map(fx.meetInThreads, [0, 1, 2], { chunksize: 1 });
      assert.equal(new Set(idents).size, 3);
      const threads = activeThreads().filter((t) => t.name.startsWith("ThreadPoolWorker"));
      assert.deepEqual(idents.toSorted(), threads.map((t) => t.ident).toSorted());
      assert.ok(!idents.includes(currentThread().ident));
      assert.deepEqual(
        await pool.map(fx.threadIdent, [1, 2, 3]).then((xs) => xs.every((x) => idents.includes(x))),
        true,
      );
      assert.equal(activeChildren().filter((p) => p.name.startsWith("PoolWorker")).length, 0);
      // close() lets each idle thread end by itself, through its exit hooks (not terminate()).
      pool.close();
      await pool.join();
      assert.deepEqual(threads.map((t) => t.exitCode), [0, 0, 0]);
    } finally {
      await pool.terminate();
    }
  },
});

Deno.test({
  name: "A Lock passed to a ThreadPool in initargs, held by a task, excludes a process",
  ...SPAWNS,
  async fn() {
    using lock = new Lock();
    using holding = new Event();
    using event = new Event();
    using q = new Queue();
    const pool = new ThreadPool({
      processes: 1,
      initializer: fx.share,
      initargs: [{ lock, holding, event }],
      module,
    });
    let child: Process | undefined;
    try {
      const held = pool.applyAsync(fx.holdsSharedLock);
      assert.equal(await holding.wait(30_000), true);
      child = new Process({
        target: triesLock,
        args: [lock, q],
        module: new URL("./fixtures/thread_fixtures.ts", import.meta.url),
      });
      await child.start();
      assert.equal(await q.get({ timeout: 30_000 }), false);
      await child.join(30_000);
      event.set();
      assert.equal(typeof await held.get(30_000), "number");
      assert.equal(await lock.acquire({ timeout: 5000 }), true);
      lock.release();
    } finally {
      event.set();
      await cleanup(child);
      await pool.terminate();
    }
  },
});

Deno.test({
  name: "A Pool prints its size and state: running, then closed",
  ...SPAWNS,
  async fn() {
    const pool = new Pool({ processes: 1, module });
    try {
      assert.equal(Deno.inspect(pool), "Pool(processes=1, running)");
      pool.close();
      assert.equal(Deno.inspect(pool), "Pool(processes=1, closed)");
      await pool.join();
    } finally {
      await pool.terminate();
    }
  },
});
