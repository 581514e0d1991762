import assert from "node:assert/strict";
import {
  Barrier,
  BoundedSemaphore,
  BrokenBarrierError,
  Condition,
  Event,
  Lock,
  Process,
  RLock,
  Semaphore,
} from "../mod.ts";
import { deserialize, serialize } from "../src/_reduction.ts";
import { raceTimeout, TIMED_OUT } from "../src/_wait.ts";
import { _resourceNames } from "../src/_sync_block.ts";
import * as fx from "./fixtures/sync_fixtures.ts";
import {
  cleanup,
  existingShmFiles,
  runProgram,
  shmFilesOf,
  SPAWNS,
  startProgram,
  tempFile,
  waitUntil,
} from "./fixtures/helpers.ts";

const module = new URL("./fixtures/sync_fixtures.ts", import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Our sync primitives' names in /dev/shm made by process `pid`. */
const shmEntriesOf = (pid: number) => shmFilesOf(pid, "-y");

/** The /dev/shm files behind `obj` that exist now. */
const filesOf = (obj: object) => existingShmFiles(_resourceNames(obj));

/** Every primitive made in `fn` is closed afterwards, and none of their names stays in /dev/shm. */
async function scoped(fn: (keep: <T extends { close(): void }>(x: T) => T) => Promise<void>): Promise<void> {
  const made: { close(): void }[] = [];
  try {
    await fn((x) => (made.push(x), x));
  } finally {
    for (const x of made) x.close();
  }
  assert.deepEqual(made.flatMap(filesOf), []);
}

// ---------------------------------------------------------------------------------------------
// In one process

Deno.test("Lock.acquire() takes a free lock; block:false and a timeout give false while it is held", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    assert.equal(lock.locked(), false);
    assert.equal(await lock.acquire(), true);
    assert.equal(lock.locked(), true);
    assert.equal(await lock.acquire({ block: false }), false);
    assert.equal(await lock.acquire({ block: false, timeout: 1000 }), false);
    assert.equal(await lock.acquire({ timeout: 0 }), false);
    const t0 = performance.now();
    assert.equal(await lock.acquire({ timeout: 80 }), false);
    assert.ok(performance.now() - t0 >= 75, "waited the timeout");
    assert.equal(lock.acquireSync({ timeout: 30 }), false);
    assert.equal(lock.acquireSync({ block: false }), false);
    lock.release();
    assert.equal(lock.locked(), false);
    assert.equal(lock.acquireSync(), true);
    lock.release();
  }));

Deno.test("Lock.release() throws RangeError when the lock is not held", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    assert.throws(() => lock.release(), {
      name: "RangeError",
      message: "Cannot release lock: it is not held",
    });
    await lock.acquire();
    lock.release();
    assert.throws(() => lock.release(), RangeError);
  }));

Deno.test("Lock.acquire() wakes when another task releases, in order of release", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    await lock.acquire();
    const order: number[] = [];
    const waiters = [1, 2, 3].map((i) => lock.acquire().then(() => order.push(i)));
    await sleep(20);
    assert.deepEqual(order, []);
    for (let i = 0; i < 3; i++) {
      lock.release();
      // Bounded, and asserted: a release before the waiter took the lock would throw RangeError.
      assert.ok(await waitUntil(() => order.length === i + 1, 10_000), `waiter ${i + 1} took the lock`);
    }
    await Promise.all(waiters);
    assert.equal(order.length, 3);
    lock.release();
  }));

Deno.test("An aborted Lock.acquire() rejects with the signal's reason and takes nothing", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    await lock.acquire();
    const reason = new Error("stop waiting");
    const ac = new AbortController();
    const aborted = lock.acquire({ signal: ac.signal });
    const other = lock.acquire({ timeout: 5000 });
    await sleep(20);
    ac.abort(reason);
    await assert.rejects(aborted, (e) => e === reason);
    lock.release();
    // The release went to the other waiter, not to the aborted one.
    assert.equal(await other, true);
    assert.equal(lock.locked(), true);
    lock.release();
    // An already-aborted signal rejects before anything is taken.
    await assert.rejects(lock.acquire({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(lock.locked(), false);
  }));

Deno.test("A Lock.acquire() that timed out does not swallow a later release", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    await lock.acquire();
    const patient = lock.acquire({ timeout: 5000 });
    assert.equal(await lock.acquire({ timeout: 60 }), false);
    lock.release();
    assert.equal(await patient, true);
    lock.release();
  }));

Deno.test("Lock.hold() releases on dispose and rejects with TimedOut when the timeout passes", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    {
      using _ = await lock.hold();
      assert.equal(lock.locked(), true);
      await assert.rejects(lock.hold({ timeout: 30 }), Deno.errors.TimedOut);
      await assert.rejects(lock.hold({ block: false }), Deno.errors.TimedOut);
    }
    assert.equal(lock.locked(), false);
    {
      await using _ = await lock.hold();
      assert.equal(lock.locked(), true);
    }
    assert.equal(lock.locked(), false);
  }));

Deno.test("Lock.close() is idempotent, removes the names, and later use throws BadResource", async () => {
  const lock = new Lock();
  assert.equal(filesOf(lock).length, 2, "a semaphore and a shared block");
  lock.close();
  lock.close();
  assert.deepEqual(filesOf(lock), []);
  await assert.rejects(lock.acquire(), Deno.errors.BadResource);
  assert.throws(() => lock.release(), Deno.errors.BadResource);
  let outer: Lock;
  {
    using scopedLock = new Lock();
    outer = scopedLock;
    await scopedLock.acquire();
    assert.equal(filesOf(outer).length, 2);
  }
  assert.deepEqual(filesOf(outer), []);
});

/** Settles as `p` does, or rejects after `ms`: a wait that should not hang cannot hang the test. */
async function within<T>(p: Promise<T>, ms = 5000): Promise<T> {
  const r = await raceTimeout(p, ms);
  if (r === TIMED_OUT) throw new Error(`Still waiting after ${ms} ms`);
  return r;
}

// deno-lint-ignore no-explicit-any
const anyArg = (x: unknown): any => x;

Deno.test("acquire() of Lock, RLock and Semaphore refuses a non-object, a non-number timeout and NaN with TypeError at the call", () =>
  scoped(async (keep) => {
    for (const make of [() => new Lock(), () => new RLock(), () => new Semaphore(1)]) {
      const held = keep(make());
      const free = keep(make());
      assert.equal(await held.acquire(), true);
      for (
        const bad of [5, "100", null, { timeout: "100" }, { timeout: NaN }, { block: "no" }, { signal: {} }]
      ) {
        await assert.rejects(
          within(held.acquire(anyArg(bad))),
          TypeError,
          `${held.constructor.name}.acquire(${JSON.stringify(bad)})`,
        );
        await assert.rejects(within(held.hold(anyArg(bad))), TypeError);
        // On a free one the sync call would take it at once: it must refuse first.
        assert.throws(
          () => free.acquireSync(anyArg(bad)),
          TypeError,
          `${free.constructor.name}.acquireSync(${JSON.stringify(bad)})`,
        );
      }
      if (!(free instanceof Semaphore)) assert.equal(free.locked(), false);
      else assert.equal(free.getValue(), 1);
      await assert.rejects(
        held.acquire(anyArg(5)),
        /Invalid options for \w+\.acquire\(\): expected an object/,
      );
      held.release();
    }
  }));

Deno.test("A lock wait with timeout Infinity waits (until aborted), 0 or less does not wait", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    assert.equal(await lock.acquire({ timeout: Infinity }), true);
    assert.equal(await lock.acquire({ timeout: 0 }), false);
    assert.equal(await lock.acquire({ timeout: -5 }), false);
    assert.equal(lock.acquireSync({ timeout: -Infinity }), false);
    const stop = new AbortController();
    const waiting = lock.acquire({ timeout: Infinity, signal: stop.signal });
    const state = await raceTimeout(waiting, 120);
    assert.equal(state, TIMED_OUT, "a wait with timeout Infinity is still waiting after 120 ms");
    stop.abort(new Error("stop"));
    await assert.rejects(within(waiting), /stop/);
    lock.release();
    assert.equal(lock.acquireSync({ timeout: Infinity }), true);
    lock.release();
  }));

Deno.test("Event.wait() refuses a non-number timeout and NaN with TypeError; Infinity waits, 0 does not", () =>
  scoped(async (keep) => {
    const ev = keep(new Event());
    for (const bad of ["100", NaN, null, {}]) {
      await assert.rejects(within(ev.wait(anyArg(bad))), TypeError, `Event.wait(${String(bad)})`);
    }
    await assert.rejects(within(ev.wait(10, anyArg(5))), TypeError);
    assert.equal(await ev.wait(0), false);
    assert.equal(await ev.wait(-1), false);
    const waiting = ev.wait(Infinity);
    assert.equal(await raceTimeout(waiting, 120), TIMED_OUT, "a wait with timeout Infinity is still waiting");
    ev.set();
    assert.equal(await within(waiting), true);
  }));

Deno.test("Condition.wait(), waitFor() and notify() refuse invalid arguments with TypeError/RangeError and keep the lock", () =>
  scoped(async (keep) => {
    const cond = keep(new Condition());
    await cond.acquire();
    for (const bad of ["100", NaN, {}]) {
      await assert.rejects(within(cond.wait(anyArg(bad))), TypeError, `Condition.wait(${String(bad)})`);
      await assert.rejects(within(cond.waitFor(() => false, anyArg(bad))), TypeError);
    }
    await assert.rejects(within(cond.waitFor(anyArg(5))), TypeError);
    assert.equal(cond.lock.locked(), true, "the lock is still held after a refused wait");
    assert.equal(await within(cond.wait(0)), false);
    assert.equal(await within(cond.waitFor(() => false, 0)), false);
    assert.equal(await within(cond.waitFor(() => 7, Infinity)), true);
    for (const bad of [NaN, "2", null]) {
      assert.throws(() => cond.notify(anyArg(bad)), TypeError, `notify(${bad})`);
    }
    for (const bad of [-1, 1.5, -Infinity]) {
      assert.throws(() => cond.notify(bad), RangeError, `notify(${bad})`);
    }
    cond.notify(0);
    cond.notify(Infinity);
    cond.release();
  }));

Deno.test("Barrier refuses a non-number timeout and NaN with TypeError, in the constructor and in wait(), without breaking", () =>
  scoped(async (keep) => {
    for (const bad of ["5", NaN, {}]) {
      assert.throws(
        () => new Barrier(2, { timeout: anyArg(bad) }),
        TypeError,
        `new Barrier(2, { timeout: ${bad} })`,
      );
    }
    const barrier = keep(new Barrier(2));
    for (const bad of ["5", NaN, {}]) {
      await assert.rejects(within(barrier.wait(anyArg(bad))), TypeError, `Barrier.wait(${String(bad)})`);
    }
    assert.equal(barrier.broken, false);
    assert.equal(barrier.nWaiting, 0);
    const one = keep(new Barrier(1, { timeout: Infinity }));
    assert.equal(await within(one.wait()), 0);
    assert.equal(await within(one.wait(Infinity)), 0);
  }));

Deno.test("RLock is re-entrant in its process and released after as many releases", () =>
  scoped(async (keep) => {
    const lock = keep(new RLock());
    assert.equal(await lock.acquire(), true);
    assert.equal(await lock.acquire({ block: false }), true);
    assert.equal(lock.acquireSync(), true);
    lock.release();
    lock.release();
    assert.equal(lock.locked(), true);
    lock.release();
    assert.equal(lock.locked(), false);
    assert.throws(() => lock.release(), RangeError);
    {
      using _ = await lock.hold();
      using __ = await lock.hold();
      assert.equal(lock.locked(), true);
    }
    assert.equal(lock.locked(), false);
  }));

Deno.test("Semaphore counts units; getValue() tells how many are left", () =>
  scoped(async (keep) => {
    const sem = keep(new Semaphore(2));
    assert.equal(sem.getValue(), 2);
    assert.equal(await sem.acquire(), true);
    assert.equal(sem.acquireSync(), true);
    assert.equal(sem.getValue(), 0);
    assert.equal(await sem.acquire({ timeout: 30 }), false);
    const waiting = sem.acquire({ timeout: 5000 });
    sem.release();
    assert.equal(await waiting, true);
    assert.equal(sem.getValue(), 0);
    sem.release();
    sem.release();
    sem.release(); // a plain Semaphore may go above its initial value
    assert.equal(sem.getValue(), 3);
    assert.equal(keep(new Semaphore()).getValue(), 1);
    assert.equal(keep(new Semaphore(0)).getValue(), 0);
    assert.throws(() => new Semaphore(-1), RangeError);
    assert.throws(() => new Semaphore(1.5), TypeError);
    {
      using _ = await sem.hold();
      assert.equal(sem.getValue(), 2);
    }
    assert.equal(sem.getValue(), 3);
  }));

Deno.test("BoundedSemaphore.release() above the initial value throws RangeError and changes nothing", () =>
  scoped(async (keep) => {
    const sem = keep(new BoundedSemaphore(2));
    assert.ok(sem instanceof Semaphore);
    assert.throws(() => sem.release(), RangeError);
    await sem.acquire();
    sem.release();
    assert.throws(() => sem.release(), /initial value 2/);
    assert.equal(sem.getValue(), 2);
  }));

Deno.test("Event.wait() resolves true once set, false after the timeout", () =>
  scoped(async (keep) => {
    const ev = keep(new Event());
    assert.equal(ev.isSet(), false);
    assert.equal(await ev.wait(30), false);
    assert.equal(await ev.wait(0), false);
    const waiters = [ev.wait(5000), ev.wait(5000), ev.wait()];
    await sleep(10);
    ev.set();
    assert.deepEqual(await Promise.all(waiters), [true, true, true]);
    assert.equal(ev.isSet(), true);
    assert.equal(await ev.wait(), true);
    ev.clear();
    assert.equal(ev.isSet(), false);
    assert.equal(await ev.wait(20), false);
    const ac = new AbortController();
    const aborted = ev.wait(undefined, { signal: ac.signal });
    ac.abort();
    await assert.rejects(aborted, { name: "AbortError" });
  }));

Deno.test("Condition.wait() and notify() require the lock, else Error", () =>
  scoped(async (keep) => {
    const cond = keep(new Condition());
    await assert.rejects(cond.wait(10), (e: Error) =>
      e.constructor === Error && /lock is not held/.test(e.message));
    assert.throws(() =>
      cond.notify(), /lock is not held/);
    assert.throws(() => cond.notifyAll(), Error);
    await cond.acquire();
    assert.equal(await cond.wait(30), false, "nobody notified");
    assert.equal(cond.lock.locked(), true, "the lock is held again after wait()");
    cond.notify(); // nobody waits: nothing happens
    cond.release();
  }));

Deno.test("Condition.notify(n) wakes n waiters; a timed-out waiter does not take a notification", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    const cond = keep(new Condition(lock));
    const woke: string[] = [];
    let entered = 0;
    const waiter = (id: string, timeout?: number) =>
      (async () => {
        await cond.acquire();
        try {
          entered++; // in the same turn as wait() releases the lock: whoever takes it next sees us waiting
          const r = await cond.wait(timeout);
          woke.push(`${id}:${r}`);
          assert.equal(lock.locked(), true);
        } finally {
          cond.release();
        }
      })();
    const all = [waiter("a"), waiter("b"), waiter("c")];
    const quitter = waiter("q", 40);
    assert.ok(await waitUntil(() => entered === 4 && woke.length === 1, 10_000), "all wait, q timed out");
    assert.deepEqual(woke, ["q:false"]);
    {
      using _ = await cond.hold();
      cond.notify(2);
    }
    assert.ok(await waitUntil(() => woke.length === 3, 10_000), "two waiters woke");
    await sleep(30);
    assert.equal(woke.length, 3, "exactly two more woke");
    {
      using _ = await cond.hold();
      cond.notifyAll();
    }
    await Promise.all([...all, quitter]);
    assert.deepEqual(woke.slice(1).map((w) => w.split(":")[1]), ["true", "true", "true"]);
  }));

Deno.test("An aborted Condition.wait() rejects holding the lock again, and passes its notification on", () =>
  scoped(async (keep) => {
    const cond = keep(new Condition(keep(new Lock())));
    const ac = new AbortController();
    const results: string[] = [];
    let entered = 0;
    const aborted = (async () => {
      await cond.acquire();
      try {
        entered++; // in the same turn as wait() releases the lock
        await cond.wait(undefined, { signal: ac.signal });
        results.push("aborted:notified");
      } catch (e) {
        results.push(`aborted:${(e as Error).name}:${cond.lock.locked()}`);
      } finally {
        cond.release();
      }
    })();
    assert.ok(await waitUntil(() => entered === 1, 10_000), "the first waiter waits");
    const patient = (async () => {
      await cond.acquire();
      try {
        entered++;
        results.push(`patient:${await cond.wait(10_000)}`);
      } finally {
        cond.release();
      }
    })();
    assert.ok(await waitUntil(() => entered === 2, 10_000), "the second waiter waits");
    // Notify one (the oldest: the one about to abort), and abort it before it can run.
    await cond.acquire();
    cond.notify(1);
    ac.abort();
    cond.release();
    await Promise.all([aborted, patient]);
    assert.deepEqual(results.sort(), ["aborted:AbortError:true", "patient:true"]);
  }));

Deno.test("Condition.waitFor() returns when the predicate holds, false after the timeout", () =>
  scoped(async (keep) => {
    const cond = keep(new Condition(keep(new RLock())));
    let value = 0;
    const setter = (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(10);
        using _ = await cond.hold();
        value++;
        cond.notifyAll();
      }
    })();
    await cond.acquire();
    await cond.acquire(); // an RLock held twice is released completely while waiting
    assert.equal(await cond.waitFor(() => value === 3, 5000), true);
    assert.equal(await cond.waitFor(() => value === 4, 30), false);
    cond.release();
    cond.release();
    assert.equal(cond.lock.locked(), false);
    await setter;
  }));

Deno.test("Barrier gives each party a distinct index, runs the action once per pass, and is reusable", () =>
  scoped(async (keep) => {
    let actions = 0;
    const barrier = keep(new Barrier(3, { action: () => void actions++ }));
    assert.equal(barrier.parties, 3);
    for (let pass = 0; pass < 3; pass++) {
      const first = barrier.wait();
      await sleep(5);
      assert.equal(barrier.nWaiting, 1);
      const indices = await Promise.all([first, barrier.wait(), barrier.wait()]);
      assert.deepEqual(indices.sort(), [0, 1, 2]);
    }
    assert.equal(actions, 3);
    assert.equal(barrier.nWaiting, 0);
    assert.equal(barrier.broken, false);
  }));

Deno.test("Barrier.abort() rejects every waiter with BrokenBarrierError until reset()", () =>
  scoped(async (keep) => {
    const barrier = keep(new Barrier(3));
    // Handlers attached at once: both reject together, and one left unawaited would count as unhandled.
    const waiting = [barrier.wait(), barrier.wait()].map((w) => assert.rejects(w, BrokenBarrierError));
    await sleep(10);
    barrier.abort();
    await Promise.all(waiting);
    assert.equal(barrier.broken, true);
    await assert.rejects(barrier.wait(), BrokenBarrierError);
    barrier.reset();
    assert.equal(barrier.broken, false);
    assert.deepEqual((await Promise.all([barrier.wait(), barrier.wait(), barrier.wait()])).sort(), [0, 1, 2]);
  }));

Deno.test("A Barrier wait that times out breaks the barrier for every party", () =>
  scoped(async (keep) => {
    const barrier = keep(new Barrier(3, { timeout: 5000 }));
    const other = assert.rejects(barrier.wait(), BrokenBarrierError);
    await assert.rejects(barrier.wait(40), BrokenBarrierError);
    await other;
    assert.equal(barrier.broken, true);
    // reset() while parties wait breaks their wait too
    barrier.reset();
    const w = assert.rejects(barrier.wait(), BrokenBarrierError);
    await sleep(10);
    barrier.reset();
    await w;
    assert.equal(barrier.broken, false);
    // a throwing action breaks the barrier, and the error reaches the last party
    const failing = keep(
      new Barrier(2, {
        action: () => {
          throw new Error("action failed");
        },
      }),
    );
    const results = await Promise.allSettled([failing.wait(), failing.wait()]);
    const reasons = results.map((r) => r.status === "rejected" ? (r.reason as Error).message : "ok").sort();
    assert.deepEqual(reasons, ["Barrier is broken", "action failed"]);
  }));

Deno.test("Each primitive survives serialization as a handle on the same state", () =>
  scoped(async (keep) => {
    const lock = keep(new Lock());
    const sem = keep(new BoundedSemaphore(4));
    const ev = keep(new Event());
    const objs = {
      lock,
      sem,
      ev,
      rl: keep(new RLock()),
      cond: keep(new Condition()),
      b: keep(new Barrier(2)),
    };
    const copy = deserialize(serialize(objs)) as typeof objs;
    for (const [k, v] of Object.entries(copy)) {
      keep(v);
      assert.equal(v.constructor, objs[k as keyof typeof objs].constructor, k);
      assert.notEqual(v, objs[k as keyof typeof objs]);
    }
    await lock.acquire();
    assert.equal(copy.lock.locked(), true);
    copy.lock.release();
    assert.equal(lock.locked(), false);
    await copy.sem.acquire();
    assert.equal(sem.getValue(), 3);
    ev.set();
    assert.equal(copy.ev.isSet(), true);
    assert.deepEqual((await Promise.all([copy.b.wait(), objs.b.wait()])).sort(), [0, 1]);
  }));

// ---------------------------------------------------------------------------------------------
// Across processes

Deno.test({
  name: "Primitives passed to a child see the parent's state: locks held, units taken, events set",
  ...SPAWNS,
  fn: () =>
    scoped(async (keep) => {
      const lock = keep(new Lock());
      const rlock = keep(new RLock());
      const sem = keep(new Semaphore(2));
      const bsem = keep(new BoundedSemaphore(1));
      const event = keep(new Event());
      const done = keep(new Event());
      await lock.acquire();
      await rlock.acquire();
      await sem.acquire();
      const p = new Process({
        target: fx.checksSharedState,
        args: [lock, rlock, sem, bsem, event, done],
        module,
      });
      try {
        await p.start();
        assert.equal(await event.wait(10_000), true);
        assert.equal(sem.getValue(), 0, "the child took a unit");
        lock.release();
        rlock.release();
        done.set();
        await p.join(10_000);
        assert.equal(p.exitCode, 0);
        assert.equal(lock.locked(), false);
        assert.equal(rlock.locked(), false);
        assert.equal(sem.getValue(), 1, "the child gave its unit back");
      } finally {
        await cleanup(p);
      }
    }),
});

Deno.test({
  name: "A Lock gives two processes strict turns: no increment of a shared file is lost",
  ...SPAWNS,
  fn: () =>
    scoped(async (keep) => {
      using tmp = tempFile();
      Deno.writeTextFileSync(tmp.path, "0");
      const lock = keep(new Lock());
      const a = new Process({ target: fx.incrementsUnderLock, args: [lock, tmp.path, 150], module });
      const b = new Process({ target: fx.incrementsUnderLockSync, args: [lock, tmp.path, 150], module });
      try {
        await Promise.all([a.start(), b.start()]);
        await fx.incrementsUnderLock(lock, tmp.path, 150);
        await Promise.all([a.join(20_000), b.join(20_000)]);
        assert.deepEqual([a.exitCode, b.exitCode], [0, 0]);
        assert.equal(Deno.readTextFileSync(tmp.path), "450");
      } finally {
        await cleanup(a, b);
      }
    }),
});

Deno.test({
  name: "A Lock and a Semaphore closed right after start(), before it resolved, still reach the child",
  ...SPAWNS,
  fn: async () => {
    using tmp = tempFile();
    Deno.writeTextFileSync(tmp.path, "0");
    const lock = new Lock();
    const sem = new Semaphore(1);
    const names = [_resourceNames(lock), _resourceNames(sem)];
    let p: Process | undefined;
    let q: Process | undefined;
    try {
      p = new Process({ target: fx.incrementsUnderLock, args: [lock, tmp.path, 3], module });
      q = new Process({ target: fx.consumesAndExits, args: [sem], module });
      const started = [p.start(), q.start()];
      // Closed before the children opened them: their names stay until the children have.
      lock.close();
      sem.close();
      await Promise.all(started);
      // Both children have opened them (start() resolved): the names are gone now.
      assert.deepEqual(names.flatMap(existingShmFiles), []);
      await Promise.all([p.join(20_000), q.join(20_000)]);
      assert.deepEqual([p.exitCode, q.exitCode], [0, 0]);
      assert.equal(Deno.readTextFileSync(tmp.path), "3");
    } finally {
      lock.close();
      sem.close();
      await cleanup(p, q);
    }
    assert.deepEqual(names.flatMap(existingShmFiles), []);
  },
});

Deno.test({
  name: "A Lock closed right after a failed start() is removed once the child has failed",
  ...SPAWNS,
  fn: async () => {
    const lock = new Lock();
    const names = _resourceNames(lock);
    let p: Process | undefined;
    try {
      p = new Process({ target: function notExported(_: Lock) {}, args: [lock], module });
      const started = p.start();
      lock.close();
      await assert.rejects(started, /is not exported/);
      assert.deepEqual(existingShmFiles(names), []);
    } finally {
      lock.close();
      await cleanup(p);
    }
  },
});

Deno.test({
  name: "A Lock, RLock and Semaphore unit held by a process killed with SIGKILL are recovered by a waiter",
  ...SPAWNS,
  fn: () =>
    scoped(async (keep) => {
      const lock = keep(new Lock());
      const rlock = keep(new RLock());
      const sem = keep(new Semaphore(1));
      const holding = keep(new Event());
      const p = new Process({ target: fx.holdsAndHangs, args: [lock, rlock, sem, holding], module });
      try {
        await p.start();
        assert.equal(await holding.wait(10_000), true);
        assert.equal(await lock.acquire({ timeout: 100 }), false, "held by a live process");
        assert.equal(sem.getValue(), 0);
        p.kill();
        await p.join(5000);
        // A waiter sees the holder is gone after one slice (50 ms) and takes over; the bounds
        // are generous (no timing is asserted), a waiter that never recovers fails.
        assert.equal(await lock.acquire({ timeout: 10_000 }), true);
        assert.equal(rlock.acquireSync({ timeout: 10_000 }), true);
        assert.equal(await sem.acquire({ timeout: 10_000 }), true);
        lock.release();
        rlock.release();
        assert.equal(rlock.locked(), false, "the dead holder's two levels are gone");
        sem.release();
        assert.equal(sem.getValue(), 1, "the dead holder's unit came back exactly once");
      } finally {
        await cleanup(p);
      }
    }),
});

Deno.test({
  name: "A Semaphore unit taken by a process that exited normally stays consumed",
  ...SPAWNS,
  fn: () =>
    scoped(async (keep) => {
      const sem = keep(new Semaphore(1));
      const p = new Process({ target: fx.consumesAndExits, args: [sem], module });
      try {
        await p.start();
        await p.join(10_000);
        assert.equal(p.exitCode, 0);
        assert.equal(await sem.acquire({ timeout: 150 }), false);
        assert.equal(sem.getValue(), 0);
      } finally {
        await cleanup(p);
      }
    }),
});

Deno.test({
  name: "Condition and Event work across processes",
  ...SPAWNS,
  fn: () =>
    scoped(async (keep) => {
      const cond = keep(new Condition());
      const ready = keep(new Event());
      const flag = keep(new Event());
      const reply = keep(new Event());
      const p = new Process({ target: fx.waitsOnCondition, args: [cond, ready, flag, reply], module });
      try {
        await p.start();
        assert.equal(await ready.wait(10_000), true);
        await cond.acquire();
        cond.notifyAll(); // a wake-up with the predicate still false: the child waits again
        cond.release();
        await sleep(50);
        assert.equal(reply.isSet(), false);
        {
          using _ = await cond.hold();
          flag.set();
          cond.notify();
        }
        assert.equal(await reply.wait(10_000), true);
        await p.join(10_000);
        assert.equal(p.exitCode, 0);
      } finally {
        await cleanup(p);
      }
    }),
});

Deno.test({
  name: "A Barrier spans processes: distinct indices per pass, the exported action runs once per pass",
  ...SPAWNS,
  fn: () =>
    scoped(async (keep) => {
      using actions = tempFile();
      using outA = tempFile();
      using outB = tempFile();
      const barrier = keep(fx.makeBarrierWithAction(3, actions.path));
      const a = new Process({
        target: fx.passesBarrier,
        args: [barrier, 4, actions.path, outA.path],
        module,
      });
      const b = new Process({
        target: fx.passesBarrier,
        args: [barrier, 4, actions.path, outB.path],
        module,
      });
      try {
        await Promise.all([a.start(), b.start()]);
        const mine: number[] = [];
        for (let i = 0; i < 4; i++) mine.push(await barrier.wait(10_000));
        await Promise.all([a.join(10_000), b.join(10_000)]);
        assert.deepEqual([a.exitCode, b.exitCode], [0, 0]);
        const ia = JSON.parse(Deno.readTextFileSync(outA.path));
        const ib = JSON.parse(Deno.readTextFileSync(outB.path));
        for (let i = 0; i < 4; i++) assert.deepEqual([mine[i], ia[i], ib[i]].sort(), [0, 1, 2], `pass ${i}`);
        assert.equal(Deno.readTextFileSync(actions.path).trim().split("\n").length, 4);
        // A broken barrier reaches a waiting child as BrokenBarrierError.
        const c = new Process({
          target: fx.waitsOnBarrierExpectingBreak,
          args: [barrier, outA.path],
          module,
        });
        try {
          await c.start();
          assert.ok(await waitUntil(() => barrier.nWaiting === 1, 10_000));
          barrier.abort();
          await c.join(10_000);
          assert.equal(Deno.readTextFileSync(outA.path), "BrokenBarrierError");
        } finally {
          await cleanup(c);
        }
      } finally {
        await cleanup(a, b);
      }
    }),
});

Deno.test({
  name: "After a program that created primitives is killed with SIGKILL, nothing of it stays in /dev/shm",
  ...SPAWNS,
  async fn() {
    const program = await startProgram<{ pids: number[] }>(
      new URL("./fixtures/sync_program.ts", import.meta.url),
      {
        stderr: "inherit",
        timeoutMs: 15_000,
      },
    );
    const { pids } = program.first;
    try {
      assert.ok(shmEntriesOf(pids[0]).length >= 4, "the program's own primitives exist");
      assert.ok(shmEntriesOf(pids[1]).length >= 14, "the child's primitives exist");
    } finally {
      await program.stop();
    }
    const clean = await waitUntil(() => pids.every((p) => shmEntriesOf(p).length === 0), 10_000);
    assert.ok(clean, `left in /dev/shm: ${pids.flatMap(shmEntriesOf)}`);
  },
});

Deno.test({
  name: "Primitives collected without close() have their names unlinked by the finalizer",
  ...SPAWNS,
  async fn() {
    const out = await runProgram(new URL("./fixtures/sync_gc_program.ts", import.meta.url), {
      denoArgs: ["-A", "--v8-flags=--expose-gc"],
    });
    assert.equal(out.code, 0, out.stderr);
    const { made, left } = JSON.parse(out.stdout);
    assert.equal(made.length, 10, "Lock 2, Semaphore 2, Event 3, Barrier 3");
    assert.deepEqual(left, []);
  },
});

Deno.test("Each primitive prints its state: holder, count, value, flag, waiters, parties", async () => {
  using lock = new Lock();
  using rlock = new RLock();
  using sem = new Semaphore(2);
  using bounded = new BoundedSemaphore(1);
  using event = new Event();
  using cond = new Condition(lock);
  using barrier = new Barrier(3);
  assert.equal(Deno.inspect(lock), "Lock(unlocked)");
  assert.equal(Deno.inspect(rlock), "RLock(unlocked)");
  lock.acquireSync();
  rlock.acquireSync();
  rlock.acquireSync();
  assert.equal(Deno.inspect(lock), `Lock(locked, owner=${Deno.pid})`);
  assert.equal(Deno.inspect(rlock), `RLock(locked, owner=${Deno.pid}, count=2)`);
  assert.equal(Deno.inspect(cond), `Condition(Lock(locked, owner=${Deno.pid}), waiting=0)`);
  const waiting = cond.wait(5000);
  assert.equal(Deno.inspect(cond), "Condition(Lock(unlocked), waiting=1)");
  assert.equal(await lock.acquire({ timeout: 5000 }), true);
  cond.notify();
  lock.release();
  assert.equal(await waiting, true); // wait() returns holding the lock again
  lock.release();
  assert.equal(Deno.inspect(sem), "Semaphore(value=2)");
  bounded.acquireSync();
  assert.equal(Deno.inspect(bounded), "BoundedSemaphore(value=0, max=1)");
  assert.equal(Deno.inspect(event), "Event(unset)");
  event.set();
  assert.equal(Deno.inspect(event), "Event(set)");
  const party = barrier.wait(5000).catch((e) => e);
  assert.equal(Deno.inspect(barrier), "Barrier(parties=3, waiting=1, broken=false)");
  barrier.abort();
  assert.ok((await party) instanceof Error);
  assert.equal(Deno.inspect(barrier), "Barrier(parties=3, waiting=0, broken=true)");
  assert.equal(Deno.inspect({ lock }), "{ lock: Lock(unlocked) }");
  lock.close();
  assert.equal(Deno.inspect(lock), "Lock(closed)");
});
